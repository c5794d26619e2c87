/*
 * The inbox of one service's event consumers: one row per (consumer, event) handled. A
 * consumer inserts its row in the same transaction as the event's effect, so a redelivered
 * event finds the row and has no second effect (the bus delivers at least once).
 *
 * It carries the event's tenant and the same row-level-security predicate as every tenant
 * table: the consumer's transaction runs in the event's tenant (or platform mode for
 * platform events, whose tenant_id is NULL). handled_at is indexed so a retention job can
 * purge rows older than any possible redelivery.
 *
 * Frozen in time: this file must never import application code.
 */
import { type Kysely, sql } from "kysely";

/** Creates the inbox table and its row-level-security policy. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE inbox (
      consumer text NOT NULL,
      event_id text NOT NULL,
      tenant_id text NULL,
      handled_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (consumer, event_id)
    )`.execute(db);
  await sql`CREATE INDEX inbox_handled_at_idx ON inbox (handled_at)`.execute(db);
  await sql`ALTER TABLE inbox ENABLE ROW LEVEL SECURITY`.execute(db);
  await sql`ALTER TABLE inbox FORCE ROW LEVEL SECURITY`.execute(db);
  await sql`
    CREATE POLICY inbox_tenant_isolation ON inbox
      USING (tenant_id = NULLIF(current_setting('uab.tenant_id', true), '') OR current_setting('uab.platform', true) = 'on')
      WITH CHECK (tenant_id = NULLIF(current_setting('uab.tenant_id', true), '') OR current_setting('uab.platform', true) = 'on')
  `.execute(db);
}

/** Drops what {@link up} created. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE inbox`.execute(db);
}
