/**
 * Users of a tenant: create (by an administrator, sign-up, SSO just-in-time provisioning or
 * SCIM), read, list, update, the status lifecycle (disable, enable, lock and unlock), soft
 * delete with a restore window, and GDPR export and erasure. Disabling, deleting, erasing
 * and a password change end the user's sessions.
 */
import { type JsonObject as PbJsonObject, toJsonString } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, newId } from "@uab/core";
import { decodePageToken, isUniqueViolation, likeContains, pageSize, paginate } from "@uab/db";
import {
  EmailVerificationRequestedSchema,
  EmailVerifiedSchema,
  PasswordChangedSchema,
  PasswordChangeMethod,
  UserCreatedSchema,
  UserDataExportedSchema,
  UserDeletedSchema,
  UserDisabledSchema,
  UserEnabledSchema,
  UserErasedSchema,
  UserPurgedSchema,
  UserRestoredSchema,
  UserUnlockedSchema,
  UserUpdatedSchema,
} from "@uab/proto/gen/uab/identity/v1/events_pb.js";
import type { ListUsersRequest, ProfileInput } from "@uab/proto/gen/uab/identity/v1/identity_service_pb.js";
import { SessionSchema } from "@uab/proto/gen/uab/identity/v1/session_pb.js";
import { type User, UserSchema, UserSource, UserStatus } from "@uab/proto/gen/uab/identity/v1/user_pb.js";
import { sql } from "kysely";
import { effectiveStatus, mfaFactorToProto, sessionToProto, usersToProto, userToProto } from "../convert.js";
import type { JsonObject, ProfileJson, UserSource as Source, UserRow } from "../storage/tables.js";
import {
  checkEtag,
  composeToken,
  emit,
  getUserRow,
  type IdentityDeps,
  inPlatform,
  inTenant,
  nextRevision,
  parseToken,
  randomSecret,
  requireActiveTenant,
  sameHash,
  savepoint,
  sha256,
  type Tx,
} from "./common.js";
import { loginPolicy } from "./policies.js";
import { endUserSessions } from "./sessions.js";

/** What a new user is made of (every creation path). */
export interface NewUser {
  readonly tenantId: string;
  readonly id?: string;
  readonly email?: string | undefined;
  readonly emailVerified?: boolean;
  readonly username?: string | undefined;
  readonly profile?: ProfileJson;
  readonly attributes?: JsonObject;
  readonly passwordHash?: string | undefined;
  readonly passwordChangeRequired?: boolean;
  readonly source: Source;
  readonly ssoConnectionId?: string | undefined;
  readonly scimDirectoryId?: string | undefined;
  readonly externalId?: string | undefined;
  readonly active?: boolean;
}

/** Profile input as stored (empty fields dropped). */
export function profileFrom(p: ProfileInput | undefined): ProfileJson {
  if (!p) return {};
  const out: ProfileJson = {};
  if (p.givenName) out.givenName = p.givenName;
  if (p.familyName) out.familyName = p.familyName;
  if (p.displayName) out.displayName = p.displayName;
  if (p.locale) out.locale = p.locale;
  if (p.timeZone) out.timeZone = p.timeZone;
  if (p.avatarUrl) out.avatarUrl = p.avatarUrl;
  return out;
}

/** Rejects a password shorter than the tenant's minimum, naming `field`. */
export async function checkPasswordLength(tx: Tx, tenantId: string, password: string, field: string): Promise<void> {
  const policy = await loginPolicy(tx, tenantId);
  if ([...password].length < policy.passwordMinLength) {
    throw InvalidArgumentError.field(
      field,
      `must be at least ${policy.passwordMinLength} characters (tenant policy)`,
      "PASSWORD_TOO_SHORT",
    );
  }
}

function duplicate(e: unknown, input: { email?: string | undefined; username?: string | undefined }): never {
  if (isUniqueViolation(e, "users_email_key")) {
    throw new AlreadyExistsError("EMAIL_TAKEN", `a user with e-mail ${input.email} already exists in this tenant`, {
      violations: [{ field: "email", description: "is already used by another user of the tenant" }],
    });
  }
  if (isUniqueViolation(e, "users_username_key")) {
    throw new AlreadyExistsError(
      "USERNAME_TAKEN",
      `a user with username ${input.username} already exists in this tenant`,
      {
        violations: [{ field: "username", description: "is already used by another user of the tenant" }],
      },
    );
  }
  if (isUniqueViolation(e, "users_scim_external_key")) {
    throw new AlreadyExistsError("EXTERNAL_ID_TAKEN", "a user with this externalId already exists in the directory");
  }
  throw e;
}

/** Inserts a user in the caller's transaction and emits UserCreated. */
export async function insertUser(tx: Tx, input: NewUser, tenantCreated = false): Promise<UserRow> {
  let row: UserRow;
  try {
    // A savepoint keeps the caller's transaction usable after a duplicate.
    row = await savepoint(tx, async () =>
      tx
        .insertInto("users")
        .values({
          id: input.id ?? newId("user"),
          tenant_id: input.tenantId,
          email: input.email?.toLowerCase() ?? null,
          email_verified: input.emailVerified ?? false,
          username: input.username || null,
          profile: JSON.stringify(input.profile ?? {}),
          status: input.active === false ? "disabled" : "active",
          attributes: JSON.stringify(input.attributes ?? {}),
          source: input.source,
          sso_connection_id: input.ssoConnectionId ?? null,
          scim_directory_id: input.scimDirectoryId ?? null,
          external_id: input.externalId ?? null,
          password_hash: input.passwordHash ?? null,
          password_changed_at: input.passwordHash ? new Date() : null,
          password_change_required: input.passwordChangeRequired ?? false,
        })
        .returningAll()
        .executeTakeFirstOrThrow(),
    );
  } catch (e) {
    duplicate(e, input);
  }
  await emit(tx, UserCreatedSchema, { user: userToProto(row, false), tenantCreated }, row.tenant_id, userResource(row));
  return row;
}

/** The audit resource of a user. */
export function userResource(row: Pick<UserRow, "id" | "email" | "username">) {
  return { type: "identity.user", id: row.id, displayName: row.email ?? row.username ?? "" };
}

/** The user as a message, with MFA enrolment. */
export async function userView(tx: Tx, row: UserRow): Promise<User> {
  return (await usersToProto(tx, [row]))[0]!;
}

/** CreateUser (administrator). */
export async function createUser(
  deps: IdentityDeps,
  req: {
    tenantId: string;
    email: string;
    username: string;
    profile?: ProfileInput | undefined;
    emailVerified: boolean;
    attributes?: PbJsonObject | undefined;
    password: string;
    passwordChangeRequired: boolean;
  },
): Promise<User> {
  if (req.password) {
    await inTenant(deps, req.tenantId, (tx) => checkPasswordLength(tx, req.tenantId, req.password, "password"));
  }
  const passwordHash = req.password ? await deps.hasher.hash(req.password) : undefined;
  return inTenant(deps, req.tenantId, async (tx) => {
    await requireActiveTenant(tx, req.tenantId);
    const row = await insertUser(tx, {
      tenantId: req.tenantId,
      email: req.email,
      emailVerified: req.emailVerified,
      username: req.username || undefined,
      profile: profileFrom(req.profile),
      attributes: (req.attributes ?? {}) as JsonObject,
      passwordHash,
      passwordChangeRequired: req.passwordChangeRequired,
      source: "admin",
    });
    return userToProto(row, false);
  });
}

/** GetUser (deleted users too, with their delete time; erased users are gone). */
export function getUser(deps: IdentityDeps, tenantId: string, userId: string): Promise<User> {
  return inTenant(deps, tenantId, async (tx) => userView(tx, await getUserRow(tx, userId)));
}

const STATUS_IN: Record<number, UserRow["status"] | undefined> = {
  [UserStatus.ACTIVE]: "active",
  [UserStatus.DISABLED]: "disabled",
  [UserStatus.LOCKED]: "locked",
};
const SOURCE_IN: Record<number, Source | undefined> = {
  [UserSource.ADMIN]: "admin",
  [UserSource.SIGN_UP]: "sign_up",
  [UserSource.SSO]: "sso",
  [UserSource.SCIM]: "scim",
};

/** ListUsers: newest first, filtered, keyset-paginated. */
export function listUsers(deps: IdentityDeps, req: ListUsersRequest): Promise<{ users: User[]; next: string }> {
  const filters = {
    t: req.tenantId,
    q: req.query,
    s: req.status,
    o: req.source,
    e: req.email,
    c: req.ssoConnectionId,
    d: req.scimDirectoryId,
    x: req.showDeleted,
  };
  const after = decodePageToken(req.pageToken, filters);
  const size = pageSize(req.pageSize);
  return inTenant(deps, req.tenantId, async (tx) => {
    let q = tx.selectFrom("users").selectAll().where("erased_at", "is", null);
    if (!req.showDeleted) q = q.where("deleted_at", "is", null);
    const status = STATUS_IN[req.status];
    const now = new Date();
    if (status === "locked")
      q = q
        .where("status", "=", "locked")
        .where((eb) => eb.or([eb("lock_expires_at", "is", null), eb("lock_expires_at", ">", now)]));
    else if (status === "active")
      q = q.where((eb) =>
        eb.or([eb("status", "=", "active"), eb.and([eb("status", "=", "locked"), eb("lock_expires_at", "<=", now)])]),
      );
    else if (status) q = q.where("status", "=", status);
    const source = SOURCE_IN[req.source];
    if (source) q = q.where("source", "=", source);
    if (req.email) q = q.where(sql`lower(email)`, "=", req.email.toLowerCase());
    if (req.ssoConnectionId) q = q.where("sso_connection_id", "=", req.ssoConnectionId);
    if (req.scimDirectoryId) q = q.where("scim_directory_id", "=", req.scimDirectoryId);
    if (req.query) {
      const like = likeContains(req.query.toLowerCase());
      q = q.where((eb) =>
        eb.or([
          eb(sql`lower(coalesce(email, ''))`, "like", like),
          eb(sql`lower(coalesce(username, ''))`, "like", like),
          eb(sql`lower(profile->>'displayName')`, "like", like),
          eb(sql`lower(concat_ws(' ', profile->>'givenName', profile->>'familyName'))`, "like", like),
        ]),
      );
    }
    if (after) q = q.where("id", "<", after);
    const rows = await q
      .orderBy("id", "desc")
      .limit(size + 1)
      .execute();
    const page = paginate(rows, size, filters);
    return { users: await usersToProto(tx, page.items), next: page.next };
  });
}

/** The fields an update may change. */
export interface UserChanges {
  email?: string;
  username?: string;
  profile?: ProfileInput | undefined;
  emailVerified?: boolean;
  attributes?: PbJsonObject | undefined;
  passwordChangeRequired?: boolean;
}

/** Applies masked changes to a user (locked), bumps its revision and emits UserUpdated. */
export async function applyUserChanges(
  tx: Tx,
  row: UserRow,
  paths: readonly string[],
  c: UserChanges,
): Promise<UserRow> {
  const set: Record<string, unknown> = {};
  const changed: string[] = [];
  for (const path of paths) {
    switch (path) {
      case "email":
        if ((c.email ?? "").toLowerCase() !== row.email) {
          set.email = c.email ? c.email.toLowerCase() : null;
          set.email_verified = paths.includes("email_verified") ? (c.emailVerified ?? false) : false;
          changed.push("email");
        }
        break;
      case "username":
        set.username = c.username || null;
        changed.push("username");
        break;
      case "profile":
        set.profile = JSON.stringify(profileFrom(c.profile));
        changed.push("profile");
        break;
      case "email_verified":
        set.email_verified = c.emailVerified ?? false;
        changed.push("email_verified");
        break;
      case "attributes":
        set.attributes = JSON.stringify(c.attributes ?? {});
        changed.push("attributes");
        break;
      case "password_change_required":
        set.password_change_required = c.passwordChangeRequired ?? false;
        changed.push("password_change_required");
        break;
    }
  }
  if (changed.length === 0 && Object.keys(set).length === 0) return row;
  let updated: UserRow;
  try {
    updated = await savepoint(tx, async () =>
      tx
        .updateTable("users")
        .set({ ...set, revision: nextRevision(row.revision), updated_at: new Date() })
        .where("id", "=", row.id)
        .returningAll()
        .executeTakeFirstOrThrow(),
    );
  } catch (e) {
    duplicate(e, { email: c.email, username: c.username });
  }
  await emit(
    tx,
    UserUpdatedSchema,
    { user: await userView(tx, updated), changedFields: changed },
    row.tenant_id,
    userResource(updated),
  );
  return updated;
}

/** UpdateUser (administrator). */
export function updateUser(
  deps: IdentityDeps,
  tenantId: string,
  userId: string,
  paths: readonly string[],
  changes: UserChanges,
  etag: string,
): Promise<User> {
  return inTenant(deps, tenantId, async (tx) => {
    await requireActiveTenant(tx, tenantId);
    const row = await getUserRow(tx, userId, { lock: true, live: true });
    checkEtag(etag, row.revision, `user ${userId}`);
    return userView(tx, await applyUserChanges(tx, row, paths, changes));
  });
}

/** Sets a user's status fields (locked), bumps the revision; returns the new row. */
async function setStatus(
  tx: Tx,
  row: UserRow,
  set: { status: UserRow["status"]; status_reason?: string; lock_expires_at?: Date | null; failed_logins?: number },
): Promise<UserRow> {
  return tx
    .updateTable("users")
    .set({ ...set, revision: nextRevision(row.revision), updated_at: new Date() })
    .where("id", "=", row.id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Disables a user in `tx` and ends its sessions (used by DisableUser and SCIM deprovisioning). */
export async function disableUserTx(tx: Tx, row: UserRow, reason: string): Promise<UserRow> {
  if (row.status === "disabled") return row;
  const updated = await setStatus(tx, row, { status: "disabled", status_reason: reason, lock_expires_at: null });
  await endUserSessions(tx, row.id, "user_deactivated");
  await emit(
    tx,
    UserDisabledSchema,
    { user: await userView(tx, updated), reason },
    row.tenant_id,
    userResource(updated),
  );
  return updated;
}

/** Enables a disabled user in `tx`. */
export async function enableUserTx(tx: Tx, row: UserRow): Promise<UserRow> {
  if (row.status !== "disabled") return row;
  const updated = await setStatus(tx, row, { status: "active", status_reason: "", failed_logins: 0 });
  await emit(tx, UserEnabledSchema, { user: await userView(tx, updated) }, row.tenant_id, userResource(updated));
  return updated;
}

/** DisableUser. */
export function disableUser(deps: IdentityDeps, tenantId: string, userId: string, reason: string): Promise<User> {
  return inTenant(deps, tenantId, async (tx) => {
    const row = await getUserRow(tx, userId, { lock: true, live: true });
    return userView(tx, await disableUserTx(tx, row, reason));
  });
}

/** EnableUser. */
export function enableUser(deps: IdentityDeps, tenantId: string, userId: string): Promise<User> {
  return inTenant(deps, tenantId, async (tx) => {
    await requireActiveTenant(tx, tenantId);
    const row = await getUserRow(tx, userId, { lock: true, live: true });
    return userView(tx, await enableUserTx(tx, row));
  });
}

/** UnlockUser: clears a brute-force lock and the failure count. */
export function unlockUser(deps: IdentityDeps, tenantId: string, userId: string): Promise<User> {
  return inTenant(deps, tenantId, async (tx) => {
    const row = await getUserRow(tx, userId, { lock: true, live: true });
    if (row.status !== "locked") {
      if (row.failed_logins === 0) return userView(tx, row);
      return userView(tx, await setStatus(tx, row, { status: row.status, failed_logins: 0 }));
    }
    const updated = await setStatus(tx, row, {
      status: "active",
      status_reason: "",
      lock_expires_at: null,
      failed_logins: 0,
    });
    await emit(tx, UserUnlockedSchema, { user: await userView(tx, updated) }, tenantId, userResource(updated));
    return userView(tx, updated);
  });
}

/** Soft-deletes a user in `tx` (restorable until purge), ending its sessions. */
export async function deleteUserTx(deps: IdentityDeps, tx: Tx, row: UserRow): Promise<UserRow> {
  const now = new Date();
  const updated = await tx
    .updateTable("users")
    .set({
      deleted_at: now,
      purge_at: new Date(now.getTime() + deps.settings.restoreWindowMs),
      revision: nextRevision(row.revision),
      updated_at: now,
    })
    .where("id", "=", row.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  await endUserSessions(tx, row.id, "user_deactivated");
  await emit(tx, UserDeletedSchema, { user: await userView(tx, updated) }, row.tenant_id, userResource(updated));
  return updated;
}

/** DeleteUser. */
export function deleteUser(deps: IdentityDeps, tenantId: string, userId: string, etag: string): Promise<User> {
  return inTenant(deps, tenantId, async (tx) => {
    const row = await getUserRow(tx, userId, { lock: true, live: true });
    checkEtag(etag, row.revision, `user ${userId}`);
    return userView(tx, await deleteUserTx(deps, tx, row));
  });
}

/** RestoreUser: within the restore window, unless its e-mail or username was taken meanwhile. */
export function restoreUser(deps: IdentityDeps, tenantId: string, userId: string): Promise<User> {
  return inTenant(deps, tenantId, async (tx) => {
    await requireActiveTenant(tx, tenantId);
    const row = await getUserRow(tx, userId, { lock: true });
    if (row.deleted_at === null) throw new FailedPreconditionError("USER_NOT_DELETED", `user ${userId} is not deleted`);
    let updated: UserRow;
    try {
      updated = await savepoint(tx, async () =>
        tx
          .updateTable("users")
          .set({ deleted_at: null, purge_at: null, revision: nextRevision(row.revision), updated_at: new Date() })
          .where("id", "=", row.id)
          .returningAll()
          .executeTakeFirstOrThrow(),
      );
    } catch (e) {
      duplicate(e, { email: row.email ?? undefined, username: row.username ?? undefined });
    }
    await emit(tx, UserRestoredSchema, { user: await userView(tx, updated) }, tenantId, userResource(updated));
    return userView(tx, updated);
  });
}

/**
 * Replaces a user's password in `tx`, ending its sessions (all, or all but `keepSession`),
 * and emits PasswordChanged.
 */
export async function replacePassword(
  tx: Tx,
  row: UserRow,
  passwordHash: string,
  method: PasswordChangeMethod,
  opts: { changeRequired?: boolean; revokeSessions: boolean; keepSession?: string | undefined },
): Promise<UserRow> {
  const now = new Date();
  const updated = await tx
    .updateTable("users")
    .set({
      password_hash: passwordHash,
      password_changed_at: now,
      password_change_required: opts.changeRequired ?? false,
      failed_logins: 0,
      ...(row.status === "locked" ? { status: "active" as const, lock_expires_at: null, status_reason: "" } : {}),
      revision: nextRevision(row.revision),
      updated_at: now,
    })
    .where("id", "=", row.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  const revoked = opts.revokeSessions ? await endUserSessions(tx, row.id, "password_changed", opts.keepSession) : 0;
  // Outstanding reset links die with the old password.
  await tx
    .updateTable("user_tokens")
    .set({ used_at: now })
    .where("user_id", "=", row.id)
    .where("purpose", "=", "password_reset")
    .where("used_at", "is", null)
    .execute();
  await emit(
    tx,
    PasswordChangedSchema,
    { userId: row.id, method, revokedSessionCount: revoked },
    row.tenant_id,
    userResource(updated),
  );
  return updated;
}

/** SetPassword (administrator). */
export async function setPassword(
  deps: IdentityDeps,
  req: { tenantId: string; userId: string; password: string; passwordChangeRequired: boolean; revokeSessions: boolean },
): Promise<User> {
  await inTenant(deps, req.tenantId, async (tx) => {
    await getUserRow(tx, req.userId, { live: true });
    await checkPasswordLength(tx, req.tenantId, req.password, "password");
  });
  const hash = await deps.hasher.hash(req.password);
  return inTenant(deps, req.tenantId, async (tx) => {
    const row = await getUserRow(tx, req.userId, { lock: true, live: true });
    const updated = await replacePassword(tx, row, hash, PasswordChangeMethod.ADMIN_SET, {
      changeRequired: req.passwordChangeRequired,
      revokeSessions: req.revokeSessions,
    });
    return userView(tx, updated);
  });
}

/** ChangePassword (self-service, with the current password). */
export async function changePassword(
  deps: IdentityDeps,
  tenantId: string,
  userId: string,
  sessionId: string | undefined,
  req: { currentPassword: string; newPassword: string; keepOtherSessions: boolean },
): Promise<void> {
  const current = await inTenant(deps, tenantId, async (tx) => {
    const row = await getUserRow(tx, userId, { live: true });
    await checkPasswordLength(tx, tenantId, req.newPassword, "new_password");
    return row;
  });
  const ok = current.password_hash ? await deps.hasher.verify(current.password_hash, req.currentPassword) : false;
  if (!ok) {
    throw InvalidArgumentError.field("current_password", "is not the current password", "CURRENT_PASSWORD_WRONG");
  }
  if (req.currentPassword === req.newPassword) {
    throw InvalidArgumentError.field("new_password", "must differ from the current password", "PASSWORD_UNCHANGED");
  }
  const hash = await deps.hasher.hash(req.newPassword);
  await inTenant(deps, tenantId, async (tx) => {
    const row = await getUserRow(tx, userId, { lock: true, live: true });
    await replacePassword(tx, row, hash, PasswordChangeMethod.CHANGE, {
      revokeSessions: !req.keepOtherSessions,
      keepSession: sessionId,
    });
  });
}

/** Creates a single-use token for `purpose` and returns the token string. */
export async function createUserToken(
  deps: IdentityDeps,
  tx: Tx,
  row: UserRow,
  purpose: "password_reset" | "email_verification",
): Promise<{ id: string; token: string; expiresAt: Date }> {
  const id = newId("authFlow");
  const secret = randomSecret();
  const expiresAt = new Date(Date.now() + deps.settings.userTokenTtlSeconds * 1000);
  await tx
    .insertInto("user_tokens")
    .values({
      id,
      tenant_id: row.tenant_id,
      user_id: row.id,
      purpose,
      secret_hash: sha256(secret),
      email: row.email ?? "",
      expires_at: expiresAt,
    })
    .execute();
  return {
    id,
    token: composeToken(purpose === "password_reset" ? "uabpr" : "uabev", row.tenant_id, id, secret),
    expiresAt,
  };
}

/** Consumes a single-use token; undefined when it is unknown, used, expired or for another address. */
export async function consumeUserToken(
  deps: IdentityDeps,
  token: string,
  purpose: "password_reset" | "email_verification",
): Promise<{ tenantId: string; userId: string; email: string } | undefined> {
  const parsed = parseToken(purpose === "password_reset" ? "uabpr" : "uabev", token);
  if (!parsed) return undefined;
  return inTenant(deps, parsed.tenantId, async (tx) => {
    const row = await tx
      .selectFrom("user_tokens")
      .selectAll()
      .where("id", "=", parsed.id)
      .where("purpose", "=", purpose)
      .forUpdate()
      .executeTakeFirst();
    if (
      !row ||
      !sameHash(row.secret_hash, sha256(parsed.secret)) ||
      row.used_at !== null ||
      row.expires_at <= new Date()
    ) {
      return undefined;
    }
    await tx.updateTable("user_tokens").set({ used_at: new Date() }).where("id", "=", row.id).execute();
    return { tenantId: row.tenant_id, userId: row.user_id, email: row.email };
  });
}

/** RequestEmailVerification: emits EmailVerificationRequested with the link for the notification service. */
export function requestEmailVerification(deps: IdentityDeps, tenantId: string, userId: string): Promise<Date> {
  return inTenant(deps, tenantId, async (tx) => {
    const row = await getUserRow(tx, userId, { live: true });
    if (!row.email) throw new FailedPreconditionError("EMAIL_MISSING", "the user has no e-mail address");
    if (row.email_verified)
      throw new FailedPreconditionError("EMAIL_ALREADY_VERIFIED", "the e-mail address is already verified");
    const t = await createUserToken(deps, tx, row, "email_verification");
    await emit(
      tx,
      EmailVerificationRequestedSchema,
      {
        userId: row.id,
        verificationTokenId: t.id,
        email: row.email,
        expireTime: timestampFromDate(t.expiresAt),
        verificationUrl: `${deps.settings.publicUrl}/verify-email?token=${encodeURIComponent(t.token)}`,
      },
      tenantId,
      userResource(row),
    );
    return t.expiresAt;
  });
}

/** VerifyEmail: marks the address verified when the token is valid and still for the user's address. */
export async function verifyEmail(deps: IdentityDeps, token: string): Promise<boolean> {
  const used = await consumeUserToken(deps, token, "email_verification");
  if (!used) return false;
  return inTenant(deps, used.tenantId, async (tx) => {
    const row = await getUserRow(tx, used.userId, { lock: true, live: true }).catch(() => undefined);
    if (!row || row.email !== used.email) return false;
    if (row.email_verified) return true;
    const updated = await tx
      .updateTable("users")
      .set({ email_verified: true, revision: nextRevision(row.revision), updated_at: new Date() })
      .where("id", "=", row.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await emit(tx, EmailVerifiedSchema, { user: await userView(tx, updated) }, used.tenantId, userResource(updated));
    return true;
  });
}

/**
 * Everything UAB's identity service holds about a user, as one JSON document (GDPR art. 15
 * and 20): the profile, sessions, MFA factors (never secrets), SSO links, group memberships
 * and impersonations of the user.
 */
export function exportUserData(
  deps: IdentityDeps,
  tenantId: string,
  userId: string,
  selfService: boolean,
): Promise<Buffer> {
  return inTenant(deps, tenantId, async (tx) => {
    const row = await getUserRow(tx, userId);
    const sessions = await tx.selectFrom("sessions").selectAll().where("user_id", "=", userId).orderBy("id").execute();
    const factors = await tx
      .selectFrom("mfa_factors")
      .selectAll()
      .where("user_id", "=", userId)
      .orderBy("id")
      .execute();
    const links = await tx.selectFrom("sso_identities").selectAll().where("user_id", "=", userId).execute();
    const groups = await tx
      .selectFrom("scim_group_members")
      .innerJoin("scim_groups", "scim_groups.id", "scim_group_members.group_id")
      .select(["scim_groups.id", "scim_groups.display_name"])
      .where("scim_group_members.user_id", "=", userId)
      .execute();
    const impersonations = await tx.selectFrom("impersonations").selectAll().where("user_id", "=", userId).execute();
    const user = await userView(tx, row);
    const doc = {
      format: "uab.identity.user-export/v1",
      exportTime: new Date().toISOString(),
      user: JSON.parse(toJsonString(UserSchema, user)),
      sessions: await Promise.all(
        sessions.map(async (s) => JSON.parse(toJsonString(SessionSchema, await sessionToProto(tx, s)))),
      ),
      mfaFactors: factors.map((f) => {
        const m = mfaFactorToProto(f);
        return {
          id: m.id,
          type: f.type,
          state: f.state,
          displayName: m.displayName,
          createTime: f.created_at,
          lastUsedTime: f.last_used_at,
        };
      }),
      ssoIdentities: links.map((l) => ({
        ssoConnectionId: l.connection_id,
        subject: l.subject,
        groups: l.groups,
        lastLoginTime: l.last_login_at,
      })),
      groups: groups.map((g) => ({ id: g.id, displayName: g.display_name })),
      impersonations: impersonations.map((i) => ({
        id: i.id,
        impersonatorUserId: i.impersonator_user_id,
        reason: i.reason,
        createTime: i.created_at,
        endTime: i.ended_at,
      })),
    };
    await emit(tx, UserDataExportedSchema, { userId, selfService }, tenantId, userResource(row));
    return Buffer.from(`${JSON.stringify(doc, null, 2)}\n`);
  });
}

/**
 * Erases a user (GDPR art. 17): personal data is overwritten in place, credentials, sessions,
 * factors, SSO links and group memberships are deleted, and only the id remains (so audit
 * entries and bindings that name it still resolve to "an erased user").
 */
export function eraseUser(deps: IdentityDeps, tenantId: string, userId: string, reason: string): Promise<Date> {
  return inTenant(deps, tenantId, async (tx) => {
    const row = await getUserRow(tx, userId, { lock: true });
    await endUserSessions(tx, userId, "user_deactivated");
    const now = new Date();
    await tx
      .updateTable("users")
      .set({
        email: null,
        username: null,
        email_verified: false,
        profile: "{}",
        attributes: "{}",
        external_id: null,
        password_hash: null,
        status: "disabled",
        status_reason: "erased",
        deleted_at: row.deleted_at ?? now,
        purge_at: null,
        erased_at: now,
        revision: nextRevision(row.revision),
        updated_at: now,
      })
      .where("id", "=", userId)
      .execute();
    await tx
      .deleteFrom("refresh_tokens")
      .where("session_id", "in", tx.selectFrom("sessions").select("id").where("user_id", "=", userId))
      .execute();
    await tx
      .updateTable("sessions")
      .set({ ip_address: "", user_agent: "", device: "{}" })
      .where("user_id", "=", userId)
      .execute();
    await tx.deleteFrom("mfa_factors").where("user_id", "=", userId).execute();
    await tx.deleteFrom("mfa_challenges").where("user_id", "=", userId).execute();
    await tx.deleteFrom("user_tokens").where("user_id", "=", userId).execute();
    await tx.deleteFrom("sso_identities").where("user_id", "=", userId).execute();
    await tx.deleteFrom("scim_group_members").where("user_id", "=", userId).execute();
    await emit(tx, UserErasedSchema, { userId, reason }, tenantId, { type: "identity.user", id: userId });
    return now;
  });
}

/** Purges users whose restore window has passed (the sweeper): their rows go, the id is reported. */
export async function purgeUsers(deps: IdentityDeps, now = new Date()): Promise<number> {
  const due = await inPlatform(deps, (tx) =>
    tx.selectFrom("users").select(["id", "tenant_id"]).where("purge_at", "<=", now).limit(500).execute(),
  );
  for (const u of due) {
    await inTenant(deps, u.tenant_id, async (tx) => {
      const gone = await tx
        .deleteFrom("users")
        .where("id", "=", u.id)
        .where("purge_at", "<=", now)
        .returning("id")
        .executeTakeFirst();
      if (!gone) return;
      await tx.deleteFrom("sessions").where("user_id", "=", u.id).execute();
      for (const table of [
        "mfa_factors",
        "mfa_challenges",
        "user_tokens",
        "sso_identities",
        "scim_group_members",
      ] as const) {
        await tx.deleteFrom(table).where("user_id", "=", u.id).execute();
      }
      await emit(tx, UserPurgedSchema, { userId: u.id }, u.tenant_id, { type: "identity.user", id: u.id });
    });
  }
  return due.length;
}

/** Whether a user can sign in now (status and lock), with the status to report. */
export function signInState(row: UserRow): "active" | "disabled" | "locked" | "deleted" {
  if (row.deleted_at !== null) return "deleted";
  return effectiveStatus(row);
}
