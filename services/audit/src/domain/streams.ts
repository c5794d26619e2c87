/**
 * Audit streams: a tenant's log delivered to its SIEM endpoint in near real time (HTTPS,
 * Standard Webhooks signatures, batched, retried with backoff; see stream-worker.ts). Here:
 * creating, changing, pausing, resuming and deleting them, rotating their signing secret with
 * an overlap during which both secrets sign, and their delivery history.
 *
 * Secrets and custom headers (which often hold a SIEM token) are sealed at rest with the
 * installation's key ring, bound to the stream's id.
 */
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, newId } from "@uab/core";
import { decodePageToken, pageSize, paginate, withTenant } from "@uab/db";
import {
  AuditStreamCreatedSchema,
  AuditStreamDeletedSchema,
  AuditStreamPausedSchema,
  AuditStreamResumedSchema,
  AuditStreamSecretRotatedSchema,
  AuditStreamUpdatedSchema,
} from "@uab/proto/gen/uab/audit/v1/events_pb.js";
import { checkEndpointUrl, generateSecret, isReservedHeader, secretHint } from "@uab/webhooks";
import { sql } from "kysely";
import { streamToProto } from "../convert.js";
import type { StreamDeliveryRow, StreamRow } from "../storage/tables.js";
import { type AuditDeps, checkEtag, emit, type Tx } from "./common.js";

/** Streams per tenant, at most. */
export const MAX_STREAMS_PER_TENANT = 20;

/** The writable fields of a stream. */
export interface StreamFields {
  readonly displayName: string;
  readonly endpointUrl: string;
  readonly eventTypes: readonly string[];
  readonly payloadFormat: "json" | "ndjson";
  readonly batchSize: number;
  readonly flushIntervalMs: number;
  readonly headers: Readonly<Record<string, string>>;
}

/** Records an event about a stream (its tenant's log, the stream as the resource). */
export async function emitStream<D extends DescMessage>(
  tx: Tx,
  schema: D,
  payload: MessageInitShape<D>,
  row: Pick<StreamRow, "id" | "tenant_id" | "display_name">,
): Promise<void> {
  await emit(tx, schema, payload, row.tenant_id, { type: "audit.stream", id: row.id, displayName: row.display_name });
}

function notFound(id: string): NotFoundError {
  return new NotFoundError("AUDIT_STREAM_NOT_FOUND", `audit stream ${id} not found`);
}

function checkFields(deps: AuditDeps, f: Partial<StreamFields>): void {
  if (f.endpointUrl !== undefined) {
    const check = checkEndpointUrl(f.endpointUrl, { allowPrivateNetworks: deps.settings.allowPrivateNetworks });
    if (!check.ok) throw InvalidArgumentError.field("endpoint_url", check.reason);
  }
  for (const name of Object.keys(f.headers ?? {})) {
    if (isReservedHeader(name)) {
      throw InvalidArgumentError.field(`headers["${name}"]`, "is set by UAB and cannot be overridden");
    }
  }
}

async function logSize(tx: Tx, tenantId: string): Promise<number> {
  const log = await tx.selectFrom("logs").select("size").where("id", "=", tenantId).executeTakeFirst();
  return Number(log?.size ?? 0);
}

/** The API view of a stream: its row plus its lag behind the log (whose size can be passed in). */
export async function streamView(tx: Tx, row: StreamRow, knownSize?: number) {
  const size = knownSize ?? (await logSize(tx, row.tenant_id));
  const oldest =
    size > Number(row.cursor)
      ? await tx
          .selectFrom("entries")
          .select("record_time")
          .where("log_id", "=", row.tenant_id)
          .where("idx", ">=", String(row.cursor))
          .orderBy("idx")
          .limit(1)
          .executeTakeFirst()
      : undefined;
  return streamToProto(row, { size, oldestUndelivered: oldest?.record_time ?? null });
}

async function load(tx: Tx, id: string, lock = false): Promise<StreamRow> {
  let q = tx.selectFrom("streams").selectAll().where("id", "=", id).where("deleted_at", "is", null);
  if (lock) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) throw notFound(id);
  return row;
}

/** Creates a stream; returns it and its signing secret (shown once). */
export async function createStream(
  deps: AuditDeps,
  tenantId: string,
  f: StreamFields,
  startIndex: number | undefined,
): Promise<{ row: StreamRow; secret: string; view: Awaited<ReturnType<typeof streamView>> }> {
  checkFields(deps, f);
  return withTenant(deps.db, tenantId, async (tx) => {
    const count = await tx
      .selectFrom("streams")
      .select(sql<string>`count(*)`.as("n"))
      .where("deleted_at", "is", null)
      .executeTakeFirstOrThrow();
    if (Number(count.n) >= MAX_STREAMS_PER_TENANT) {
      throw new FailedPreconditionError(
        "TOO_MANY_STREAMS",
        `a tenant can have at most ${MAX_STREAMS_PER_TENANT} audit streams`,
      );
    }
    const dup = await tx
      .selectFrom("streams")
      .select("id")
      .where("deleted_at", "is", null)
      .where("display_name", "=", f.displayName)
      .executeTakeFirst();
    if (dup) throw new AlreadyExistsError("AUDIT_STREAM_EXISTS", `an audit stream named "${f.displayName}" exists`);
    const size = await logSize(tx, tenantId);
    const cursor = startIndex === undefined ? size : Math.min(startIndex, size);
    const id = newId("auditStream");
    const secret = generateSecret();
    const row = await tx
      .insertInto("streams")
      .values({
        id,
        tenant_id: tenantId,
        display_name: f.displayName,
        endpoint_url: f.endpointUrl,
        event_types: [...f.eventTypes],
        payload_format: f.payloadFormat,
        batch_size: f.batchSize,
        flush_interval_ms: f.flushIntervalMs,
        headers_sealed: Object.keys(f.headers).length ? deps.box.seal(JSON.stringify(f.headers), id) : "",
        header_names: Object.keys(f.headers).sort(),
        secret_sealed: deps.box.seal(secret, id),
        secret_hint: secretHint(secret),
        status: "active",
        cursor,
        previous_secret_expires_at: null,
        lease_until: null,
        last_delivery_status: null,
        last_delivery_at: null,
        last_success_at: null,
        deleted_at: null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const view = await streamView(tx, row);
    await emitStream(tx, AuditStreamCreatedSchema, { auditStream: view }, row);
    return { row, secret, view };
  });
}

/** One stream of a tenant. */
export async function getStream(deps: AuditDeps, tenantId: string, id: string) {
  return withTenant(deps.db, tenantId, async (tx) => streamView(tx, await load(tx, id)));
}

/** A page of a tenant's streams, oldest first. */
export async function listStreams(
  deps: AuditDeps,
  tenantId: string,
  q: { pageSize: number; pageToken: string; status: StreamRow["status"] | undefined },
) {
  const size = pageSize(q.pageSize);
  const filters = { t: tenantId, s: q.status ?? "" };
  const after = decodePageToken(q.pageToken, filters);
  return withTenant(deps.db, tenantId, async (tx) => {
    let s = tx.selectFrom("streams").selectAll().where("deleted_at", "is", null);
    if (q.status) s = s.where("status", "=", q.status);
    if (after !== undefined) s = s.where("id", ">", after);
    const rows = await s
      .orderBy("id")
      .limit(size + 1)
      .execute();
    const page = paginate(rows, size, filters);
    const headSize = await logSize(tx, tenantId);
    const items = [];
    for (const r of page.items) items.push(await streamView(tx, r, headSize));
    return { items, next: page.next };
  });
}

/** Changes the fields in `paths`. */
export async function updateStream(
  deps: AuditDeps,
  tenantId: string,
  id: string,
  f: StreamFields,
  paths: readonly string[],
  etag: string,
) {
  const has = (p: string) => paths.includes(p);
  checkFields(deps, {
    ...(has("endpoint_url") ? { endpointUrl: f.endpointUrl } : {}),
    ...(has("headers") ? { headers: f.headers } : {}),
  });
  return withTenant(deps.db, tenantId, async (tx) => {
    const row = await load(tx, id, true);
    checkEtag(etag, row.revision, `audit stream ${id}`);
    if (has("display_name") && f.displayName !== row.display_name) {
      const dup = await tx
        .selectFrom("streams")
        .select("id")
        .where("deleted_at", "is", null)
        .where("display_name", "=", f.displayName)
        .where("id", "<>", id)
        .executeTakeFirst();
      if (dup) throw new AlreadyExistsError("AUDIT_STREAM_EXISTS", `an audit stream named "${f.displayName}" exists`);
    }
    const updated = await tx
      .updateTable("streams")
      .set(() => ({
        ...(has("display_name") ? { display_name: f.displayName } : {}),
        ...(has("endpoint_url") ? { endpoint_url: f.endpointUrl } : {}),
        ...(has("event_types") ? { event_types: [...f.eventTypes] } : {}),
        ...(has("payload_format") ? { payload_format: f.payloadFormat } : {}),
        ...(has("batch_size") ? { batch_size: f.batchSize } : {}),
        ...(has("flush_interval") ? { flush_interval_ms: f.flushIntervalMs } : {}),
        ...(has("headers")
          ? {
              headers_sealed: Object.keys(f.headers).length ? deps.box.seal(JSON.stringify(f.headers), id) : "",
              header_names: Object.keys(f.headers).sort(),
            }
          : {}),
        // A new endpoint gets a fresh start: retry now, no failure history.
        ...(has("endpoint_url") ? { next_attempt_at: new Date(), attempt: 0, consecutive_failures: 0 } : {}),
        updated_at: new Date(),
        revision: sql`revision + 1`,
      }))
      .where("id", "=", id)
      .returningAll()
      .executeTakeFirstOrThrow();
    const view = await streamView(tx, updated);
    await emitStream(tx, AuditStreamUpdatedSchema, { auditStream: view, changedFields: [...paths] }, updated);
    return view;
  });
}

/** Deletes a stream (its delivery history goes with it). */
export async function deleteStream(deps: AuditDeps, tenantId: string, id: string, etag: string): Promise<void> {
  await withTenant(deps.db, tenantId, async (tx) => {
    const row = await load(tx, id, true);
    checkEtag(etag, row.revision, `audit stream ${id}`);
    const view = await streamView(tx, row);
    await tx.deleteFrom("streams").where("id", "=", id).execute();
    await emitStream(tx, AuditStreamDeletedSchema, { auditStream: view }, row);
  });
}

/** Pauses delivery; entries keep accumulating behind the cursor. */
export async function pauseStream(deps: AuditDeps, tenantId: string, id: string) {
  return withTenant(deps.db, tenantId, async (tx) => {
    const row = await load(tx, id, true);
    if (row.status === "paused") return streamView(tx, row);
    const updated = await tx
      .updateTable("streams")
      .set(() => ({ status: "paused", updated_at: new Date(), revision: sql`revision + 1` }))
      .where("id", "=", id)
      .returningAll()
      .executeTakeFirstOrThrow();
    const view = await streamView(tx, updated);
    await emitStream(tx, AuditStreamPausedSchema, { auditStream: view }, row);
    return view;
  });
}

/** Resumes a paused or failing stream from its cursor, or from the log's head with `skipBacklog`. */
export async function resumeStream(deps: AuditDeps, tenantId: string, id: string, skipBacklog: boolean) {
  return withTenant(deps.db, tenantId, async (tx) => {
    const row = await load(tx, id, true);
    if (row.status === "active" && !skipBacklog) return streamView(tx, row);
    const size = await logSize(tx, tenantId);
    const from = Number(row.cursor);
    const cursor = skipBacklog ? Math.max(from, size) : from;
    const updated = await tx
      .updateTable("streams")
      .set(() => ({
        status: "active",
        cursor,
        next_attempt_at: new Date(),
        attempt: 0,
        consecutive_failures: 0,
        updated_at: new Date(),
        revision: sql`revision + 1`,
      }))
      .where("id", "=", id)
      .returningAll()
      .executeTakeFirstOrThrow();
    const view = await streamView(tx, updated);
    await emitStream(
      tx,
      AuditStreamResumedSchema,
      { auditStream: view, skippedEntries: BigInt(cursor - from), skippedFromIndex: BigInt(from) },
      row,
    );
    return view;
  });
}

/**
 * Replaces the signing secret. During `overlapMs` deliveries carry signatures by both the new
 * and the previous secret, so the receiver can switch without losing a delivery.
 */
export async function rotateStreamSecret(deps: AuditDeps, tenantId: string, id: string, overlapMs: number) {
  return withTenant(deps.db, tenantId, async (tx) => {
    const row = await load(tx, id, true);
    const secret = generateSecret();
    const previous = deps.box.open(row.secret_sealed, id);
    const updated = await tx
      .updateTable("streams")
      .set(() => ({
        secret_sealed: deps.box.seal(secret, id),
        secret_hint: secretHint(secret),
        previous_secret_sealed: overlapMs > 0 ? deps.box.seal(previous, id) : "",
        previous_secret_expires_at: overlapMs > 0 ? new Date(Date.now() + overlapMs) : null,
        updated_at: new Date(),
        revision: sql`revision + 1`,
      }))
      .where("id", "=", id)
      .returningAll()
      .executeTakeFirstOrThrow();
    const view = await streamView(tx, updated);
    await emitStream(tx, AuditStreamSecretRotatedSchema, { auditStream: view }, row);
    return { view, secret };
  });
}

/** A page of a stream's deliveries, newest first. */
export async function listDeliveries(
  deps: AuditDeps,
  tenantId: string,
  streamId: string,
  q: { pageSize: number; pageToken: string; status: StreamDeliveryRow["status"] | undefined },
): Promise<{ items: StreamDeliveryRow[]; next: string }> {
  const size = pageSize(q.pageSize);
  const filters = { s: streamId, st: q.status ?? "" };
  const after = decodePageToken(q.pageToken, filters);
  return withTenant(deps.db, tenantId, async (tx) => {
    await load(tx, streamId);
    let s = tx.selectFrom("stream_deliveries").selectAll().where("stream_id", "=", streamId);
    if (q.status) s = s.where("status", "=", q.status);
    if (after !== undefined) s = s.where("id", "<", after);
    const rows = await s
      .orderBy("id", "desc")
      .limit(size + 1)
      .execute();
    return paginate(rows, size, filters);
  });
}

/** The signing secrets of a stream now: the current one, and the previous one during an overlap. */
export function streamSecrets(deps: AuditDeps, row: StreamRow, now = new Date()): string[] {
  const secrets = [deps.box.open(row.secret_sealed, row.id)];
  if (row.previous_secret_sealed && row.previous_secret_expires_at && row.previous_secret_expires_at > now) {
    secrets.push(deps.box.open(row.previous_secret_sealed, row.id));
  }
  return secrets;
}

/** The custom headers of a stream. */
export function streamHeaders(deps: AuditDeps, row: StreamRow): Record<string, string> {
  return row.headers_sealed ? (JSON.parse(deps.box.open(row.headers_sealed, row.id)) as Record<string, string>) : {};
}

/** Loads a stream of a tenant for delivery (tests send through it too). */
export async function loadStream(deps: AuditDeps, tenantId: string, id: string): Promise<StreamRow> {
  return withTenant(deps.db, tenantId, (tx) => load(tx, id));
}
