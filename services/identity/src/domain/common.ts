/**
 * What every identity command shares: its dependencies, transactions scoped to a tenant,
 * events, optimistic concurrency and small crypto helpers for opaque tokens.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import {
  AbortedError,
  currentRequestContext,
  FailedPreconditionError,
  type Logger,
  NotFoundError,
  type Principal,
  type SecretBox,
} from "@uab/core";
import { withPlatform, withTenant } from "@uab/db";
import { appendEvent } from "@uab/events";
import { type Kysely, sql, type Transaction } from "kysely";
import type { IdentityDatabase, UserRow } from "../storage/tables.js";
import type { PasswordHasher } from "./passwords.js";
import type { SigningKeys } from "./signing-keys.js";

/** Token and session settings of the installation. */
export interface IdentitySettings {
  /** `iss` of access tokens. */
  readonly issuer: string;
  /** `aud` of access tokens. */
  readonly audience: string;
  /** Access-token lifetime (s): also the bound on how long a revoked session's token still works elsewhere. */
  readonly accessTokenTtlSeconds: number;
  /** Refresh-token lifetime (s); each rotation issues a new one, never past the session's absolute expiry. */
  readonly refreshTokenTtlSeconds: number;
  /** How long a rotated refresh token may be presented again (a client that lost the response). */
  readonly refreshReuseGraceSeconds: number;
  /** Password reset and email verification token lifetime (s). */
  readonly userTokenTtlSeconds: number;
  /** Base URL of the pages that take reset and verification tokens (`…/reset-password?token=`). */
  readonly publicUrl: string;
  /** MFA challenge lifetime (s) and attempts. */
  readonly mfaChallengeTtlSeconds: number;
  readonly mfaChallengeAttempts: number;
  /** Sign-in attempts per IP per minute before it is throttled. */
  readonly ipAttemptsPerMinute: number;
  /** Failed attempts per identifier per 15 minutes before it is throttled (below the lockout threshold it is the same for every identifier). */
  readonly identifierAttemptsPer15Minutes: number;
  /** How long a deleted user stays restorable (ms). */
  readonly restoreWindowMs: number;
  /** Impersonation session lifetime when none is asked for, and the maximum (s). */
  readonly impersonationMaxSeconds: number;
  /** Service-account token lifetime (s). */
  readonly clientCredentialsTtlSeconds: number;
  /** Whether OIDC issuers may be plain http (tests and local development only). */
  readonly allowInsecureSso: boolean;
  /** DNS servers for domain verification (`host[:port]`); empty uses the system's. */
  readonly dnsServers: readonly string[];
}

/** Creates tenants for sign-up (tenancy's CreateTenant, called with identity's own credentials). */
export interface TenantProvisioner {
  /** Creates a tenant owned by `ownerUserId`; returns its id. */
  createTenant(input: { slug: string; displayName: string; ownerUserId: string }): Promise<string>;
}

/** What the identity domain needs. */
export interface IdentityDeps {
  readonly db: Kysely<IdentityDatabase>;
  readonly box: SecretBox;
  readonly hasher: PasswordHasher;
  readonly keys: SigningKeys;
  readonly settings: IdentitySettings;
  readonly provisioner: TenantProvisioner;
  readonly logger: Logger;
}

/** An identity transaction. */
export type Tx = Transaction<IdentityDatabase>;

/** Runs `fn` in a transaction scoped to `tenantId`. */
export function inTenant<T>(deps: IdentityDeps, tenantId: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return withTenant(deps.db, tenantId, fn);
}

/** Runs `fn` in a platform transaction (system work only). */
export function inPlatform<T>(deps: IdentityDeps, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return withPlatform(deps.db, fn);
}

/** Records a domain event in the outbox, in the caller's transaction. */
export async function emit<D extends DescMessage>(
  tx: Tx,
  schema: D,
  payload: MessageInitShape<D>,
  tenantId: string | undefined,
  resource: { type: string; id: string; displayName?: string | undefined },
): Promise<void> {
  await appendEvent(tx, { source: "identity", schema, payload, tenantId, resource });
}

/**
 * Names the principal of the current request once it is known (sign-in learns who the caller
 * is halfway through), so logs and events of the rest of the request carry it.
 */
export function actAs(principal: Principal): void {
  const ctx = currentRequestContext();
  if (ctx) {
    ctx.principal = principal;
    ctx.tenantId = principal.tenantId;
  }
}

/** The caller's address and user agent, as the server saw them. */
export function clientInfo(): { ip: string; userAgent: string } {
  const ctx = currentRequestContext();
  return { ip: ctx?.ip ?? "", userAgent: ctx?.userAgent ?? "" };
}

/** Fails with ABORTED when the client's etag is set and not the current revision. */
export function checkEtag(etag: string, revision: string, what: string): void {
  if (etag && etag !== revision) {
    throw new AbortedError(
      "ETAG_MISMATCH",
      `${what} changed since it was read (etag ${etag}, current ${revision}); read it again and retry`,
      { metadata: { current_etag: revision } },
    );
  }
}

/** The next revision as a string (revisions are bigint, kept as strings). */
export function nextRevision(revision: string): string {
  return (BigInt(revision) + 1n).toString();
}

/** SHA-256 of a secret (opaque tokens are high-entropy, so a fast hash is the right one). */
export function sha256(secret: string): Buffer {
  return createHash("sha256").update(secret).digest();
}

/** Constant-time comparison of two hashes. */
export function sameHash(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** 32 random bytes, base64url: an opaque secret. */
export function randomSecret(bytes = 32): string {
  return randomBytes(bytes).toString("base64url");
}

/**
 * An opaque token naming its tenant and row so it can be found under row-level security
 * without a platform-wide lookup: `<prefix>.<tenant id>.<row id>.<secret>`. Only the
 * secret's hash is stored.
 */
export function composeToken(prefix: string, tenantId: string, id: string, secret: string): string {
  return `${prefix}.${tenantId}.${id}.${secret}`;
}

/** Splits a token made by {@link composeToken}; undefined when it is not one. */
export function parseToken(
  prefix: string,
  token: string,
): { tenantId: string; id: string; secret: string } | undefined {
  const parts = token.split(".");
  if (parts.length !== 4 || parts[0] !== prefix) return undefined;
  const [, tenantId, id, secret] = parts as [string, string, string, string];
  if (
    !/^ten_[0-9a-z]{26}$/.test(tenantId) ||
    !/^[a-z]+_[0-9a-z]{26}$/.test(id) ||
    !/^[A-Za-z0-9_-]{20,}$/.test(secret)
  ) {
    return undefined;
  }
  return { tenantId, id, secret };
}

/** The user (live or deleted, visible in this transaction), or NOT_FOUND. */
export async function getUserRow(
  tx: Tx,
  userId: string,
  opts: { lock?: boolean; live?: boolean } = {},
): Promise<UserRow> {
  let q = tx.selectFrom("users").selectAll().where("id", "=", userId).where("erased_at", "is", null);
  if (opts.live) q = q.where("deleted_at", "is", null);
  if (opts.lock) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) throw new NotFoundError("USER_NOT_FOUND", `user ${userId} not found`);
  return row;
}

/**
 * The tenant's status as tenancy's events reported it. A tenant identity has not heard of
 * yet (its creation event is still on the way) counts as active: tenancy is the authority,
 * and refusing would break sign-up into a tenant created a moment ago.
 */
export async function tenantStatus(tx: Tx, tenantId: string): Promise<"active" | "suspended" | "terminated"> {
  const row = await tx.selectFrom("tenants").select("status").where("id", "=", tenantId).executeTakeFirst();
  return row?.status ?? "active";
}

/** FAILED_PRECONDITION unless the tenant accepts sign-ins and changes. */
export async function requireActiveTenant(tx: Tx, tenantId: string): Promise<void> {
  const status = await tenantStatus(tx, tenantId);
  if (status !== "active") {
    throw new FailedPreconditionError(`TENANT_${status.toUpperCase()}`, `tenant ${tenantId} is ${status}`);
  }
}

/** Marks the caller's session as seen (at most once a minute), for "last seen" in session lists. */
export async function touchSessionNow(
  deps: IdentityDeps,
  tenantId: string,
  sessionId: string | undefined,
): Promise<void> {
  if (!sessionId) return;
  await inTenant(deps, tenantId, (tx) =>
    tx
      .updateTable("sessions")
      .set({ last_seen_at: new Date() })
      .where("id", "=", sessionId)
      .where("last_seen_at", "<", new Date(Date.now() - 60_000))
      .execute(),
  );
}

/**
 * Runs `fn` inside a savepoint of `tx`: if it fails (a unique violation, say) the transaction
 * is rolled back to before it and stays usable, and the error propagates.
 */
export async function savepoint<T>(tx: Tx, fn: () => Promise<T>): Promise<T> {
  await sql`SAVEPOINT uab_sp`.execute(tx);
  try {
    const out = await fn();
    await sql`RELEASE SAVEPOINT uab_sp`.execute(tx);
    return out;
  } catch (e) {
    await sql`ROLLBACK TO SAVEPOINT uab_sp`.execute(tx);
    throw e;
  }
}
