/** Conversion between stored rows and proto messages, in one place (handlers and events use it). */
import { create, fromJson, type JsonObject } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type AuditEntry,
  AuditEntryFilterSchema,
  AuditEntrySchema,
  type AuditOutcome,
} from "@uab/proto/gen/uab/audit/v1/audit_entry_pb.js";
import {
  type AuditStream,
  type AuditStreamDelivery,
  AuditStreamDeliverySchema,
  AuditStreamDeliveryStatus,
  AuditStreamPayloadFormat,
  AuditStreamSchema,
  AuditStreamStatus,
} from "@uab/proto/gen/uab/audit/v1/audit_stream_pb.js";
import { type Checkpoint, CheckpointSchema, CheckpointTrigger } from "@uab/proto/gen/uab/audit/v1/checkpoint_pb.js";
import {
  ExportCompression,
  ExportFormat,
  type ExportJob,
  ExportJobSchema,
  ExportJobStatus,
} from "@uab/proto/gen/uab/audit/v1/export_job_pb.js";
import { type RetentionPolicy, RetentionPolicySchema } from "@uab/proto/gen/uab/audit/v1/retention_policy_pb.js";
import {
  type SigningKey,
  SigningKeyAlgorithm,
  SigningKeySchema,
  SigningKeyStatus,
} from "@uab/proto/gen/uab/audit/v1/signing_key_pb.js";
import { PrincipalType } from "@uab/proto/gen/uab/events/v1/event_pb.js";
import { parseNote, verifierKeyOf } from "@uab/tlog";
import type {
  CheckpointRow,
  EntryRow,
  ExportJobRow,
  ExportJobState,
  RetentionPolicyRow,
  SigningKeyRow,
  StreamDeliveryRow,
  StreamRow,
  CheckpointTrigger as TriggerName,
} from "./storage/tables.js";

const ts = (d: Date | null | undefined) => (d ? timestampFromDate(d) : undefined);

const ACTOR_TYPES: Record<number, PrincipalType> = {
  1: PrincipalType.USER,
  2: PrincipalType.SERVICE_ACCOUNT,
  3: PrincipalType.API_KEY,
  4: PrincipalType.SYSTEM,
};

/** A stored entry as the API shows it. */
export function entryToProto(r: EntryRow): AuditEntry {
  return create(AuditEntrySchema, {
    id: r.id,
    tenantId: r.tenant_id ?? "",
    index: BigInt(r.idx),
    eventId: r.event_id,
    eventType: r.event_type,
    source: r.source,
    action: r.action,
    outcome: r.outcome as AuditOutcome,
    outcomeReason: r.outcome_reason,
    actor: {
      principalId: r.actor_id,
      principalType: ACTOR_TYPES[r.actor_type] ?? PrincipalType.UNSPECIFIED,
      principalTenantId: r.actor_tenant_id,
      impersonatorId: r.impersonator_id,
      sessionId: r.session_id,
      ipAddress: r.ip_address ?? "",
      userAgent: r.user_agent,
    },
    resource: { type: r.resource_type, id: r.resource_id, displayName: r.resource_name },
    occurTime: ts(r.occur_time),
    recordTime: ts(r.record_time),
    ...(r.metadata && typeof r.metadata === "object" && !Array.isArray(r.metadata)
      ? { metadata: r.metadata as JsonObject }
      : {}),
    requestId: r.request_id,
    traceId: r.trace_id,
    leafHash: r.leaf_hash,
    previousChainHash: r.prev_chain_hash,
    chainHash: r.chain_hash,
  });
}

const TRIGGERS: Record<TriggerName, CheckpointTrigger> = {
  scheduled: CheckpointTrigger.SCHEDULED,
  on_demand: CheckpointTrigger.ON_DEMAND,
  retention: CheckpointTrigger.RETENTION,
  export: CheckpointTrigger.EXPORT,
};

/** A checkpoint as the API shows it. */
export function checkpointToProto(r: CheckpointRow, origin: string): Checkpoint {
  return create(CheckpointSchema, {
    id: r.id,
    tenantId: r.tenant_id ?? "",
    origin,
    treeSize: BigInt(r.tree_size),
    rootHash: r.root_hash,
    chainHash: r.chain_hash,
    createTime: ts(r.created_at),
    keyId: r.key_id,
    // The (one) signature line's Ed25519 signature, after its key hash.
    signature: parseNote(r.note).signatures.at(-1)?.signature ?? new Uint8Array(),
    note: r.note,
    trigger: TRIGGERS[r.trigger],
  });
}

/** A signing key as published (never its private half). */
export function signingKeyToProto(r: SigningKeyRow): SigningKey {
  return create(SigningKeySchema, {
    keyId: r.key_id,
    name: r.name,
    algorithm: SigningKeyAlgorithm.ED25519,
    publicKey: r.public_key,
    verifierKey: verifierKeyOf(r.name, r.public_key),
    status: r.status === "active" ? SigningKeyStatus.ACTIVE : SigningKeyStatus.RETIRED,
    createTime: ts(r.created_at),
    retireTime: ts(r.retired_at),
  });
}

/** The etag of a row with a revision counter. */
export function etagOf(revision: string | number | bigint): string {
  return `"${String(revision)}"`;
}

const STREAM_STATUS: Record<StreamRow["status"], AuditStreamStatus> = {
  active: AuditStreamStatus.ACTIVE,
  paused: AuditStreamStatus.PAUSED,
  failing: AuditStreamStatus.FAILING,
};

const DELIVERY_STATUS = {
  succeeded: AuditStreamDeliveryStatus.SUCCEEDED,
  failed: AuditStreamDeliveryStatus.FAILED,
} as const;

/** Payload formats by stored name. */
export const PAYLOAD_FORMATS = {
  json: AuditStreamPayloadFormat.JSON,
  ndjson: AuditStreamPayloadFormat.NDJSON,
} as const;

/** A stream as the API shows it; `logSize` and `newestTime` give its lag. */
export function streamToProto(r: StreamRow, log: { size: number; oldestUndelivered?: Date | null }): AuditStream {
  const cursor = Number(r.cursor);
  const lagEntries = Math.max(0, log.size - cursor);
  return create(AuditStreamSchema, {
    id: r.id,
    tenantId: r.tenant_id,
    displayName: r.display_name,
    endpointUrl: r.endpoint_url,
    eventTypes: r.event_types,
    payloadFormat: PAYLOAD_FORMATS[r.payload_format],
    batchSize: r.batch_size,
    flushInterval: durationFromMs(r.flush_interval_ms),
    headerNames: r.header_names,
    secretHint: r.secret_hint,
    status: STREAM_STATUS[r.status],
    deliveredThroughIndex: BigInt(cursor - 1),
    lagEntries: BigInt(lagEntries),
    lag:
      lagEntries > 0 && log.oldestUndelivered
        ? durationFromMs(Math.max(0, Date.now() - log.oldestUndelivered.getTime()))
        : undefined,
    lastDeliveryStatus: r.last_delivery_status ? DELIVERY_STATUS[r.last_delivery_status] : undefined,
    lastDeliveryTime: ts(r.last_delivery_at),
    lastSuccessTime: ts(r.last_success_at),
    lastError: r.last_error,
    consecutiveFailures: r.consecutive_failures,
    createTime: ts(r.created_at),
    updateTime: ts(r.updated_at),
    etag: etagOf(r.revision),
  });
}

/** A delivery attempt as the API shows it. */
export function deliveryToProto(r: StreamDeliveryRow): AuditStreamDelivery {
  return create(AuditStreamDeliverySchema, {
    id: r.id,
    auditStreamId: r.stream_id,
    tenantId: r.tenant_id,
    status: DELIVERY_STATUS[r.status],
    test: r.test,
    firstIndex: BigInt(r.first_index),
    lastIndex: BigInt(r.last_index),
    entryCount: r.entry_count,
    attempt: r.attempt,
    httpStatusCode: r.http_status,
    responseBodyExcerpt: r.response_excerpt,
    error: r.error,
    duration: durationFromMs(r.duration_ms),
    createTime: ts(r.created_at),
    nextAttemptTime: ts(r.next_attempt_at),
  });
}

const JOB_STATUS: Record<ExportJobState, ExportJobStatus> = {
  pending: ExportJobStatus.PENDING,
  running: ExportJobStatus.RUNNING,
  succeeded: ExportJobStatus.SUCCEEDED,
  failed: ExportJobStatus.FAILED,
  canceled: ExportJobStatus.CANCELED,
};

/** Export job states by API status. */
export const JOB_STATES: Partial<Record<ExportJobStatus, ExportJobState>> = Object.fromEntries(
  Object.entries(JOB_STATUS).map(([k, v]) => [v, k]),
);

/** An export job as the API shows it. */
export function exportJobToProto(
  r: ExportJobRow,
  extra: { checkpoint?: Checkpoint | undefined; downloadUrl?: string; downloadExpires?: Date },
): ExportJob {
  return create(ExportJobSchema, {
    id: r.id,
    tenantId: r.tenant_id,
    filter: r.filter ? fromJson(AuditEntryFilterSchema, r.filter as JsonObject) : undefined,
    format: r.format === "csv" ? ExportFormat.CSV : ExportFormat.NDJSON,
    compression: r.compression === "gzip" ? ExportCompression.GZIP : ExportCompression.NONE,
    includeInclusionProofs: r.include_proofs,
    status: JOB_STATUS[r.status],
    error: r.error,
    checkpoint: extra.checkpoint,
    entriesExported: BigInt(r.entries_exported),
    entriesTotal: BigInt(r.entries_total),
    downloadUrl: extra.downloadUrl ?? "",
    downloadUrlExpireTime: ts(extra.downloadExpires),
    sizeBytes: BigInt(r.size_bytes),
    sha256: r.sha256 ?? new Uint8Array(),
    creatorId: r.creator_id,
    createTime: ts(r.created_at),
    startTime: ts(r.started_at),
    completeTime: ts(r.completed_at),
    expireTime: ts(r.expires_at),
    etag: etagOf(r.revision),
  });
}

/** A retention policy (the default one when the tenant never set any). */
export function retentionToProto(
  tenantId: string,
  r: RetentionPolicyRow | undefined,
  defaults: { retainDays: number },
  log: { firstIndex: number; oldestTime?: Date | undefined; nextPurge?: Date | undefined },
): RetentionPolicy {
  return create(RetentionPolicySchema, {
    tenantId,
    retainDays: r?.retain_days ?? defaults.retainDays,
    legalHold: r?.legal_hold ?? false,
    legalHoldReason: r?.legal_hold_reason ?? "",
    oldestRetainedIndex: BigInt(log.firstIndex),
    oldestRetainedTime: ts(log.oldestTime),
    nextPurgeTime: ts(log.nextPurge),
    updateTime: ts(r?.updated_at),
    etag: etagOf(r?.revision ?? 0),
  });
}
