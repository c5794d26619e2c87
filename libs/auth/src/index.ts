/**
 * @packageDocumentation
 * Authentication and authorization primitives: verifying bearer access tokens against a
 * JWKS (cached, rotating), signing tokens, and the {@link Authorizer} port the enforcement
 * interceptor asks.
 */
export * from "./authorizer.js";
export * from "./tokens.js";
