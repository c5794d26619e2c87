import { type Principal, type PrincipalType, UnauthenticatedError } from "@uab/core";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  exportJWK,
  generateKeyPair,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  errors as joseErrors,
  jwtVerify,
  SignJWT,
} from "jose";

/** The JWT claims UAB access tokens carry beyond the registered ones. */
export interface AccessTokenClaims extends JWTPayload {
  /** Principal type: `user`, `service_account` or `api_key`. */
  typ?: PrincipalType;
  /** The principal's tenant; absent for platform principals. */
  tid?: string;
  /** Session id. */
  sid?: string;
  /** Authentication methods (RFC 8176). */
  amr?: string[];
  /** Authentication assurance: `aal1` (one factor) or `aal2` (a second factor in this session). */
  acr?: string;
  /** Space-separated OAuth scopes (client-credentials tokens). */
  scope?: string;
  /** When the user authenticated (seconds). */
  auth_time?: number;
  /** When a second factor was last presented (seconds); step-up checks it. */
  mfa_time?: number;
  /** Revision of the principal's role bindings when the token was issued. */
  rrev?: string;
  /** RFC 8693 actor: the real user behind an impersonation. */
  act?: { sub: string };
}

/** A verified principal plus the time its token stops being valid. */
export interface VerifiedToken {
  /** Who the token speaks for. */
  readonly principal: Principal;
  /** When a second factor was last presented, if ever (seconds since epoch). */
  readonly mfaTime?: number | undefined;
  /** Token expiry (seconds since epoch). */
  readonly expiresAt: number;
}

/** A JSON Web Key Set document. */
export type { JSONWebKeySet };

/**
 * Where verification keys come from: identity's JWKS URL, a key set given directly, or a
 * function returning the current set (identity hosted in the same process).
 */
export type KeySource =
  | { readonly jwksUrl: string }
  | { readonly jwks: JSONWebKeySet }
  | { readonly provider: () => Promise<JSONWebKeySet> };

/** Options for {@link TokenVerifier}. */
export interface TokenVerifierOptions {
  /** Keys to verify against. */
  readonly keys: KeySource;
  /** Expected `iss`. */
  readonly issuer: string;
  /** Expected `aud`. */
  readonly audience: string;
  /** Accepted clock skew in seconds (default 30). */
  readonly clockToleranceSeconds?: number;
  /** How many verified tokens to remember (default 10 000). */
  readonly cacheSize?: number;
  /** Accepted algorithms (default EdDSA, ES256 and RS256: what identity's keys may use). */
  readonly algorithms?: readonly string[];
}

type KeyResolver = (
  header: Parameters<ReturnType<typeof createLocalJWKSet>>[0],
  token: Parameters<ReturnType<typeof createLocalJWKSet>>[1],
) => ReturnType<ReturnType<typeof createLocalJWKSet>>;

/** A key resolver over a set that changes (rebuilt when the provider returns a different set). */
function providedKeys(provider: () => Promise<JSONWebKeySet>): KeyResolver {
  let last = "";
  let resolver: ReturnType<typeof createLocalJWKSet> | undefined;
  return async (header, token) => {
    const set = await provider();
    const id = set.keys.map((k) => k.kid ?? "").join(",");
    if (!resolver || id !== last) {
      resolver = createLocalJWKSet(set);
      last = id;
    }
    return resolver(header, token);
  };
}

/**
 * Verifies bearer access tokens against a JWKS. The remote key set is cached and refetched
 * when a token names an unknown `kid` (key rotation), at most every 30 s. Verified tokens
 * are remembered until they expire, so a client reusing one token pays the signature check
 * once, not on every RPC.
 */
export class TokenVerifier {
  private readonly getKey: ReturnType<typeof createRemoteJWKSet> | ReturnType<typeof createLocalJWKSet> | KeyResolver;
  private readonly cache = new Map<string, VerifiedToken>();
  private readonly cacheSize: number;

  constructor(private readonly options: TokenVerifierOptions) {
    const keys = options.keys;
    this.getKey =
      "jwksUrl" in keys
        ? createRemoteJWKSet(new URL(keys.jwksUrl), { cacheMaxAge: 10 * 60_000, cooldownDuration: 30_000 })
        : "jwks" in keys
          ? createLocalJWKSet(keys.jwks)
          : providedKeys(keys.provider);
    this.cacheSize = options.cacheSize ?? 10_000;
  }

  /** Verifies `token`; throws {@link UnauthenticatedError} for anything not a valid, current token. */
  async verify(token: string): Promise<VerifiedToken> {
    const now = Math.floor(Date.now() / 1000);
    const cached = this.cache.get(token);
    if (cached) {
      if (cached.expiresAt > now) return cached;
      this.cache.delete(token);
    }
    let payload: AccessTokenClaims;
    try {
      const result = await jwtVerify<AccessTokenClaims>(token, this.getKey, {
        issuer: this.options.issuer,
        audience: this.options.audience,
        clockTolerance: this.options.clockToleranceSeconds ?? 30,
        algorithms: [...(this.options.algorithms ?? ["EdDSA", "ES256", "RS256"])],
        requiredClaims: ["sub", "exp"],
      });
      payload = result.payload;
    } catch (e) {
      const reason = e instanceof joseErrors.JWTExpired ? "TOKEN_EXPIRED" : "TOKEN_INVALID";
      throw new UnauthenticatedError(
        reason,
        reason === "TOKEN_EXPIRED" ? "access token expired" : "access token is not valid",
        { cause: e },
      );
    }
    const verified: VerifiedToken = {
      principal: {
        id: payload.sub!,
        type: payload.typ ?? "user",
        tenantId: payload.tid,
        sessionId: payload.sid,
        impersonatorId: payload.act?.sub,
        amr: payload.amr ?? [],
        authTime: payload.auth_time,
        mfaTime: payload.mfa_time,
        rolesRevision: payload.rrev,
      },
      mfaTime: payload.mfa_time,
      expiresAt: payload.exp!,
    };
    if (this.cache.size >= this.cacheSize) {
      // Evict the oldest entry (Map keeps insertion order).
      const first = this.cache.keys().next();
      if (!first.done) this.cache.delete(first.value);
    }
    this.cache.set(token, verified);
    return verified;
  }
}

/** The private key type jose signs with. */
export type PrivateKey = Parameters<SignJWT["sign"]>[0];

/** A signing key pair with its public JWK. */
export interface SigningKey {
  /** Key id, published in the JWKS and the token header. */
  readonly kid: string;
  /** The private key. */
  readonly privateKey: PrivateKey;
  /** The public key as a JWK (with kid, alg and use). */
  readonly publicJwk: JWK;
  /** The private key as a JWK, for storing it. */
  readonly privateJwk: JWK;
}

/** Creates an Ed25519 signing key (EdDSA verifies in tens of microseconds; every RPC verifies one). */
export async function createSigningKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" };
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: "EdDSA", use: "sig" };
  return { kid, privateKey, publicJwk, privateJwk };
}

/** Restores a signing key saved with {@link SigningKey.privateJwk}. */
export async function importSigningKey(privateJwk: JWK): Promise<SigningKey> {
  const { importJWK } = await import("jose");
  const privateKey = (await importJWK(privateJwk, "EdDSA")) as PrivateKey;
  const { d: _d, ...publicJwk } = privateJwk;
  return { kid: privateJwk.kid ?? "", privateKey, publicJwk, privateJwk };
}

/** Options for {@link issueAccessToken}. */
export interface IssueTokenOptions {
  /** Issuer (`iss`). */
  readonly issuer: string;
  /** Audience (`aud`). */
  readonly audience: string;
  /** Lifetime in seconds. */
  readonly ttlSeconds: number;
}

/**
 * Signs an access token. The identity service issues user tokens; this is also how the dev
 * server mints the bootstrap administrator's token and how tests mint principals.
 */
export async function issueAccessToken(
  key: SigningKey,
  claims: AccessTokenClaims,
  options: IssueTokenOptions,
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ: "at+jwt" })
    .setIssuer(options.issuer)
    .setAudience(options.audience)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + options.ttlSeconds)
    .sign(key.privateKey);
}
