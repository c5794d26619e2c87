/**
 * Signing in: sign-up, password login with throttling and lockout, MFA challenges, step-up,
 * logout and token revocation, password reset. Every way in (password, SSO, impersonation)
 * ends in {@link finishSignIn}, which applies the tenant's MFA policy and starts the session.
 *
 * No enumeration: an unknown identifier, a wrong password and a locked account get the same
 * error after the same work (one argon2id verification against a dummy hash when there is no
 * real one), and throttling counts identifiers whether or not they exist.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  newId,
  PermissionDeniedError,
  type Principal,
  UnauthenticatedError,
} from "@uab/core";
import {
  LoginFailedSchema,
  LoginFailureReason,
  LoginSucceededSchema,
  PasswordChangeMethod,
  PasswordResetRequestedSchema,
  UserLockedSchema,
} from "@uab/proto/gen/uab/identity/v1/events_pb.js";
import { type MfaChallenge, MfaChallengeSchema, MfaFactorType } from "@uab/proto/gen/uab/identity/v1/mfa_pb.js";
import type { Tokens } from "@uab/proto/gen/uab/identity/v1/token_pb.js";
import type { User } from "@uab/proto/gen/uab/identity/v1/user_pb.js";
import { createLocalJWKSet, jwtVerify } from "jose";
import { sql } from "kysely";
import type { PendingLoginJson, UserRow } from "../storage/tables.js";
import {
  actAs,
  clientInfo,
  emit,
  getUserRow,
  type IdentityDeps,
  inPlatform,
  inTenant,
  nextRevision,
  parseToken,
  requireActiveTenant,
  sameHash,
  sha256,
  type Tx,
  tenantStatus,
} from "./common.js";
import { checkSecondFactor, hasActiveTotp } from "./mfa.js";
import { loginPolicy, mfaPolicy } from "./policies.js";
import { isPrivileged } from "./projection.js";
import { describeDevice, issueTokens, revokeSession, sessionOfRefreshToken, startSession } from "./sessions.js";
import { checkThrottle, clearThrottle, recordFailure, signInKeys, type ThrottleKey } from "./throttle.js";
import {
  checkPasswordLength,
  createUserToken,
  insertUser,
  replacePassword,
  signInState,
  userResource,
  userView,
} from "./users.js";

/** The outcome of a sign-in: tokens, or a second factor to ask for. */
export interface SignInResult {
  readonly tokens?: Tokens;
  readonly challenge?: MfaChallenge;
  readonly mfaEnrollmentRequired: boolean;
  readonly passwordChangeRequired: boolean;
  readonly userProvisioned: boolean;
  readonly returnTo: string;
}

const INVALID_CREDENTIALS = () =>
  new UnauthenticatedError("INVALID_CREDENTIALS", "the identifier or the password is wrong");

function principalOf(user: Pick<UserRow, "id" | "tenant_id">, sessionId?: string): Principal {
  return { id: user.id, type: "user", tenantId: user.tenant_id, sessionId, amr: [] };
}

async function failed(
  tx: Tx,
  tenantId: string,
  user: UserRow | undefined,
  identifier: string,
  reason: LoginFailureReason,
  failedAttempts = 0,
  ssoConnectionId = "",
): Promise<void> {
  await emit(
    tx,
    LoginFailedSchema,
    { userId: user?.id ?? "", identifier, reason, failedAttempts, ssoConnectionId },
    tenantId,
    user ? userResource(user) : { type: "identity.user", id: "", displayName: identifier },
  );
}

/** Counts a failed password or second factor against a real user; locks it at the policy's threshold. */
async function countFailure(tx: Tx, user: UserRow): Promise<number> {
  const policy = await loginPolicy(tx, user.tenant_id);
  const row = await tx
    .updateTable("users")
    .set({ failed_logins: sql`failed_logins + 1` })
    .where("id", "=", user.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  if (policy.lockoutThreshold > 0 && row.failed_logins >= policy.lockoutThreshold && signInState(row) === "active") {
    const locked = await tx
      .updateTable("users")
      .set({
        status: "locked",
        status_reason: `${row.failed_logins} failed sign-in attempts`,
        lock_expires_at:
          policy.lockoutDurationSeconds > 0 ? new Date(Date.now() + policy.lockoutDurationSeconds * 1000) : null,
        revision: nextRevision(row.revision),
        updated_at: new Date(),
      })
      .where("id", "=", user.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await emit(
      tx,
      UserLockedSchema,
      { user: await userView(tx, locked), failedAttempts: row.failed_logins },
      user.tenant_id,
      userResource(locked),
    );
  }
  return row.failed_logins;
}

/** Finds a live user by e-mail or username (case-insensitive). */
async function findByIdentifier(tx: Tx, identifier: string): Promise<UserRow | undefined> {
  const id = identifier.trim().toLowerCase();
  return tx
    .selectFrom("users")
    .selectAll()
    .where("deleted_at", "is", null)
    .where((eb) => eb.or([eb(sql`lower(email)`, "=", id), eb(sql`lower(username)`, "=", id)]))
    .executeTakeFirst();
}

/**
 * After the first factor (password, SSO): applies the MFA policy and either starts the session
 * or opens a challenge. Runs in the caller's transaction.
 */
export async function finishSignIn(
  deps: IdentityDeps,
  tx: Tx,
  user: UserRow,
  pending: PendingLoginJson,
): Promise<SignInResult> {
  const now = new Date();
  const base = {
    passwordChangeRequired: pending.passwordChangeRequired ?? user.password_change_required,
    userProvisioned: pending.userProvisioned ?? false,
    returnTo: pending.returnTo ?? "",
  };
  if (await hasActiveTotp(tx, user.id)) {
    const policy = await mfaPolicy(tx, user.tenant_id);
    const types = [MfaFactorType.TOTP];
    if (policy.allowedFactorTypes.includes("recovery_code")) types.push(MfaFactorType.RECOVERY_CODE);
    const row = await tx
      .insertInto("mfa_challenges")
      .values({
        id: newId("mfaChallenge"),
        tenant_id: user.tenant_id,
        user_id: user.id,
        factor_types: types.map(String),
        attempts_remaining: deps.settings.mfaChallengeAttempts,
        login: JSON.stringify(pending),
        expires_at: new Date(now.getTime() + deps.settings.mfaChallengeTtlSeconds * 1000),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return {
      ...base,
      mfaEnrollmentRequired: false,
      challenge: create(MfaChallengeSchema, {
        id: row.id,
        factorTypes: types,
        expireTime: timestampFromDate(row.expires_at),
        attemptsRemaining: row.attempts_remaining,
      }),
    };
  }
  let mfaEnrollmentRequired = false;
  const policy = await mfaPolicy(tx, user.tenant_id);
  const required =
    policy.enforcement === "required_for_all" ||
    (policy.enforcement === "required_for_admins" && (await isPrivileged(tx, user.id)));
  if (required) {
    const policyRow = await tx
      .selectFrom("mfa_policies")
      .select("updated_at")
      .where("tenant_id", "=", user.tenant_id)
      .executeTakeFirst();
    const graceFrom = Math.max(user.created_at.getTime(), policyRow?.updated_at.getTime() ?? 0);
    if (now.getTime() > graceFrom + policy.enrollmentGracePeriodSeconds * 1000) {
      await failed(
        tx,
        user.tenant_id,
        user,
        user.email ?? user.username ?? "",
        LoginFailureReason.MFA_ENROLLMENT_REQUIRED,
        0,
        pending.ssoConnectionId,
      );
      return { ...base, mfaEnrollmentRequired: true };
    }
    mfaEnrollmentRequired = true;
  }
  return { ...base, mfaEnrollmentRequired, tokens: await completeSignIn(deps, tx, user, pending, false) };
}

/** Starts the session of a completed sign-in and records it. */
async function completeSignIn(
  deps: IdentityDeps,
  tx: Tx,
  user: UserRow,
  pending: PendingLoginJson,
  mfa: boolean,
): Promise<Tokens> {
  const { session, tokens } = await startSession(deps, tx, user, {
    amr: pending.amr,
    device: pending.device,
    ip: pending.ip,
    userAgent: pending.userAgent,
    mfa,
    ssoConnectionId: pending.ssoConnectionId,
  });
  actAs(principalOf(user, session.id));
  await tx
    .updateTable("users")
    .set({ last_login_at: new Date(), failed_logins: 0 })
    .where("id", "=", user.id)
    .execute();
  await emit(
    tx,
    LoginSucceededSchema,
    {
      userId: user.id,
      sessionId: session.id,
      amr: pending.amr,
      ssoConnectionId: pending.ssoConnectionId ?? "",
      userProvisioned: pending.userProvisioned ?? false,
    },
    user.tenant_id,
    userResource(user),
  );
  return tokens;
}

function pendingFrom(deviceName: string, amr: string[]): PendingLoginJson {
  const { ip, userAgent } = clientInfo();
  return { device: describeDevice(userAgent, deviceName), ip, userAgent, amr };
}

/** Login with a password. */
export async function login(
  deps: IdentityDeps,
  req: { tenantId: string; identifier: string; password: string; deviceName: string },
): Promise<SignInResult> {
  const keys = signInKeys(deps, clientInfo().ip, req.tenantId, req.identifier);
  await checkThrottle(deps, keys);
  const found = await inTenant(deps, req.tenantId, async (tx) => {
    const status = await tenantStatus(tx, req.tenantId);
    if (status !== "active")
      throw new FailedPreconditionError(`TENANT_${status.toUpperCase()}`, `tenant ${req.tenantId} is ${status}`);
    const policy = await loginPolicy(tx, req.tenantId);
    if (!policy.passwordLoginEnabled) {
      throw new FailedPreconditionError("PASSWORD_LOGIN_DISABLED", "this tenant signs in through SSO only");
    }
    const user = await findByIdentifier(tx, req.identifier);
    if (user?.email && !user.sso_connection_id) {
      const domain = user.email.split("@")[1] ?? "";
      const sso = await tx
        .selectFrom("sso_domains")
        .innerJoin("sso_connections", "sso_connections.id", "sso_domains.connection_id")
        .select("sso_connections.id")
        .where("sso_domains.domain", "=", domain)
        .where("sso_domains.state", "=", "verified")
        .where("sso_connections.require_sso", "=", true)
        .where("sso_connections.enabled", "=", true)
        .executeTakeFirst();
      if (sso) return { user, ssoRequired: sso.id };
    }
    return { user, ssoRequired: undefined };
  });
  const user = found.user;
  let ok = false;
  if (user?.password_hash) ok = await deps.hasher.verify(user.password_hash, req.password);
  else await deps.hasher.verifyNothing(req.password);
  const state = user ? signInState(user) : "deleted";
  if (!user || !ok || state === "locked") {
    await recordFailure(deps, keys);
    await inTenant(deps, req.tenantId, async (tx) => {
      if (!user) return failed(tx, req.tenantId, undefined, req.identifier, LoginFailureReason.UNKNOWN_USER);
      if (state === "locked")
        return failed(tx, req.tenantId, user, req.identifier, LoginFailureReason.USER_LOCKED, user.failed_logins);
      const count = await countFailure(tx, user);
      return failed(tx, req.tenantId, user, req.identifier, LoginFailureReason.INVALID_PASSWORD, count);
    });
    throw INVALID_CREDENTIALS();
  }
  if (state === "disabled") {
    await inTenant(deps, req.tenantId, (tx) =>
      failed(tx, req.tenantId, user, req.identifier, LoginFailureReason.USER_DISABLED),
    );
    throw new FailedPreconditionError("USER_DISABLED", "this account is disabled; contact an administrator");
  }
  if (found.ssoRequired) {
    await inTenant(deps, req.tenantId, (tx) =>
      failed(tx, req.tenantId, user, req.identifier, LoginFailureReason.PASSWORD_LOGIN_DISABLED),
    );
    throw new FailedPreconditionError("SSO_REQUIRED", "accounts of this e-mail domain sign in through SSO", {
      metadata: { sso_connection_id: found.ssoRequired },
    });
  }
  const rehash = deps.hasher.needsRehash(user.password_hash!) ? await deps.hasher.hash(req.password) : undefined;
  await clearThrottle(
    deps,
    keys.filter((k) => k.key.startsWith("id:")),
  );
  return inTenant(deps, req.tenantId, async (tx) => {
    const current = await getUserRow(tx, user.id, { lock: true, live: true });
    if (rehash) await tx.updateTable("users").set({ password_hash: rehash }).where("id", "=", user.id).execute();
    const result = await finishSignIn(deps, tx, current, pendingFrom(req.deviceName, ["pwd"]));
    return result;
  }).then((r) => {
    if (!r.tokens && !r.challenge) {
      throw new FailedPreconditionError(
        "MFA_ENROLLMENT_REQUIRED",
        "this tenant requires a second factor and the enrolment grace period is over; an administrator must help enrol one",
      );
    }
    return r;
  });
}

/** Finds the tenant of an MFA challenge (challenge ids are unguessable capabilities). */
async function challengeTenant(deps: IdentityDeps, challengeId: string): Promise<string | undefined> {
  const row = await inPlatform(deps, (tx) =>
    tx.selectFrom("mfa_challenges").select("tenant_id").where("id", "=", challengeId).executeTakeFirst(),
  );
  return row?.tenant_id;
}

/** VerifyMfaChallenge: the second step of a sign-in. */
export async function verifyMfaChallenge(
  deps: IdentityDeps,
  req: { challengeId: string; totpCode?: string | undefined; recoveryCode?: string | undefined },
): Promise<SignInResult> {
  const invalid = () =>
    new UnauthenticatedError("MFA_CHALLENGE_INVALID", "the challenge expired or was already used; sign in again");
  const tenantId = await challengeTenant(deps, req.challengeId);
  if (!tenantId) throw invalid();
  const keys: ThrottleKey[] = [{ key: `mfa:${req.challengeId}`, limit: 100, windowSeconds: 900 }];
  const outcome = await inTenant(deps, tenantId, async (tx) => {
    const ch = await tx
      .selectFrom("mfa_challenges")
      .selectAll()
      .where("id", "=", req.challengeId)
      .forUpdate()
      .executeTakeFirst();
    if (!ch || ch.completed_at || ch.expires_at <= new Date() || ch.attempts_remaining <= 0)
      return { error: invalid() };
    const user = await getUserRow(tx, ch.user_id, { lock: true, live: true }).catch(() => undefined);
    if (!user || signInState(user) !== "active") return { error: invalid() };
    if (req.recoveryCode && !ch.factor_types.includes(String(MfaFactorType.RECOVERY_CODE))) {
      return {
        error: new FailedPreconditionError(
          "RECOVERY_CODES_NOT_ALLOWED",
          "the tenant's policy does not accept recovery codes",
        ),
      };
    }
    const method = await checkSecondFactor(deps, tx, tenantId, user.id, req);
    if (!method) {
      const left = ch.attempts_remaining - 1;
      await tx.updateTable("mfa_challenges").set({ attempts_remaining: left }).where("id", "=", ch.id).execute();
      const count = await countFailure(tx, user);
      await failed(
        tx,
        tenantId,
        user,
        user.email ?? "",
        LoginFailureReason.INVALID_MFA_CODE,
        count,
        ch.login.ssoConnectionId,
      );
      return {
        error: new UnauthenticatedError("MFA_CODE_INVALID", `the code is not valid; ${left} attempt(s) left`, {
          metadata: { attempts_remaining: String(left) },
        }),
      };
    }
    await tx.updateTable("mfa_challenges").set({ completed_at: new Date() }).where("id", "=", ch.id).execute();
    const pending = { ...ch.login, amr: [...new Set([...ch.login.amr, method === "otp" ? "otp" : "kba", "mfa"])] };
    const tokens = await completeSignIn(deps, tx, user, pending, true);
    return {
      result: {
        tokens,
        mfaEnrollmentRequired: false,
        passwordChangeRequired: pending.passwordChangeRequired ?? user.password_change_required,
        userProvisioned: pending.userProvisioned ?? false,
        returnTo: pending.returnTo ?? "",
      } satisfies SignInResult,
    };
  });
  if ("error" in outcome) {
    await recordFailure(deps, keys);
    throw outcome.error;
  }
  return outcome.result;
}

/** StepUp: a fresh second factor for the caller's session; returns tokens with a new `mfa_time`. */
export async function stepUp(
  deps: IdentityDeps,
  principal: Principal,
  answer: { totpCode?: string | undefined; recoveryCode?: string | undefined },
): Promise<Tokens> {
  const { tenantId, sessionId } = requireUserSession(principal);
  const keys: ThrottleKey[] = [{ key: `stepup:${principal.id}`, limit: 10, windowSeconds: 900 }];
  await checkThrottle(deps, keys);
  const outcome = await inTenant(deps, tenantId, async (tx) => {
    const session = await tx
      .selectFrom("sessions")
      .selectAll()
      .where("id", "=", sessionId)
      .forUpdate()
      .executeTakeFirst();
    if (!session || session.revoked_at)
      return { error: new UnauthenticatedError("SESSION_ENDED", "the session has ended") };
    if (session.impersonation_id) {
      return {
        error: new PermissionDeniedError(
          "IMPERSONATION_STEP_UP",
          "an impersonation session cannot step up as the user",
        ),
      };
    }
    const user = await getUserRow(tx, principal.id, { live: true });
    if (!(await hasActiveTotp(tx, user.id))) {
      return { error: new FailedPreconditionError("MFA_NOT_ENROLLED", "enrol an authenticator app first") };
    }
    const method = await checkSecondFactor(deps, tx, tenantId, user.id, answer);
    if (!method) {
      const count = await countFailure(tx, user);
      await failed(tx, tenantId, user, user.email ?? "", LoginFailureReason.INVALID_MFA_CODE, count);
      return { error: new PermissionDeniedError("MFA_CODE_INVALID", "the code is not valid") };
    }
    const now = new Date();
    const amr = [...new Set([...session.amr, method === "otp" ? "otp" : "kba", "mfa"])];
    const updated = await tx
      .updateTable("sessions")
      .set({ mfa_at: now, amr, last_seen_at: now })
      .where("id", "=", session.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    const tokens = await issueTokens(deps, tx, updated, user);
    // The session's older refresh tokens are superseded by the one just issued.
    await tx
      .updateTable("refresh_tokens")
      .set({ rotated_at: now, replaced_by: tokens.refreshToken.split(".")[2]! })
      .where("session_id", "=", session.id)
      .where("rotated_at", "is", null)
      .where("id", "!=", tokens.refreshToken.split(".")[2]!)
      .execute();
    return { tokens };
  });
  if ("error" in outcome) {
    if (outcome.error instanceof PermissionDeniedError) await recordFailure(deps, keys);
    throw outcome.error;
  }
  return outcome.tokens;
}

/** The caller's tenant and session, or FAILED_PRECONDITION for principals without one (service accounts). */
export function requireUserSession(principal: Principal): { tenantId: string; sessionId: string } {
  if (principal.type !== "user" || !principal.tenantId || !principal.sessionId) {
    throw new FailedPreconditionError("NO_USER_SESSION", "this call needs a user's session token");
  }
  return { tenantId: principal.tenantId, sessionId: principal.sessionId };
}

/** Logout: ends the caller's session. */
export async function logout(deps: IdentityDeps, principal: Principal): Promise<void> {
  const { tenantId, sessionId } = requireUserSession(principal);
  await revokeSession(deps, tenantId, sessionId, "logout").catch(() => undefined);
}

/**
 * RevokeToken (RFC 7009): a refresh token or an access token ends its session. Unknown or
 * invalid tokens are not an error (the RFC asks for success, so a client cannot probe).
 */
export async function revokeToken(deps: IdentityDeps, token: string): Promise<void> {
  if (token.startsWith("uabrt.")) {
    const found = await sessionOfRefreshToken(deps, token);
    if (found) await revokeSession(deps, found.tenantId, found.sessionId, "user_revoked");
    return;
  }
  try {
    const { payload } = await jwtVerify(token, createLocalJWKSet(await deps.keys.jwks()), {
      issuer: deps.settings.issuer,
      audience: deps.settings.audience,
    });
    const tid = payload.tid as string | undefined;
    const sid = payload.sid as string | undefined;
    if (tid && sid) await revokeSession(deps, tid, sid, "user_revoked").catch(() => undefined);
  } catch {
    // Not one of ours, or expired: nothing to revoke.
  }
}

/** SignUp. */
export async function signUp(
  deps: IdentityDeps,
  req: {
    email: string;
    password: string;
    username: string;
    profile: UserRow["profile"];
    tenantId?: string | undefined;
    newTenant?: { slug: string; displayName: string } | undefined;
    deviceName: string;
  },
  allowTenantSignUp: boolean,
): Promise<{ tenantId: string; user: User; tokens: Tokens | undefined }> {
  if (req.newTenant && !allowTenantSignUp) {
    throw new PermissionDeniedError(
      "TENANT_SIGN_UP_DISABLED",
      "this installation does not let visitors create tenants",
    );
  }
  const email = req.email.toLowerCase();
  if (req.tenantId) {
    await inTenant(deps, req.tenantId, async (tx) => {
      await requireActiveTenant(tx, req.tenantId!);
      const policy = await loginPolicy(tx, req.tenantId!);
      if (!policy.allowSignUp)
        throw new PermissionDeniedError("SIGN_UP_DISABLED", "this tenant does not accept sign-ups");
      const domain = email.split("@")[1] ?? "";
      if (policy.signUpEmailDomains.length > 0 && !policy.signUpEmailDomains.includes(domain)) {
        throw InvalidArgumentError.field(
          "email",
          `must be in one of the tenant's domains (${policy.signUpEmailDomains.join(", ")})`,
          "EMAIL_DOMAIN_NOT_ALLOWED",
        );
      }
      await checkPasswordLength(tx, req.tenantId!, req.password, "password");
    });
  }
  const passwordHash = await deps.hasher.hash(req.password);
  const userId = newId("user");
  const tenantId =
    req.tenantId ??
    (await deps.provisioner.createTenant({
      slug: req.newTenant!.slug,
      displayName: req.newTenant!.displayName,
      ownerUserId: userId,
    }));
  return inTenant(deps, tenantId, async (tx) => {
    if (!req.tenantId) {
      await tx
        .insertInto("tenants")
        .values({ id: tenantId, status: "active" })
        .onConflict((oc) => oc.column("id").doNothing())
        .execute();
    }
    const row = await insertUser(
      tx,
      {
        tenantId,
        id: userId,
        email,
        username: req.username || undefined,
        profile: req.profile,
        passwordHash,
        source: "sign_up",
      },
      !req.tenantId,
    );
    actAs(principalOf(row));
    const token = await createUserToken(deps, tx, row, "email_verification");
    const { EmailVerificationRequestedSchema } = await import("@uab/proto/gen/uab/identity/v1/events_pb.js");
    await emit(
      tx,
      EmailVerificationRequestedSchema,
      {
        userId: row.id,
        verificationTokenId: token.id,
        email,
        expireTime: timestampFromDate(token.expiresAt),
        verificationUrl: `${deps.settings.publicUrl}/verify-email?token=${encodeURIComponent(token.token)}`,
      },
      tenantId,
      userResource(row),
    );
    const result = await finishSignIn(deps, tx, row, pendingFrom(req.deviceName, ["pwd"]));
    return { tenantId, user: await userView(tx, row), tokens: result.tokens };
  });
}

/** RequestPasswordReset: always succeeds; a live user with the address gets a reset link through an event. */
export async function requestPasswordReset(deps: IdentityDeps, tenantId: string, email: string): Promise<void> {
  const keys: ThrottleKey[] = [
    { key: `reset:${tenantId}:${sha256(email.toLowerCase()).toString("base64url")}`, limit: 5, windowSeconds: 900 },
  ];
  try {
    await checkThrottle(deps, keys);
  } catch {
    return; // Silently drop: the caller must not learn anything, and no more mail goes out.
  }
  await recordFailure(deps, keys);
  await inTenant(deps, tenantId, async (tx) => {
    const user = await tx
      .selectFrom("users")
      .selectAll()
      .where(sql`lower(email)`, "=", email.toLowerCase())
      .where("deleted_at", "is", null)
      .executeTakeFirst();
    if (!user || user.status === "disabled") return;
    const token = await createUserToken(deps, tx, user, "password_reset");
    await emit(
      tx,
      PasswordResetRequestedSchema,
      {
        userId: user.id,
        resetTokenId: token.id,
        email: user.email!,
        expireTime: timestampFromDate(token.expiresAt),
        resetUrl: `${deps.settings.publicUrl}/reset-password?token=${encodeURIComponent(token.token)}`,
      },
      tenantId,
      userResource(user),
    );
  });
}

/** ResetPassword: a valid, unused reset token sets the new password and ends every session. */
export async function resetPassword(deps: IdentityDeps, token: string, newPassword: string): Promise<void> {
  const invalid = () =>
    InvalidArgumentError.field("token", "is invalid, expired or already used", "RESET_TOKEN_INVALID");
  const parsed = parseToken("uabpr", token);
  if (!parsed) throw invalid();
  const valid = await inTenant(deps, parsed.tenantId, async (tx) => {
    const row = await tx
      .selectFrom("user_tokens")
      .selectAll()
      .where("id", "=", parsed.id)
      .where("purpose", "=", "password_reset")
      .executeTakeFirst();
    if (!row || !sameHash(row.secret_hash, sha256(parsed.secret)) || row.used_at || row.expires_at <= new Date())
      return false;
    await checkPasswordLength(tx, parsed.tenantId, newPassword, "new_password");
    return true;
  });
  if (!valid) throw invalid();
  const hash = await deps.hasher.hash(newPassword);
  await inTenant(deps, parsed.tenantId, async (tx) => {
    const row = await tx
      .selectFrom("user_tokens")
      .selectAll()
      .where("id", "=", parsed.id)
      .forUpdate()
      .executeTakeFirst();
    if (!row || row.used_at || row.expires_at <= new Date()) throw invalid();
    await tx.updateTable("user_tokens").set({ used_at: new Date() }).where("id", "=", row.id).execute();
    const user = await getUserRow(tx, row.user_id, { lock: true, live: true }).catch(() => undefined);
    if (!user || user.email !== row.email || user.status === "disabled") throw invalid();
    actAs(principalOf(user));
    await replacePassword(tx, user, hash, PasswordChangeMethod.RESET, { revokeSessions: true });
  });
}
