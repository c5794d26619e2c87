/**
 * The OpenID Connect relying party of per-tenant SSO: discovers a connection's upstream issuer,
 * sends the user there with an authorization-code request (PKCE S256, state, nonce), and turns
 * the callback into a {@link MappedIdentity}. The protocol checks (state, `iss`, PKCE, the ID
 * token's signature, issuer, audience, expiry and nonce) are openid-client's; this module picks
 * the client authentication, caches discovery, bounds every upstream request (timeout, size),
 * guards each issuer origin with a circuit breaker, and turns failures into domain errors whose
 * messages never carry upstream secrets, tokens or free text.
 *
 * Error reasons ({@link OIDC_ERROR_REASONS}):
 * - `SSO_CONNECTION_INVALID` (invalid argument): the connection settings are malformed.
 * - `SSO_DISCOVERY_FAILED` (failed precondition): the issuer answered, but not with a usable
 *   OpenID configuration (404, not JSON, another issuer, no code flow or S256).
 * - `SSO_CLIENT_REJECTED` (failed precondition): the provider rejected our client credentials.
 * - `SSO_STATE_INVALID` (unauthenticated): no flow state, or the callback's state is not its own.
 * - `SSO_RESPONSE_INVALID` (unauthenticated): the callback names another issuer or has no code.
 * - `SSO_UPSTREAM_ERROR` (unauthenticated): the provider answered with an OAuth error
 *   (`access_denied`, `invalid_grant` for a used or expired code or a wrong verifier, …); its
 *   code is in the message and in the `upstream_error` metadata.
 * - `SSO_TOKEN_INVALID` (unauthenticated): the ID token (or userinfo) failed validation, or no
 *   subject could be found.
 * - `SSO_UPSTREAM_UNAVAILABLE` (unavailable): the provider could not be reached, timed out,
 *   answered 5xx, or its circuit is open.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import {
  DomainError,
  FailedPreconditionError,
  InvalidArgumentError,
  UnauthenticatedError,
  UnavailableError,
} from "@uab/core";
import * as client from "openid-client";
import { type AttributeMapping, type MappedIdentity, mapIdentity, OIDC_DEFAULT_NAMES } from "./mapping.js";

/** One tenant's OIDC connection, as the relying party needs it. */
export interface OidcConnectionSettings {
  /** The connection's id (`sso_…`); part of the discovery cache key. */
  readonly connectionId: string;
  /** The upstream issuer URL; discovery is at `<issuer>/.well-known/openid-configuration`. */
  readonly issuer: string;
  /** The client id registered at the provider. */
  readonly clientId: string;
  /** Absent for a public client (PKCE only, token endpoint authentication `none`). */
  readonly clientSecret?: string;
  /** Scopes to request; `openid` is always added. */
  readonly scopes: readonly string[];
  /** Our callback URL, registered at the provider; no query or fragment. */
  readonly redirectUri: string;
  /** Which claims feed which user fields (empty fields use the OIDC defaults). */
  readonly mapping: AttributeMapping;
}

/** What {@link OidcRelyingParty.start} returns for the caller to keep until the callback (server side, one use). */
export interface OidcFlowState {
  /** Sent as `state`; the callback must return it. */
  readonly state: string;
  /** Sent as `nonce`; the ID token must carry it. */
  readonly nonce: string;
  /** The PKCE verifier whose S256 challenge was sent; redeemed with the code. */
  readonly codeVerifier: string;
}

/** The query parameters the provider sent to the redirect URI. */
export interface OidcCallback {
  /** The authorization code (absent on an error). */
  readonly code?: string;
  readonly state: string;
  /** The OAuth error code (`access_denied`, …). */
  readonly error?: string;
  /** Upstream free text: never shown or echoed by this module. */
  readonly errorDescription?: string;
  /** The issuer of the response (RFC 9207), when the provider sends it. */
  readonly iss?: string;
}

/** Circuit breaker settings for {@link OidcRelyingPartyOptions.breaker}. */
export interface OidcBreakerOptions {
  /** Consecutive failed requests to one issuer origin that open its circuit; default 5. */
  readonly failureThreshold?: number;
  /** How long an open circuit fails fast before one trial request, in ms; default 30,000. */
  readonly resetTimeoutMs?: number;
}

/** Options of {@link OidcRelyingParty}. */
export interface OidcRelyingPartyOptions {
  /** Allows http:// issuers and endpoints (tests, local development only); default false. */
  readonly allowInsecureRequests?: boolean;
  /** How long a discovered configuration is reused, in ms; default 10 minutes. */
  readonly discoveryTtlMs?: number;
  /** Deadline of each upstream request (headers and body), in ms; default 10 s. */
  readonly timeoutMs?: number;
  /** The fetch to use; default the global one. */
  readonly fetch?: typeof fetch;
  /** The per-issuer-origin circuit breaker. */
  readonly breaker?: OidcBreakerOptions;
}

/** The error reasons this module throws (see the module comment). */
export const OIDC_ERROR_REASONS = {
  connectionInvalid: "SSO_CONNECTION_INVALID",
  discoveryFailed: "SSO_DISCOVERY_FAILED",
  clientRejected: "SSO_CLIENT_REJECTED",
  stateInvalid: "SSO_STATE_INVALID",
  responseInvalid: "SSO_RESPONSE_INVALID",
  upstreamError: "SSO_UPSTREAM_ERROR",
  tokenInvalid: "SSO_TOKEN_INVALID",
  upstreamUnavailable: "SSO_UPSTREAM_UNAVAILABLE",
} as const;

const R = OIDC_ERROR_REASONS;
const MAX_RESPONSE_BYTES = 1024 * 1024;
const MAX_CACHED = 10_000;
const MAX_BREAKERS = 10_000;
/** RFC 6749 §3.3 scope-token. */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
// Error codes of openid-client (from oauth4webapi, which it does not re-export).
const JSON_ATTRIBUTE_COMPARISON = "OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED";
const RESPONSE_IS_NOT_CONFORM = "OAUTH_RESPONSE_IS_NOT_CONFORM";
const RESPONSE_IS_NOT_JSON = "OAUTH_RESPONSE_IS_NOT_JSON";
const KEY_SELECTION = "OAUTH_KEY_SELECTION_FAILED";

/** A failed upstream request: unreachable, timed out, 5xx, oversized, or skipped by an open circuit. */
class UpstreamFailure extends Error {
  constructor(
    readonly origin: string,
    readonly detail: string,
  ) {
    super(`${origin}: ${detail}`);
    this.name = "UpstreamFailure";
  }
}

/**
 * A small circuit breaker (opossum is not a dependency of this service): closed until
 * `threshold` requests in a row fail, then open (failing fast) for `resetMs`, then half-open
 * with a single trial request that closes or reopens it.
 */
class Breaker {
  #failures = 0;
  #state: "closed" | "open" | "half-open" = "closed";
  #openedAt = 0;
  #trial = false;

  constructor(
    private readonly threshold: number,
    private readonly resetMs: number,
  ) {}

  /** Whether a request may go out now (taking the half-open trial slot if it is free). */
  acquire(): boolean {
    if (this.#state === "closed") return true;
    if (this.#state === "open" && Date.now() - this.#openedAt >= this.resetMs) this.#state = "half-open";
    if (this.#state === "half-open" && !this.#trial) {
      this.#trial = true;
      return true;
    }
    return false;
  }

  success(): void {
    this.#failures = 0;
    this.#state = "closed";
    this.#trial = false;
  }

  failure(): void {
    this.#trial = false;
    this.#failures++;
    if (this.#state === "half-open" || this.#failures >= this.threshold) {
      this.#state = "open";
      this.#openedAt = Date.now();
    }
  }
}

interface CacheEntry {
  readonly config: Promise<client.Configuration>;
  readonly expiresAt: number;
}

/**
 * The OIDC relying party for every tenant's connections: stateless per sign-in (the caller
 * keeps the {@link OidcFlowState}), with discovered configurations cached per connection,
 * issuer, client id and secret, and one circuit breaker per issuer origin. Call
 * {@link OidcRelyingParty.close} on shutdown.
 */
export class OidcRelyingParty {
  readonly #allowInsecure: boolean;
  readonly #ttlMs: number;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #failureThreshold: number;
  readonly #resetTimeoutMs: number;
  readonly #configs = new Map<string, CacheEntry>();
  readonly #breakers = new Map<string, Breaker>();

  /** @throws RangeError for a timeout, TTL, threshold or reset time that is not a positive integer. */
  constructor(options: OidcRelyingPartyOptions = {}) {
    this.#allowInsecure = options.allowInsecureRequests === true;
    this.#ttlMs = options.discoveryTtlMs ?? 10 * 60_000;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#failureThreshold = options.breaker?.failureThreshold ?? 5;
    this.#resetTimeoutMs = options.breaker?.resetTimeoutMs ?? 30_000;
    for (const [name, value] of [
      ["discoveryTtlMs", this.#ttlMs],
      ["timeoutMs", this.#timeoutMs],
      ["breaker.failureThreshold", this.#failureThreshold],
      ["breaker.resetTimeoutMs", this.#resetTimeoutMs],
    ] as const) {
      if (!(Number.isInteger(value) && value >= 1)) {
        throw new RangeError(`OidcRelyingParty: ${name} must be an integer >= 1, not ${value}`);
      }
    }
  }

  /**
   * Discovers the issuer (cached) and builds the authorization URL: response type `code`,
   * PKCE S256, a fresh state and nonce, the connection's scopes (with `openid`) and an optional
   * `login_hint`. Keep the returned flow server-side for {@link OidcRelyingParty.complete}.
   * @throws InvalidArgumentError `SSO_CONNECTION_INVALID`; FailedPreconditionError
   *   `SSO_DISCOVERY_FAILED`; UnavailableError `SSO_UPSTREAM_UNAVAILABLE`.
   */
  async start(
    settings: OidcConnectionSettings,
    extra: { readonly loginHint?: string } = {},
  ): Promise<{ authorizationUrl: string; flow: OidcFlowState }> {
    const issuer = validateSettings(settings, this.#allowInsecure);
    const config = await this.#configuration(settings, issuer);
    const flow: OidcFlowState = {
      state: client.randomState(),
      nonce: client.randomNonce(),
      codeVerifier: client.randomPKCECodeVerifier(),
    };
    const parameters: Record<string, string> = {
      redirect_uri: settings.redirectUri,
      scope: scopesOf(settings).join(" "),
      state: flow.state,
      nonce: flow.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(flow.codeVerifier),
      code_challenge_method: "S256",
    };
    if (extra.loginHint?.trim()) parameters.login_hint = extra.loginHint.trim();
    return { authorizationUrl: client.buildAuthorizationUrl(config, parameters).href, flow };
  }

  /**
   * Finishes a sign-in from the provider's callback: checks the state against the flow, the
   * callback's issuer, and an upstream `error`; redeems the code (with the PKCE verifier) and
   * validates the ID token (signature, issuer, audience, expiry, nonce); asks the userinfo
   * endpoint when the ID token's claims give no email; and maps the claims (ID token claims win
   * over userinfo's). An email counts as verified only when the mapped `email_verified` is true.
   * @throws UnauthenticatedError `SSO_STATE_INVALID`, `SSO_RESPONSE_INVALID`,
   *   `SSO_UPSTREAM_ERROR`, `SSO_TOKEN_INVALID`; FailedPreconditionError `SSO_CLIENT_REJECTED`,
   *   `SSO_DISCOVERY_FAILED`; InvalidArgumentError `SSO_CONNECTION_INVALID`; UnavailableError
   *   `SSO_UPSTREAM_UNAVAILABLE`.
   */
  async complete(
    settings: OidcConnectionSettings,
    flow: OidcFlowState,
    callback: OidcCallback,
  ): Promise<{ identity: MappedIdentity; claims: Record<string, unknown> }> {
    const issuer = validateSettings(settings, this.#allowInsecure);
    if (!(nonEmpty(flow?.state) && nonEmpty(flow.nonce) && nonEmpty(flow.codeVerifier))) {
      throw new UnauthenticatedError(R.stateInvalid, "the sign-in has no flow state; start the sign-in again");
    }
    if (!(nonEmpty(callback.state) && sameSecret(callback.state, flow.state))) {
      throw new UnauthenticatedError(
        R.stateInvalid,
        "the state returned by the identity provider does not belong to this sign-in; start the sign-in again",
      );
    }
    const config = await this.#configuration(settings, issuer);
    const metadata = config.serverMetadata();
    if (callback.iss !== undefined && callback.iss !== metadata.issuer) {
      throw new UnauthenticatedError(R.responseInvalid, "the authorization response names another issuer");
    }
    if (nonEmpty(callback.error)) {
      const code = errorCode(callback.error);
      throw new UnauthenticatedError(R.upstreamError, `the identity provider refused the sign-in: ${code}`, {
        metadata: { upstream_error: code },
      });
    }
    if (!nonEmpty(callback.code)) {
      throw new UnauthenticatedError(R.responseInvalid, "the authorization response carries no code");
    }
    if (callback.iss === undefined && metadata.authorization_response_iss_parameter_supported === true) {
      throw new UnauthenticatedError(R.responseInvalid, "the authorization response lacks the issuer (iss)");
    }

    const currentUrl = new URL(settings.redirectUri);
    currentUrl.searchParams.set("code", callback.code);
    currentUrl.searchParams.set("state", callback.state);
    if (callback.iss !== undefined) currentUrl.searchParams.set("iss", callback.iss);
    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      tokens = await client.authorizationCodeGrant(config, currentUrl, {
        pkceCodeVerifier: flow.codeVerifier,
        expectedState: flow.state,
        expectedNonce: flow.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      throw this.#failure(err, "token", settings, issuer);
    }
    const idClaims = tokens.claims();
    if (idClaims === undefined)
      throw new UnauthenticatedError(R.tokenInvalid, "the identity provider sent no ID token");
    let claims: Record<string, unknown> = { ...idClaims };
    let identity = mapIdentity(claims, settings.mapping, OIDC_DEFAULT_NAMES, idClaims.sub);
    if (identity?.email === undefined && metadata.userinfo_endpoint !== undefined && nonEmpty(tokens.access_token)) {
      let userinfo: Record<string, unknown>;
      try {
        userinfo = { ...(await client.fetchUserInfo(config, tokens.access_token, idClaims.sub)) };
      } catch (err) {
        throw this.#failure(err, "userinfo", settings, issuer);
      }
      claims = { ...userinfo, ...idClaims };
      identity = mapIdentity(claims, settings.mapping, OIDC_DEFAULT_NAMES, idClaims.sub);
    }
    if (identity === undefined) {
      throw new UnauthenticatedError(R.tokenInvalid, "the identity provider's claims name no subject for the user");
    }
    return { identity: { ...identity, emailVerified: identity.email !== undefined && identity.emailVerified }, claims };
  }

  /**
   * Checks a connection's issuer afresh (bypassing, then refreshing, the cache): it must be
   * discoverable, name itself as the issuer, and offer the authorization-code flow with S256
   * (a provider that does not list its PKCE methods is accepted: PKCE is sent regardless) and
   * a client authentication we can use. For creating and updating connections.
   * @throws InvalidArgumentError `SSO_CONNECTION_INVALID`; FailedPreconditionError
   *   `SSO_DISCOVERY_FAILED`; UnavailableError `SSO_UPSTREAM_UNAVAILABLE`.
   */
  async check(settings: OidcConnectionSettings): Promise<void> {
    const issuer = validateSettings(settings, this.#allowInsecure);
    const key = cacheKey(settings);
    this.#configs.delete(key);
    await this.#configuration(settings, issuer);
  }

  /** Forgets every cached configuration and circuit. */
  close(): void {
    this.#configs.clear();
    this.#breakers.clear();
  }

  /** The cached (or in-flight) configuration of a connection, discovering it when missing or stale. */
  #configuration(settings: OidcConnectionSettings, issuer: URL): Promise<client.Configuration> {
    const key = cacheKey(settings);
    const now = Date.now();
    const hit = this.#configs.get(key);
    if (hit !== undefined && hit.expiresAt > now) return hit.config;
    const config = this.#discover(settings, issuer);
    const entry: CacheEntry = { config, expiresAt: now + this.#ttlMs };
    this.#configs.delete(key);
    this.#configs.set(key, entry);
    config.catch(() => {
      if (this.#configs.get(key) === entry) this.#configs.delete(key);
    });
    while (this.#configs.size > MAX_CACHED) {
      const oldest = this.#configs.keys().next().value as string;
      this.#configs.delete(oldest);
    }
    return config;
  }

  async #discover(settings: OidcConnectionSettings, issuer: URL): Promise<client.Configuration> {
    const secret = settings.clientSecret;
    let config: client.Configuration;
    try {
      config = await client.discovery(
        issuer,
        settings.clientId,
        secret ? undefined : { token_endpoint_auth_method: "none" },
        secret ? clientSecretAuth(secret) : client.None(),
        {
          [client.customFetch]: this.#fetchFor(issuer.origin),
          // openid-client's own deadline (seconds) stays behind ours, which #fetchFor applies.
          timeout: Math.ceil(this.#timeoutMs / 1000) + 5,
          ...(this.#allowInsecure ? { execute: [client.allowInsecureRequests] } : {}),
        },
      );
    } catch (err) {
      throw this.#failure(err, "discovery", settings, issuer);
    }
    checkMetadata(config.serverMetadata(), secret !== undefined && secret !== "", this.#allowInsecure);
    // openid-client trusts an ID token from the token endpoint on TLS alone (OIDC Core
    // 3.1.3.7 allows it); we verify its signature against the provider's JWKS as well.
    client.enableNonRepudiationChecks(config);
    return config;
  }

  /**
   * The fetch of every request about one issuer origin: through that origin's breaker, with
   * our deadline over headers and body, at most 1 MiB read, and 5xx turned into a failure.
   */
  #fetchFor(origin: string): client.CustomFetch {
    return async (url, init) => {
      const breaker = this.#breaker(origin);
      if (!breaker.acquire()) throw new UpstreamFailure(origin, "the circuit is open after repeated failures");
      const deadline = AbortSignal.timeout(this.#timeoutMs);
      const signal = init.signal ? AbortSignal.any([init.signal, deadline]) : deadline;
      try {
        const response = await this.#fetch(url, { ...init, signal } as RequestInit);
        if (response.status >= 500) {
          await response.body?.cancel().catch(() => undefined);
          throw new UpstreamFailure(origin, `it answered HTTP ${response.status}`);
        }
        const body = await readLimited(response, origin);
        breaker.success();
        const nullBody = response.status === 204 || response.status === 205 || response.status === 304;
        const headers = new Headers(response.headers);
        // The body is already decoded and read whole.
        headers.delete("content-encoding");
        headers.delete("content-length");
        return new Response(nullBody ? null : body, {
          status: response.status,
          statusText: response.statusText,
          headers,
        });
      } catch (err) {
        breaker.failure();
        if (err instanceof UpstreamFailure) throw err;
        const timedOut = deadline.aborted || (err as { name?: unknown })?.name === "TimeoutError";
        throw new UpstreamFailure(
          origin,
          timedOut ? `it did not answer within ${this.#timeoutMs} ms` : `the connection failed${networkCode(err)}`,
        );
      }
    };
  }

  #breaker(origin: string): Breaker {
    let breaker = this.#breakers.get(origin);
    if (breaker === undefined) {
      breaker = new Breaker(this.#failureThreshold, this.#resetTimeoutMs);
      this.#breakers.set(origin, breaker);
      while (this.#breakers.size > MAX_BREAKERS) {
        this.#breakers.delete(this.#breakers.keys().next().value as string);
      }
    }
    return breaker;
  }

  /** Turns an openid-client (or fetch) failure into a domain error; see the module comment. */
  #failure(err: unknown, phase: "discovery" | "token" | "userinfo", settings: OidcConnectionSettings, issuer: URL) {
    if (err instanceof DomainError) return err;
    const cause = sanitized(err);
    const upstream = findUpstreamFailure(err);
    const code = (err as { code?: unknown })?.code;
    if (upstream !== undefined || code === "OAUTH_TIMEOUT" || code === "OAUTH_ABORT") {
      return new UnavailableError(
        R.upstreamUnavailable,
        `the identity provider at ${upstream?.origin ?? issuer.origin} is unavailable: ${upstream?.detail ?? "the request timed out"}`,
        { cause },
      );
    }
    if (err instanceof TypeError && typeof code === "string" && code.startsWith("ERR_INVALID_ARG")) {
      // A misuse of openid-client: a bug here, not the provider's doing.
      return err;
    }
    if (phase === "discovery") {
      const status =
        (err as { cause?: unknown })?.cause instanceof Response ? (err as { cause: Response }).cause.status : 0;
      const why =
        code === JSON_ATTRIBUTE_COMPARISON
          ? "its discovery document names another issuer"
          : status
            ? `its discovery document answered HTTP ${status}`
            : "its discovery document is not a valid OpenID configuration";
      return new FailedPreconditionError(R.discoveryFailed, `the issuer ${issuer.href} cannot be used: ${why}`, {
        cause,
      });
    }
    if (err instanceof client.ResponseBodyError) {
      const upstreamCode = errorCode(err.error);
      if (phase === "token" && (upstreamCode === "invalid_client" || upstreamCode === "unauthorized_client")) {
        return new FailedPreconditionError(
          R.clientRejected,
          `the identity provider rejected the connection's client credentials: ${upstreamCode}`,
          { cause, metadata: { upstream_error: upstreamCode } },
        );
      }
      return new UnauthenticatedError(
        R.upstreamError,
        `the identity provider refused the ${phase} request: ${upstreamCode}`,
        {
          cause,
          metadata: { upstream_error: upstreamCode },
        },
      );
    }
    if (err instanceof client.WWWAuthenticateChallengeError) {
      if (phase === "token" && err.status === 401) {
        return new FailedPreconditionError(
          R.clientRejected,
          "the identity provider rejected the connection's client credentials",
          {
            cause,
          },
        );
      }
      return new UnauthenticatedError(
        R.upstreamError,
        `the identity provider refused the ${phase} request (HTTP ${err.status})`,
        {
          cause,
        },
      );
    }
    if (code === RESPONSE_IS_NOT_CONFORM || code === RESPONSE_IS_NOT_JSON) {
      return new UnauthenticatedError(R.upstreamError, `the identity provider's ${phase} response was not understood`, {
        cause,
      });
    }
    if (code === KEY_SELECTION) {
      // Most likely the provider rotated its keys since we fetched them: rediscover next time
      // (a fresh configuration fetches the JWKS again) instead of waiting for the cache to age.
      this.#configs.delete(cacheKey(settings));
    }
    return new UnauthenticatedError(
      R.tokenInvalid,
      `the identity provider's ${phase === "token" ? "ID token" : "userinfo response"} failed validation: ${validationDetail(err)}`,
      { cause },
    );
  }
}

/** Validates the settings; returns the issuer URL. */
function validateSettings(settings: OidcConnectionSettings, allowInsecure: boolean): URL {
  const violations: { field: string; description: string }[] = [];
  const issuer = URL.canParse(settings.issuer) ? new URL(settings.issuer) : undefined;
  if (issuer === undefined) violations.push({ field: "issuer", description: "must be an absolute URL" });
  else if (!(issuer.protocol === "https:" || (allowInsecure && issuer.protocol === "http:"))) {
    violations.push({
      field: "issuer",
      description: allowInsecure ? "must be an http(s) URL" : "must be an https URL",
    });
  } else if (issuer.search !== "" || issuer.hash !== "" || issuer.username !== "" || issuer.password !== "") {
    violations.push({ field: "issuer", description: "must not have a query, fragment or credentials" });
  }
  if (!nonEmpty(settings.clientId)) violations.push({ field: "client_id", description: "must not be empty" });
  if (settings.clientSecret !== undefined && typeof settings.clientSecret !== "string") {
    violations.push({ field: "client_secret", description: "must be a string" });
  }
  const redirect = URL.canParse(settings.redirectUri) ? new URL(settings.redirectUri) : undefined;
  if (redirect === undefined || !(redirect.protocol === "https:" || redirect.protocol === "http:")) {
    violations.push({ field: "redirect_uri", description: "must be an absolute http(s) URL" });
  } else if (redirect.search !== "" || redirect.hash !== "") {
    violations.push({ field: "redirect_uri", description: "must not have a query or fragment" });
  }
  if (!Array.isArray(settings.scopes) || !settings.scopes.every((s) => s === "" || SCOPE_TOKEN.test(s))) {
    violations.push({
      field: "scopes",
      description: "must be OAuth scope tokens (printable ASCII without spaces, quotes or backslashes)",
    });
  }
  if (violations.length > 0 || issuer === undefined) {
    throw new InvalidArgumentError(
      R.connectionInvalid,
      `the OIDC connection is invalid: ${violations.map((v) => `${v.field} ${v.description}`).join("; ")}`,
      { violations },
    );
  }
  return issuer;
}

/** Fails discovery for a provider we cannot sign in with. */
function checkMetadata(as: client.ServerMetadata, confidential: boolean, allowInsecure: boolean): void {
  const problems: string[] = [];
  for (const endpoint of ["authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"] as const) {
    const value = as[endpoint];
    if (endpoint === "userinfo_endpoint" && value === undefined) continue;
    if (typeof value !== "string" || !URL.canParse(value)) problems.push(`it has no valid ${endpoint}`);
    else if (!(new URL(value).protocol === "https:" || (allowInsecure && new URL(value).protocol === "http:"))) {
      problems.push(`its ${endpoint} is not https`);
    }
  }
  if (Array.isArray(as.response_types_supported) && !as.response_types_supported.includes("code")) {
    problems.push("it does not support the code response type");
  }
  if (Array.isArray(as.grant_types_supported) && !as.grant_types_supported.includes("authorization_code")) {
    problems.push("it does not support the authorization_code grant");
  }
  if (Array.isArray(as.code_challenge_methods_supported) && !as.code_challenge_methods_supported.includes("S256")) {
    problems.push("it does not support PKCE with S256");
  }
  const methods = as.token_endpoint_auth_methods_supported;
  if (
    confidential &&
    Array.isArray(methods) &&
    !methods.includes("client_secret_basic") &&
    !methods.includes("client_secret_post")
  ) {
    problems.push("it accepts neither client_secret_basic nor client_secret_post");
  }
  if (problems.length > 0) {
    throw new FailedPreconditionError(
      R.discoveryFailed,
      `the issuer ${as.issuer} cannot be used: ${problems.join("; ")}`,
    );
  }
}

/** client_secret_basic unless the provider lists only client_secret_post (RFC 8414's default is basic). */
function clientSecretAuth(secret: string): client.ClientAuth {
  const basic = client.ClientSecretBasic(secret);
  const post = client.ClientSecretPost(secret);
  return (as, c, body, headers) => {
    const methods = as.token_endpoint_auth_methods_supported;
    const usePost =
      Array.isArray(methods) && !methods.includes("client_secret_basic") && methods.includes("client_secret_post");
    return (usePost ? post : basic)(as, c, body, headers);
  };
}

function scopesOf(settings: OidcConnectionSettings): string[] {
  return [...new Set(["openid", ...settings.scopes.filter((s) => s !== "")])];
}

function cacheKey(settings: OidcConnectionSettings): string {
  const secret = settings.clientSecret ? createHash("sha256").update(settings.clientSecret).digest("base64url") : "";
  return JSON.stringify([settings.connectionId, settings.issuer, settings.clientId, secret]);
}

function nonEmpty(value: unknown): value is string {
  return typeof value === "string" && value !== "";
}

/** Constant-time comparison of two secrets of any length. */
function sameSecret(a: string, b: string): boolean {
  const digest = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/** An upstream OAuth error code as safe text: RFC 6749's charset, bounded, else `invalid_error_code`. */
function errorCode(value: unknown): string {
  return typeof value === "string" && /^[A-Za-z0-9_.-]{1,64}$/.test(value) ? value : "invalid_error_code";
}

/** The system error code under a failed fetch (` (ECONNREFUSED)`), for the message; else empty. */
function networkCode(err: unknown): string {
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[A-Z][A-Z0-9_]{1,40}$/.test(code)) return ` (${code})`;
    e = (e as { cause?: unknown }).cause;
  }
  return "";
}

function findUpstreamFailure(err: unknown): UpstreamFailure | undefined {
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (e instanceof UpstreamFailure) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * What failed in a token or userinfo validation, from openid-client's and oauth4webapi's own
 * fixed messages (which never quote claim values, tokens or secrets).
 */
function validationDetail(err: unknown): string {
  const messages: string[] = [];
  for (let e = err, depth = 0; e instanceof Error && depth < 4; depth++) {
    if (e.message && !messages.includes(e.message)) messages.push(e.message);
    e = e.cause;
  }
  return messages.length > 0 ? messages.join(": ").slice(0, 300) : "unknown error";
}

/** A cause fit for logs: names, codes and fixed messages only (no bodies, claims or tokens). */
function sanitized(err: unknown): Error {
  const parts: string[] = [];
  for (let e = err, depth = 0; e instanceof Error && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    parts.push(`${e.name}${typeof code === "string" ? ` [${code}]` : ""}: ${e.message}`);
    e = e.cause;
  }
  return new Error(parts.join(" <- ").slice(0, 1000) || String(err).slice(0, 200));
}

/** Reads a response body, at most {@link MAX_RESPONSE_BYTES}. */
async function readLimited(response: Response, origin: string): Promise<Uint8Array> {
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  if (declared > MAX_RESPONSE_BYTES) {
    await response.body?.cancel().catch(() => undefined);
    throw new UpstreamFailure(origin, "its response is too large");
  }
  if (response.body === null) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    // Throwing out of the loop cancels the stream.
    if (size > MAX_RESPONSE_BYTES) throw new UpstreamFailure(origin, "its response is too large");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
