/** Rows of the identity schema as protobuf messages. */
import { create, type JsonObject as PbJsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Impersonation, ImpersonationSchema } from "@uab/proto/gen/uab/identity/v1/impersonation_pb.js";
import {
  type MfaFactor,
  MfaFactorSchema,
  MfaFactorState,
  MfaFactorType,
} from "@uab/proto/gen/uab/identity/v1/mfa_pb.js";
import {
  type ServiceAccount,
  ServiceAccountSchema,
  type ServiceAccountSecret,
  ServiceAccountSecretSchema,
} from "@uab/proto/gen/uab/identity/v1/service_account_pb.js";
import { type Session, SessionRevokeReason, SessionSchema } from "@uab/proto/gen/uab/identity/v1/session_pb.js";
import {
  type Jwk,
  JwkSchema,
  type SigningKey,
  SigningKeyAlgorithm,
  SigningKeySchema,
  SigningKeyState,
} from "@uab/proto/gen/uab/identity/v1/signing_key_pb.js";
import { type User, UserSchema, UserSource, UserStatus } from "@uab/proto/gen/uab/identity/v1/user_pb.js";
import type { Transaction } from "kysely";
import type {
  IdentityDatabase,
  ImpersonationRow,
  MfaFactorRow,
  ServiceAccountRow,
  ServiceAccountSecretRow,
  SessionRow,
  SigningKeyRow,
  UserRow,
} from "./storage/tables.js";

const ts = (d: Date | null | undefined) => (d ? timestampFromDate(d) : undefined);

const STATUS: Record<UserRow["status"], UserStatus> = {
  active: UserStatus.ACTIVE,
  disabled: UserStatus.DISABLED,
  locked: UserStatus.LOCKED,
};
const SOURCE: Record<UserRow["source"], UserSource> = {
  admin: UserSource.ADMIN,
  sign_up: UserSource.SIGN_UP,
  sso: UserSource.SSO,
  scim: UserSource.SCIM,
};

/** The status a user has now: a lock that expired reads as active. */
export function effectiveStatus(row: Pick<UserRow, "status" | "lock_expires_at">, now = new Date()): UserRow["status"] {
  if (row.status === "locked" && row.lock_expires_at !== null && row.lock_expires_at <= now) return "active";
  return row.status;
}

/** A user row as the User message (`mfaEnrolled` from its factors). */
export function userToProto(row: UserRow, mfaEnrolled: boolean): User {
  const status = effectiveStatus(row);
  return create(UserSchema, {
    id: row.id,
    tenantId: row.tenant_id,
    email: row.email ?? "",
    emailVerified: row.email_verified,
    username: row.username ?? "",
    profile: row.profile,
    status: STATUS[status],
    statusReason: status === row.status ? row.status_reason : "",
    lockExpireTime: status === "locked" ? ts(row.lock_expires_at) : undefined,
    attributes: row.attributes as PbJsonObject,
    source: SOURCE[row.source],
    ssoConnectionId: row.sso_connection_id ?? "",
    scimDirectoryId: row.scim_directory_id ?? "",
    externalId: row.external_id ?? "",
    passwordSet: row.password_hash !== null,
    passwordChangeRequired: row.password_change_required,
    mfaEnrolled,
    lastLoginTime: ts(row.last_login_at),
    createTime: ts(row.created_at),
    updateTime: ts(row.updated_at),
    deleteTime: ts(row.deleted_at),
    purgeTime: ts(row.purge_at),
    etag: row.revision,
  });
}

/** The ids among `userIds` with an active TOTP factor. */
export async function mfaEnrolledUsers(
  tx: Transaction<IdentityDatabase>,
  userIds: readonly string[],
): Promise<Set<string>> {
  if (userIds.length === 0) return new Set();
  const rows = await tx
    .selectFrom("mfa_factors")
    .select("user_id")
    .where("user_id", "in", userIds)
    .where("type", "=", "totp")
    .where("state", "=", "active")
    .execute();
  return new Set(rows.map((r) => r.user_id));
}

/** Users as messages, with their MFA enrolment looked up in one query. */
export async function usersToProto(tx: Transaction<IdentityDatabase>, rows: readonly UserRow[]): Promise<User[]> {
  const enrolled = await mfaEnrolledUsers(
    tx,
    rows.map((r) => r.id),
  );
  return rows.map((r) => userToProto(r, enrolled.has(r.id)));
}

const REVOKE: Record<string, SessionRevokeReason> = {
  logout: SessionRevokeReason.LOGOUT,
  user_revoked: SessionRevokeReason.USER_REVOKED,
  admin_revoked: SessionRevokeReason.ADMIN_REVOKED,
  password_changed: SessionRevokeReason.PASSWORD_CHANGED,
  user_deactivated: SessionRevokeReason.USER_DEACTIVATED,
  refresh_token_reuse: SessionRevokeReason.REFRESH_TOKEN_REUSE,
  mfa_changed: SessionRevokeReason.MFA_CHANGED,
  impersonation_ended: SessionRevokeReason.IMPERSONATION_ENDED,
};

/** A session row as the Session message; `current` marks the caller's own session. */
export async function sessionToProto(
  tx: Transaction<IdentityDatabase>,
  row: SessionRow,
  currentSessionId?: string,
): Promise<Session> {
  const imp = row.impersonation_id
    ? await tx.selectFrom("impersonations").selectAll().where("id", "=", row.impersonation_id).executeTakeFirst()
    : undefined;
  return create(SessionSchema, {
    id: row.id,
    tenantId: row.tenant_id,
    userId: row.user_id,
    device: row.device,
    ipAddress: row.ip_address,
    userAgent: row.user_agent,
    amr: row.amr,
    ssoConnectionId: row.sso_connection_id ?? "",
    current: row.id === currentSessionId,
    impersonation: imp
      ? {
          impersonationId: imp.id,
          impersonatorUserId: imp.impersonator_user_id,
          impersonatorTenantId: imp.impersonator_tenant_id,
          reason: imp.reason,
        }
      : undefined,
    createTime: ts(row.created_at),
    lastSeenTime: ts(row.last_seen_at),
    mfaTime: ts(row.mfa_at),
    idleExpireTime: ts(row.idle_expires_at),
    absoluteExpireTime: ts(row.absolute_expires_at),
    revokeTime: ts(row.revoked_at),
    revokeReason: row.revoke_reason
      ? (REVOKE[row.revoke_reason] ?? SessionRevokeReason.UNSPECIFIED)
      : SessionRevokeReason.UNSPECIFIED,
  });
}

/** An MFA factor row as the MfaFactor message (never its secret). */
export function mfaFactorToProto(row: MfaFactorRow): MfaFactor {
  return create(MfaFactorSchema, {
    id: row.id,
    tenantId: row.tenant_id,
    userId: row.user_id,
    type: row.type === "totp" ? MfaFactorType.TOTP : MfaFactorType.RECOVERY_CODE,
    state: row.state === "active" ? MfaFactorState.ACTIVE : MfaFactorState.PENDING,
    displayName: row.display_name,
    createTime: ts(row.created_at),
    confirmTime: ts(row.confirmed_at),
    lastUsedTime: ts(row.last_used_at),
    expireTime: ts(row.expires_at),
  });
}

const KEY_STATE: Record<SigningKeyRow["state"], SigningKeyState> = {
  next: SigningKeyState.NEXT,
  active: SigningKeyState.ACTIVE,
  retired: SigningKeyState.RETIRED,
  expired: SigningKeyState.EXPIRED,
};
const KEY_ALG: Record<string, SigningKeyAlgorithm> = {
  EdDSA: SigningKeyAlgorithm.EDDSA,
  ES256: SigningKeyAlgorithm.ES256,
  RS256: SigningKeyAlgorithm.RS256,
};

/** A public JWK as the Jwk message. */
export function jwkToProto(jwk: Record<string, unknown>): Jwk {
  const s = (k: string) => (typeof jwk[k] === "string" ? (jwk[k] as string) : "");
  return create(JwkSchema, {
    kid: s("kid"),
    kty: s("kty"),
    alg: s("alg"),
    use: s("use"),
    crv: s("crv"),
    x: s("x"),
    y: s("y"),
    n: s("n"),
    e: s("e"),
  });
}

/** A signing-key row as the SigningKey message (public part only). */
export function signingKeyToProto(row: SigningKeyRow): SigningKey {
  return create(SigningKeySchema, {
    id: row.id,
    algorithm: KEY_ALG[row.algorithm] ?? SigningKeyAlgorithm.UNSPECIFIED,
    state: KEY_STATE[row.state],
    publicKey: jwkToProto(row.public_jwk),
    createTime: ts(row.created_at),
    activateTime: ts(row.activated_at),
    retireTime: ts(row.retired_at),
    expireTime: ts(row.expires_at),
  });
}

/** A service-account secret row as its message (a hint, never the secret). */
export function serviceAccountSecretToProto(row: ServiceAccountSecretRow): ServiceAccountSecret {
  return create(ServiceAccountSecretSchema, {
    id: row.id,
    serviceAccountId: row.service_account_id,
    description: row.description,
    secretHint: row.secret_hint,
    createTime: ts(row.created_at),
    expireTime: ts(row.expires_at),
    lastUsedTime: ts(row.last_used_at),
  });
}

/** A service account with its secrets. */
export function serviceAccountToProto(
  row: ServiceAccountRow,
  secrets: readonly ServiceAccountSecretRow[],
): ServiceAccount {
  return create(ServiceAccountSchema, {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    displayName: row.display_name,
    description: row.description,
    disabled: row.disabled,
    attributes: row.attributes as PbJsonObject,
    secrets: secrets.map(serviceAccountSecretToProto),
    lastUsedTime: ts(row.last_used_at),
    createTime: ts(row.created_at),
    updateTime: ts(row.updated_at),
    etag: row.revision,
  });
}

/** An impersonation row as its message. */
export function impersonationToProto(row: ImpersonationRow): Impersonation {
  return create(ImpersonationSchema, {
    id: row.id,
    tenantId: row.tenant_id,
    userId: row.user_id,
    impersonatorUserId: row.impersonator_user_id,
    impersonatorTenantId: row.impersonator_tenant_id,
    reason: row.reason,
    sessionId: row.session_id,
    createTime: ts(row.created_at),
    expireTime: ts(row.expires_at),
    endTime: ts(row.ended_at),
  });
}
