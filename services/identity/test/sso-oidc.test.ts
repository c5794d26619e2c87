// The OIDC relying party against a real upstream OpenID provider (oidc-provider on a random
// local http port), driven through the authorization-code flow the way a browser is: open the
// authorization URL, log in, consent, land on the redirect URI with code/state/iss. Failure
// cases tamper with the flow, the callback or (through a custom fetch) the token response, or
// point the relying party at servers that refuse, hang or answer 503.
import { createServer, type Server } from "node:http";
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import {
  DomainError,
  FailedPreconditionError,
  InvalidArgumentError,
  UnauthenticatedError,
  UnavailableError,
} from "@uab/core";
import { decodeJwt, importJWK, type JWTPayload, SignJWT } from "jose";
import { randomPKCECodeVerifier } from "openid-client";
import { type OidcConnectionSettings, OidcRelyingParty } from "../src/sso/oidc.js";
import {
  authorizeInBrowser,
  type CallbackParams,
  type OidcUpstream,
  rsaSigningKey,
  startOidcUpstream,
  type UpstreamClient,
} from "./fixtures/oidc-upstream.js";

const REDIRECT_URI = "https://uab.test/sso/callback";
const SECRET = "confidential-client-secret-0123456789abcdef";
const CLIENTS: UpstreamClient[] = [
  {
    client_id: "uab-confidential",
    client_secret: SECRET,
    redirect_uris: [REDIRECT_URI],
    token_endpoint_auth_method: "client_secret_basic",
  },
  { client_id: "uab-public", redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: "none" },
];
const ACCOUNTS = {
  alice: {
    email: "Alice@Example.com",
    email_verified: true,
    name: "Alice Liddell",
    given_name: "Alice",
    family_name: "Liddell",
    groups: ["admins", "devs"],
    department: "R&D",
  },
  bob: { email: "bob@example.com", email_verified: false, given_name: "Bob", groups: [] },
  carol: {
    work_email: "Carol@Corp.Example",
    work_email_verified: true,
    roles: ["billing", "support"],
    department: "Finance",
  },
};

let upstream: OidcUpstream;
let rp: OidcRelyingParty;
const servers: { close(): Promise<void> }[] = [];
const parties: OidcRelyingParty[] = [];

function party(options: ConstructorParameters<typeof OidcRelyingParty>[0] = {}): OidcRelyingParty {
  const created = new OidcRelyingParty({ allowInsecureRequests: true, ...options });
  parties.push(created);
  return created;
}

function confidential(over: Partial<OidcConnectionSettings> = {}): OidcConnectionSettings {
  return {
    connectionId: "sso_confidential",
    issuer: upstream.issuer,
    clientId: "uab-confidential",
    clientSecret: SECRET,
    scopes: ["email", "profile", "groups", "corp"],
    redirectUri: REDIRECT_URI,
    mapping: { attributes: { department: "department" } },
    ...over,
  };
}

function publicClient(): OidcConnectionSettings {
  return {
    connectionId: "sso_public",
    issuer: upstream.issuer,
    clientId: "uab-public",
    scopes: ["email", "groups"],
    redirectUri: REDIRECT_URI,
    mapping: {},
  };
}

/** Starts a sign-in and plays the browser through the upstream provider. */
async function signIn(
  relyingParty: OidcRelyingParty,
  settings: OidcConnectionSettings,
  login = "alice",
): Promise<{ flow: Awaited<ReturnType<OidcRelyingParty["start"]>>["flow"]; callback: CallbackParams; url: URL }> {
  const { authorizationUrl, flow } = await relyingParty.start(settings, { loginHint: login });
  const callback = await authorizeInBrowser(authorizationUrl, REDIRECT_URI, { login });
  return { flow, callback, url: new URL(authorizationUrl) };
}

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<DomainError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(DomainError);
    const e = err as DomainError;
    // Nothing upstream-secret ever reaches a message.
    expect(e.message).not.toContain(SECRET);
    return e;
  }
  throw new Error("expected a rejection");
}

beforeAll(async () => {
  upstream = await startOidcUpstream({ clients: CLIENTS, accounts: ACCOUNTS });
  servers.push(upstream);
  rp = party();
});

afterAll(async () => {
  for (const p of parties) p.close();
  await Promise.all(servers.map((s) => s.close()));
});

describe("OidcRelyingParty sign-in", () => {
  it("signs in with a confidential client and maps the claims (userinfo fills in what the ID token lacks)", async () => {
    const { flow, callback, url } = await signIn(rp, confidential());
    expect(url.searchParams.get("code_challenge_method")).toBe("S256");
    expect(url.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(url.searchParams.get("scope")).toBe("openid email profile groups corp");
    expect(url.searchParams.get("login_hint")).toBe("alice");
    expect(url.searchParams.get("state")).toBe(flow.state);
    expect(url.searchParams.get("nonce")).toBe(flow.nonce);
    expect(callback.code).toBeDefined();
    expect(callback.iss).toBe(upstream.issuer);

    const { identity, claims } = await rp.complete(confidential(), flow, callback);
    expect(identity).toEqual({
      subject: "alice",
      email: "alice@example.com",
      emailVerified: true,
      givenName: "Alice",
      familyName: "Liddell",
      displayName: "Alice Liddell",
      username: undefined,
      locale: undefined,
      groups: ["admins", "devs"],
      attributes: { department: "R&D" },
    });
    expect(claims.iss).toBe(upstream.issuer);
    expect(claims.aud).toBe("uab-confidential");
    expect(claims.nonce).toBe(flow.nonce);
  });

  it("signs in with a public client (no secret) using PKCE", async () => {
    const { flow, callback } = await signIn(rp, publicClient());
    const { identity } = await rp.complete(publicClient(), flow, callback);
    expect(identity.subject).toBe("alice");
    expect(identity.email).toBe("alice@example.com");
    expect(identity.groups).toEqual(["admins", "devs"]);
  });

  it("rejects a tampered or missing state before redeeming the code", async () => {
    const { flow, callback } = await signIn(rp, confidential());
    const tampered = await rejection(rp.complete(confidential(), flow, { ...callback, state: `${callback.state}x` }));
    expect(tampered).toBeInstanceOf(UnauthenticatedError);
    expect(tampered.reason).toBe("SSO_STATE_INVALID");
    const noFlow = await rejection(rp.complete(confidential(), { ...flow, state: "" }, { ...callback, state: "" }));
    expect(noFlow).toBeInstanceOf(UnauthenticatedError);
    expect(noFlow.reason).toBe("SSO_STATE_INVALID");
    // The code was not spent: the genuine callback still completes.
    expect((await rp.complete(confidential(), flow, callback)).identity.subject).toBe("alice");
  });

  it("rejects a replayed code", async () => {
    const { flow, callback } = await signIn(rp, confidential());
    await rp.complete(confidential(), flow, callback);
    const replay = await rejection(rp.complete(confidential(), flow, callback));
    expect(replay).toBeInstanceOf(UnauthenticatedError);
    expect(replay.reason).toBe("SSO_UPSTREAM_ERROR");
    expect(replay.metadata.upstream_error).toBe("invalid_grant");
    expect(replay.message).not.toContain(callback.code);
  });

  it("rejects a wrong PKCE code verifier", async () => {
    const { flow, callback } = await signIn(rp, publicClient());
    const err = await rejection(
      rp.complete(publicClient(), { ...flow, codeVerifier: randomPKCECodeVerifier() }, callback),
    );
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(err.reason).toBe("SSO_UPSTREAM_ERROR");
    expect(err.metadata.upstream_error).toBe("invalid_grant");
  });

  it("reports an upstream error=access_denied by its code, not its description", async () => {
    const { authorizationUrl, flow } = await rp.start(confidential());
    const callback = await authorizeInBrowser(authorizationUrl, REDIRECT_URI, { deny: true });
    expect(callback.error).toBe("access_denied");
    expect(callback.errorDescription).toContain("<b>");
    const err = await rejection(rp.complete(confidential(), flow, callback));
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(err.reason).toBe("SSO_UPSTREAM_ERROR");
    expect(err.message).toContain("access_denied");
    expect(err.message).not.toContain("<b>");
    expect(err.metadata.upstream_error).toBe("access_denied");
  });

  it("rejects an ID token whose nonce is not the flow's", async () => {
    const { flow, callback } = await signIn(rp, confidential());
    const err = await rejection(rp.complete(confidential(), { ...flow, nonce: "another-nonce" }, callback));
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(err.reason).toBe("SSO_TOKEN_INVALID");
    expect(err.message).not.toContain(flow.nonce);
  });

  it("treats email_verified=false as an unverified email", async () => {
    const { flow, callback } = await signIn(rp, confidential(), "bob");
    const { identity } = await rp.complete(confidential(), flow, callback);
    expect(identity.subject).toBe("bob");
    expect(identity.email).toBe("bob@example.com");
    expect(identity.emailVerified).toBe(false);
  });

  it("maps claims with a custom mapping (email, verification and groups from other claims)", async () => {
    const settings = confidential({
      mapping: {
        email: "work_email",
        emailVerified: "work_email_verified",
        groups: "roles",
        attributes: { department: "department" },
      },
    });
    const { flow, callback } = await signIn(rp, settings, "carol");
    const { identity, claims } = await rp.complete(settings, flow, callback);
    expect(identity.subject).toBe("carol");
    expect(identity.email).toBe("carol@corp.example");
    expect(identity.emailVerified).toBe(true);
    expect(identity.groups).toEqual(["billing", "support"]);
    expect(identity.attributes).toEqual({ department: "Finance" });
    expect(claims.work_email).toBe("Carol@Corp.Example");
  });

  it("rejects a sign-in whose mapped subject claim is missing", async () => {
    const settings = confidential({ mapping: { subject: "employee_id" } });
    const { flow, callback } = await signIn(rp, settings);
    const err = await rejection(rp.complete(settings, flow, callback));
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(err.reason).toBe("SSO_TOKEN_INVALID");
  });

  it("reports rejected client credentials without echoing the secret", async () => {
    const settings = confidential({ connectionId: "sso_wrong_secret", clientSecret: `${SECRET}-wrong` });
    const { flow, callback } = await signIn(rp, settings);
    const err = await rejection(rp.complete(settings, flow, callback));
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect(err.reason).toBe("SSO_CLIENT_REJECTED");
    expect(err.message).not.toContain(`${SECRET}-wrong`);
  });
});

describe("OidcRelyingParty ID token validation", () => {
  type Tamper = (claims: JWTPayload) => Promise<string>;
  let tamper: Tamper | undefined;
  const tampering: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (tamper === undefined || !url.endsWith("/token") || response.status !== 200) return response;
    const body = (await response.json()) as Record<string, unknown>;
    body.id_token = await tamper(decodeJwt(String(body.id_token)));
    return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  };
  const sign = async (claims: JWTPayload, key = upstream.signingKey) =>
    new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: "key-1" }).sign(await importJWK(key, "RS256"));

  it.each<[string, () => Promise<Tamper>]>([
    ["the wrong audience", async () => (c) => sign({ ...c, aud: "someone-else" })],
    ["the wrong issuer", async () => (c) => sign({ ...c, iss: "http://evil.example" })],
    [
      "an expiry in the past",
      async () => (c) =>
        sign({ ...c, iat: Math.floor(Date.now() / 1000) - 7200, exp: Math.floor(Date.now() / 1000) - 3600 }),
    ],
    [
      "a signature by another key",
      async () => {
        const other = await rsaSigningKey("key-1");
        return (c) => sign(c, other);
      },
    ],
  ])("rejects an ID token with %s", async (_name, make) => {
    const relyingParty = party({ fetch: tampering });
    const { flow, callback } = await signIn(relyingParty, confidential());
    tamper = await make();
    try {
      const err = await rejection(relyingParty.complete(confidential(), flow, callback));
      expect(err).toBeInstanceOf(UnauthenticatedError);
      expect(err.reason).toBe("SSO_TOKEN_INVALID");
    } finally {
      tamper = undefined;
    }
  });
});

describe("OidcRelyingParty discovery, keys and availability", () => {
  it("reuses the discovered configuration and its keys across sign-ins", async () => {
    const relyingParty = party();
    const settings = confidential({ connectionId: "sso_cache" });
    const before = {
      discovery: upstream.hits.get("/.well-known/openid-configuration") ?? 0,
      jwks: upstream.hits.get("/jwks") ?? 0,
    };
    for (let i = 0; i < 2; i++) {
      const { flow, callback } = await signIn(relyingParty, settings);
      expect((await relyingParty.complete(settings, flow, callback)).identity.subject).toBe("alice");
    }
    expect((upstream.hits.get("/.well-known/openid-configuration") ?? 0) - before.discovery).toBe(1);
    expect((upstream.hits.get("/jwks") ?? 0) - before.jwks).toBe(1);
  });

  it("recovers from a key rotation by rediscovering the provider", async () => {
    let rotating = await startOidcUpstream({ clients: CLIENTS, accounts: ACCOUNTS });
    const settings = confidential({ connectionId: "sso_rotation", issuer: rotating.issuer });
    const relyingParty = party();
    try {
      const first = await signIn(relyingParty, settings);
      expect((await relyingParty.complete(settings, first.flow, first.callback)).identity.subject).toBe("alice");

      // The provider comes back signing with a new key (kid key-2) on the same address.
      await rotating.close();
      rotating = await startOidcUpstream({
        clients: CLIENTS,
        accounts: ACCOUNTS,
        port: rotating.port,
        signingKey: await rsaSigningKey("key-2"),
      });
      // The keys fetched moments ago do not have it, and openid-client will not refetch them
      // within a minute: this sign-in fails and drops the cached configuration...
      const stale = await signIn(relyingParty, settings);
      const err = await rejection(relyingParty.complete(settings, stale.flow, stale.callback));
      expect(err).toBeInstanceOf(UnauthenticatedError);
      expect(err.reason).toBe("SSO_TOKEN_INVALID");
      // ...so the next one discovers afresh, fetches the new keys and succeeds.
      const next = await signIn(relyingParty, settings);
      expect((await relyingParty.complete(settings, next.flow, next.callback)).identity.subject).toBe("alice");
    } finally {
      await rotating.close();
    }
  });

  it("check() accepts a usable issuer and rejects one that does not exist", async () => {
    await expect(rp.check(confidential())).resolves.toBeUndefined();
    await expect(rp.check(publicClient())).resolves.toBeUndefined();
    const missing = await rejection(
      rp.check(confidential({ connectionId: "sso_missing", issuer: `${upstream.issuer}/nope` })),
    );
    expect(missing).toBeInstanceOf(FailedPreconditionError);
    expect(missing.reason).toBe("SSO_DISCOVERY_FAILED");
    expect(missing.message).toContain("404");
  });

  it("check() rejects a provider without PKCE S256 or the authorization_code grant", async () => {
    let metadata: Record<string, unknown> = {};
    const fake = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(metadata));
    });
    const issuer = `http://127.0.0.1:${await listen(fake)}`;
    const valid = {
      issuer,
      authorization_endpoint: `${issuer}/auth`,
      token_endpoint: `${issuer}/token`,
      jwks_uri: `${issuer}/jwks`,
      response_types_supported: ["code"],
      code_challenge_methods_supported: ["S256"],
    };
    const settings = confidential({ connectionId: "sso_fake", issuer });
    metadata = valid;
    await expect(rp.check(settings)).resolves.toBeUndefined();
    for (const [broken, expected] of [
      [{ ...valid, code_challenge_methods_supported: ["plain"] }, "S256"],
      [{ ...valid, grant_types_supported: ["implicit"] }, "authorization_code"],
      [{ ...valid, issuer: "http://elsewhere.example" }, "another issuer"],
    ] as const) {
      metadata = broken;
      const err = await rejection(rp.check(settings));
      expect(err).toBeInstanceOf(FailedPreconditionError);
      expect(err.reason).toBe("SSO_DISCOVERY_FAILED");
      expect(err.message).toContain(expected);
    }
  });

  it("refuses http issuers unless insecure requests are allowed", async () => {
    const strict = new OidcRelyingParty();
    parties.push(strict);
    const err = await rejection(strict.start(confidential()));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.reason).toBe("SSO_CONNECTION_INVALID");
    expect(err.violations.map((v) => v.field)).toEqual(["issuer"]);
  });

  it("fails fast with UnavailableError for an unreachable issuer, in start() and check()", async () => {
    const port = await closedPort();
    const settings = confidential({ connectionId: "sso_unreachable", issuer: `http://127.0.0.1:${port}` });
    const started = Date.now();
    const err = await rejection(rp.start(settings));
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.reason).toBe("SSO_UPSTREAM_UNAVAILABLE");
    const checked = await rejection(rp.check(settings));
    expect(checked).toBeInstanceOf(UnavailableError);
    expect(checked.reason).toBe("SSO_UPSTREAM_UNAVAILABLE");
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("times out an issuer that does not answer", async () => {
    const hanging = await startHangingServer();
    const relyingParty = party({ timeoutMs: 200 });
    const started = Date.now();
    const err = await rejection(
      relyingParty.start(confidential({ connectionId: "sso_hanging", issuer: `http://127.0.0.1:${hanging.port}` })),
    );
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.reason).toBe("SSO_UPSTREAM_UNAVAILABLE");
    expect(err.message).toContain("200 ms");
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("opens the issuer's circuit after repeated 5xx, failing fast without asking it", async () => {
    let requests = 0;
    const failing = createServer((_req, res) => {
      requests++;
      res.writeHead(503).end("down");
    });
    const port = await listen(failing);
    const relyingParty = party({ breaker: { failureThreshold: 2, resetTimeoutMs: 60_000 } });
    const settings = confidential({ connectionId: "sso_failing", issuer: `http://127.0.0.1:${port}` });
    for (let i = 0; i < 2; i++) {
      const err = await rejection(relyingParty.start(settings));
      expect(err).toBeInstanceOf(UnavailableError);
      expect(err.message).toContain("503");
    }
    expect(requests).toBe(2);
    const open = await rejection(relyingParty.start(settings));
    expect(open).toBeInstanceOf(UnavailableError);
    expect(open.reason).toBe("SSO_UPSTREAM_UNAVAILABLE");
    expect(open.message).toContain("circuit");
    expect(requests).toBe(2);
    // Another issuer origin is unaffected.
    await expect(relyingParty.check(confidential())).resolves.toBeUndefined();
  });
});

function listen(server: Server | TcpServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve(typeof address === "object" && address !== null ? address.port : 0);
    });
    servers.push({
      close: () =>
        new Promise<void>((done) => {
          if ("closeAllConnections" in server) server.closeAllConnections();
          server.close(() => done());
        }),
    });
  });
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createTcpServer();
  const port = await new Promise<number>((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve(typeof address === "object" && address !== null ? address.port : 0);
    });
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A TCP server that accepts connections and never answers. */
async function startHangingServer(): Promise<{ port: number }> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  const port = await listen(server);
  servers.push({
    close: async () => {
      for (const socket of sockets) socket.destroy();
    },
  });
  return { port };
}
