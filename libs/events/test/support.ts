// Shared set-up of the events tests: a fresh database per test file, migrated with the
// events migrations merged with a test table of consumer effects, as a service would.
import { createDatabase, type Database, migrateService, withPlatform } from "@uab/db";
import type { Event } from "@uab/proto/gen/uab/events/v1/event_pb.js";
import { TenantPurgedSchema } from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import { createTestDatabase, type TestDatabase } from "@uab/testing";
import { type Generated, type Kysely, sql, type Transaction } from "kysely";
import type { Migration } from "kysely/migration";
import { appendEvent, type EventsTables, eventsMigrations } from "../src/index.js";

export interface EffectsTable {
  consumer: string;
  event_id: string;
  tenant_id: string | null;
  created_at: Generated<Date>;
}

export interface TestDB extends EventsTables {
  effects: EffectsTable;
}

/** A consumer's side effect, with no uniqueness of its own: only the inbox prevents doubles. */
const effectsMigration: Migration = {
  async up(db) {
    await sql`CREATE TABLE effects (consumer text NOT NULL, event_id text NOT NULL, tenant_id text NULL, created_at timestamptz NOT NULL DEFAULT now())`.execute(
      db,
    );
    await sql`ALTER TABLE effects ENABLE ROW LEVEL SECURITY`.execute(db);
    await sql`ALTER TABLE effects FORCE ROW LEVEL SECURITY`.execute(db);
    await sql`CREATE POLICY effects_tenant_isolation ON effects
      USING (tenant_id = NULLIF(current_setting('uab.tenant_id', true), '') OR current_setting('uab.platform', true) = 'on')
      WITH CHECK (tenant_id = NULLIF(current_setting('uab.tenant_id', true), '') OR current_setting('uab.platform', true) = 'on')`.execute(
      db,
    );
  },
  async down(db) {
    await sql`DROP TABLE effects`.execute(db);
  },
};

export const SERVICE = "evtest";

export function testMigrations(): Record<string, Migration> {
  return { ...eventsMigrations(), "2026_11_22_100000_test_effects": effectsMigration };
}

export interface TestEnv {
  readonly testDb: TestDatabase;
  readonly database: Database<TestDB>;
  readonly db: Kysely<TestDB>;
  close(): Promise<void>;
}

/** Creates and migrates a database; the returned handle acts as the runtime role. */
export async function setUpDatabase(): Promise<TestEnv> {
  const testDb = await createTestDatabase("uab_events");
  await migrateService({ url: testDb.url, service: SERVICE, migrations: testMigrations() });
  const database = createDatabase<TestDB>({ url: testDb.url, schema: SERVICE, role: `uab_${SERVICE}`, max: 12 });
  return {
    testDb,
    database,
    db: database.db,
    async close() {
      await database.close();
      await testDb.drop();
    },
  };
}

/** Appends a `TenantPurged` event from `source` in the given transaction. */
export function appendTestEvent(tx: Transaction<TestDB>, source: string, tenantId?: string): Promise<Event> {
  return appendEvent(tx, {
    source,
    schema: TenantPurgedSchema,
    payload: { tenantId: tenantId ?? "", slug: `slug-${source}` },
    tenantId,
    resource: { type: "tenancy.tenant", id: tenantId ?? "ten_platform", displayName: "Acme" },
  });
}

/** Records a consumer's effect inside the inbox transaction. */
export async function recordEffect(tx: Transaction<TestDB>, consumer: string, event: Event): Promise<void> {
  await tx
    .insertInto("effects")
    .values({ consumer, event_id: event.id, tenant_id: event.tenantId || null })
    .execute();
}

/** Counts rows of a table for one consumer (platform scope sees every tenant). */
export async function countRows(db: Kysely<TestDB>, table: "effects" | "inbox", consumer: string): Promise<number> {
  return withPlatform(db, async (tx) => {
    const r = await tx
      .selectFrom(table)
      .select((eb) => eb.fn.countAll<string>().as("n"))
      .where("consumer", "=", consumer)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  });
}

/** Rows left in the outbox. */
export async function outboxCount(db: Kysely<TestDB>): Promise<number> {
  return withPlatform(db, async (tx) => {
    const r = await tx
      .selectFrom("outbox")
      .select((eb) => eb.fn.countAll<string>().as("n"))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
