/**
 * End-to-end sign-in flows over Connect against the real PostgreSQL: sign-up → login →
 * refresh → reuse detection revokes the family; the lost-response grace; logout; JWKS.
 */

import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createLocalJWKSet, jwtVerify } from "jose";
import { type Harness, PASSWORD, startHarness } from "./harness.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { UAB_IDENTITY_REFRESH_REUSE_GRACE_SECONDS: "2" } });
}, 60_000);
afterAll(async () => {
  await h?.close();
});

async function rejects(p: Promise<unknown>, code: Code, reason?: string): Promise<ConnectError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ConnectError);
  const ce = e as ConnectError;
  expect(Code[ce.code]).toBe(Code[code]);
  if (reason) expect(ce.rawMessage + JSON.stringify(ce.metadata)).toBeDefined();
  return ce;
}

describe("sign-up, login, refresh", () => {
  it("signs up a tenant and its owner, who can then administer it with the issued token", async () => {
    const t = await h.signUpTenant("flows");
    const me = await h.identity(t.accessToken).getMyUser({});
    expect(me.user?.id).toBe(t.userId);
    expect(me.user?.email).toBe(t.email);
    const jwks = await h.auth().getJwks({});
    expect(jwks.keys.length).toBeGreaterThanOrEqual(2);
    const { payload, protectedHeader } = await jwtVerify(
      t.accessToken,
      createLocalJWKSet({ keys: jwks.keys.map((k) => ({ kty: k.kty, crv: k.crv, x: k.x, kid: k.kid, alg: k.alg })) }),
      {
        issuer: "uab",
        audience: "uab",
      },
    );
    expect(protectedHeader.alg).toBe("EdDSA");
    expect(payload.sub).toBe(t.userId);
    expect(payload.tid).toBe(t.tenantId);
    expect(payload.amr).toEqual(["pwd"]);
    expect(payload.acr).toBe("aal1");
    expect(typeof payload.sid).toBe("string");
  });

  it("logs in, refreshes, and a reused refresh token revokes the whole session", async () => {
    const t = await h.signUpTenant("reuse");
    const login = await h
      .auth()
      .login({ tenantId: t.tenantId, identifier: t.email, password: PASSWORD, deviceName: "laptop" });
    expect(login.result.case).toBe("tokens");
    const first = login.result.value as { refreshToken: string; sessionId: string; accessToken: string };
    const second = (await h.auth().refreshToken({ refreshToken: first.refreshToken })).tokens!;
    expect(second.sessionId).toBe(first.sessionId);
    expect(second.refreshToken).not.toBe(first.refreshToken);
    const third = (await h.auth().refreshToken({ refreshToken: second.refreshToken })).tokens!;
    // The first token was rotated long ago (its replacement was used): reuse.
    await rejects(h.auth().refreshToken({ refreshToken: first.refreshToken }), Code.Unauthenticated);
    // The family is gone: even the newest token no longer works.
    await rejects(h.auth().refreshToken({ refreshToken: third.refreshToken }), Code.Unauthenticated);
    const sessions = await h
      .identity(t.accessToken)
      .listUserSessions({ tenantId: t.tenantId, userId: t.userId, showEnded: true });
    const ended = sessions.sessions.find((s) => s.id === first.sessionId);
    expect(ended?.revokeTime).toBeDefined();
    expect(h.events.some((e) => e.event.type === "uab.identity.v1.RefreshTokenReuseDetected")).toBe(true);
  });

  it("gives a client that lost the response a fresh pair within the grace, once", async () => {
    const t = await h.signUpTenant("grace");
    const login = await h.auth().login({ tenantId: t.tenantId, identifier: t.email, password: PASSWORD });
    const first = login.result.value as { refreshToken: string };
    const lost = (await h.auth().refreshToken({ refreshToken: first.refreshToken })).tokens!;
    const retried = (await h.auth().refreshToken({ refreshToken: first.refreshToken })).tokens!;
    expect(retried.refreshToken).not.toBe(lost.refreshToken);
    // The lost one was retired; the retried one works.
    const next = (await h.auth().refreshToken({ refreshToken: retried.refreshToken })).tokens!;
    expect(next.sessionId).toBe(retried.sessionId);
    // Past the grace, presenting the first token again is reuse.
    await new Promise((r) => setTimeout(r, 2100));
    await rejects(h.auth().refreshToken({ refreshToken: first.refreshToken }), Code.Unauthenticated);
    await rejects(h.auth().refreshToken({ refreshToken: next.refreshToken }), Code.Unauthenticated);
  });

  it("logout ends the session and its refresh token", async () => {
    const t = await h.signUpTenant("logout");
    const login = await h.auth().login({ tenantId: t.tenantId, identifier: t.email, password: PASSWORD });
    const tokens = login.result.value as { refreshToken: string; accessToken: string };
    await h.auth(tokens.accessToken).logout({});
    await rejects(h.auth().refreshToken({ refreshToken: tokens.refreshToken }), Code.Unauthenticated);
  });

  it("answers an unknown user and a wrong password identically", async () => {
    const t = await h.signUpTenant("enum");
    const a = await rejects(
      h.auth().login({ tenantId: t.tenantId, identifier: "nobody@nowhere.example", password: "wrong password" }),
      Code.Unauthenticated,
    );
    const b = await rejects(
      h.auth().login({ tenantId: t.tenantId, identifier: t.email, password: "wrong password" }),
      Code.Unauthenticated,
    );
    expect(a.rawMessage).toBe(b.rawMessage);
  });
});
