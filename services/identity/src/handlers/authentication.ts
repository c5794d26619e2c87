import type { ServiceImpl } from "@connectrpc/connect";
import { currentRequestContext, UnauthenticatedError } from "@uab/core";
import type { AuthenticationService } from "@uab/proto/gen/uab/identity/v1/authentication_service_pb.js";
import { jwkToProto } from "../convert.js";
import type { IdentityDeps } from "../domain/common.js";
import * as login from "../domain/login.js";
import { clientCredentials } from "../domain/machines.js";
import { refresh } from "../domain/sessions.js";
import type { SsoHandlers } from "../domain/sso-port.js";
import { profileFrom, verifyEmail } from "../domain/users.js";

type Impl = ServiceImpl<typeof AuthenticationService>;

function caller() {
  const principal = currentRequestContext()?.principal;
  if (!principal) throw new UnauthenticatedError("TOKEN_MISSING", "missing bearer token");
  return principal;
}

/** The AuthenticationService (public sign-in endpoints). */
export function authenticationHandlers(deps: IdentityDeps, sso: SsoHandlers, allowTenantSignUp: boolean): Impl {
  const signIn = (r: login.SignInResult) =>
    r.tokens
      ? { result: { case: "tokens" as const, value: r.tokens } }
      : r.challenge
        ? { result: { case: "mfaChallenge" as const, value: r.challenge } }
        : { result: { case: undefined } };
  return {
    async signUp(req) {
      const out = await login.signUp(
        deps,
        {
          email: req.email,
          password: req.password,
          username: req.username,
          profile: profileFrom(req.profile),
          tenantId: req.tenant.case === "tenantId" ? req.tenant.value : undefined,
          newTenant: req.tenant.case === "newTenant" ? req.tenant.value : undefined,
          deviceName: req.deviceName,
        },
        allowTenantSignUp,
      );
      return { tenantId: out.tenantId, user: out.user, tokens: out.tokens, emailVerificationRequired: false };
    },
    async login(req) {
      const r = await login.login(deps, req);
      return {
        ...signIn(r),
        mfaEnrollmentRequired: r.mfaEnrollmentRequired,
        passwordChangeRequired: r.passwordChangeRequired,
      };
    },
    async verifyMfaChallenge(req) {
      const r = await login.verifyMfaChallenge(deps, {
        challengeId: req.mfaChallengeId,
        totpCode: req.answer.case === "totpCode" ? req.answer.value : undefined,
        recoveryCode: req.answer.case === "recoveryCode" ? req.answer.value : undefined,
      });
      return { tokens: r.tokens, passwordChangeRequired: r.passwordChangeRequired };
    },
    async refreshToken(req) {
      return { tokens: await refresh(deps, req.refreshToken) };
    },
    async clientCredentialsToken(req) {
      return { tokens: await clientCredentials(deps, req.clientId, req.clientSecret, req.scopes) };
    },
    async revokeToken(req) {
      await login.revokeToken(deps, req.token);
      return {};
    },
    async logout() {
      await login.logout(deps, caller());
      return { federatedLogoutUrl: "" };
    },
    async stepUp(req) {
      return {
        tokens: await login.stepUp(deps, caller(), {
          totpCode: req.answer.case === "totpCode" ? req.answer.value : undefined,
          recoveryCode: req.answer.case === "recoveryCode" ? req.answer.value : undefined,
        }),
      };
    },
    async getJwks() {
      return { keys: (await deps.keys.jwks()).keys.map((k) => jwkToProto(k as Record<string, unknown>)) };
    },
    async requestPasswordReset(req) {
      await login.requestPasswordReset(deps, req.tenantId, req.email);
      return {};
    },
    async resetPassword(req) {
      await login.resetPassword(deps, req.token, req.newPassword);
      return {};
    },
    async verifyEmail(req) {
      const { InvalidArgumentError } = await import("@uab/core");
      if (!(await verifyEmail(deps, req.token))) {
        throw InvalidArgumentError.field("token", "is invalid, expired or already used", "VERIFICATION_TOKEN_INVALID");
      }
      return {};
    },
    startSsoLogin: (req, ctx) => sso.startSsoLogin(req, ctx),
    completeOidcLogin: (req, ctx) => sso.completeOidcLogin(req, ctx),
    completeSamlLogin: (req, ctx) => sso.completeSamlLogin(req, ctx),
    getSamlServiceProviderMetadata: (req, ctx) => sso.getSamlServiceProviderMetadata(req, ctx),
  };
}
