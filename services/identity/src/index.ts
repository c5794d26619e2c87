/**
 * @packageDocumentation
 * The identity service: users, passwords, tokens and signing keys, sessions and devices,
 * MFA, per-tenant SSO (OIDC and SAML), SCIM provisioning, service accounts and
 * impersonation.
 */

export { OWASP_ARGON2, PasswordHasher } from "./domain/passwords.js";
export { IDENTITY_PRINCIPAL_ID, identityConfig, identityModule, identityRoles } from "./module.js";
