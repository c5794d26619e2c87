/**
 * Delivering streams. A worker on any replica claims due streams (a lease, `FOR UPDATE SKIP
 * LOCKED`), reads the next batch of entries after the stream's cursor that match its event
 * types, and POSTs it with Standard Webhooks signatures (@uab/webhooks). The cursor moves only
 * after a 2xx, so every entry is delivered at least once, in index order; the webhook id is
 * `<stream>_<first index>_<last index>` so a receiver can drop a repeated batch.
 *
 * A batch is sent when it is full or its oldest entry has waited the flush interval. A failed
 * attempt is recorded and retried with exponential backoff (honouring Retry-After); after
 * `failingAfter` consecutive failures the stream is marked failing (an event says so) and
 * keeps retrying; the first success marks it recovered. An endpoint answering 410 Gone is
 * paused. Scanned entries that match no event type only move the cursor.
 */

import { toJson } from "@bufbuild/protobuf";
import { newId } from "@uab/core";
import { withPlatform, withTenant } from "@uab/db";
import { AuditEntrySchema } from "@uab/proto/gen/uab/audit/v1/audit_entry_pb.js";
import {
  AuditStreamFailingSchema,
  AuditStreamPausedSchema,
  AuditStreamRecoveredSchema,
} from "@uab/proto/gen/uab/audit/v1/events_pb.js";
import { type DeliveryResult, type EndpointBreakers, nextAttemptDelay } from "@uab/webhooks";
import { sql } from "kysely";
import { deliveryToProto, entryToProto } from "../convert.js";
import type { EntryRow, StreamDeliveryRow, StreamRow } from "../storage/tables.js";
import type { AuditDeps, Tx } from "./common.js";
import { prefixOrExact } from "./search.js";
import { emitStream, streamHeaders, streamSecrets, streamView } from "./streams.js";

const LEASE_MS = 120_000;

/** The entries of a batch as the payload format wants them. */
export function payloadOf(
  row: Pick<StreamRow, "id" | "tenant_id" | "payload_format">,
  entries: readonly EntryRow[],
  test = false,
): { body: string; contentType: string } {
  const json = entries.map((e) => toJson(AuditEntrySchema, entryToProto(e)));
  if (row.payload_format === "ndjson") {
    return { body: json.map((j) => `${JSON.stringify(j)}\n`).join(""), contentType: "application/x-ndjson" };
  }
  return {
    body: JSON.stringify({
      type: test ? "uab.audit.v1.TestEvent" : "uab.audit.v1.AuditEntries",
      timestamp: new Date().toISOString(),
      data: {
        tenantId: row.tenant_id,
        auditStreamId: row.id,
        ...(entries.length
          ? { firstIndex: String(entries[0]!.idx), lastIndex: String(entries[entries.length - 1]!.idx) }
          : {}),
        entries: json,
      },
    }),
    contentType: "application/json",
  };
}

/** Sends one delivery attempt of a stream and returns the outcome. */
export async function send(
  deps: AuditDeps,
  breakers: EndpointBreakers,
  row: StreamRow,
  id: string,
  payload: { body: string; contentType: string },
): Promise<DeliveryResult> {
  return breakers.deliver(
    {
      url: row.endpoint_url,
      id,
      body: payload.body,
      contentType: payload.contentType,
      headers: streamHeaders(deps, row),
      secrets: streamSecrets(deps, row),
    },
    {
      timeoutMs: deps.settings.deliveryTimeoutMs,
      allowPrivateNetworks: deps.settings.allowPrivateNetworks,
      ...(deps.settings.streamCa ? { ca: deps.settings.streamCa } : {}),
    },
  );
}

/** Records an attempt. */
async function record(
  deps: AuditDeps,
  row: StreamRow,
  result: DeliveryResult,
  batch: { first: number; last: number; count: number; test: boolean; attempt: number; nextAttempt?: Date },
): Promise<StreamDeliveryRow> {
  return withTenant(deps.db, row.tenant_id, (tx) =>
    tx
      .insertInto("stream_deliveries")
      .values({
        id: newId("auditStreamDelivery"),
        stream_id: row.id,
        tenant_id: row.tenant_id,
        status: result.ok ? "succeeded" : "failed",
        test: batch.test,
        first_index: batch.first,
        last_index: batch.last,
        entry_count: batch.count,
        attempt: batch.attempt,
        http_status: result.statusCode ?? 0,
        response_excerpt: result.responseExcerpt.slice(0, 1024),
        error: result.error ?? "",
        duration_ms: Math.round(result.durationMs),
        next_attempt_at: batch.nextAttempt ?? null,
      })
      .returningAll()
      .executeTakeFirstOrThrow(),
  );
}

/** Sends a synthetic test entry now; the cursor does not move. */
export async function sendTest(
  deps: AuditDeps,
  breakers: EndpointBreakers,
  row: StreamRow,
): Promise<StreamDeliveryRow> {
  const now = new Date();
  const entry = {
    log_id: row.tenant_id,
    idx: "0",
    tenant_id: row.tenant_id,
    id: newId("auditEntry"),
    event_id: newId("event"),
    event_type: "uab.audit.v1.TestEvent",
    source: "audit",
    action: "audit.test_event.sent",
    outcome: 1,
    outcome_reason: "",
    actor_id: "",
    actor_type: 4,
    actor_tenant_id: "",
    impersonator_id: "",
    session_id: "",
    ip_address: null,
    user_agent: "",
    resource_type: "audit.stream",
    resource_id: row.id,
    resource_name: row.display_name,
    occur_time: now,
    record_time: now,
    request_id: "",
    trace_id: "",
    metadata: { test: true },
    canonical: new Uint8Array(),
    leaf_hash: new Uint8Array(),
    prev_chain_hash: new Uint8Array(),
    chain_hash: new Uint8Array(),
  } as EntryRow;
  const result = await send(deps, breakers, row, `${row.id}_test_${now.getTime()}`, payloadOf(row, [entry], true));
  return record(deps, row, result, { first: 0, last: 0, count: 0, test: true, attempt: 1 });
}

/** Claims due streams (active or failing, next attempt reached, lease free). */
async function claimDue(deps: AuditDeps, limit: number): Promise<StreamRow[]> {
  return withPlatform(deps.db, async (tx) => {
    const due = await tx
      .selectFrom("streams")
      .select("id")
      .where("deleted_at", "is", null)
      .where("status", "<>", "paused")
      .where("next_attempt_at", "<=", new Date())
      // Only streams with entries past their cursor: an idle stream costs nothing per poll.
      .where(sql<boolean>`EXISTS (SELECT 1 FROM logs l WHERE l.id = streams.tenant_id AND l.size > streams.cursor)`)
      .where((eb) => eb.or([eb("lease_until", "is", null), eb("lease_until", "<", new Date())]))
      .orderBy("next_attempt_at")
      .limit(limit)
      .forUpdate()
      .skipLocked()
      .execute();
    if (due.length === 0) return [];
    return tx
      .updateTable("streams")
      .set({ lease_until: new Date(Date.now() + LEASE_MS) })
      .where(
        "id",
        "in",
        due.map((d) => d.id),
      )
      .returningAll()
      .execute();
  });
}

/** The stream's status and cursor now, locked (undefined once deleted). */
function lockCurrent(tx: Tx, id: string) {
  return tx
    .selectFrom("streams")
    .select(["status", "cursor"])
    .where("id", "=", id)
    .where("deleted_at", "is", null)
    .forUpdate()
    .executeTakeFirst();
}

/** One step of one stream: deliver its next batch if one is due. */
async function step(deps: AuditDeps, breakers: EndpointBreakers, row: StreamRow, pollMs: number): Promise<void> {
  const now = new Date();
  const cursor = Number(row.cursor);
  const batch = await withTenant(deps.db, row.tenant_id, async (tx) => {
    const log = await tx.selectFrom("logs").select("size").where("id", "=", row.tenant_id).executeTakeFirst();
    const size = Number(log?.size ?? 0);
    if (size <= cursor) return { size, entries: [] as EntryRow[], due: false };
    let q = tx
      .selectFrom("entries")
      .selectAll()
      .where("log_id", "=", row.tenant_id)
      .where("idx", ">=", String(cursor))
      .where("idx", "<", String(size));
    if (row.event_types.length > 0) q = q.where((eb) => prefixOrExact(eb, "event_type", row.event_types));
    const entries = await q.orderBy("idx").limit(row.batch_size).execute();
    const full = entries.length >= row.batch_size;
    const oldest = entries[0]?.record_time.getTime() ?? now.getTime();
    const due = full || now.getTime() - oldest >= row.flush_interval_ms || row.attempt > 0;
    return { size, entries, due };
  });
  const release = (set: Record<string, unknown>) =>
    withPlatform(deps.db, (tx) =>
      tx
        .updateTable("streams")
        .set({ lease_until: null, ...set })
        .where("id", "=", row.id)
        .execute(),
    );
  if (batch.entries.length === 0) {
    // Nothing to send: skip past what was scanned.
    await release({ cursor: Math.max(cursor, batch.size), next_attempt_at: new Date(now.getTime() + pollMs) });
    return;
  }
  if (!batch.due) {
    const wait = row.flush_interval_ms - (now.getTime() - batch.entries[0]!.record_time.getTime());
    await release({ next_attempt_at: new Date(now.getTime() + Math.max(pollMs, wait)) });
    return;
  }
  const first = Number(batch.entries[0]!.idx);
  const last = Number(batch.entries[batch.entries.length - 1]!.idx);
  // A batch shorter than the batch size covered everything up to the head that was read.
  const nextCursor = batch.entries.length < row.batch_size ? batch.size : last + 1;
  const attempt = row.attempt + 1;
  const result = await send(deps, breakers, row, `${row.id}_${first}_${last}`, payloadOf(row, batch.entries));
  if (result.ok) {
    await record(deps, row, result, { first, last, count: batch.entries.length, test: false, attempt });
    await withTenant(deps.db, row.tenant_id, async (tx) => {
      // Read the stream again: a pause, resume or skip made while the batch was in flight wins.
      const current = await lockCurrent(tx, row.id);
      if (!current) return;
      const updated = await tx
        .updateTable("streams")
        .set({
          cursor: Math.max(Number(current.cursor), nextCursor),
          lease_until: null,
          attempt: 0,
          consecutive_failures: 0,
          status: current.status === "failing" ? "active" : current.status,
          last_delivery_status: "succeeded",
          last_delivery_at: new Date(),
          last_success_at: new Date(),
          last_error: "",
          next_attempt_at: new Date(),
        })
        .where("id", "=", row.id)
        .where("deleted_at", "is", null)
        .returningAll()
        .executeTakeFirst();
      if (updated && current.status === "failing") {
        await emitStream(tx, AuditStreamRecoveredSchema, { auditStream: await streamView(tx, updated) }, row);
      }
    });
    return;
  }
  const failures = row.consecutive_failures + 1;
  const delay = nextAttemptDelay(failures, undefined, undefined, result.retryAfterMs);
  const nextAttempt = new Date(Date.now() + delay);
  const delivery = await record(deps, row, result, {
    first,
    last,
    count: batch.entries.length,
    test: false,
    attempt,
    nextAttempt,
  });
  await withTenant(deps.db, row.tenant_id, async (tx) => {
    const current = await lockCurrent(tx, row.id);
    if (!current) return;
    const status =
      result.gone || current.status === "paused"
        ? "paused"
        : failures >= deps.settings.failingAfter
          ? "failing"
          : current.status;
    const updated = await tx
      .updateTable("streams")
      .set({
        lease_until: null,
        attempt,
        consecutive_failures: failures,
        status,
        last_delivery_status: "failed",
        last_delivery_at: new Date(),
        last_error: result.gone
          ? `the endpoint answered 410 Gone; the stream was paused (${result.error ?? ""})`
          : (result.error ?? "delivery failed"),
        next_attempt_at: nextAttempt,
      })
      .where("id", "=", row.id)
      .where("deleted_at", "is", null)
      .returningAll()
      .executeTakeFirst();
    if (!updated || status === current.status) return;
    const view = await streamView(tx, updated);
    if (status === "paused") await emitStream(tx, AuditStreamPausedSchema, { auditStream: view }, row);
    else
      await emitStream(
        tx,
        AuditStreamFailingSchema,
        { auditStream: view, lastDelivery: deliveryToProto(delivery) },
        row,
      );
  });
}

/** Runs due stream deliveries once; returns how many streams were stepped. */
export async function deliverDueStreams(
  deps: AuditDeps,
  breakers: EndpointBreakers,
  options: { pollMs: number; limit?: number; concurrency?: number },
): Promise<number> {
  const rows = await claimDue(deps, options.limit ?? 50);
  const queue = [...rows];
  const workers = Array.from({ length: Math.min(options.concurrency ?? 8, queue.length) }, async () => {
    for (let row = queue.shift(); row; row = queue.shift()) {
      try {
        await step(deps, breakers, row, options.pollMs);
      } catch (err) {
        deps.logger.error({ err, stream: row.id }, "audit stream step failed");
        await withPlatform(deps.db, (tx) =>
          tx
            .updateTable("streams")
            .set({ lease_until: null, next_attempt_at: sql`now() + interval '5 seconds'` as never })
            .where("id", "=", row!.id)
            .execute(),
        ).catch(() => undefined);
      }
    }
  });
  await Promise.all(workers);
  return rows.length;
}
