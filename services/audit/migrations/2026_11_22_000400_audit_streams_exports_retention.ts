/**
 * Streams, export jobs and retention.
 *
 * - `streams`: per-tenant delivery of the log to a customer endpoint (a SIEM), with the
 *   cursor of what was delivered, the signing secrets (sealed, see @uab/core SecretBox) and the
 *   delivery state; `stream_deliveries`: one row per attempt, for the delivery history.
 * - `export_jobs` and `export_chunks`: asynchronous exports and the file they produce.
 * - `retention_policies`: per tenant; `logs` gains the boundary left by a purge (the chain
 *   hash before the first retained entry and the Merkle frontier of the purged prefix), so
 *   what remains still verifies against the checkpoints.
 * - `purge_entries()`: the only way to remove entries, run as the schema owner with the
 *   retention switch the append-only trigger looks for.
 *
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
  await sql`ALTER TABLE logs ADD COLUMN boundary_chain_hash bytea`.execute(db);
  await sql`ALTER TABLE logs ADD COLUMN boundary_frontier bytea[] NOT NULL DEFAULT '{}'`.execute(db);

  await sql`
    CREATE TABLE streams (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      display_name text NOT NULL,
      endpoint_url text NOT NULL,
      event_types text[] NOT NULL DEFAULT '{}',
      payload_format text NOT NULL CHECK (payload_format IN ('json', 'ndjson')),
      batch_size integer NOT NULL CHECK (batch_size BETWEEN 1 AND 1000),
      flush_interval_ms integer NOT NULL CHECK (flush_interval_ms BETWEEN 1000 AND 300000),
      headers_sealed text NOT NULL DEFAULT '',
      header_names text[] NOT NULL DEFAULT '{}',
      secret_sealed text NOT NULL,
      previous_secret_sealed text NOT NULL DEFAULT '',
      previous_secret_expires_at timestamptz,
      secret_hint text NOT NULL,
      status text NOT NULL CHECK (status IN ('active', 'paused', 'failing')),
      cursor bigint NOT NULL,
      next_attempt_at timestamptz NOT NULL DEFAULT now(),
      lease_until timestamptz,
      attempt integer NOT NULL DEFAULT 0,
      consecutive_failures integer NOT NULL DEFAULT 0,
      last_delivery_status text CHECK (last_delivery_status IN ('succeeded', 'failed')),
      last_delivery_at timestamptz,
      last_success_at timestamptz,
      last_error text NOT NULL DEFAULT '',
      deleted_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      revision bigint NOT NULL DEFAULT 1
    )`.execute(db);
  await sql`CREATE INDEX streams_tenant ON streams (tenant_id, created_at, id) WHERE deleted_at IS NULL`.execute(db);
  await sql`CREATE INDEX streams_due ON streams (next_attempt_at) WHERE deleted_at IS NULL AND status <> 'paused'`.execute(
    db,
  );
  await isolate(db, "streams");

  await sql`
    CREATE TABLE stream_deliveries (
      id text PRIMARY KEY,
      stream_id text NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
      tenant_id text NOT NULL,
      status text NOT NULL CHECK (status IN ('succeeded', 'failed')),
      test boolean NOT NULL DEFAULT false,
      first_index bigint NOT NULL,
      last_index bigint NOT NULL,
      entry_count integer NOT NULL,
      attempt integer NOT NULL,
      http_status integer NOT NULL DEFAULT 0,
      response_excerpt text NOT NULL DEFAULT '',
      error text NOT NULL DEFAULT '',
      duration_ms integer NOT NULL,
      next_attempt_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);
  await sql`CREATE INDEX stream_deliveries_stream ON stream_deliveries (stream_id, created_at DESC, id DESC)`.execute(
    db,
  );
  await isolate(db, "stream_deliveries");

  await sql`
    CREATE TABLE export_jobs (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      filter jsonb NOT NULL DEFAULT '{}',
      format text NOT NULL CHECK (format IN ('ndjson', 'csv')),
      compression text NOT NULL CHECK (compression IN ('none', 'gzip')),
      include_proofs boolean NOT NULL,
      checkpoint_id text REFERENCES checkpoints (id),
      status text NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'canceled')),
      error text NOT NULL DEFAULT '',
      entries_exported bigint NOT NULL DEFAULT 0,
      entries_total bigint NOT NULL DEFAULT 0,
      size_bytes bigint NOT NULL DEFAULT 0,
      sha256 bytea,
      creator_id text NOT NULL,
      lease_until timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      started_at timestamptz,
      completed_at timestamptz,
      expires_at timestamptz,
      revision bigint NOT NULL DEFAULT 1
    )`.execute(db);
  await sql`CREATE INDEX export_jobs_tenant ON export_jobs (tenant_id, created_at DESC, id DESC)`.execute(db);
  await sql`CREATE INDEX export_jobs_pending ON export_jobs (created_at) WHERE status IN ('pending', 'running')`.execute(
    db,
  );
  await isolate(db, "export_jobs");

  await sql`
    CREATE TABLE export_chunks (
      job_id text NOT NULL REFERENCES export_jobs (id) ON DELETE CASCADE,
      seq integer NOT NULL,
      tenant_id text NOT NULL,
      data bytea NOT NULL,
      PRIMARY KEY (job_id, seq)
    )`.execute(db);
  await isolate(db, "export_chunks");

  await sql`
    CREATE TABLE retention_policies (
      tenant_id text PRIMARY KEY,
      retain_days integer NOT NULL CHECK (retain_days BETWEEN 30 AND 3650),
      legal_hold boolean NOT NULL DEFAULT false,
      legal_hold_reason text NOT NULL DEFAULT '',
      last_purge_at timestamptz,
      updated_at timestamptz NOT NULL DEFAULT now(),
      revision bigint NOT NULL DEFAULT 1
    )`.execute(db);
  await isolate(db, "retention_policies");

  // Removing entries: only here, as the owner (SECURITY DEFINER), with the switch the
  // append-only trigger requires; row-level security still scopes it to the caller's tenant.
  await sql`
    CREATE FUNCTION purge_entries(p_log text, p_before bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = audit, pg_temp AS $$
    DECLARE n bigint;
    BEGIN
      PERFORM set_config('uab.audit.retention', 'on', true);
      DELETE FROM entries WHERE log_id = p_log AND idx < p_before;
      GET DIAGNOSTICS n = ROW_COUNT;
      PERFORM set_config('uab.audit.retention', 'off', true);
      RETURN n;
    END
    $$`.execute(db);
  await sql`REVOKE ALL ON FUNCTION purge_entries(text, bigint) FROM PUBLIC`.execute(db);
  await sql`GRANT EXECUTE ON FUNCTION purge_entries(text, bigint) TO uab_audit`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP FUNCTION IF EXISTS purge_entries(text, bigint)`.execute(db);
  await sql`DROP TABLE IF EXISTS retention_policies, export_chunks, export_jobs, stream_deliveries, streams`.execute(
    db,
  );
  await sql`ALTER TABLE logs DROP COLUMN IF EXISTS boundary_frontier, DROP COLUMN IF EXISTS boundary_chain_hash`.execute(
    db,
  );
}
