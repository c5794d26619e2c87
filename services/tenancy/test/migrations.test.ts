/**
 * The tenancy migrations through `migrateService` on fresh databases: up, down one at a time
 * until none remain, up again, reset; the runtime role's privileges (exactly DML on the
 * service's tables, nothing on the migration ledger) and that it owns nothing. Lives with the
 * tenancy service because libs/db must not import services.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createDatabase, type Database, migrateService, serviceRoles } from "@uab/db";
import { createTestDatabase, type TestDatabase } from "@uab/testing";
import { sql } from "kysely";
import { tenancyMigrations } from "../src/index.js";

const ROLES = serviceRoles("tenancy");
const LEDGER = ["kysely_migration", "kysely_migration_lock"];
/** The tables each migration creates, in migration order. */
const STEPS: [string, string[]][] = [
  ["2026_11_22_000001_uab_events_outbox", ["outbox"]],
  ["2026_11_22_000002_uab_events_inbox", ["inbox"]],
  ["2026_11_22_000010_uab_idempotency_keys", ["idempotency_keys"]],
  [
    "2026_11_22_000100_create_tenancy",
    ["attribute_schemas", "memberships", "projects", "team_members", "teams", "tenants"],
  ],
];
const ALL_TABLES = STEPS.flatMap(([, t]) => t).sort();

let database: TestDatabase;
let admin: Database<unknown>;

const migrate = (direction?: "latest" | "down" | "reset", url = database.url) =>
  migrateService({ url, service: "tenancy", migrations: tenancyMigrations, direction });

async function tables(): Promise<string[]> {
  const r = await sql<{ t: string }>`
    SELECT tablename AS t FROM pg_tables WHERE schemaname = 'tenancy' ORDER BY tablename`.execute(admin.db);
  return r.rows.map((x) => x.t).filter((t) => !LEDGER.includes(t));
}

async function applied(): Promise<string[]> {
  const r = await sql<{ name: string }>`SELECT name FROM tenancy.kysely_migration ORDER BY name`.execute(admin.db);
  return r.rows.map((x) => x.name);
}

/** Table → the runtime role's privileges on it, sorted. */
async function runtimeGrants(): Promise<Record<string, string[]>> {
  const r = await sql<{ table_name: string; privilege_type: string }>`
    SELECT table_name, privilege_type FROM information_schema.role_table_grants
     WHERE grantee = ${ROLES.runtime} AND table_schema = 'tenancy'
     ORDER BY table_name, privilege_type`.execute(admin.db);
  const out: Record<string, string[]> = {};
  for (const row of r.rows) out[row.table_name] = [...(out[row.table_name] ?? []), row.privilege_type];
  return out;
}

/** Everything in this database the runtime role owns (relations, schemas, functions, types). */
async function ownedByRuntime(): Promise<string[]> {
  const r = await sql<{ what: string }>`
    SELECT 'relation ' || c.oid::regclass::text AS what FROM pg_class c WHERE c.relowner = ${ROLES.runtime}::regrole
    UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspowner = ${ROLES.runtime}::regrole
    UNION ALL SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p WHERE p.proowner = ${ROLES.runtime}::regrole
    UNION ALL SELECT 'type ' || t.oid::regtype::text FROM pg_type t WHERE t.typowner = ${ROLES.runtime}::regrole`.execute(
    admin.db,
  );
  return r.rows.map((x) => x.what);
}

async function expectRuntimePrivileges(): Promise<void> {
  const grants = await runtimeGrants();
  const dml = ["DELETE", "INSERT", "SELECT", "UPDATE"];
  expect(grants).toEqual(Object.fromEntries((await tables()).map((t) => [t, dml])));
  expect(await ownedByRuntime()).toEqual([]);
  const role = await sql<{ rolsuper: boolean; rolbypassrls: boolean; rolcreaterole: boolean; rolcreatedb: boolean }>`
    SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = ${ROLES.runtime}`.execute(
    admin.db,
  );
  expect(role.rows).toEqual([{ rolsuper: false, rolbypassrls: false, rolcreaterole: false, rolcreatedb: false }]);
  // Every table belongs to the owner role.
  const owners = await sql<{ o: string }>`
    SELECT DISTINCT tableowner AS o FROM pg_tables WHERE schemaname = 'tenancy'`.execute(admin.db);
  expect(owners.rows.map((x) => x.o)).toEqual([ROLES.owner]);
}

beforeAll(async () => {
  database = await createTestDatabase();
  admin = createDatabase({ url: database.url, schema: "tenancy", max: 1 });
});
afterAll(async () => {
  await admin?.close();
  await database?.drop();
});

describe("tenancy migrations", () => {
  it("migrate up on a fresh database creates every table, then is a no-op", async () => {
    const result = await migrate();
    expect(result.results?.map((r) => [r.migrationName, r.direction, r.status])).toEqual(
      STEPS.map(([name]) => [name, "Up", "Success"]),
    );
    expect(await tables()).toEqual(ALL_TABLES);
    expect(await applied()).toEqual(STEPS.map(([name]) => name));
    const again = await migrate();
    expect(again.results).toEqual([]);
    expect(await tables()).toEqual(ALL_TABLES);
  });

  it("gives the runtime role exactly SELECT/INSERT/UPDATE/DELETE on the service tables and nothing else", async () => {
    await expectRuntimePrivileges();
    // The migration ledger is no business of the runtime role.
    for (const t of LEDGER) expect((await runtimeGrants())[t]).toBeUndefined();
    // Nor may it create anything in the schema.
    const create = await sql<{ c: boolean }>`
      SELECT has_schema_privilege(${ROLES.runtime}, 'tenancy', 'CREATE') AS c`.execute(admin.db);
    expect(create.rows[0]!.c).toBe(false);
  });

  it("direction down undoes one migration at a time until none remain", async () => {
    let remaining = [...STEPS];
    while (remaining.length > 0) {
      const [name, gone] = remaining[remaining.length - 1]!;
      const result = await migrate("down");
      expect(result.results?.map((r) => [r.migrationName, r.direction, r.status])).toEqual([[name, "Down", "Success"]]);
      remaining = remaining.slice(0, -1);
      const now = await tables();
      for (const t of gone) expect(now).not.toContain(t);
      expect(now).toEqual(remaining.flatMap(([, t]) => t).sort());
      expect(await applied()).toEqual(remaining.map(([n]) => n));
    }
    // Nothing left to undo: another down is a no-op, not an error.
    const extra = await migrate("down");
    expect(extra.results ?? []).toEqual([]);
    expect(await tables()).toEqual([]);
    const fn = await sql`SELECT 1 FROM pg_proc WHERE proname = 'uab_events_outbox_notify'`.execute(admin.db);
    expect(fn.rows).toEqual([]);
    const policies = await sql`SELECT 1 FROM pg_policies WHERE schemaname = 'tenancy'`.execute(admin.db);
    expect(policies.rows).toEqual([]);
  });

  it("migrates up again after going all the way down, with RLS and privileges restored", async () => {
    const result = await migrate();
    expect(result.results?.map((r) => r.status)).toEqual(STEPS.map(() => "Success"));
    expect(await tables()).toEqual(ALL_TABLES);
    const rls = await sql<{ relname: string; on: boolean }>`
      SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity AS on
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'tenancy' AND c.relkind = 'r' AND c.relname <> ALL(${[...LEDGER, "idempotency_keys"]})
       ORDER BY c.relname`.execute(admin.db);
    expect(rls.rows.every((r) => r.on)).toBe(true);
    expect(rls.rows).toHaveLength(ALL_TABLES.length - 1);
    await expectRuntimePrivileges();
  });

  it("reset undoes every migration at once, and up restores them", async () => {
    const reset = await migrate("reset");
    expect(reset.results?.map((r) => [r.migrationName, r.direction])).toEqual(
      [...STEPS].reverse().map(([name]) => [name, "Down"]),
    );
    expect(await tables()).toEqual([]);
    expect(await applied()).toEqual([]);
    await migrate();
    expect(await tables()).toEqual(ALL_TABLES);
    await expectRuntimePrivileges();
  });

  it("migrates several fresh databases concurrently (roles are shared by the cluster)", async () => {
    const dbs = await Promise.all(Array.from({ length: 6 }, () => createTestDatabase("uab_test_mig")));
    try {
      const results = await Promise.allSettled(dbs.map((d) => migrate("latest", d.url)));
      expect(results.map((r) => (r.status === "rejected" ? String(r.reason) : "ok"))).toEqual(dbs.map(() => "ok"));
    } finally {
      await Promise.all(dbs.map((d) => d.drop()));
    }
  });
});
