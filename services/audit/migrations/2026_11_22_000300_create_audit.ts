/**
 * The audit schema: one append-only log per tenant plus the platform log.
 *
 * - `logs`: the head of each log (size, last chain hash, the Merkle frontier), locked while
 *   a batch is appended, so a log grows one batch at a time in index order.
 * - `entries`: the records, with the exact canonical bytes that were hashed, their RFC 9162
 *   leaf hash and the hash chain. Append-only twice over: the runtime role has no UPDATE,
 *   DELETE or TRUNCATE grant, and a trigger refuses them for everyone but the schema owner
 *   (retention runs as the owner, in a SECURITY DEFINER function).
 * - `checkpoints`: signed tree heads (C2SP signed notes).
 * - `signing_keys`: the platform's checkpoint keys (no tenant).
 *
 * Tenant tables have `tenant_id` (NULL for the platform log) and forced row-level security.
 * Frozen in time: never import application code here.
 */
import { type Kysely, sql } from "kysely";

const POLICY = sql.raw(
  "tenant_id = NULLIF(current_setting('uab.tenant_id', true), '') OR current_setting('uab.platform', true) = 'on'",
);

async function isolate(db: Kysely<unknown>, table: string): Promise<void> {
  await sql`ALTER TABLE ${sql.table(table)} ENABLE ROW LEVEL SECURITY`.execute(db);
  await sql`ALTER TABLE ${sql.table(table)} FORCE ROW LEVEL SECURITY`.execute(db);
  await sql`CREATE POLICY tenant_isolation ON ${sql.table(table)} USING (${POLICY}) WITH CHECK (${POLICY})`.execute(db);
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE logs (
      id text PRIMARY KEY,
      tenant_id text UNIQUE,
      size bigint NOT NULL DEFAULT 0,
      chain_hash bytea NOT NULL,
      frontier bytea[] NOT NULL DEFAULT '{}',
      first_index bigint NOT NULL DEFAULT 0,
      updated_at timestamptz NOT NULL DEFAULT now(),
      CHECK ((id = 'platform') = (tenant_id IS NULL)),
      CHECK (tenant_id IS NULL OR id = tenant_id)
    )`.execute(db);
  await isolate(db, "logs");

  await sql`
    CREATE TABLE entries (
      log_id text NOT NULL REFERENCES logs (id),
      idx bigint NOT NULL,
      tenant_id text,
      id text NOT NULL UNIQUE,
      event_id text NOT NULL,
      event_type text NOT NULL,
      source text NOT NULL,
      action text NOT NULL,
      outcome smallint NOT NULL,
      outcome_reason text NOT NULL DEFAULT '',
      actor_id text NOT NULL DEFAULT '',
      actor_type smallint NOT NULL DEFAULT 0,
      actor_tenant_id text NOT NULL DEFAULT '',
      impersonator_id text NOT NULL DEFAULT '',
      session_id text NOT NULL DEFAULT '',
      ip_address inet,
      user_agent text NOT NULL DEFAULT '',
      resource_type text NOT NULL DEFAULT '',
      resource_id text NOT NULL DEFAULT '',
      resource_name text NOT NULL DEFAULT '',
      occur_time timestamptz NOT NULL,
      record_time timestamptz NOT NULL,
      request_id text NOT NULL DEFAULT '',
      trace_id text NOT NULL DEFAULT '',
      metadata jsonb NOT NULL DEFAULT '{}',
      canonical bytea NOT NULL,
      leaf_hash bytea NOT NULL,
      prev_chain_hash bytea NOT NULL,
      chain_hash bytea NOT NULL,
      PRIMARY KEY (log_id, idx),
      UNIQUE (log_id, event_id),
      CHECK ((log_id = 'platform') = (tenant_id IS NULL))
    )`.execute(db);
  await sql`CREATE INDEX entries_occur_time ON entries (log_id, occur_time, idx)`.execute(db);
  await sql`CREATE INDEX entries_actor ON entries (log_id, actor_id, idx) WHERE actor_id <> ''`.execute(db);
  await sql`CREATE INDEX entries_impersonator ON entries (log_id, impersonator_id, idx) WHERE impersonator_id <> ''`.execute(
    db,
  );
  await sql`CREATE INDEX entries_event_type ON entries (log_id, event_type, idx)`.execute(db);
  await sql`CREATE INDEX entries_resource ON entries (log_id, resource_type, resource_id, idx)`.execute(db);
  await sql`CREATE INDEX entries_request ON entries (log_id, request_id) WHERE request_id <> ''`.execute(db);
  await sql`CREATE INDEX entries_leaf_hash ON entries (log_id, leaf_hash)`.execute(db);
  await isolate(db, "entries");
  // Append-only: no grant to change or remove a record, and a trigger as a second wall.
  await sql`REVOKE UPDATE, DELETE, TRUNCATE ON entries FROM uab_audit`.execute(db);
  await sql`
    CREATE FUNCTION entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF current_user = 'uab_audit_owner' AND current_setting('uab.audit.retention', true) = 'on' THEN
        RETURN OLD;
      END IF;
      RAISE EXCEPTION 'audit entries are append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END
    $$`.execute(db);
  await sql`CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries FOR EACH ROW EXECUTE FUNCTION entries_append_only()`.execute(
    db,
  );
  await sql`CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries FOR EACH STATEMENT EXECUTE FUNCTION entries_append_only()`.execute(
    db,
  );

  await sql`
    CREATE TABLE checkpoints (
      id text PRIMARY KEY,
      log_id text NOT NULL REFERENCES logs (id),
      tenant_id text,
      tree_size bigint NOT NULL,
      root_hash bytea NOT NULL,
      chain_hash bytea NOT NULL,
      key_id text NOT NULL,
      note text NOT NULL,
      trigger text NOT NULL CHECK (trigger IN ('scheduled', 'on_demand', 'retention', 'export')),
      created_at timestamptz NOT NULL DEFAULT now(),
      CHECK ((log_id = 'platform') = (tenant_id IS NULL))
    )`.execute(db);
  await sql`CREATE INDEX checkpoints_log ON checkpoints (log_id, tree_size DESC, created_at DESC)`.execute(db);
  await isolate(db, "checkpoints");

  await sql`
    CREATE TABLE signing_keys (
      key_id text PRIMARY KEY,
      name text NOT NULL,
      public_key bytea NOT NULL,
      private_key text NOT NULL,
      status text NOT NULL CHECK (status IN ('active', 'retired')),
      created_at timestamptz NOT NULL DEFAULT now(),
      retired_at timestamptz
    )`.execute(db);
  await sql`CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (status) WHERE status = 'active'`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE IF EXISTS signing_keys, checkpoints, entries, logs`.execute(db);
  await sql`DROP FUNCTION IF EXISTS entries_append_only()`.execute(db);
}
