import { describe, expect, it } from "@jest/globals";
import { bearer, createTestIssuer, seededRandom } from "@uab/testing";

/** The headers `bearer(...)` leaves on a request. */
async function headersOf(interceptor: ReturnType<typeof bearer>): Promise<Record<string, string>> {
  const req = { header: new Headers({ "content-type": "application/grpc" }) };
  let seen: Record<string, string> = {};
  const next = async (r: typeof req) => {
    seen = Object.fromEntries(r.header.entries());
    return {};
  };
  // Only `header` and `next` matter to the interceptor.
  await (interceptor as unknown as (n: typeof next) => (r: typeof req) => Promise<unknown>)(next)(req);
  return seen;
}

describe("bearer", () => {
  it("sets the bearer token and the extra headers", async () => {
    expect(await headersOf(bearer("tok", { "idempotency-key": "k" }))).toEqual({
      "content-type": "application/grpc",
      authorization: "Bearer tok",
      "idempotency-key": "k",
    });
  });

  it.each([undefined, ""])("sends no authorization header for token %p", async (token) => {
    expect(await headersOf(bearer(token))).toEqual({ "content-type": "application/grpc" });
  });
});

describe("createTestIssuer", () => {
  it("issues user tokens its verifier accepts, and only those", async () => {
    const issuer = await createTestIssuer({ kid: "k", issuer: "i", audience: "a", ttlSeconds: 60 });
    const v = await issuer.verifier.verify(await issuer.token({ sub: "usr_1", tid: "ten_1" }));
    expect(v.principal).toMatchObject({ id: "usr_1", type: "user", tenantId: "ten_1" });
    const other = await createTestIssuer({ kid: "k", issuer: "i", audience: "a", ttlSeconds: 60 });
    await expect(issuer.verifier.verify(await other.token({ sub: "usr_1" }))).rejects.toThrow();
  });
});

describe("seededRandom", () => {
  it("gives the same sequence for the same seed, in [0, 1)", () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(seededRandom(43)()).not.toBe(xs[0]);
  });
});
