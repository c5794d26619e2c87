/*
 * The transactional outbox of one service. A domain change and the event describing it
 * are written in the same transaction, so an event exists if and only if its change was
 * committed; the relay publishes rows to the bus and deletes them afterwards.
 *
 * Tenant rows are protected by the same row-level-security predicate as every tenant
 * table. Platform events have tenant_id NULL: `NULL = …` is never true, so only platform
 * mode (`uab.platform = on`, used by the relay) may write or read them.
 *
 * An AFTER INSERT statement trigger notifies channel `uab_outbox` with the schema name,
 * so a relay LISTENing wakes at once instead of waiting for its poll interval. NOTIFY is
 * delivered on commit only, and identical notifications of one transaction are folded
 * into one, so a burst of inserts costs a single wake-up.
 *
 * Frozen in time: this file must never import application code.
 */
import { type Kysely, sql } from "kysely";

/** Creates the outbox table, its row-level-security policy and the notify trigger. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE outbox (
      id text PRIMARY KEY,
      tenant_id text NULL,
      subject text NOT NULL,
      type text NOT NULL,
      data bytea NOT NULL,
      headers jsonb NOT NULL DEFAULT '{}'::jsonb,
      created_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);
  await sql`ALTER TABLE outbox ENABLE ROW LEVEL SECURITY`.execute(db);
  await sql`ALTER TABLE outbox FORCE ROW LEVEL SECURITY`.execute(db);
  await sql`
    CREATE POLICY outbox_tenant_isolation ON outbox
      USING (tenant_id = NULLIF(current_setting('uab.tenant_id', true), '') OR current_setting('uab.platform', true) = 'on')
      WITH CHECK (tenant_id = NULLIF(current_setting('uab.tenant_id', true), '') OR current_setting('uab.platform', true) = 'on')
  `.execute(db);
  await sql`
    CREATE FUNCTION uab_events_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('uab_outbox', TG_TABLE_SCHEMA);
      RETURN NULL;
    END
    $$`.execute(db);
  await sql`
    CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
      FOR EACH STATEMENT EXECUTE FUNCTION uab_events_outbox_notify()`.execute(db);
}

/** Drops what {@link up} created. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE outbox`.execute(db);
  await sql`DROP FUNCTION uab_events_outbox_notify()`.execute(db);
}
