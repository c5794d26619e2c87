/**
 * Row-level security helpers shared by every service's RLS tests.
 *
 * Catalogue checks: which tables of a schema carry a `tenant_id` and which of them break the
 * rules, and what is wrong with a runtime role. They read only the system catalogues, so any
 * connection will do (a superuser's is simplest).
 *
 * Sessions: {@link asRuntime} runs statements as a service's runtime role with the settings
 * the policies read, in a transaction that is always rolled back; {@link failure} runs a
 * statement that must fail without spoiling that transaction. They throw plain errors (no
 * test framework needed).
 */
import type pg from "pg";

/** What the checks need of a connection: `query` (a `pg.Client`, a `pg.PoolClient` or a `pg.Pool`). */
export type Queryable = Pick<pg.ClientBase, "query">;

/** A connection taken from a pool (`pg.PoolClient`): a {@link Queryable} that goes back with `release`. */
export type PooledClient = Queryable & { release(): void };

/** The session settings the RLS policies read; a setting left out is not set at all. */
export interface RlsSettings {
  /** `uab.tenant_id`: the tenant whose rows the policies let through (`""` is no tenant). */
  readonly tenant?: string;
  /** `uab.platform`: `on` lets the platform read and write every row; anything else does not. */
  readonly platform?: string;
}

/**
 * Runs `fn` on a connection of `pool` in a transaction that is rolled back afterwards, whatever
 * `fn` did or threw, with {@link RlsSettings} set for that transaction only
 * (`set_config(…, true)`): `uab.tenant_id` to `settings.tenant` and `uab.platform` to
 * `settings.platform`, each only when given. The connection then goes back to the pool.
 *
 * Give it the pool of a database opened as the service's runtime role
 * (`createDatabase({ role })`, which SETs ROLE on every pooled connection), so that `fn`'s
 * statements are bound by the same row-level security as the service's own.
 *
 * @param pool a `pg.Pool` (`Database.pool`)
 * @returns what `fn` returned
 */
export async function asRuntime<T>(
  pool: Pick<pg.Pool, "connect">,
  settings: RlsSettings,
  fn: (c: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query("BEGIN");
    if (settings.tenant !== undefined) await c.query("SELECT set_config('uab.tenant_id', $1, true)", [settings.tenant]);
    if (settings.platform !== undefined)
      await c.query("SELECT set_config('uab.platform', $1, true)", [settings.platform]);
    return await fn(c);
  } finally {
    await c.query("ROLLBACK").catch(() => undefined);
    c.release();
  }
}

/** The error a statement failed with: PostgreSQL's message and SQLSTATE (`42501` for an RLS refusal). */
export interface StatementError {
  readonly code?: string;
  readonly message: string;
}

/**
 * The error the statement `text` (with `params`) fails with, run in a savepoint of the
 * transaction open on `c` (as in {@link asRuntime}), which it rolls back to, so the
 * transaction stays usable for the next statement. Throws when the statement succeeds (after
 * releasing the savepoint, so what it wrote stays in the transaction).
 */
export async function failure(c: Queryable, text: string, params: unknown[] = []): Promise<StatementError> {
  await c.query("SAVEPOINT s");
  try {
    await c.query(text, params);
  } catch (e) {
    await c.query("ROLLBACK TO SAVEPOINT s");
    return e as StatementError;
  }
  await c.query("RELEASE SAVEPOINT s");
  throw new Error(`expected ${text} ${JSON.stringify(params)} to fail, it succeeded`);
}

/**
 * Tables of `schema` with a `tenant_id` column, and which of them break the RLS rules:
 * RLS not enabled, not forced, no policy, or a permissive policy whose USING or WITH CHECK
 * expression does not read `uab.tenant_id` (it would OR every row back in).
 */
export async function rlsCatalogue(q: Queryable, schema: string): Promise<{ tables: string[]; violations: string[] }> {
  const res = await q.query<{
    relname: string;
    relrowsecurity: boolean;
    relforcerowsecurity: boolean;
    policies: number;
    loose: number;
  }>(
    `SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
            (SELECT count(*)::int FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
            -- a permissive policy that does not read the tenant would OR every row back in
            (SELECT count(*)::int FROM pg_policy p
              WHERE p.polrelid = c.oid AND p.polpermissive
                AND (coalesce(pg_get_expr(p.polqual, p.polrelid), '') NOT LIKE '%uab.tenant_id%'
                  -- without WITH CHECK, PostgreSQL checks written rows with USING (a FOR SELECT policy writes none)
                  OR coalesce(pg_get_expr(p.polwithcheck, p.polrelid), pg_get_expr(p.polqual, p.polrelid), '') NOT LIKE '%uab.tenant_id%')) AS loose
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND a.attnum > 0 AND NOT a.attisdropped
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
      ORDER BY c.relname`,
    [schema],
  );
  const violations: string[] = [];
  for (const r of res.rows) {
    if (!r.relrowsecurity) violations.push(`${r.relname}: row level security not enabled`);
    if (!r.relforcerowsecurity) violations.push(`${r.relname}: row level security not forced`);
    if (r.policies === 0) violations.push(`${r.relname}: no policy`);
    if (r.loose > 0) violations.push(`${r.relname}: a permissive policy ignores uab.tenant_id`);
  }
  return { tables: res.rows.map((r) => r.relname), violations };
}

/** What is wrong with a runtime role: superuser, BYPASSRLS, owning anything, inheriting a role. */
export async function roleViolations(q: Queryable, role: string): Promise<string[]> {
  const violations: string[] = [];
  const r = await q.query<{ rolsuper: boolean; rolbypassrls: boolean }>(
    "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1",
    [role],
  );
  if (r.rows.length !== 1) return [`${role}: no such role`];
  if (r.rows[0]!.rolsuper) violations.push(`${role}: superuser`);
  if (r.rows[0]!.rolbypassrls) violations.push(`${role}: BYPASSRLS`);
  const tables = await q.query<{ t: string }>(
    "SELECT schemaname || '.' || tablename AS t FROM pg_tables WHERE tableowner = $1",
    [role],
  );
  for (const t of tables.rows) violations.push(`${role}: owns table ${t.t}`);
  const owned = await q.query<{ t: string }>(
    `SELECT 'relation ' || c.oid::regclass::text AS t FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
      WHERE r.rolname = $1 AND c.relnamespace <> 'pg_toast'::regnamespace
     UNION ALL
     SELECT 'schema ' || n.nspname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE r.rolname = $1`,
    [role],
  );
  for (const t of owned.rows) violations.push(`${role}: owns ${t.t}`);
  const member = await q.query<{ g: string }>(
    `SELECT g.rolname AS g FROM pg_auth_members m
       JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
      WHERE u.rolname = $1`,
    [role],
  );
  for (const g of member.rows) violations.push(`${role}: member of ${g.g}`);
  return violations;
}

/** Who a connection acts as: `current_user`, and whether that role is a superuser. */
export async function sessionRole(c: Queryable): Promise<{ user: string; superuser: boolean }> {
  const r = await c.query<{ user: string; superuser: string }>(
    "SELECT current_user AS user, current_setting('is_superuser') AS superuser",
  );
  return { user: r.rows[0]!.user, superuser: r.rows[0]!.superuser === "on" };
}

/** The distinct owners of the tables of `schema`, sorted. */
export async function tableOwners(q: Queryable, schema: string): Promise<string[]> {
  const r = await q.query<{ o: string }>(
    "SELECT DISTINCT tableowner AS o FROM pg_tables WHERE schemaname = $1 ORDER BY 1",
    [schema],
  );
  return r.rows.map((x) => x.o);
}

/** What {@link blindWrites} did. */
export interface BlindWrites {
  /** Rows the unfiltered UPDATE touched. */
  readonly updated: number | null;
  /** Rows the unfiltered DELETE touched. */
  readonly deleted: number | null;
  /** The error the INSERT failed with. */
  readonly inserted: StatementError;
}

/**
 * Writes `table` without looking at tenants, through `c` inside its open transaction (as in
 * {@link asRuntime}): an unfiltered `UPDATE table SET column = column`, an unfiltered
 * `DELETE FROM table`, then the INSERT `insert` (`[text, params]`), which must fail (see
 * {@link failure}: a success throws). Row-level security should leave the first two touching
 * no row and refuse the INSERT with SQLSTATE 42501, wherever no tenant is set.
 */
export async function blindWrites(
  c: Queryable,
  table: string,
  column: string,
  insert: readonly [string, unknown[]],
): Promise<BlindWrites> {
  const upd = await c.query(`UPDATE ${table} SET ${column} = ${column}`);
  const del = await c.query(`DELETE FROM ${table}`);
  return { updated: upd.rowCount, deleted: del.rowCount, inserted: await failure(c, ...insert) };
}
