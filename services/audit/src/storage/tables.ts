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

/** The audit schema. */
export interface AuditDatabase extends EventsTables {
  logs: LogsTable;
  entries: EntriesTable;
  checkpoints: CheckpointsTable;
  signing_keys: SigningKeysTable;
}

export type LogRow = Selectable<LogsTable>;
export type EntryRow = Selectable<EntriesTable>;
export type CheckpointRow = Selectable<CheckpointsTable>;
export type SigningKeyRow = Selectable<SigningKeysTable>;
