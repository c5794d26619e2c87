/**
 * Row-level security seen from the database: a connection acting as the runtime role
 * (`createDatabase({ role: "uab_tenancy" })`, i.e. SET ROLE on every pooled connection) on a
 * migrated tenancy schema. Rows are seeded by the superuser (which bypasses RLS) for two
 * tenants plus platform rows (tenant_id NULL). A catalogue test checks every table having a
 * `tenant_id` column and the runtime role's attributes, and proves it would flag violations.
 *
 * The database is migrated here rather than through the harness: the harness's outbox relay
 * would publish and delete the seeded outbox rows while the test looks at them.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createDatabase, type Database, migrateService, serviceRoles, withTenant } from "@uab/db";
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
  uniqueSuffix,
} from "@uab/testing";
import { sql } from "kysely";
import { tenancyMigrations } from "../src/index.js";

const ROLES = serviceRoles("tenancy");
const A = "ten_rls_a";
const B = "ten_rls_b";

/** Every table of the schema that must be tenant-isolated. */
const TENANT_TABLES = [
  "attribute_schemas",
  "inbox",
  "memberships",
  "outbox",
  "projects",
  "team_members",
  "teams",
  "tenants",
] as const;
type Table = (typeof TENANT_TABLES)[number];

/** An INSERT of one row of `table` belonging to tenant `t`; `n` makes its keys unique. In seeding order. */
const INSERT: Record<Table, (t: string, n: string) => [string, unknown[]]> = {
  tenants: (t) => [
    "INSERT INTO tenants (id, slug, display_name, status) VALUES ($1, $2, $1, 'active')",
    [t, `slug-${t.replaceAll("_", "-")}`],
  ],
  projects: (t, n) => [
    "INSERT INTO projects (id, tenant_id, slug, display_name) VALUES ($1, $2, $3, $3)",
    [`prj_${t}_${n}`, t, `p${n}`],
  ],
  teams: (t, n) => [
    "INSERT INTO teams (id, tenant_id, slug, display_name) VALUES ($1, $2, $3, $3)",
    [`team_${t}_${n}`, t, `t${n}`],
  ],
  memberships: (t, n) => [
    "INSERT INTO memberships (id, tenant_id, user_id) VALUES ($1, $2, $3)",
    [`mem_${t}_${n}`, t, `usr_${t}_${n}`],
  ],
  // Team 2 of the tenant with membership 1's user (team 1 holds the seeded row).
  team_members: (t, n) => [
    "INSERT INTO team_members (tenant_id, team_id, user_id) VALUES ($1, $2, $3)",
    [t, `team_${t}_${n === "1" ? "1" : "2"}`, `usr_${t}_1`],
  ],
  attribute_schemas: (t, n) => [
    "INSERT INTO attribute_schemas (tenant_id, resource_type) VALUES ($1, $2)",
    [t, n === "1" ? "project" : "team"],
  ],
  outbox: (t, n) => [
    "INSERT INTO outbox (id, tenant_id, subject, type, data) VALUES ($1, $2, 'uab.events.tenancy.x.y', 'y', '\\x00')",
    [`evt_${t}_${n}`, t],
  ],
  inbox: (t, n) => ["INSERT INTO inbox (consumer, event_id, tenant_id) VALUES ('c', $1, $2)", [`evt_${t}_${n}`, t]],
};

/** A column each table can be updated on (`SET col = col`). */
const COLUMN: Record<Table, string> = {
  tenants: "display_name",
  projects: "display_name",
  teams: "display_name",
  memberships: "owner",
  team_members: "created_at",
  attribute_schemas: "revision",
  outbox: "headers",
  inbox: "handled_at",
};

let database: TestDatabase;
let superuser: Database<unknown>;
let admin: PooledClient;
let rt: Database<unknown>;

beforeAll(async () => {
  database = await createTestDatabase();
  await migrateService({ url: database.url, service: "tenancy", migrations: tenancyMigrations });
  // The superuser (bypasses RLS) on one dedicated connection, search_path tenancy.
  superuser = createDatabase({ url: database.url, schema: "tenancy", max: 1 });
  admin = await superuser.pool.connect();
  for (const t of [A, B]) {
    for (const table of Object.keys(INSERT) as Table[]) {
      const [text, params] = INSERT[table](t, "1");
      await admin.query(text, params);
    }
    // The second team, so a fresh team_members row can be inserted later.
    await admin.query(...INSERT.teams(t, "2"));
  }
  // Platform rows: no tenant at all.
  await admin.query(
    "INSERT INTO outbox (id, tenant_id, subject, type, data) VALUES ('evt_platform', NULL, 's', 't', '')",
  );
  await admin.query("INSERT INTO inbox (consumer, event_id, tenant_id) VALUES ('c', 'evt_platform', NULL)");
  rt = createDatabase({ url: database.url, schema: "tenancy", role: ROLES.runtime, max: 2 });
});

afterAll(async () => {
  await rt?.close();
  admin?.release();
  await superuser?.close();
  await database?.drop();
});

describe("RLS as the runtime role", () => {
  it("really acts as the runtime role (not the superuser that logged in)", async () => {
    await asRuntime(rt.pool, {}, async (c) => {
      expect(await sessionRole(c)).toEqual({ user: ROLES.runtime, superuser: false });
    });
  });

  it("sees nothing in any tenant table when no tenant is set", async () => {
    for (const settings of [{}, { tenant: "" }, { platform: "off" }, { tenant: "", platform: "" }]) {
      await asRuntime(rt.pool, settings, async (c) => {
        for (const table of TENANT_TABLES) {
          const r = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
          expect({ table, settings, n: r.rows[0]!.n }).toEqual({ table, settings, n: 0 });
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
  });

  it("with tenant A set, sees A's rows and none of B's or the platform's", async () => {
    await asRuntime(rt.pool, { tenant: A }, async (c) => {
      for (const table of TENANT_TABLES) {
        const r = await c.query<{ mine: number; other: number; platform: number }>(
          `SELECT count(*) FILTER (WHERE tenant_id = $1)::int AS mine,
                  count(*) FILTER (WHERE tenant_id IS DISTINCT FROM $1 AND tenant_id IS NOT NULL)::int AS other,
                  count(*) FILTER (WHERE tenant_id IS NULL)::int AS platform
             FROM ${table}`,
          [A],
        );
        expect({ table, ...r.rows[0] }).toEqual({ table, mine: table === "teams" ? 2 : 1, other: 0, platform: 0 });
        // Asking for B's rows by key finds nothing either.
        const direct = await c.query(`SELECT 1 FROM ${table} WHERE tenant_id = $1`, [B]);
        expect({ table, rows: direct.rowCount }).toEqual({ table, rows: 0 });
      }
    });
  });

  it("with tenant A set, UPDATE and DELETE of B's rows affect 0 rows (and of A's own rows do)", async () => {
    for (const table of TENANT_TABLES) {
      await asRuntime(rt.pool, { tenant: A }, async (c) => {
        const set = `${COLUMN[table]} = ${COLUMN[table]}`;
        const updB = await c.query(`UPDATE ${table} SET ${set} WHERE tenant_id = $1`, [B]);
        const updAll = await c.query(`UPDATE ${table} SET ${set}`);
        const delB = await c.query(`DELETE FROM ${table} WHERE tenant_id = $1`, [B]);
        expect({ table, updB: updB.rowCount, delB: delB.rowCount }).toEqual({ table, updB: 0, delB: 0 });
        // Positive control: an unfiltered update touches exactly A's rows.
        expect({ table, updAll: updAll.rowCount }).toEqual({ table, updAll: table === "teams" ? 2 : 1 });
        const delA = await c.query(`DELETE FROM ${table} WHERE tenant_id = $1`, [A]);
        expect(delA.rowCount).toBeGreaterThan(0);
      });
    }
    // Everything was rolled back, and B's rows were never touched.
    const b = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM projects WHERE tenant_id = $1", [B]);
    expect(b.rows[0]!.n).toBe(1);
  });

  it("with tenant A set, INSERT of a row of tenant B fails the WITH CHECK", async () => {
    await asRuntime(rt.pool, { tenant: A }, async (c) => {
      for (const table of TENANT_TABLES) {
        const err = await failure(c, ...INSERT[table](B, "9"));
        expect({ table, code: err.code }).toEqual({ table, code: "42501" });
        expect(err.message).toMatch(/new row violates row-level security policy/);
        // Positive control: the same row for A is accepted.
        const [ownText, ownParams] = INSERT[table](A, table === "tenants" ? "1" : "9");
        if (table !== "tenants") await c.query(ownText, ownParams);
      }
      // Moving one of A's rows to B is refused as well.
      const moved = await failure(c, "UPDATE projects SET tenant_id = $1 WHERE tenant_id = $2", [B, A]);
      expect(moved.code).toBe("42501");
    });
  });

  it("withTenant over the runtime-role pool sees only that tenant", async () => {
    for (const [mine, other] of [
      [A, B],
      [B, A],
    ] as const) {
      const rows = await withTenant(rt.db, mine, async (tx) => {
        const r = await sql<{ tenant_id: string | null }>`
          SELECT tenant_id FROM tenants UNION ALL SELECT tenant_id FROM projects
          UNION ALL SELECT tenant_id FROM outbox UNION ALL SELECT tenant_id FROM inbox`.execute(tx);
        return r.rows.map((x) => x.tenant_id);
      });
      expect(rows).toEqual([mine, mine, mine, mine]);
      expect(rows).not.toContain(other);
    }
  });
});

describe("RLS catalogue", () => {
  it("every tenancy table with tenant_id has RLS enabled and forced, with a tenant policy", async () => {
    const { tables, violations } = await rlsCatalogue(admin, "tenancy");
    expect(tables).toEqual([...TENANT_TABLES]);
    expect(violations).toEqual([]);
  });

  it("the runtime role is no superuser, cannot bypass RLS, owns nothing and inherits no role", async () => {
    expect(await roleViolations(admin, ROLES.runtime)).toEqual([]);
    // The same facts through pg_roles/pg_tables directly.
    const r = await admin.query("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", [ROLES.runtime]);
    expect(r.rows).toEqual([{ rolsuper: false, rolbypassrls: false }]);
    const owned = await admin.query("SELECT tablename FROM pg_tables WHERE tableowner = $1", [ROLES.runtime]);
    expect(owned.rows).toEqual([]);
    // The tables belong to the owner role (which RLS binds too, as it is forced).
    expect(await tableOwners(admin, "tenancy")).toEqual([ROLES.owner]);
  });

  it("the catalogue checks flag tables and roles that break the rules (rolled back)", async () => {
    const scratch = `scratch_${uniqueSuffix()}`;
    const badRole = `uab_scratch_${uniqueSuffix()}`;
    const superRole = `uab_scratch_${uniqueSuffix()}`;
    await admin.query("BEGIN");
    try {
      await admin.query(`CREATE SCHEMA ${scratch}`);
      const policy = "tenant_id = NULLIF(current_setting('uab.tenant_id', true), '')";
      await admin.query(`CREATE TABLE ${scratch}.no_rls (id int, tenant_id text)`);
      await admin.query(`CREATE TABLE ${scratch}.not_forced (tenant_id text)`);
      await admin.query(`ALTER TABLE ${scratch}.not_forced ENABLE ROW LEVEL SECURITY`);
      await admin.query(`CREATE POLICY p ON ${scratch}.not_forced USING (${policy}) WITH CHECK (${policy})`);
      await admin.query(`CREATE TABLE ${scratch}.no_policy (tenant_id text)`);
      await admin.query(`ALTER TABLE ${scratch}.no_policy ENABLE ROW LEVEL SECURITY`);
      await admin.query(`ALTER TABLE ${scratch}.no_policy FORCE ROW LEVEL SECURITY`);
      await admin.query(`CREATE TABLE ${scratch}.leaky (tenant_id text)`);
      await admin.query(`ALTER TABLE ${scratch}.leaky ENABLE ROW LEVEL SECURITY`);
      await admin.query(`ALTER TABLE ${scratch}.leaky FORCE ROW LEVEL SECURITY`);
      await admin.query(`CREATE POLICY p ON ${scratch}.leaky USING (${policy}) WITH CHECK (${policy})`);
      await admin.query(`CREATE POLICY everyone ON ${scratch}.leaky USING (true)`);
      await admin.query(`CREATE TABLE ${scratch}.good (tenant_id text)`);
      await admin.query(`ALTER TABLE ${scratch}.good ENABLE ROW LEVEL SECURITY`);
      await admin.query(`ALTER TABLE ${scratch}.good FORCE ROW LEVEL SECURITY`);
      await admin.query(`CREATE POLICY p ON ${scratch}.good USING (${policy}) WITH CHECK (${policy})`);
      await admin.query(`CREATE TABLE ${scratch}.no_tenant (id int)`);

      const { tables, violations } = await rlsCatalogue(admin, scratch);
      expect(tables).toEqual(["good", "leaky", "no_policy", "no_rls", "not_forced"]);
      expect(violations.sort()).toEqual(
        [
          "leaky: a permissive policy ignores uab.tenant_id",
          "no_policy: no policy",
          "no_rls: no policy",
          "no_rls: row level security not enabled",
          "no_rls: row level security not forced",
          "not_forced: row level security not forced",
        ].sort(),
      );

      await admin.query(`CREATE ROLE ${badRole} NOLOGIN BYPASSRLS`);
      await admin.query(`ALTER TABLE ${scratch}.good OWNER TO ${badRole}`);
      await admin.query(`GRANT ${ROLES.owner} TO ${badRole}`);
      await admin.query(`CREATE ROLE ${superRole} NOLOGIN SUPERUSER`);
      expect(await roleViolations(admin, badRole)).toEqual([
        `${badRole}: BYPASSRLS`,
        `${badRole}: owns table ${scratch}.good`,
        `${badRole}: owns relation ${scratch}.good`,
        `${badRole}: member of ${ROLES.owner}`,
      ]);
      expect(await roleViolations(admin, superRole)).toEqual([`${superRole}: superuser`]);
    } finally {
      await admin.query("ROLLBACK");
    }
    const gone = await admin.query("SELECT 1 FROM pg_roles WHERE rolname IN ($1, $2)", [badRole, superRole]);
    expect(gone.rowCount).toBe(0);
    const noSchema = await admin.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [scratch]);
    expect(noSchema.rowCount).toBe(0);
  });
});
