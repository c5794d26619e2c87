/** Kysely table types of the audit schema (see migrations/). */
import type { EventsTables } from "@uab/events";
import type { ColumnType, Generated, Selectable } from "kysely";

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
/** bigint columns come back from pg as strings. */
type BigintColumn = ColumnType<string, string | number | undefined, string | number>;

export interface LogsTable {
  id: string;
  tenant_id: string | null;
  size: BigintColumn;
  chain_hash: Uint8Array;
  frontier: Uint8Array[];
  first_index: BigintColumn;
  updated_at: Timestamp;
  /** Chain hash of entry `first_index - 1` once a purge removed the entries before it. */
  boundary_chain_hash: Uint8Array | null;
  /** Merkle frontier of the purged leaves `[0, first_index)`. */
  boundary_frontier: ColumnType<Uint8Array[], Uint8Array[] | undefined, Uint8Array[]>;
}

export interface EntriesTable {
  log_id: string;
  idx: BigintColumn;
  tenant_id: string | null;
  id: string;
  event_id: string;
  event_type: string;
  source: string;
  action: string;
  outcome: number;
  outcome_reason: string;
  actor_id: string;
  actor_type: number;
  actor_tenant_id: string;
  impersonator_id: string;
  session_id: string;
  ip_address: string | null;
  user_agent: string;
  resource_type: string;
  resource_id: string;
  resource_name: string;
  occur_time: Timestamp;
  record_time: Timestamp;
  request_id: string;
  trace_id: string;
  metadata: ColumnType<unknown, string, string>;
  canonical: Uint8Array;
  leaf_hash: Uint8Array;
  prev_chain_hash: Uint8Array;
  chain_hash: Uint8Array;
}

/** Why a checkpoint was made. */
export type CheckpointTrigger = "scheduled" | "on_demand" | "retention" | "export";

export interface CheckpointsTable {
  id: string;
  log_id: string;
  tenant_id: string | null;
  tree_size: BigintColumn;
  root_hash: Uint8Array;
  chain_hash: Uint8Array;
  key_id: string;
  note: string;
  trigger: CheckpointTrigger;
  created_at: Generated<Date>;
}

export interface SigningKeysTable {
  key_id: string;
  name: string;
  public_key: Uint8Array;
  private_key: string;
  status: "active" | "retired";
  created_at: Generated<Date>;
  retired_at: Date | null;
}

export interface StreamsTable {
  id: string;
  tenant_id: string;
  display_name: string;
  endpoint_url: string;
  event_types: string[];
  payload_format: "json" | "ndjson";
  batch_size: number;
  flush_interval_ms: number;
  headers_sealed: Generated<string>;
  header_names: Generated<string[]>;
  secret_sealed: string;
  previous_secret_sealed: Generated<string>;
  previous_secret_expires_at: Date | null;
  secret_hint: string;
  status: "active" | "paused" | "failing";
  /** The next log index to deliver. */
  cursor: BigintColumn;
  next_attempt_at: Generated<Date>;
  lease_until: Date | null;
  attempt: Generated<number>;
  consecutive_failures: Generated<number>;
  last_delivery_status: "succeeded" | "failed" | null;
  last_delivery_at: Date | null;
  last_success_at: Date | null;
  last_error: Generated<string>;
  deleted_at: Date | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
  revision: BigintColumn;
}

export interface StreamDeliveriesTable {
  id: string;
  stream_id: string;
  tenant_id: string;
  status: "succeeded" | "failed";
  test: boolean;
  first_index: BigintColumn;
  last_index: BigintColumn;
  entry_count: number;
  attempt: number;
  http_status: number;
  response_excerpt: string;
  error: string;
  duration_ms: number;
  next_attempt_at: Date | null;
  created_at: Generated<Date>;
}

/** Export job states. */
export type ExportJobState = "pending" | "running" | "succeeded" | "failed" | "canceled";

export interface ExportJobsTable {
  id: string;
  tenant_id: string;
  filter: ColumnType<unknown, string, string>;
  format: "ndjson" | "csv";
  compression: "none" | "gzip";
  include_proofs: boolean;
  checkpoint_id: string | null;
  status: ExportJobState;
  error: Generated<string>;
  entries_exported: BigintColumn;
  entries_total: BigintColumn;
  size_bytes: BigintColumn;
  sha256: Uint8Array | null;
  creator_id: string;
  lease_until: Date | null;
  created_at: Generated<Date>;
  started_at: Date | null;
  completed_at: Date | null;
  expires_at: Date | null;
  revision: BigintColumn;
}

export interface ExportChunksTable {
  job_id: string;
  seq: number;
  tenant_id: string;
  data: Uint8Array;
}

export interface RetentionPoliciesTable {
  tenant_id: string;
  retain_days: number;
  legal_hold: Generated<boolean>;
  legal_hold_reason: Generated<string>;
  last_purge_at: Date | null;
  updated_at: Generated<Date>;
  revision: BigintColumn;
}

/** The audit schema. */
export interface AuditDatabase extends EventsTables {
  logs: LogsTable;
  entries: EntriesTable;
  checkpoints: CheckpointsTable;
  signing_keys: SigningKeysTable;
  streams: StreamsTable;
  stream_deliveries: StreamDeliveriesTable;
  export_jobs: ExportJobsTable;
  export_chunks: ExportChunksTable;
  retention_policies: RetentionPoliciesTable;
}

export type LogRow = Selectable<LogsTable>;
export type EntryRow = Selectable<EntriesTable>;
export type CheckpointRow = Selectable<CheckpointsTable>;
export type SigningKeyRow = Selectable<SigningKeysTable>;
export type StreamRow = Selectable<StreamsTable>;
export type StreamDeliveryRow = Selectable<StreamDeliveriesTable>;
export type ExportJobRow = Selectable<ExportJobsTable>;
export type RetentionPolicyRow = Selectable<RetentionPoliciesTable>;
