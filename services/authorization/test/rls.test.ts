/**
 * Row-level security of the authorization schema seen from the database: a connection acting
 * as the runtime role (`createDatabase({ role: "uab_authorization" })`, i.e. SET ROLE on every
 * pooled connection) on a migrated schema. Rows are seeded by the superuser (which bypasses
 * RLS) for two tenants plus platform rows (tenant_id NULL, where the column allows it:
 * revisions, bindings, outbox, inbox). Two policies deliberately widen what a tenant reads:
 * a binding is readable by its principal's home tenant (delegated_visibility) and an access
 * request by its requester's home tenant (requester_visibility); neither may be written
 * from there. A catalogue test checks every table having a `tenant_id` column and the
 * runtime role's attributes.
 *
 * The database is migrated here rather than through the harness: the harness's outbox relay
 * would publish and delete the seeded outbox rows while the test looks at them.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createDatabase, type Database, migrateService, serviceRoles, withPlatform, withTenant } from "@uab/db";
import {
  asRuntime,
  blindWrites,
  createTestDatabase,
  failure,
  type PooledClient,
  rlsCatalogue,
  roleViolations,
  sessionRole,
  type TestDatabase,
  tableOwners,
} from "@uab/testing";
import { sql } from "kysely";
import { authorizationMigrations } from "../src/index.js";

const ROLES = serviceRoles("authorization");
const A = "ten_rls_a";
const B = "ten_rls_b";

/** Every table of the schema that must be tenant-isolated (in catalogue order). */
const TENANT_TABLES = [
  "access_request_approvals",
  "access_requests",
  "approval_policies",
  "bindings",
  "deleted_teams",
  "inbox",
  "members",
  "outbox",
  "revisions",
  "roles",
  "team_members",
  "tenants",
] as const;
type Table = (typeof TENANT_TABLES)[number];

/** An INSERT of one row of `table` belonging to tenant `t`; `n` makes its keys unique. In seeding order. */
const INSERT: Record<Table, (t: string, n: string) => [string, unknown[]]> = {
  tenants: (t) => ["INSERT INTO tenants (id, status) VALUES ($1, 'active')", [t]],
  revisions: (t) => ["INSERT INTO revisions (key, tenant_id) VALUES ($1, $1)", [t]],
  roles: (t, n) => [
    "INSERT INTO roles (id, tenant_id, slug, display_name, assignable_scopes) VALUES ($1, $2, $3, $3, '{tenant}')",
    [`role_${t}_${n}`, t, `r${n}`],
  ],
  bindings: (t, n) => [
    `INSERT INTO bindings (id, tenant_id, principal_type, principal_id, principal_tenant_id, role_id, scope_type, creator_id)
     VALUES ($1, $2, 'user', $3, $2, $4, 'tenant', 'usr_creator')`,
    [`rb_${t}_${n}`, t, `usr_${t}_${n}`, `role_${t}_1`],
  ],
  approval_policies: (t, n) => [
    `INSERT INTO approval_policies (id, tenant_id, display_name, role_ids, required_approvals, approver_permission,
                                    max_duration_seconds, request_ttl_seconds)
     VALUES ($1, $2, 'p', '{}', 1, 'authorization.access_requests.approve', 3600, 3600)`,
    [`ap_${t}_${n}`, t],
  ],
  access_requests: (t, n) => [
    `INSERT INTO access_requests (id, tenant_id, requester_type, requester_id, requester_tenant_id, role_id, scope_type,
                                  justification, duration_seconds, status, required_approvals, approver_permission,
                                  expire_time)
     VALUES ($1, $2, 'user', $3, $2, $4, 'tenant', 'j', 3600, 'pending', 1, 'authorization.access_requests.approve',
             now() + interval '1 hour')`,
    [`ar_${t}_${n}`, t, `usr_${t}_${n}`, `role_${t}_1`],
  ],
  // An approval of the tenant's first access request (the seeded one).
  access_request_approvals: (t, n) => [
    "INSERT INTO access_request_approvals (access_request_id, tenant_id, approver_type, approver_id) VALUES ($1, $2, 'user', $3)",
    [`ar_${t}_1`, t, `usr_${t}_${n}`],
  ],
  members: (t, n) => ["INSERT INTO members (tenant_id, user_id) VALUES ($1, $2)", [t, `usr_${t}_${n}`]],
  team_members: (t, n) => [
    "INSERT INTO team_members (tenant_id, team_id, principal_id) VALUES ($1, $2, $3)",
    [t, `team_${t}_${n}`, `usr_${t}_${n}`],
  ],
  deleted_teams: (t, n) => [
    "INSERT INTO deleted_teams (tenant_id, team_id) VALUES ($1, $2)",
    [t, `team_${t}_deleted_${n}`],
  ],
  outbox: (t, n) => [
    "INSERT INTO outbox (id, tenant_id, subject, type, data) VALUES ($1, $2, 'uab.events.authorization.x.y', 'y', '\\x00')",
    [`evt_${t}_${n}`, t],
  ],
  inbox: (t, n) => ["INSERT INTO inbox (consumer, event_id, tenant_id) VALUES ('c', $1, $2)", [`evt_${t}_${n}`, t]],
};

/** A column each table can be updated on (`SET col = col`). */
const COLUMN: Record<Table, string> = {
  tenants: "status",
  revisions: "revision",
  roles: "display_name",
  bindings: "description",
  approval_policies: "display_name",
  access_requests: "justification",
  access_request_approvals: "comment",
  members: "owner",
  team_members: "principal_id",
  deleted_teams: "team_id",
  outbox: "headers",
  inbox: "handled_at",
};

/** An expression naming one row of each table. */
const KEY: Record<Table, string> = {
  tenants: "id",
  revisions: "key",
  roles: "id",
  bindings: "id",
  approval_policies: "id",
  access_requests: "id",
  access_request_approvals: "access_request_id || '/' || approver_id",
  members: "tenant_id || '/' || user_id",
  team_members: "team_id || '/' || principal_id",
  deleted_teams: "team_id",
  outbox: "id",
  inbox: "consumer || '/' || event_id",
};

/** A binding of tenant B held by a user of tenant A (a delegated grant): A may read it. */
const DELEGATED = "rb_b_for_a";
/** An access request to tenant B by a user of tenant A: A may read it. */
const REQUESTED = "ar_b_by_a";
/** A platform binding (no tenant, platform principal). */
const PLATFORM_BINDING = "rb_platform";
/** A platform binding of a principal of tenant A: A may read it (delegated_visibility). */
const PLATFORM_BINDING_OF_A = "rb_platform_for_a";

let database: TestDatabase;
let superuser: Database<unknown>;
let admin: PooledClient;
let rt: Database<unknown>;

interface Row {
  key: string;
  tenant_id: string | null;
  /** principal_tenant_id of bindings, requester_tenant_id of access requests, else NULL. */
  home: string | null;
}

function homeColumn(table: Table): string {
  if (table === "bindings") return "principal_tenant_id";
  if (table === "access_requests") return "requester_tenant_id";
  return "NULL::text";
}

/** Every row of `table` `c` can see, sorted by key. */
async function visible(c: PooledClient, table: Table): Promise<Row[]> {
  const r = await c.query<Row>(
    `SELECT * FROM (SELECT ${KEY[table]} AS key, tenant_id, ${homeColumn(table)} AS home FROM ${table}) r
      ORDER BY key COLLATE "C"`,
  );
  return r.rows;
}

/** Keys of `rows` (for readable failures). */
function keys(rows: Row[]): string[] {
  return rows.map((r) => r.key);
}

beforeAll(async () => {
  database = await createTestDatabase();
  await migrateService({ url: database.url, service: "authorization", migrations: authorizationMigrations });
  // The superuser (bypasses RLS) on one dedicated connection, search_path authorization.
  superuser = createDatabase({ url: database.url, schema: "authorization", max: 1 });
  admin = await superuser.pool.connect();
  for (const t of [A, B]) {
    for (const table of Object.keys(INSERT) as Table[]) {
      const [text, params] = INSERT[table](t, "1");
      await admin.query(text, params);
    }
  }
  // Rows of B that A's policies let it read.
  await admin.query(
    `INSERT INTO bindings (id, tenant_id, principal_type, principal_id, principal_tenant_id, role_id, scope_type,
                           creator_id, delegated)
     VALUES ($1, $2, 'user', 'usr_a_delegate', $3, $4, 'tenant', 'usr_creator', true)`,
    [DELEGATED, B, A, `role_${B}_1`],
  );
  await admin.query(
    `INSERT INTO access_requests (id, tenant_id, requester_type, requester_id, requester_tenant_id, role_id, scope_type,
                                  justification, duration_seconds, status, required_approvals, approver_permission,
                                  expire_time)
     VALUES ($1, $2, 'user', 'usr_a_requester', $3, $4, 'tenant', 'j', 3600, 'pending', 1,
             'authorization.access_requests.approve', now() + interval '1 hour')`,
    [REQUESTED, B, A, `role_${B}_1`],
  );
  // Platform rows: no tenant at all (only these tables allow a NULL tenant_id).
  await admin.query("INSERT INTO revisions (key, tenant_id) VALUES ('platform', NULL)");
  await admin.query(
    `INSERT INTO bindings (id, tenant_id, principal_type, principal_id, principal_tenant_id, role_id, scope_type,
                           creator_id, source)
     VALUES ($1, NULL, 'user', 'usr_platform_admin', NULL, 'role_0000000000000platformadmin', 'platform',
             'usr_creator', 'bootstrap'),
            ($2, NULL, 'user', 'usr_a_operator', $3, 'role_platform_auditor', 'platform', 'usr_creator', 'api')`,
    [PLATFORM_BINDING, PLATFORM_BINDING_OF_A, A],
  );
  await admin.query(
    "INSERT INTO outbox (id, tenant_id, subject, type, data) VALUES ('evt_platform', NULL, 's', 't', '')",
  );
  await admin.query("INSERT INTO inbox (consumer, event_id, tenant_id) VALUES ('c', 'evt_platform', NULL)");
  rt = createDatabase({ url: database.url, schema: "authorization", role: ROLES.runtime, max: 2 });
});

afterAll(async () => {
  await rt?.close();
  admin?.release();
  await superuser?.close();
  await database?.drop();
});

describe("RLS catalogue", () => {
  it("every authorization table with tenant_id has RLS enabled and forced, with a tenant policy", async () => {
    const { tables, violations } = await rlsCatalogue(admin, "authorization");
    expect(tables).toEqual([...TENANT_TABLES]);
    // Including the two read-only visibility policies (FOR SELECT: no WITH CHECK, their
    // USING reads uab.tenant_id; the next test pins their shape).
    expect(violations).toEqual([]);
  });

  it("the only permissive policies not of the tenant_isolation kind are the two read-only visibility policies", async () => {
    const r = await admin.query<{ table: string; policy: string; cmd: string; qual: string; check: string | null }>(
      `SELECT c.relname AS table, p.polname AS policy, p.polcmd AS cmd,
              pg_get_expr(p.polqual, p.polrelid) AS qual, pg_get_expr(p.polwithcheck, p.polrelid) AS check
         FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'authorization' AND p.polname NOT LIKE '%tenant_isolation'
        ORDER BY 1, 2`,
    );
    // FOR SELECT ('r'): they can widen what is read, never what is written.
    expect(r.rows.map(({ table, policy, cmd, check }) => ({ table, policy, cmd, check }))).toEqual([
      { table: "access_requests", policy: "requester_visibility", cmd: "r", check: null },
      { table: "bindings", policy: "delegated_visibility", cmd: "r", check: null },
    ]);
    for (const row of r.rows) expect(row.qual).toMatch(/current_setting\('uab\.tenant_id'/);
  });

  it("the runtime role is no superuser, cannot bypass RLS, owns nothing and inherits no role", async () => {
    expect(await roleViolations(admin, ROLES.runtime)).toEqual([]);
    // The tables belong to the owner role (which RLS binds too, as it is forced).
    expect(await tableOwners(admin, "authorization")).toEqual([ROLES.owner]);
  });
});

describe("RLS as the runtime role", () => {
  it("really acts as the runtime role (not the superuser that logged in)", async () => {
    await asRuntime(rt.pool, {}, async (c) => {
      expect(await sessionRole(c)).toEqual({ user: ROLES.runtime, superuser: false });
    });
  });

  it("sees nothing in any tenant table when no tenant is set", async () => {
    for (const settings of [
      {},
      { tenant: "" },
      { platform: "off" },
      { platform: "true" },
      { tenant: "", platform: "" },
    ]) {
      await asRuntime(rt.pool, settings, async (c) => {
        for (const table of TENANT_TABLES) {
          expect({ table, settings, rows: keys(await visible(c, table)) }).toEqual({ table, settings, rows: [] });
        }
      });
    }
  });

  it("cannot write any tenant table when no tenant is set", async () => {
    await asRuntime(rt.pool, {}, async (c) => {
      for (const table of TENANT_TABLES) {
        const { updated, deleted, inserted } = await blindWrites(c, table, COLUMN[table], INSERT[table](A, "9"));
        expect({ table, updated, deleted, code: inserted.code }).toEqual({
          table,
          updated: 0,
          deleted: 0,
          code: "42501",
        });
        expect(inserted.message).toMatch(/row-level security/);
      }
    });
    const n = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM bindings");
    expect(n.rows[0]!.n).toBe(5);
  });

  it("with tenant A set, sees A's rows, and of B's and the platform's only those the read-only policies show", async () => {
    await asRuntime(rt.pool, { tenant: A }, async (c) => {
      for (const table of TENANT_TABLES) {
        const all = await visible(admin, table);
        const seen = await visible(c, table);
        // What the policies promise: the tenant's rows, plus rows whose principal or requester is at home in A.
        const expected = all.filter((r) => r.tenant_id === A || r.home === A);
        expect({ table, rows: keys(seen) }).toEqual({ table, rows: keys(expected) });
        expect(seen.filter((r) => r.tenant_id === A).length).toBe(1);
      }
      // The deliberate exceptions, by name.
      expect(keys(await visible(c, "bindings"))).toEqual([`rb_${A}_1`, DELEGATED, PLATFORM_BINDING_OF_A].sort());
      expect(keys(await visible(c, "access_requests"))).toEqual([`ar_${A}_1`, REQUESTED].sort());
      // Asking for B's rows by tenant finds only those.
      const b = await c.query<{ id: string }>("SELECT id FROM bindings WHERE tenant_id = $1", [B]);
      expect(b.rows).toEqual([{ id: DELEGATED }]);
      const p = await c.query<{ id: string }>("SELECT id FROM bindings WHERE tenant_id IS NULL");
      expect(p.rows).toEqual([{ id: PLATFORM_BINDING_OF_A }]);
      const rev = await c.query("SELECT 1 FROM revisions WHERE key = 'platform'");
      expect(rev.rowCount).toBe(0);
    });
  });

  it("with tenant B set, sees its own rows (those held or asked for by A's people included) and none of A's", async () => {
    await asRuntime(rt.pool, { tenant: B }, async (c) => {
      expect(keys(await visible(c, "bindings"))).toEqual([`rb_${B}_1`, DELEGATED].sort());
      expect(keys(await visible(c, "access_requests"))).toEqual([`ar_${B}_1`, REQUESTED].sort());
      expect(keys(await visible(c, "revisions"))).toEqual([B]);
    });
  });

  it("with tenant A set, UPDATE and DELETE of B's rows affect 0 rows (and of A's own rows do)", async () => {
    for (const table of TENANT_TABLES) {
      await asRuntime(rt.pool, { tenant: A }, async (c) => {
        const set = `${COLUMN[table]} = ${COLUMN[table]}`;
        const updB = await c.query(`UPDATE ${table} SET ${set} WHERE tenant_id = $1`, [B]);
        const updPlatform = await c.query(`UPDATE ${table} SET ${set} WHERE tenant_id IS NULL`);
        const updAll = await c.query(`UPDATE ${table} SET ${set}`);
        const delB = await c.query(`DELETE FROM ${table} WHERE tenant_id = $1`, [B]);
        const delPlatform = await c.query(`DELETE FROM ${table} WHERE tenant_id IS NULL`);
        expect({
          table,
          updB: updB.rowCount,
          updPlatform: updPlatform.rowCount,
          delB: delB.rowCount,
          delPlatform: delPlatform.rowCount,
        }).toEqual({ table, updB: 0, updPlatform: 0, delB: 0, delPlatform: 0 });
        // Positive control: an unfiltered update touches exactly A's row, not the rows A may read.
        expect({ table, updAll: updAll.rowCount }).toEqual({ table, updAll: 1 });
        const delA = await c.query(`DELETE FROM ${table} WHERE tenant_id = $1`, [A]);
        expect({ table, delA: delA.rowCount }).toEqual({ table, delA: 1 });
      });
    }
    // Everything was rolled back, and B's rows were never touched.
    for (const table of TENANT_TABLES) {
      const b = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE tenant_id = $1`, [B]);
      expect({ table, n: b.rows[0]!.n }).toEqual({
        table,
        n: table === "bindings" || table === "access_requests" ? 2 : 1,
      });
    }
  });

  it("with tenant A set, INSERT of a row of tenant B fails the WITH CHECK", async () => {
    await asRuntime(rt.pool, { tenant: A }, async (c) => {
      for (const table of TENANT_TABLES) {
        const err = await failure(c, ...INSERT[table](B, "9"));
        expect({ table, code: err.code }).toEqual({ table, code: "42501" });
        expect(err.message).toMatch(/new row violates row-level security policy/);
        // Positive control: the same row for A is accepted (tenants and revisions hold one row per tenant).
        if (table !== "tenants" && table !== "revisions") await c.query(...INSERT[table](A, "9"));
      }
      // Moving one of A's rows to B is refused as well.
      const moved = await failure(c, "UPDATE roles SET tenant_id = $1 WHERE tenant_id = $2", [B, A]);
      expect(moved.code).toBe("42501");
      // A platform row cannot be written from a tenant.
      const platformRow = await failure(c, "INSERT INTO revisions (key, tenant_id) VALUES ('platform', NULL)", []);
      expect(platformRow.code).toBe("42501");
    });
  });

  it("delegated visibility: A reads B's binding of its principal but cannot change it, nor create one in B", async () => {
    await asRuntime(rt.pool, { tenant: A }, async (c) => {
      const seen = await c.query<{ id: string; tenant_id: string; principal_tenant_id: string }>(
        "SELECT id, tenant_id, principal_tenant_id FROM bindings WHERE id = $1",
        [DELEGATED],
      );
      expect(seen.rows).toEqual([{ id: DELEGATED, tenant_id: B, principal_tenant_id: A }]);
      for (const id of [DELEGATED, PLATFORM_BINDING_OF_A]) {
        const upd = await c.query("UPDATE bindings SET description = 'taken over' WHERE id = $1", [id]);
        const revoke = await c.query("UPDATE bindings SET expire_time = now() WHERE id = $1", [id]);
        const del = await c.query("DELETE FROM bindings WHERE id = $1", [id]);
        expect({ id, updated: upd.rowCount, revoked: revoke.rowCount, deleted: del.rowCount }).toEqual({
          id,
          updated: 0,
          revoked: 0,
          deleted: 0,
        });
      }
      // Nor can it grant its own principal something in B (a delegated binding living in B).
      const err = await failure(
        c,
        `INSERT INTO bindings (id, tenant_id, principal_type, principal_id, principal_tenant_id, role_id, scope_type,
                               creator_id, delegated)
         VALUES ('rb_forged', $1, 'user', 'usr_a_delegate', $2, $3, 'tenant', 'usr_a_delegate', true)`,
        [B, A, `role_${B}_1`],
      );
      expect(err.code).toBe("42501");
      expect(err.message).toMatch(/new row violates row-level security policy/);
      // Nor grant a platform binding to its own principal.
      const platform = await failure(
        c,
        `INSERT INTO bindings (id, tenant_id, principal_type, principal_id, principal_tenant_id, role_id, scope_type,
                               creator_id)
         VALUES ('rb_forged_platform', NULL, 'user', 'usr_a_delegate', $1, 'role_0000000000000platformadmin',
                 'platform', 'usr_a_delegate')`,
        [A],
      );
      expect(platform.code).toBe("42501");
    });
    const after = await admin.query("SELECT description, expire_time FROM bindings WHERE id = $1", [DELEGATED]);
    expect(after.rows).toEqual([{ description: "", expire_time: null }]);
  });

  it("requester visibility: A reads B's access request by its principal but cannot change or create one", async () => {
    await asRuntime(rt.pool, { tenant: A }, async (c) => {
      const seen = await c.query<{ id: string; tenant_id: string; requester_tenant_id: string }>(
        "SELECT id, tenant_id, requester_tenant_id FROM access_requests WHERE id = $1",
        [REQUESTED],
      );
      expect(seen.rows).toEqual([{ id: REQUESTED, tenant_id: B, requester_tenant_id: A }]);
      const approve = await c.query("UPDATE access_requests SET status = 'approved' WHERE id = $1", [REQUESTED]);
      const cancel = await c.query("UPDATE access_requests SET status = 'cancelled' WHERE id = $1", [REQUESTED]);
      const del = await c.query("DELETE FROM access_requests WHERE id = $1", [REQUESTED]);
      expect({ approved: approve.rowCount, cancelled: cancel.rowCount, deleted: del.rowCount }).toEqual({
        approved: 0,
        cancelled: 0,
        deleted: 0,
      });
      // Nor approve it (approvals carry only the tenant policy).
      const approval = await failure(
        c,
        "INSERT INTO access_request_approvals (access_request_id, tenant_id, approver_type, approver_id) VALUES ($1, $2, 'user', 'usr_a_x')",
        [REQUESTED, B],
      );
      expect(approval.code).toBe("42501");
      // Nor file one in B in its principal's name.
      const err = await failure(
        c,
        `INSERT INTO access_requests (id, tenant_id, requester_type, requester_id, requester_tenant_id, role_id,
                                      scope_type, justification, duration_seconds, status, required_approvals,
                                      approver_permission, expire_time)
         VALUES ('ar_forged', $1, 'user', 'usr_a_requester', $2, $3, 'tenant', 'j', 3600, 'pending', 1,
                 'authorization.access_requests.approve', now() + interval '1 hour')`,
        [B, A, `role_${B}_1`],
      );
      expect(err.code).toBe("42501");
      expect(err.message).toMatch(/new row violates row-level security policy/);
    });
    const after = await admin.query("SELECT status FROM access_requests WHERE id = $1", [REQUESTED]);
    expect(after.rows).toEqual([{ status: "pending" }]);
  });

  it("the platform (uab.platform = on) sees and may write everything, platform rows included", async () => {
    for (const settings of [{ platform: "on" }, { tenant: A, platform: "on" }]) {
      await asRuntime(rt.pool, settings, async (c) => {
        for (const table of TENANT_TABLES) {
          const all = await visible(admin, table);
          expect({ table, settings, rows: keys(await visible(c, table)) }).toEqual({
            table,
            settings,
            rows: keys(all),
          });
        }
        const platform = await c.query<{ id: string }>(
          'SELECT id FROM bindings WHERE tenant_id IS NULL ORDER BY id COLLATE "C"',
        );
        expect(platform.rows.map((r) => r.id)).toEqual([PLATFORM_BINDING, PLATFORM_BINDING_OF_A].sort());
        const rev = await c.query("SELECT key, tenant_id FROM revisions WHERE key = 'platform'");
        expect(rev.rows).toEqual([{ key: "platform", tenant_id: null }]);
        const bumped = await c.query("UPDATE revisions SET revision = revision + 1");
        expect(bumped.rowCount).toBe(3);
        const deleted = await c.query("DELETE FROM bindings WHERE tenant_id IS NULL");
        expect(deleted.rowCount).toBe(2);
      });
    }
  });

  it("withTenant and withPlatform over the runtime-role pool", async () => {
    for (const [mine, other] of [
      [A, B],
      [B, A],
    ] as const) {
      const rows = await withTenant(rt.db, mine, async (tx) => {
        const r = await sql<{ tenant_id: string | null }>`
          SELECT tenant_id FROM tenants UNION ALL SELECT tenant_id FROM revisions
          UNION ALL SELECT tenant_id FROM roles UNION ALL SELECT tenant_id FROM members
          UNION ALL SELECT tenant_id FROM outbox UNION ALL SELECT tenant_id FROM inbox`.execute(tx);
        return r.rows.map((x) => x.tenant_id);
      });
      expect(rows).toEqual([mine, mine, mine, mine, mine, mine]);
      expect(rows).not.toContain(other);
    }
    const all = await withPlatform(rt.db, async (tx) => {
      const r = await sql<{ key: string }>`SELECT key FROM revisions ORDER BY key COLLATE "C"`.execute(tx);
      return r.rows.map((x) => x.key);
    });
    expect(all).toEqual(["platform", A, B].sort());
  });
});
