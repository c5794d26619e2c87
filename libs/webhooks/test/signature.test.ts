// Standard Webhooks signatures, checked against the reference implementation (the
// standardwebhooks package) in both directions: what we sign it accepts, what it signs we
// accept, and what either rejects the other rejects too.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "@jest/globals";
import { seededRandom } from "@uab/testing";
import {
  generateSecret,
  parseSecret,
  SECRET_PREFIX,
  secretHint,
  signatureHeaders,
  verifySignature,
} from "@uab/webhooks";
import { Webhook } from "standardwebhooks";

const secretOf = (bytes: number): string => `whsec_${randomBytes(bytes).toString("base64")}`;

/** Whether the reference implementation accepts a request. */
function referenceAccepts(secret: string, body: string, headers: Record<string, string>): boolean {
  try {
    new Webhook(secret).verify(body, headers);
    return true;
  } catch {
    return false;
  }
}

describe("secrets", () => {
  it("generateSecret makes whsec_ plus the base64 of 32 random bytes, different every time", () => {
    const a = generateSecret();
    const b = generateSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(parseSecret(a)).toHaveLength(32);
    expect(a).not.toBe(b);
  });

  it("parseSecret accepts 24 to 64 bytes, with or without padding", () => {
    for (const n of [24, 32, 33, 64]) {
      const secret = secretOf(n);
      expect(parseSecret(secret)).toEqual(Buffer.from(secret.slice(6), "base64"));
      expect(parseSecret(secret.replace(/=+$/, ""))).toEqual(Buffer.from(secret.slice(6), "base64"));
    }
  });

  it.each([
    ["no prefix", randomBytes(32).toString("base64"), /must start with "whsec_"/],
    ["another prefix", `whsk_${randomBytes(32).toString("base64")}`, /must start with "whsec_"/],
    ["not base64", "whsec_not*base64!at-all_but_long_enough_000", /must be base64/],
    ["base64url", `whsec_${Buffer.alloc(32, 0xfb).toString("base64url")}`, /must be base64/],
    ["empty", "whsec_", /must be base64/],
    ["too short", secretOf(16), /24 to 64 bytes of key, not 16/],
    ["too long", secretOf(65), /24 to 64 bytes of key, not 65/],
  ])("parseSecret rejects a secret with %s, without repeating it", (_name, secret, message) => {
    expect(() => parseSecret(secret)).toThrow(message);
    try {
      parseSecret(secret);
    } catch (e) {
      const text = (e as Error).message;
      const body = secret.replace(/^whsec_/, "");
      if (body.length > 0) expect(text).not.toContain(body);
    }
  });

  it("secretHint shows the prefix and the last 4 characters of the key, never the secret", () => {
    const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwqbcdEFGH1234=";
    expect(secretHint(secret)).toBe("whsec_…1234");
    for (let i = 0; i < 20; i++) {
      const s = generateSecret();
      const hint = secretHint(s);
      expect(hint.startsWith(`${SECRET_PREFIX}…`)).toBe(true);
      expect(s.replace(/=+$/, "").endsWith(hint.slice(-4))).toBe(true);
      expect(hint.length).toBeLessThanOrEqual(SECRET_PREFIX.length + 5);
    }
    expect(secretHint("whsec_short")).toBe("whsec_…");
    expect(secretHint("")).toBe("whsec_…");
  });
});

describe("signatureHeaders", () => {
  const timestamp = new Date();

  it("produces the three headers, and the reference implementation accepts them", () => {
    const secret = generateSecret();
    const body = JSON.stringify({ type: "audit.entry", data: { n: 1, text: "héllo" } });
    const headers = signatureHeaders({ id: "msg_1", timestamp, body }, [secret]);
    expect(Object.keys(headers).sort()).toEqual(["webhook-id", "webhook-signature", "webhook-timestamp"]);
    expect(headers["webhook-id"]).toBe("msg_1");
    expect(headers["webhook-timestamp"]).toBe(String(Math.floor(timestamp.getTime() / 1000)));
    expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(new Webhook(secret).verify(body, headers)).toEqual({ type: "audit.entry", data: { n: 1, text: "héllo" } });
  });

  it("signs a Uint8Array body exactly like its UTF-8 string", () => {
    const secret = generateSecret();
    const body = '{"a":"ü"}';
    const asText = signatureHeaders({ id: "msg_2", timestamp, body }, [secret]);
    const asBytes = signatureHeaders({ id: "msg_2", timestamp, body: new TextEncoder().encode(body) }, [secret]);
    expect(asBytes).toEqual(asText);
    expect(referenceAccepts(secret, body, asBytes)).toBe(true);
  });

  it("signs with every secret during a rotation: a receiver holding either one accepts", () => {
    const [oldSecret, newSecret, otherSecret] = [generateSecret(), generateSecret(), generateSecret()];
    const body = '{"rotation":true}';
    const headers = signatureHeaders({ id: "msg_3", timestamp, body }, [oldSecret, newSecret]);
    expect(headers["webhook-signature"]?.split(" ")).toHaveLength(2);
    expect(referenceAccepts(oldSecret, body, headers)).toBe(true);
    expect(referenceAccepts(newSecret, body, headers)).toBe(true);
    expect(referenceAccepts(otherSecret, body, headers)).toBe(false);
    expect(verifySignature(headers, body, [oldSecret]).valid).toBe(true);
    expect(verifySignature(headers, body, [newSecret]).valid).toBe(true);
    expect(verifySignature(headers, body, [otherSecret]).valid).toBe(false);
  });

  it("rejects a missing secret list, a bad message id, an invalid date and a malformed secret", () => {
    const secret = generateSecret();
    expect(() => signatureHeaders({ id: "m", timestamp, body: "" }, [])).toThrow(/at least one secret/);
    expect(() => signatureHeaders({ id: "", timestamp, body: "" }, [secret])).toThrow(/message id/);
    expect(() => signatureHeaders({ id: "a b", timestamp, body: "" }, [secret])).toThrow(/message id/);
    expect(() => signatureHeaders({ id: "a\nb", timestamp, body: "" }, [secret])).toThrow(/message id/);
    expect(() => signatureHeaders({ id: "m", timestamp: new Date(Number.NaN), body: "" }, [secret])).toThrow(
      /valid Date/,
    );
    expect(() => signatureHeaders({ id: "m", timestamp, body: "" }, ["whsec_abc"])).toThrow(/malformed/);
  });
});

describe("verifySignature", () => {
  const secret = generateSecret();
  const body = '{"hello":"world"}';
  const now = new Date("2026-11-22T10:00:00Z");

  it("accepts a valid request and returns its id and timestamp", () => {
    const headers = signatureHeaders({ id: "msg_v", timestamp: now, body }, [secret]);
    expect(verifySignature(headers, body, [secret], { now })).toEqual({ valid: true, id: "msg_v", timestamp: now });
  });

  it("holds the timestamp to the tolerance in both directions", () => {
    const at = (offsetSeconds: number) =>
      signatureHeaders({ id: "msg_t", timestamp: new Date(now.getTime() + offsetSeconds * 1000), body }, [secret]);
    expect(verifySignature(at(-300), body, [secret], { now }).valid).toBe(true);
    expect(verifySignature(at(300), body, [secret], { now }).valid).toBe(true);
    expect(verifySignature(at(-301), body, [secret], { now })).toEqual({
      valid: false,
      reason: "timestamp too old (301 s ago)",
    });
    expect(verifySignature(at(301), body, [secret], { now })).toEqual({
      valid: false,
      reason: "timestamp too new (301 s ahead)",
    });
    expect(verifySignature(at(-301), body, [secret], { now, toleranceSeconds: 400 }).valid).toBe(true);
    expect(verifySignature(at(-10), body, [secret], { now, toleranceSeconds: 5 }).valid).toBe(false);
  });

  it("names a missing or malformed header", () => {
    const headers = signatureHeaders({ id: "msg_h", timestamp: now, body }, [secret]);
    const without = (name: string) => Object.fromEntries(Object.entries(headers).filter(([k]) => k !== name));
    expect(verifySignature(without("webhook-id"), body, [secret], { now })).toEqual({
      valid: false,
      reason: "missing webhook-id header",
    });
    expect(verifySignature(without("webhook-timestamp"), body, [secret], { now })).toMatchObject({
      reason: "missing webhook-timestamp header",
    });
    expect(verifySignature(without("webhook-signature"), body, [secret], { now })).toMatchObject({
      reason: "missing webhook-signature header",
    });
    expect(verifySignature({ ...headers, "webhook-timestamp": "12e8" }, body, [secret], { now })).toMatchObject({
      reason: "invalid webhook-timestamp header",
    });
  });

  it("reads fetch Headers and records with any case, and skips unknown versions and junk signatures", () => {
    const headers = signatureHeaders({ id: "msg_c", timestamp: now, body }, [secret]);
    expect(verifySignature(new Headers(headers), body, [secret], { now }).valid).toBe(true);
    const upper = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]));
    expect(verifySignature(upper, body, [secret], { now }).valid).toBe(true);
    const signature = headers["webhook-signature"] as string;
    const noisy = { ...headers, "webhook-signature": `v2,abc v1a,xyz v1,%%% v1,AAAA ${signature}` };
    expect(verifySignature(noisy, body, [secret], { now }).valid).toBe(true);
    const onlyJunk = { ...headers, "webhook-signature": `v2,${signature.slice(3)} v1,AAAA` };
    expect(verifySignature(onlyJunk, body, [secret], { now })).toEqual({
      valid: false,
      reason: "no matching signature",
    });
  });

  it("throws for a malformed secret of its own rather than reporting the request invalid", () => {
    const headers = signatureHeaders({ id: "msg_s", timestamp: now, body }, [secret]);
    expect(() => verifySignature(headers, body, ["nope"], { now })).toThrow(/malformed webhook secret/);
  });
});

describe("agreement with the reference implementation", () => {
  // Random messages and random tampering, seeded: each case is checked by both verifiers on
  // both producers' signatures, and all four verdicts must be the same.
  const rand = seededRandom(20261122);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const randomText = (n: number) =>
    Array.from({ length: n }, () => pick(["a", "Z", "0", " ", "é", "€", "😀", '"', "{", "}", ".", "\n"])).join("");

  type Tamper = "none" | "body" | "timestamp" | "id" | "signature" | "secret";
  const tampers: readonly Tamper[] = ["none", "body", "timestamp", "id", "signature", "secret"];

  it("agrees on 300 random cases, signed by either side, tampered or not", () => {
    const verdicts = new Map<Tamper, Set<boolean>>();
    for (let i = 0; i < 300; i++) {
      const secret = secretOf(24 + Math.floor(rand() * 41));
      const other = generateSecret();
      const id = `msg_${Math.floor(rand() * 1e9).toString(36)}`;
      const body = JSON.stringify({ i, text: randomText(Math.floor(rand() * 40)) });
      const timestamp = new Date(Date.now() - Math.floor(rand() * 200_000));
      const ours = signatureHeaders({ id, timestamp, body }, [secret]);
      const theirs: Record<string, string> = {
        "webhook-id": id,
        "webhook-timestamp": String(Math.floor(timestamp.getTime() / 1000)),
        "webhook-signature": new Webhook(secret).sign(id, timestamp, body),
      };
      expect(theirs).toEqual(ours);
      const tamper = tampers[i % tampers.length] as Tamper;
      for (const signed of [ours, theirs]) {
        let headers = { ...signed };
        let sentBody = body;
        let verifyWith = secret;
        if (tamper === "body") sentBody = body.replace(`"i":${i}`, `"i":${i + 1}`);
        if (tamper === "timestamp") headers["webhook-timestamp"] = String(Number(headers["webhook-timestamp"]) + 1);
        if (tamper === "id") headers["webhook-id"] = `${id}x`;
        if (tamper === "signature") {
          const sig = Buffer.from((headers["webhook-signature"] as string).slice(3), "base64");
          const at = Math.floor(rand() * 32);
          sig[at] = (sig[at] as number) ^ (1 << Math.floor(rand() * 8));
          headers = { ...headers, "webhook-signature": `v1,${sig.toString("base64")}` };
        }
        if (tamper === "secret") verifyWith = other;
        const reference = referenceAccepts(verifyWith, sentBody, headers);
        const ourVerdict = verifySignature(headers, sentBody, [verifyWith]).valid;
        expect(ourVerdict).toBe(reference);
        const seen = verdicts.get(tamper) ?? new Set<boolean>();
        seen.add(reference);
        verdicts.set(tamper, seen);
      }
    }
    // Untampered cases all pass; every tampering is caught.
    expect([...(verdicts.get("none") ?? [])]).toEqual([true]);
    for (const t of tampers.filter((x) => x !== "none")) expect([...(verdicts.get(t) ?? [])]).toEqual([false]);
  });
});
