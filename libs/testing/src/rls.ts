/**
 * Catalogue checks of row-level security shared by every service's RLS tests: which tables
 * of a schema carry a `tenant_id` and which of them break the rules, and what is wrong with
 * a runtime role. They read only the system catalogues, so any connection will do (a
 * superuser's is simplest).
 */
import type pg from "pg";

/** What the checks need of a connection: `query` (a `pg.Client`, a `pg.PoolClient` or a `pg.Pool`). */
export type Queryable = Pick<pg.ClientBase, "query">;

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
