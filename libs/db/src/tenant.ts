import { type Kysely, sql, type Transaction } from "kysely";

/** Anything a repository function can run queries on. */
export type Executor<DB> = Kysely<DB> | Transaction<DB>;

/**
 * Runs `fn` in a transaction scoped to one tenant: `uab.tenant_id` is set with
 * `set_config(…, true)`, which lasts until the transaction ends (commit or rollback), so a
 * pooled connection never carries a tenant into the next request. Row-level-security
 * policies read it; rows of other tenants are invisible and unwritable.
 */
export async function withTenant<DB, T>(
  db: Kysely<DB>,
  tenantId: string,
  fn: (tx: Transaction<DB>) => Promise<T>,
): Promise<T> {
  if (!tenantId) throw new Error("withTenant needs a tenant id");
  return db.transaction().execute(async (tx) => {
    await sql`select set_config('uab.tenant_id', ${tenantId}, true)`.execute(tx);
    return fn(tx);
  });
}

/**
 * Runs `fn` in a transaction with platform scope (`uab.platform = on`): policies let it
 * see every tenant's rows. Only platform-scope RPCs (listing tenants) and system jobs
 * (outbox relay, purges) use it.
 */
export async function withPlatform<DB, T>(db: Kysely<DB>, fn: (tx: Transaction<DB>) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (tx) => {
    await sql`select set_config('uab.platform', 'on', true)`.execute(tx);
    return fn(tx);
  });
}

/** PostgreSQL error code of an error thrown by pg, if any. */
export function pgErrorCode(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e && typeof (e as { code: unknown }).code === "string"
    ? (e as { code: string }).code
    : undefined;
}

/** True when `e` is a unique violation, optionally of one named constraint. */
export function isUniqueViolation(e: unknown, constraint?: string): boolean {
  if (pgErrorCode(e) !== "23505") return false;
  return constraint === undefined || (e as { constraint?: string }).constraint === constraint;
}
