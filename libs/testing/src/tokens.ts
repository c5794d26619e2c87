/**
 * Access tokens for a test server (or a benchmark's): a fresh signing key, the verifier the
 * server checks tokens with, and tokens that verifier accepts.
 */
import { type AccessTokenClaims, createSigningKey, issueAccessToken, type SigningKey, TokenVerifier } from "@uab/auth";

/**
 * The claims a test puts in a token: the subject and UAB's own claims (the issuer sets the
 * registered ones). Unlike {@link AccessTokenClaims} it has no index signature, so a test's
 * own claims interface fits it.
 */
export type TestTokenClaims = { readonly sub: string } & Partial<
  Pick<AccessTokenClaims, "typ" | "tid" | "sid" | "amr" | "auth_time" | "mfa_time" | "rrev" | "act">
>;

/** What {@link createTestIssuer} makes. */
export interface TestIssuer {
  /** The signing key (its `publicJwk` is the only key the verifier trusts). */
  readonly key: SigningKey;
  /** A verifier of the issuer's tokens (for `startServer({ verifier })`). */
  readonly verifier: TokenVerifier;
  /** A token for `claims`, for a user unless `claims.typ` says otherwise, valid for the issuer's `ttlSeconds`. */
  token(claims: TestTokenClaims): Promise<string>;
}

/**
 * A token issuer for tests: a fresh Ed25519 key named `kid`, and a {@link TokenVerifier} that
 * trusts that key alone (a JWKS given directly) and expects `issuer` and `audience`.
 */
export async function createTestIssuer(o: {
  readonly kid: string;
  readonly issuer: string;
  readonly audience: string;
  readonly ttlSeconds: number;
}): Promise<TestIssuer> {
  const key = await createSigningKey(o.kid);
  const { issuer, audience, ttlSeconds } = o;
  return {
    key,
    verifier: new TokenVerifier({ keys: { jwks: { keys: [key.publicJwk] } }, issuer, audience }),
    token: (claims) => issueAccessToken(key, { typ: "user", ...claims }, { issuer, audience, ttlSeconds }),
  };
}
