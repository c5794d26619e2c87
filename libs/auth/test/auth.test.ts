import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createSigningKey, issueAccessToken, type SigningKey, TokenVerifier } from "@uab/auth";
import { UnauthenticatedError } from "@uab/core";

const opts = { issuer: "uab-test", audience: "uab", ttlSeconds: 60 };

describe("TokenVerifier against a JWKS URL", () => {
  let server: Server;
  let url: string;
  let keys: SigningKey[] = [];
  let fetches = 0;

  beforeAll(async () => {
    keys = [await createSigningKey("k1")];
    server = createServer((_req, res) => {
      fetches++;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: keys.map((k) => k.publicJwk) }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("verifies a token and maps claims to the principal", async () => {
    const v = new TokenVerifier({ keys: { jwksUrl: url }, issuer: opts.issuer, audience: opts.audience });
    const token = await issueAccessToken(
      keys[0]!,
      { sub: "usr_1", tid: "ten_1", amr: ["pwd"], act: { sub: "usr_admin" }, mfa_time: 123 },
      opts,
    );
    const verified = await v.verify(token);
    expect(verified.principal).toMatchObject({
      id: "usr_1",
      type: "user",
      tenantId: "ten_1",
      impersonatorId: "usr_admin",
      amr: ["pwd"],
    });
    expect(verified.mfaTime).toBe(123);
  });

  it("caches the key set and picks up a rotated key", async () => {
    const v = new TokenVerifier({ keys: { jwksUrl: url }, issuer: opts.issuer, audience: opts.audience });
    await v.verify(await issueAccessToken(keys[0]!, { sub: "usr_1" }, opts));
    await v.verify(await issueAccessToken(keys[0]!, { sub: "usr_2" }, opts));
    const before = fetches;
    const k2 = await createSigningKey("k2");
    keys = [k2, keys[0]!];
    // A token with the new kid forces one refetch (allowed once the cooldown passed: a fresh verifier).
    const v2 = new TokenVerifier({ keys: { jwksUrl: url }, issuer: opts.issuer, audience: opts.audience });
    await expect(v2.verify(await issueAccessToken(k2, { sub: "usr_3" }, opts))).resolves.toBeDefined();
    expect(fetches).toBeGreaterThan(before);
    // The old key still verifies during the overlap.
    await expect(v2.verify(await issueAccessToken(keys[1]!, { sub: "usr_4" }, opts))).resolves.toBeDefined();
  });

  it.each([
    ["wrong audience", { audience: "other" }, "TOKEN_INVALID"],
    ["wrong issuer", { issuer: "other" }, "TOKEN_INVALID"],
    ["expired", { ttlSeconds: -120 }, "TOKEN_EXPIRED"],
  ])("rejects a token with %s", async (_what, override, reason) => {
    const v = new TokenVerifier({ keys: { jwksUrl: url }, issuer: opts.issuer, audience: opts.audience });
    const token = await issueAccessToken(keys[0]!, { sub: "usr_1" }, { ...opts, ...override });
    const err = await v.verify(token).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect((err as UnauthenticatedError).reason).toBe(reason);
  });

  it("rejects a token signed by an unknown key and garbage", async () => {
    const v = new TokenVerifier({ keys: { jwksUrl: url }, issuer: opts.issuer, audience: opts.audience });
    const stranger = await createSigningKey("k1");
    await expect(v.verify(await issueAccessToken(stranger, { sub: "usr_1" }, opts))).rejects.toBeInstanceOf(
      UnauthenticatedError,
    );
    await expect(v.verify("not.a.jwt")).rejects.toBeInstanceOf(UnauthenticatedError);
  });
});
