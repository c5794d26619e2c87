import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  currentRequestContext,
  FailedPreconditionError,
  PermissionDeniedError,
  type Principal,
  UnauthenticatedError,
} from "@uab/core";
import { decodePageToken, pageSize, paginate } from "@uab/db";
import { HttpBodySchema } from "@uab/proto/gen/google/api/httpbody_pb.js";
import type { IdentityService } from "@uab/proto/gen/uab/identity/v1/identity_service_pb.js";
import { SigningKeyAlgorithm, SigningKeyState } from "@uab/proto/gen/uab/identity/v1/signing_key_pb.js";
import { sessionToProto, signingKeyToProto } from "../convert.js";
import { type IdentityDeps, inTenant, touchSessionNow } from "../domain/common.js";
import { requireUserSession } from "../domain/login.js";
import * as machines from "../domain/machines.js";
import * as mfa from "../domain/mfa.js";
import * as policies from "../domain/policies.js";
import * as sessions from "../domain/sessions.js";
import type { KeyAlgorithm } from "../domain/signing-keys.js";
import type { SsoHandlers } from "../domain/sso-port.js";
import * as users from "../domain/users.js";

type Impl = ServiceImpl<typeof IdentityService>;

function caller(): Principal {
  const principal = currentRequestContext()?.principal;
  if (!principal) throw new UnauthenticatedError("TOKEN_MISSING", "missing bearer token");
  return principal;
}

/** The caller as a user of a tenant (self-service RPCs); service accounts have no "my". */
function me(): { principal: Principal; tenantId: string; userId: string; sessionId: string | undefined } {
  const principal = caller();
  if (principal.type !== "user" || !principal.tenantId) {
    throw new FailedPreconditionError("NOT_A_TENANT_USER", "this call is for users of a tenant");
  }
  return { principal, tenantId: principal.tenantId, userId: principal.id, sessionId: principal.sessionId };
}

/** Self-service RPCs that would let an impersonator take over the account are refused. */
function notImpersonating(p: Principal): void {
  if (p.impersonatorId) {
    throw new PermissionDeniedError("IMPERSONATION_FORBIDDEN", "this cannot be done while impersonating the user");
  }
}

const json = (buf: Buffer) => create(HttpBodySchema, { contentType: "application/json", data: buf });

const ALG: Record<number, KeyAlgorithm> = {
  [SigningKeyAlgorithm.UNSPECIFIED]: "EdDSA",
  [SigningKeyAlgorithm.EDDSA]: "EdDSA",
  [SigningKeyAlgorithm.ES256]: "ES256",
  [SigningKeyAlgorithm.RS256]: "RS256",
};
const STATE: Record<number, string | undefined> = {
  [SigningKeyState.NEXT]: "next",
  [SigningKeyState.ACTIVE]: "active",
  [SigningKeyState.RETIRED]: "retired",
  [SigningKeyState.EXPIRED]: "expired",
};

/** The IdentityService. */
export function identityHandlers(deps: IdentityDeps, sso: SsoHandlers, totpIssuer: string): Impl {
  const listSessionsOf = async (
    tenantId: string,
    userId: string,
    req: { pageSize: number; pageToken: string; showEnded?: boolean },
    current?: string,
  ) => {
    const page = await sessions.listSessions(deps, tenantId, userId, req);
    const out = await inTenant(deps, tenantId, (tx) =>
      Promise.all(page.items.map((s) => sessionToProto(tx, s, current))),
    );
    return { sessions: out, nextPageToken: page.next };
  };
  return {
    ...sso,
    async createUser(req) {
      return { user: await users.createUser(deps, req) };
    },
    async getUser(req) {
      return { user: await users.getUser(deps, req.tenantId, req.userId) };
    },
    async listUsers(req) {
      const page = await users.listUsers(deps, req);
      return { users: page.users, nextPageToken: page.next };
    },
    async updateUser(req) {
      return { user: await users.updateUser(deps, req.tenantId, req.userId, req.updateMask!.paths, req, req.etag) };
    },
    async deleteUser(req) {
      return { user: await users.deleteUser(deps, req.tenantId, req.userId, req.etag) };
    },
    async restoreUser(req) {
      return { user: await users.restoreUser(deps, req.tenantId, req.userId) };
    },
    async disableUser(req) {
      return { user: await users.disableUser(deps, req.tenantId, req.userId, req.reason) };
    },
    async enableUser(req) {
      return { user: await users.enableUser(deps, req.tenantId, req.userId) };
    },
    async unlockUser(req) {
      return { user: await users.unlockUser(deps, req.tenantId, req.userId) };
    },
    async setPassword(req) {
      return { user: await users.setPassword(deps, req) };
    },
    async exportUserData(req) {
      return { document: json(await users.exportUserData(deps, req.tenantId, req.userId, false)) };
    },
    async eraseUser(req) {
      const at = await users.eraseUser(deps, req.tenantId, req.userId, req.reason);
      return { userId: req.userId, eraseTime: timestampFromDate(at) };
    },
    async getMyUser() {
      const m = me();
      await touchSessionNow(deps, m.tenantId, m.sessionId);
      return { user: await users.getUser(deps, m.tenantId, m.userId) };
    },
    async updateMyUser(req) {
      const m = me();
      return { user: await users.updateUser(deps, m.tenantId, m.userId, req.updateMask!.paths, req, req.etag) };
    },
    async changePassword(req) {
      const m = me();
      notImpersonating(m.principal);
      await users.changePassword(deps, m.tenantId, m.userId, m.sessionId, req);
      return {};
    },
    async requestEmailVerification() {
      const m = me();
      return { expireTime: timestampFromDate(await users.requestEmailVerification(deps, m.tenantId, m.userId)) };
    },
    async exportMyData() {
      const m = me();
      notImpersonating(m.principal);
      return { document: json(await users.exportUserData(deps, m.tenantId, m.userId, true)) };
    },
    async listMySessions(req) {
      const m = me();
      return listSessionsOf(m.tenantId, m.userId, req, m.sessionId);
    },
    async revokeMySession(req) {
      const m = me();
      const row = await sessions.revokeSession(deps, m.tenantId, req.sessionId, "user_revoked", m.userId);
      return { session: await inTenant(deps, m.tenantId, (tx) => sessionToProto(tx, row, m.sessionId)) };
    },
    async revokeMyOtherSessions() {
      const m = me();
      const { sessionId } = requireUserSession(m.principal);
      const n = await inTenant(deps, m.tenantId, (tx) =>
        sessions.endUserSessions(tx, m.userId, "user_revoked", sessionId),
      );
      return { revokedCount: n };
    },
    async listUserSessions(req) {
      await users.getUser(deps, req.tenantId, req.userId);
      return listSessionsOf(req.tenantId, req.userId, req);
    },
    async revokeUserSession(req) {
      const row = await sessions.revokeSession(deps, req.tenantId, req.sessionId, "admin_revoked", req.userId);
      return { session: await inTenant(deps, req.tenantId, (tx) => sessionToProto(tx, row)) };
    },
    async revokeAllUserSessions(req) {
      await users.getUser(deps, req.tenantId, req.userId);
      const n = await inTenant(deps, req.tenantId, (tx) => sessions.endUserSessions(tx, req.userId, "admin_revoked"));
      return { revokedCount: n };
    },
    async listMyMfaFactors(req) {
      const m = me();
      const out = await mfa.listFactors(deps, m.tenantId, m.userId);
      return page(out.factors, req, { u: m.userId }, (f) => ({
        mfaFactors: f,
        recoveryCodesRemaining: out.recoveryCodesRemaining,
      }));
    },
    async startTotpEnrollment(req) {
      const m = me();
      notImpersonating(m.principal);
      const out = await mfa.startTotpEnrollment(deps, m.tenantId, m.userId, req.displayName, totpIssuer);
      return { mfaFactor: out.factor, secret: out.secret, otpauthUri: out.uri };
    },
    async confirmTotpEnrollment(req) {
      const m = me();
      notImpersonating(m.principal);
      const out = await mfa.confirmTotpEnrollment(deps, m.tenantId, m.userId, req.mfaFactorId, req.code);
      return { mfaFactor: out.factor, recoveryCodes: out.recoveryCodes };
    },
    async deleteMyMfaFactor(req) {
      const m = me();
      notImpersonating(m.principal);
      await mfa.deleteFactor(deps, m.tenantId, m.userId, req.mfaFactorId, {
        administrator: false,
        reason: "removed by the user",
        keepSession: m.sessionId,
      });
      return {};
    },
    async regenerateRecoveryCodes() {
      const m = me();
      notImpersonating(m.principal);
      return { recoveryCodes: await mfa.regenerateRecoveryCodes(deps, m.tenantId, m.userId) };
    },
    async listMfaFactors(req) {
      const out = await mfa.listFactors(deps, req.tenantId, req.userId);
      return page(out.factors, req, { u: req.userId }, (f) => ({
        mfaFactors: f,
        recoveryCodesRemaining: out.recoveryCodesRemaining,
      }));
    },
    async deleteMfaFactor(req) {
      await mfa.deleteFactor(deps, req.tenantId, req.userId, req.mfaFactorId, {
        administrator: true,
        reason: req.reason,
      });
      return {};
    },
    async getMfaPolicy(req) {
      return { mfaPolicy: await policies.getMfaPolicy(deps, req.tenantId) };
    },
    async updateMfaPolicy(req) {
      return { mfaPolicy: await policies.updateMfaPolicy(deps, req) };
    },
    async getLoginPolicy(req) {
      return { loginPolicy: await policies.getLoginPolicy(deps, req.tenantId) };
    },
    async updateLoginPolicy(req) {
      return { loginPolicy: await policies.updateLoginPolicy(deps, req) };
    },
    async createServiceAccount(req) {
      return { serviceAccount: await machines.createServiceAccount(deps, req) };
    },
    async getServiceAccount(req) {
      return { serviceAccount: await machines.getServiceAccount(deps, req.tenantId, req.serviceAccountId) };
    },
    async listServiceAccounts(req) {
      const out = await machines.listServiceAccounts(deps, req);
      return { serviceAccounts: out.items, nextPageToken: out.next };
    },
    async updateServiceAccount(req) {
      return { serviceAccount: await machines.updateServiceAccount(deps, { ...req, paths: req.updateMask!.paths }) };
    },
    async deleteServiceAccount(req) {
      await machines.deleteServiceAccount(deps, req.tenantId, req.serviceAccountId, req.etag);
      return {};
    },
    async createServiceAccountSecret(req) {
      const out = await machines.createServiceAccountSecret(deps, {
        tenantId: req.tenantId,
        serviceAccountId: req.serviceAccountId,
        description: req.description,
        expireTime: req.expireTime ? timestampDate(req.expireTime) : undefined,
      });
      return { serviceAccountSecret: out.secret, clientSecret: out.clientSecret };
    },
    async deleteServiceAccountSecret(req) {
      await machines.deleteServiceAccountSecret(deps, req.tenantId, req.serviceAccountId, req.serviceAccountSecretId);
      return {};
    },
    async startImpersonation(req) {
      const out = await machines.startImpersonation(deps, caller(), {
        tenantId: req.tenantId,
        userId: req.userId,
        reason: req.reason,
        durationSeconds: Number(req.duration!.seconds),
      });
      return { impersonation: out.impersonation, tokens: out.tokens };
    },
    async endImpersonation(req) {
      return { impersonation: await machines.endImpersonation(deps, caller(), req.impersonationId) };
    },
    async listSigningKeys(req) {
      const state = STATE[req.state];
      const filters = { s: req.state };
      const after = decodePageToken(req.pageToken, filters);
      const size = pageSize(req.pageSize);
      const rows = (await deps.keys.list()).filter((r) => (!state || r.state === state) && (!after || r.id < after));
      const p = paginate(rows.slice(0, size + 1), size, filters);
      return { signingKeys: p.items.map(signingKeyToProto), nextPageToken: p.next };
    },
    async rotateSigningKeys(req) {
      const out = await deps.keys.rotate(ALG[req.algorithm] ?? "EdDSA", req.revokePrevious, req.reason);
      return {
        activeKey: signingKeyToProto(out.active),
        nextKey: signingKeyToProto(out.next),
        previousKey: out.previous ? signingKeyToProto(out.previous) : undefined,
      };
    },
  };
}

/** Pages an in-memory list by id (factor lists are small). */
function page<T extends { id: string }, R>(
  items: readonly T[],
  req: { pageSize: number; pageToken: string },
  filters: unknown,
  wrap: (items: T[]) => R,
): R & { nextPageToken: string } {
  const after = decodePageToken(req.pageToken, filters);
  const size = pageSize(req.pageSize);
  const p = paginate(
    items.filter((i) => !after || i.id > after),
    size,
    filters,
  );
  return { ...wrap(p.items), nextPageToken: p.next };
}
