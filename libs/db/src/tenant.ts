import { type Kysely, sql, type Transaction } from "kysely";
import { type PendingScope, pendingScope } from "./scoped-dialect.js";

/** Anything a repository function can run queries on. */
export type Executor<DB> = Kysely<DB> | Transaction<DB>;

// Ids (`ten_…`) are inlined into the scope statement only when they are this plain; anything
// else is set with a bound parameter in a second query.
const PLAIN_ID = /^[A-Za-z0-9_-]{1,128}$/;

async function scoped<DB, T>(
  db: Kysely<DB>,
  statement: string | undefined,
  set: (tx: Transaction<DB>) => Promise<unknown>,
  fn: (tx: Transaction<DB>) => Promise<T>,
): Promise<T> {
  const pending: PendingScope = { statement };
  return pendingScope.run(pending, () =>
    db.transaction().execute(async (tx) => {
      // The scoped dialect ran the statement with BEGIN and cleared it; any other Kysely
      // (or a transaction with settings) gets it as a query of its own.
      if (pending.statement !== undefined || statement === undefined) {
        pending.statement = undefined;
        await set(tx);
      }
      return fn(tx);
    }),
  );
}

/**
 * Runs `fn` in a transaction scoped to one tenant: `uab.tenant_id` is set with
 * `set_config(…, true)`, which lasts until the transaction ends (commit or rollback), so a
 * pooled connection never carries a tenant into the next request. Row-level-security
 * policies read it; rows of other tenants are invisible and unwritable. With the dialect of
 * {@link createDatabase} the setting travels with BEGIN in one round trip.
 */
export async function withTenant<DB, T>(
  db: Kysely<DB>,
  tenantId: string,
  fn: (tx: Transaction<DB>) => Promise<T>,
): Promise<T> {
  if (!tenantId) throw new Error("withTenant needs a tenant id");
  const inline = PLAIN_ID.test(tenantId) ? `SELECT set_config('uab.tenant_id', '${tenantId}', true)` : undefined;
  return scoped(db, inline, (tx) => sql`select set_config('uab.tenant_id', ${tenantId}, true)`.execute(tx), fn);
}

/**
 * Runs `fn` in a transaction with platform scope (`uab.platform = on`): policies let it
 * see every tenant's rows. Only platform-scope RPCs (listing tenants) and system jobs
 * (outbox relay, purges) use it.
 */
export async function withPlatform<DB, T>(db: Kysely<DB>, fn: (tx: Transaction<DB>) => Promise<T>): Promise<T> {
  return scoped(
    db,
    "SELECT set_config('uab.platform', 'on', true)",
    (tx) => sql`select set_config('uab.platform', 'on', true)`.execute(tx),
    fn,
  );
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
