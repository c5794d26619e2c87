/**
 * Appending domain events to the logs. A batch from the bus is grouped by log (the event's
 * tenant, or the platform log), and each log takes its part in one go under a lock on its
 * head row: the entries get the next indices, their canonical bytes, RFC 9162 leaf hashes
 * and the hash chain, and the head keeps the Merkle frontier, so the tree's root is known
 * without re-reading the log. One transaction per batch (group commit), never one per
 * event. An event already in its log (a redelivery) is skipped: each log holds every event
 * exactly once.
 */
import { isIP } from "node:net";
import { toJson } from "@bufbuild/protobuf";
import { AnySchema, timestampDate } from "@bufbuild/protobuf/wkt";
import { newId } from "@uab/core";
import { withPlatform } from "@uab/db";
import { contractRegistry } from "@uab/proto";
import { AuditOutcome } from "@uab/proto/gen/uab/audit/v1/audit_entry_pb.js";
import { type Event, PrincipalType } from "@uab/proto/gen/uab/events/v1/event_pb.js";
import { canonicalBytes, chainHash, genesisChainHash, type JsonValue, leafHash, MerkleFrontier } from "@uab/tlog";
import { type Insertable, type Kysely, sql, type Transaction } from "kysely";
import type { AuditDatabase, EntriesTable } from "../storage/tables.js";

/** The log an event belongs to: its tenant's, or the platform log. */
export function logIdOf(event: Event): string {
  return event.tenantId || "platform";
}

/** `uab.tenancy.v1.TeamMemberAdded` → `team_member.added`; prefixed with the source by the caller. */
export function actionOf(event: Event): string {
  const short = event.type.split(".").pop() ?? event.type;
  const words = short.split(/(?=[A-Z])/).map((w) => w.toLowerCase());
  const verb = words.length > 1 ? words.pop()! : "changed";
  return `${event.source}.${words.join("_") || "event"}.${verb}`;
}

/** Audit's own events that are published but not appended (checkpoints would feed themselves). */
const NOT_APPENDED = new Set(["uab.audit.v1.CheckpointCreated"]);

const DENIALS = new Set(["uab.authorization.v1.AccessDenied"]);
const FAILURES = new Set(["uab.audit.v1.LogVerificationFailed"]);

function outcomeOf(event: Event): AuditOutcome {
  if (DENIALS.has(event.type)) return AuditOutcome.DENIED;
  if (FAILURES.has(event.type)) return AuditOutcome.FAILURE;
  return AuditOutcome.SUCCESS;
}

/** The payload as JSON (unknown types are kept as their type URL only). */
function metadataOf(event: Event): JsonValue {
  if (!event.payload) return {};
  try {
    const json = toJson(AnySchema, event.payload, { registry: contractRegistry }) as Record<string, JsonValue>;
    const { "@type": _t, ...rest } = json;
    return rest;
  } catch {
    return { unknownType: event.payload.typeUrl };
  }
}

function traceIdOf(event: Event): string {
  const tp = event.trace?.traceparent ?? "";
  const parts = tp.split("-");
  return parts.length === 4 ? parts[1]! : "";
}

const PRINCIPALS: Record<number, string> = {
  [PrincipalType.USER]: "user",
  [PrincipalType.SERVICE_ACCOUNT]: "service_account",
  [PrincipalType.API_KEY]: "api_key",
  [PrincipalType.SYSTEM]: "system",
};

/** What an entry records about its event: the fields that are hashed, in their canonical form. */
export interface EntryFacts {
  readonly eventId: string;
  readonly eventType: string;
  readonly source: string;
  readonly action: string;
  readonly outcome: AuditOutcome;
  readonly outcomeReason: string;
  readonly actor: {
    readonly id: string;
    readonly type: string;
    readonly tenantId: string;
    readonly impersonatorId: string;
    readonly sessionId: string;
    readonly ip: string;
    readonly userAgent: string;
  };
  readonly resource: { readonly type: string; readonly id: string; readonly name: string };
  readonly occurTime: Date;
  readonly requestId: string;
  readonly traceId: string;
  readonly metadata: JsonValue;
}

/** The facts of an event. */
export function factsOf(event: Event): EntryFacts {
  const a = event.actor;
  const metadata = metadataOf(event);
  const reason =
    outcomeOf(event) === AuditOutcome.DENIED &&
    typeof metadata === "object" &&
    metadata !== null &&
    !Array.isArray(metadata)
      ? String((metadata as Record<string, JsonValue>).message ?? "")
      : "";
  return {
    eventId: event.id,
    eventType: event.type,
    source: event.source,
    action: actionOf(event),
    outcome: outcomeOf(event),
    outcomeReason: reason,
    actor: {
      id: a?.principalId ?? "",
      type: PRINCIPALS[a?.principalType ?? 0] ?? "",
      tenantId: a?.principalTenantId ?? "",
      impersonatorId: a?.impersonatorId ?? "",
      sessionId: a?.sessionId ?? "",
      ip: a?.ipAddress ?? "",
      userAgent: a?.userAgent ?? "",
    },
    resource: {
      type: event.resource?.type ?? "",
      id: event.resource?.id ?? "",
      name: event.resource?.displayName ?? "",
    },
    occurTime: event.occurredAt ? timestampDate(event.occurredAt) : new Date(0),
    requestId: event.requestId,
    traceId: traceIdOf(event),
    metadata,
  };
}

/**
 * The canonical form of an entry (RFC 8785 JSON, version 1): exactly what is hashed into
 * the leaf, stored beside the row and exported, so anyone can recompute the leaf hash.
 */
export function canonicalEntry(logId: string, index: number, recordTime: Date, f: EntryFacts): Uint8Array {
  return canonicalBytes({
    v: 1,
    log: logId,
    index,
    event_id: f.eventId,
    event_type: f.eventType,
    source: f.source,
    action: f.action,
    outcome: AuditOutcome[f.outcome] ?? "UNSPECIFIED",
    outcome_reason: f.outcomeReason,
    actor: {
      id: f.actor.id,
      type: f.actor.type,
      tenant_id: f.actor.tenantId,
      impersonator_id: f.actor.impersonatorId,
      session_id: f.actor.sessionId,
      ip: f.actor.ip,
      user_agent: f.actor.userAgent,
    },
    resource: { type: f.resource.type, id: f.resource.id, name: f.resource.name },
    occur_time: f.occurTime.toISOString(),
    record_time: recordTime.toISOString(),
    request_id: f.requestId,
    trace_id: f.traceId,
    metadata: f.metadata,
  });
}

/** The stored `actor_type` code of each principal type of a canonical entry. */
export const ACTOR_TYPE_CODES: Readonly<Record<string, number>> = {
  user: 1,
  service_account: 2,
  api_key: 3,
  system: 4,
};

/** Creates the head rows of logs that have none yet (empty: genesis chain hash, no frontier). */
export async function ensureLogs(tx: Transaction<AuditDatabase>, logIds: readonly string[]): Promise<void> {
  await tx
    .insertInto("logs")
    .values(
      logIds.map((id) => ({
        id,
        tenant_id: id === "platform" ? null : id,
        chain_hash: genesisChainHash(),
        frontier: [],
      })),
    )
    .onConflict((oc) => oc.column("id").doNothing())
    .execute();
}

/** Appends events to their logs in one transaction; returns how many were new. */
export async function appendEvents(db: Kysely<AuditDatabase>, events: readonly Event[]): Promise<number> {
  const byLog = new Map<string, Event[]>();
  for (const e of events) {
    if (NOT_APPENDED.has(e.type)) continue;
    const id = logIdOf(e);
    const list = byLog.get(id);
    if (list) list.push(e);
    else byLog.set(id, [e]);
  }
  if (byLog.size === 0) return 0;
  const recordTime = new Date();
  const logIds = [...byLog.keys()].sort();
  const eventIds = events.map((e) => e.id);
  return withPlatform(db, async (tx) => {
    // A handful of statements per batch, whatever the number of logs it touches.
    await ensureLogs(tx, logIds);
    // A fixed lock order: concurrent batches touching the same logs cannot deadlock.
    const heads = await tx.selectFrom("logs").selectAll().where("id", "in", logIds).orderBy("id").forUpdate().execute();
    const headOf = new Map(heads.map((h) => [h.id, h]));
    // Events already in their log (redeliveries), matched through the (log_id, event_id) key.
    const present = await sql<{ log_id: string; event_id: string }>`
      SELECT e.log_id, e.event_id FROM entries e
      JOIN unnest(${eventIds}::text[], ${events.map(logIdOf)}::text[]) AS b(event_id, log_id)
        ON e.log_id = b.log_id AND e.event_id = b.event_id`.execute(tx);
    const seen = new Set(present.rows.map((r) => `${r.log_id}|${r.event_id}`));
    const rows: Insertable<EntriesTable>[] = [];
    const updates: { id: string; size: number; chain: Uint8Array; frontier: Uint8Array[] }[] = [];
    for (const logId of logIds) {
      const head = headOf.get(logId)!;
      let size = Number(head.size);
      let chain = head.chain_hash;
      const frontier = MerkleFrontier.from({ size, hashes: head.frontier });
      const before = size;
      for (const event of byLog.get(logId)!) {
        const key = `${logId}|${event.id}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const facts = factsOf(event);
        const canonical = canonicalEntry(logId, size, recordTime, facts);
        const leaf = leafHash(canonical);
        const prev = chain;
        chain = chainHash(prev, leaf);
        frontier.append(leaf);
        rows.push({
          log_id: logId,
          idx: size,
          tenant_id: logId === "platform" ? null : logId,
          id: newId("auditEntry"),
          event_id: facts.eventId,
          event_type: facts.eventType,
          source: facts.source,
          action: facts.action,
          outcome: facts.outcome,
          outcome_reason: facts.outcomeReason,
          actor_id: facts.actor.id,
          actor_type: ACTOR_TYPE_CODES[facts.actor.type] ?? 0,
          actor_tenant_id: facts.actor.tenantId,
          impersonator_id: facts.actor.impersonatorId,
          session_id: facts.actor.sessionId,
          // The column is inet; an address that is not one stays in the hashed record only.
          ip_address: isIP(facts.actor.ip) ? facts.actor.ip : null,
          user_agent: facts.actor.userAgent,
          resource_type: facts.resource.type,
          resource_id: facts.resource.id,
          resource_name: facts.resource.name,
          occur_time: facts.occurTime,
          record_time: recordTime,
          request_id: facts.requestId,
          trace_id: facts.traceId,
          metadata: JSON.stringify(facts.metadata),
          canonical,
          leaf_hash: leaf,
          prev_chain_hash: prev,
          chain_hash: chain,
        });
        size++;
      }
      if (size > before) updates.push({ id: logId, size, chain, frontier: frontier.hashes });
    }
    // 29 parameters a row: 2,000 rows stay under PostgreSQL's 65,535 bind parameters.
    for (let i = 0; i < rows.length; i += 2000) {
      await tx
        .insertInto("entries")
        .values(rows.slice(i, i + 2000))
        .execute();
    }
    // Every head in one statement; a frontier travels as its hashes concatenated (32 bytes
    // each) and is split back into an array on the server.
    if (updates.length > 0) {
      await sql`
        UPDATE logs AS l
        SET size = u.size, chain_hash = u.chain, updated_at = ${recordTime},
            frontier = ARRAY(
              SELECT substring(u.frontier FROM i * 32 + 1 FOR 32)
              FROM generate_series(0, length(u.frontier) / 32 - 1) AS i ORDER BY i)
        FROM unnest(${updates.map((u) => u.id)}::text[], ${updates.map((u) => u.size)}::bigint[],
                    ${updates.map((u) => Buffer.from(u.chain))}::bytea[],
                    ${updates.map((u) => Buffer.concat(u.frontier.map((h) => Buffer.from(h))))}::bytea[])
          AS u(id, size, chain, frontier)
        WHERE l.id = u.id`.execute(tx);
    }
    return rows.length;
  });
}
