/**
 * Sign-in throttling, shared by every replica through PostgreSQL: failures are counted per
 * client IP (credential stuffing from one address) and per tenant + identifier (guessing one
 * account's password from many addresses) in fixed windows; past the limit the key is blocked
 * until its window ends. The identifier key does not depend on whether the account exists,
 * so throttling tells an attacker nothing about which accounts are real. Account lockout
 * (the login policy) is separate and applies to real users only, but answers the same way.
 */
import { createHash } from "node:crypto";
import { ResourceExhaustedError } from "@uab/core";
import { withPlatform } from "@uab/db";
import { sql } from "kysely";
import type { IdentityDeps } from "./common.js";

/** One throttled key and its limit. */
export interface ThrottleKey {
  readonly key: string;
  readonly limit: number;
  readonly windowSeconds: number;
}

/** The keys of a sign-in attempt. */
export function signInKeys(deps: IdentityDeps, ip: string, tenantId: string, identifier: string): ThrottleKey[] {
  const keys: ThrottleKey[] = [
    {
      key: `id:${tenantId}:${createHash("sha256").update(identifier.trim().toLowerCase()).digest("base64url")}`,
      limit: deps.settings.identifierAttemptsPer15Minutes,
      windowSeconds: 900,
    },
  ];
  if (ip) keys.push({ key: `ip:${ip}`, limit: deps.settings.ipAttemptsPerMinute, windowSeconds: 60 });
  return keys;
}

/** RESOURCE_EXHAUSTED with the retry delay when any key is blocked. */
export async function checkThrottle(deps: IdentityDeps, keys: readonly ThrottleKey[]): Promise<void> {
  if (keys.length === 0) return;
  const blocked = await withPlatform(deps.db, (tx) =>
    tx
      .selectFrom("login_throttles")
      .select(["key", "blocked_until"])
      .where(
        "key",
        "in",
        keys.map((k) => k.key),
      )
      .where("blocked_until", ">", new Date())
      .orderBy("blocked_until", "desc")
      .executeTakeFirst(),
  );
  if (blocked?.blocked_until) {
    const retry = Math.max(1, Math.ceil((blocked.blocked_until.getTime() - Date.now()) / 1000));
    throw new ResourceExhaustedError("LOGIN_THROTTLED", `too many failed sign-in attempts; retry in ${retry} s`, {
      metadata: { retry_after_seconds: String(retry) },
    });
  }
}

/** Counts one failure against every key (one statement per key, atomic under concurrency). */
export async function recordFailure(deps: IdentityDeps, keys: readonly ThrottleKey[]): Promise<void> {
  await withPlatform(deps.db, async (tx) => {
    for (const k of keys) {
      const window = sql`make_interval(secs => ${k.windowSeconds})`;
      await sql`
        INSERT INTO login_throttles AS t (key, failures, window_started_at, blocked_until)
        VALUES (${k.key}, 1, now(), CASE WHEN 1 >= ${k.limit} THEN now() + ${window} END)
        ON CONFLICT (key) DO UPDATE SET
          failures = CASE WHEN t.window_started_at + ${window} <= now() THEN 1 ELSE t.failures + 1 END,
          window_started_at = CASE WHEN t.window_started_at + ${window} <= now() THEN now() ELSE t.window_started_at END,
          blocked_until = CASE
            WHEN t.window_started_at + ${window} <= now() THEN CASE WHEN 1 >= ${k.limit} THEN now() + ${window} END
            WHEN t.failures + 1 >= ${k.limit} THEN t.window_started_at + ${window}
            ELSE t.blocked_until END`.execute(tx);
    }
  });
}

/** Forgets the failures of `keys` (a successful sign-in clears its identifier). */
export async function clearThrottle(deps: IdentityDeps, keys: readonly ThrottleKey[]): Promise<void> {
  if (keys.length === 0) return;
  await withPlatform(deps.db, (tx) =>
    tx
      .deleteFrom("login_throttles")
      .where(
        "key",
        "in",
        keys.map((k) => k.key),
      )
      .execute(),
  );
}

/** Deletes windows that ended (the sweeper). */
export async function sweepThrottles(deps: IdentityDeps): Promise<void> {
  await withPlatform(deps.db, (tx) =>
    tx
      .deleteFrom("login_throttles")
      .where("window_started_at", "<", sql<Date>`now() - interval '1 hour'`)
      .where((eb) => eb.or([eb("blocked_until", "is", null), eb("blocked_until", "<", new Date())]))
      .execute(),
  );
}
