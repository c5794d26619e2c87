/**
 * Sessions, access tokens and refresh-token families.
 *
 * A session is one sign-in on one device. It holds a family of refresh tokens: each refresh
 * rotates the token (the presented one is marked rotated and a new one issued). Presenting a
 * rotated token again is reuse — someone copied it — and revokes the whole session, unless it
 * happens within a short grace after the rotation and the token issued then was never used
 * (the client lost the response): then the client gets a fresh pair and the unused one is
 * retired. Sessions end on logout, revocation, the idle timeout (no refresh for that long)
 * or the absolute timeout. Access tokens are short-lived JWTs verified by every service
 * against the JWKS; a revoked session stops refreshing at once and its last access token
 * expires within the access-token lifetime.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { AccessTokenClaims } from "@uab/auth";
import { NotFoundError, newId, UnauthenticatedError } from "@uab/core";
import { decodePageToken, pageSize, paginate } from "@uab/db";
import {
  RefreshTokenReuseDetectedSchema,
  SessionCreatedSchema,
  SessionRevokedSchema,
} from "@uab/proto/gen/uab/identity/v1/events_pb.js";
import { type Tokens, TokensSchema } from "@uab/proto/gen/uab/identity/v1/token_pb.js";
import { sql } from "kysely";
import { sessionToProto } from "../convert.js";
import type { DeviceJson, SessionRow, UserRow } from "../storage/tables.js";
import {
  composeToken,
  emit,
  type IdentityDeps,
  inTenant,
  parseToken,
  randomSecret,
  sameHash,
  sha256,
  type Tx,
} from "./common.js";
import { loginPolicy } from "./policies.js";

/** Why a session ended (stored, and mapped to SessionRevokeReason). */
export type RevokeReason =
  | "logout"
  | "user_revoked"
  | "admin_revoked"
  | "password_changed"
  | "user_deactivated"
  | "refresh_token_reuse"
  | "mfa_changed"
  | "impersonation_ended";

/** How a new session was authenticated. */
export interface SessionStart {
  readonly amr: readonly string[];
  readonly device?: DeviceJson | undefined;
  readonly ip?: string | undefined;
  readonly userAgent?: string | undefined;
  readonly mfa: boolean;
  readonly ssoConnectionId?: string | undefined;
  readonly impersonation?: { id: string; impersonatorUserId: string; impersonatorTenantId: string; expiresAt: Date };
}

const REFRESH_PREFIX = "uabrt";

/** Guesses a device description from a user agent (OS and browser family), keeping the client's name. */
export function describeDevice(userAgent: string, name: string): DeviceJson {
  const os = /Windows/.test(userAgent)
    ? "Windows"
    : /iPhone|iPad|iOS/.test(userAgent)
      ? "iOS"
      : /Android/.test(userAgent)
        ? "Android"
        : /Mac OS X|Macintosh/.test(userAgent)
          ? "macOS"
          : /Linux/.test(userAgent)
            ? "Linux"
            : "";
  const browser = /Edg\//.test(userAgent)
    ? "Edge"
    : /Firefox\//.test(userAgent)
      ? "Firefox"
      : /Chrome\//.test(userAgent)
        ? "Chrome"
        : /Safari\//.test(userAgent)
          ? "Safari"
          : /^curl\//.test(userAgent)
            ? "curl"
            : /grpc|connect-es|buf/.test(userAgent)
              ? "API client"
              : "";
  return { name, os, browser };
}

/** The token claims of a session for its user. */
async function claimsFor(
  tx: Tx,
  session: SessionRow,
  user: Pick<UserRow, "id" | "tenant_id">,
  actor?: string,
): Promise<AccessTokenClaims> {
  const tenant = await tx
    .selectFrom("tenants")
    .select("authorization_revision")
    .where("id", "=", user.tenant_id)
    .executeTakeFirst();
  const mfa = session.mfa_at !== null;
  return {
    sub: user.id,
    typ: "user",
    tid: user.tenant_id,
    sid: session.id,
    amr: session.amr,
    acr: mfa ? "aal2" : "aal1",
    auth_time: Math.floor(session.auth_time.getTime() / 1000),
    ...(session.mfa_at ? { mfa_time: Math.floor(session.mfa_at.getTime() / 1000) } : {}),
    ...(tenant?.authorization_revision ? { rrev: tenant.authorization_revision } : {}),
    ...(actor ? { act: { sub: actor } } : {}),
  };
}

/** Issues a refresh token in `session`'s family (never outliving the session). */
async function newRefreshToken(
  deps: IdentityDeps,
  tx: Tx,
  session: SessionRow,
): Promise<{ token: string; expiresAt: Date }> {
  const id = newId("refreshToken");
  const secret = randomSecret();
  const expiresAt = new Date(
    Math.min(Date.now() + deps.settings.refreshTokenTtlSeconds * 1000, session.absolute_expires_at.getTime()),
  );
  await tx
    .insertInto("refresh_tokens")
    .values({
      id,
      tenant_id: session.tenant_id,
      session_id: session.id,
      secret_hash: sha256(secret),
      expires_at: expiresAt,
    })
    .execute();
  return { token: composeToken(REFRESH_PREFIX, session.tenant_id, id, secret), expiresAt };
}

/** Access token + refresh token for a session. */
export async function issueTokens(
  deps: IdentityDeps,
  tx: Tx,
  session: SessionRow,
  user: Pick<UserRow, "id" | "tenant_id">,
  actor?: string,
): Promise<Tokens> {
  const claims = await claimsFor(tx, session, user, actor);
  const ttl = Math.max(
    1,
    Math.min(
      deps.settings.accessTokenTtlSeconds,
      Math.floor((session.absolute_expires_at.getTime() - Date.now()) / 1000),
    ),
  );
  const access = await deps.keys.sign(claims, ttl, deps.settings.issuer, deps.settings.audience);
  const refresh = await newRefreshToken(deps, tx, session);
  return create(TokensSchema, {
    accessToken: access.token,
    tokenType: "Bearer",
    accessTokenExpireTime: timestampFromDate(new Date(access.expiresAt * 1000)),
    expiresIn: ttl,
    refreshToken: refresh.token,
    refreshTokenExpireTime: timestampFromDate(refresh.expiresAt),
    sessionId: session.id,
    subjectId: user.id,
    tenantId: user.tenant_id,
  });
}

/** Starts a session for `user` and issues its first tokens, in the caller's transaction. */
export async function startSession(
  deps: IdentityDeps,
  tx: Tx,
  user: Pick<UserRow, "id" | "tenant_id">,
  start: SessionStart,
): Promise<{ session: SessionRow; tokens: Tokens }> {
  const policy = await loginPolicy(tx, user.tenant_id);
  const now = new Date();
  const absolute = start.impersonation
    ? start.impersonation.expiresAt
    : new Date(now.getTime() + policy.sessionAbsoluteTimeoutSeconds * 1000);
  const idle = new Date(Math.min(now.getTime() + policy.sessionIdleTimeoutSeconds * 1000, absolute.getTime()));
  const session = await tx
    .insertInto("sessions")
    .values({
      id: newId("session"),
      tenant_id: user.tenant_id,
      user_id: user.id,
      device: JSON.stringify(start.device ?? {}),
      ip_address: start.ip ?? "",
      user_agent: start.userAgent ?? "",
      amr: [...start.amr],
      sso_connection_id: start.ssoConnectionId ?? null,
      impersonation_id: start.impersonation?.id ?? null,
      auth_time: now,
      mfa_at: start.mfa ? now : null,
      idle_expires_at: idle,
      absolute_expires_at: absolute,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  const tokens = await issueTokens(deps, tx, session, user, start.impersonation?.impersonatorUserId);
  await emit(tx, SessionCreatedSchema, { session: await sessionToProto(tx, session) }, user.tenant_id, {
    type: "identity.session",
    id: session.id,
  });
  return { session, tokens };
}

const INVALID = () => new UnauthenticatedError("REFRESH_TOKEN_INVALID", "the refresh token is not valid");

/** Ends `sessions` (already selected in `tx`) with `reason`; returns how many were live. */
export async function endSessions(tx: Tx, sessions: readonly SessionRow[], reason: RevokeReason): Promise<number> {
  const live = sessions.filter((s) => s.revoked_at === null);
  if (live.length === 0) return 0;
  const ended = await tx
    .updateTable("sessions")
    .set({ revoked_at: new Date(), revoke_reason: reason })
    .where(
      "id",
      "in",
      live.map((s) => s.id),
    )
    .where("revoked_at", "is", null)
    .returningAll()
    .execute();
  for (const s of ended) {
    await emit(tx, SessionRevokedSchema, { session: await sessionToProto(tx, s) }, s.tenant_id, {
      type: "identity.session",
      id: s.id,
    });
  }
  return ended.length;
}

/** Ends every live session of `userId` (optionally but one); returns how many ended. */
export async function endUserSessions(tx: Tx, userId: string, reason: RevokeReason, keep?: string): Promise<number> {
  let q = tx.selectFrom("sessions").selectAll().where("user_id", "=", userId).where("revoked_at", "is", null);
  if (keep) q = q.where("id", "!=", keep);
  return endSessions(tx, await q.forUpdate().execute(), reason);
}

/** Whether a session can still be used at `now`. */
export function sessionLive(s: SessionRow, now = new Date()): boolean {
  return s.revoked_at === null && s.idle_expires_at > now && s.absolute_expires_at > now;
}

/**
 * Rotates a refresh token (see the module comment). Reuse outside the grace revokes the
 * session, and that revocation commits even though the call fails.
 */
export async function refresh(deps: IdentityDeps, token: string): Promise<Tokens> {
  const parsed = parseToken(REFRESH_PREFIX, token);
  if (!parsed) throw INVALID();
  const outcome = await inTenant(deps, parsed.tenantId, async (tx) => {
    const rt = await tx
      .selectFrom("refresh_tokens")
      .selectAll()
      .where("id", "=", parsed.id)
      .forUpdate()
      .executeTakeFirst();
    if (!rt || !sameHash(rt.secret_hash, sha256(parsed.secret))) return { error: INVALID() };
    const session = await tx
      .selectFrom("sessions")
      .selectAll()
      .where("id", "=", rt.session_id)
      .forUpdate()
      .executeTakeFirstOrThrow();
    const now = new Date();
    if (!sessionLive(session, now)) {
      return { error: new UnauthenticatedError("SESSION_ENDED", "the session has ended; sign in again") };
    }
    if (rt.expires_at <= now)
      return { error: new UnauthenticatedError("REFRESH_TOKEN_EXPIRED", "the refresh token expired") };
    if (rt.rotated_at !== null) {
      const replacement = rt.replaced_by
        ? await tx
            .selectFrom("refresh_tokens")
            .selectAll()
            .where("id", "=", rt.replaced_by)
            .forUpdate()
            .executeTakeFirst()
        : undefined;
      const inGrace =
        now.getTime() - rt.rotated_at.getTime() <= deps.settings.refreshReuseGraceSeconds * 1000 &&
        replacement !== undefined &&
        replacement.rotated_at === null;
      if (!inGrace) {
        await emit(
          tx,
          RefreshTokenReuseDetectedSchema,
          {
            session: await sessionToProto(tx, session),
            reusedTokenIssueTime: timestampFromDate(rt.created_at),
            reusedTokenRotateTime: timestampFromDate(rt.rotated_at),
          },
          session.tenant_id,
          { type: "identity.session", id: session.id },
        );
        await endSessions(tx, [session], "refresh_token_reuse");
        return {
          error: new UnauthenticatedError(
            "REFRESH_TOKEN_REUSED",
            "this refresh token was already used; the session has been ended to protect the account",
          ),
        };
      }
      // Lost response: retire the never-used replacement and issue a fresh pair.
      await tx.updateTable("refresh_tokens").set({ rotated_at: now }).where("id", "=", replacement!.id).execute();
    }
    const user = await tx
      .selectFrom("users")
      .select(["id", "tenant_id", "status", "deleted_at"])
      .where("id", "=", session.user_id)
      .executeTakeFirst();
    if (!user || user.deleted_at !== null || user.status === "disabled") {
      await endSessions(tx, [session], "user_deactivated");
      return { error: new UnauthenticatedError("SESSION_ENDED", "the session has ended; sign in again") };
    }
    const policy = await loginPolicy(tx, session.tenant_id);
    const idle = new Date(
      Math.min(now.getTime() + policy.sessionIdleTimeoutSeconds * 1000, session.absolute_expires_at.getTime()),
    );
    await tx
      .updateTable("sessions")
      .set({ last_seen_at: now, idle_expires_at: idle })
      .where("id", "=", session.id)
      .execute();
    let actor: string | undefined;
    if (session.impersonation_id) {
      const imp = await tx
        .selectFrom("impersonations")
        .select(["impersonator_user_id", "ended_at"])
        .where("id", "=", session.impersonation_id)
        .executeTakeFirst();
      if (!imp || imp.ended_at)
        return { error: new UnauthenticatedError("SESSION_ENDED", "the impersonation has ended") };
      actor = imp.impersonator_user_id;
    }
    const tokens = await issueTokens(deps, tx, session, user, actor);
    const newId = tokens.refreshToken.split(".")[2]!;
    await tx
      .updateTable("refresh_tokens")
      .set({ rotated_at: now, replaced_by: newId })
      .where("id", "=", rt.id)
      .execute();
    return { tokens };
  });
  if ("error" in outcome) throw outcome.error;
  return outcome.tokens;
}

/** Finds the session a refresh token belongs to (for revocation), or undefined. */
export async function sessionOfRefreshToken(
  deps: IdentityDeps,
  token: string,
): Promise<{ tenantId: string; sessionId: string } | undefined> {
  const parsed = parseToken(REFRESH_PREFIX, token);
  if (!parsed) return undefined;
  return inTenant(deps, parsed.tenantId, async (tx) => {
    const rt = await tx.selectFrom("refresh_tokens").selectAll().where("id", "=", parsed.id).executeTakeFirst();
    if (!rt || !sameHash(rt.secret_hash, sha256(parsed.secret))) return undefined;
    return { tenantId: rt.tenant_id, sessionId: rt.session_id };
  });
}

/** Ends one session of a tenant by id (a no-op when it already ended); returns it. */
export async function revokeSession(
  deps: IdentityDeps,
  tenantId: string,
  sessionId: string,
  reason: RevokeReason,
  userId?: string,
): Promise<SessionRow> {
  return inTenant(deps, tenantId, async (tx) => {
    let q = tx.selectFrom("sessions").selectAll().where("id", "=", sessionId);
    if (userId) q = q.where("user_id", "=", userId);
    const session = await q.forUpdate().executeTakeFirst();
    if (!session) throw new NotFoundError("SESSION_NOT_FOUND", `session ${sessionId} not found`);
    await endSessions(tx, [session], reason);
    return tx.selectFrom("sessions").selectAll().where("id", "=", sessionId).executeTakeFirstOrThrow();
  });
}

/** A user's sessions, newest first (live only unless `showEnded`). */
export async function listSessions(
  deps: IdentityDeps,
  tenantId: string,
  userId: string,
  req: { pageSize: number; pageToken: string; showEnded?: boolean },
): Promise<{ items: SessionRow[]; next: string }> {
  const filters = { userId, showEnded: req.showEnded ?? false };
  const after = decodePageToken(req.pageToken, filters);
  const size = pageSize(req.pageSize);
  return inTenant(deps, tenantId, async (tx) => {
    let q = tx.selectFrom("sessions").selectAll().where("user_id", "=", userId);
    if (!req.showEnded) {
      const now = new Date();
      q = q.where("revoked_at", "is", null).where("idle_expires_at", ">", now).where("absolute_expires_at", ">", now);
    }
    if (after) q = q.where("id", "<", after);
    const rows = await q
      .orderBy("id", "desc")
      .limit(size + 1)
      .execute();
    return paginate(rows, size, filters);
  });
}

/** Marks a session seen now (identity's own RPCs with a session call this). */
export async function touchSession(tx: Tx, sessionId: string): Promise<void> {
  await tx
    .updateTable("sessions")
    .set({ last_seen_at: sql`now()` })
    .where("id", "=", sessionId)
    .where("last_seen_at", "<", sql<Date>`now() - interval '60 seconds'`)
    .execute();
}
