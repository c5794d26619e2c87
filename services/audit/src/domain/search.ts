/**
 * Searching a log: filters on the indexed columns (actor, impersonator, principal type,
 * event types and actions with `.*` prefixes, resource, outcome, IP address or CIDR range,
 * time and index ranges, request and session ids) and free text over the recorded payload;
 * newest or oldest first, with a cursor (the last index) bound to the filters.
 */

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { decodePageToken, encodePageToken, likeContains, pageSize, withPlatform, withTenant } from "@uab/db";
import type { AuditEntryFilter } from "@uab/proto/gen/uab/audit/v1/audit_entry_pb.js";
import { AuditEntryOrder } from "@uab/proto/gen/uab/audit/v1/audit_service_pb.js";
import { type ExpressionBuilder, type Kysely, sql, type Transaction } from "kysely";
import type { AuditDatabase, EntryRow } from "../storage/tables.js";

type Eb = ExpressionBuilder<AuditDatabase, "entries">;

/** Matches `values` on a column: exactly, or as a prefix for a value ending in `.*`. */
export function prefixOrExact(eb: Eb, column: "event_type" | "action", values: readonly string[]) {
  return eb.or(
    values.map((v) =>
      v.endsWith(".*")
        ? eb(column, "like", `${v.slice(0, -1).replace(/[\\%_]/g, (c) => `\\${c}`)}%`)
        : eb(column, "=", v),
    ),
  );
}

const ACTOR_TYPES: Record<number, number> = { 1: 1, 2: 2, 3: 3, 4: 4 };

/** The entries of a log matching `filter`, one page. `logId` is a tenant id or "platform". */
export async function searchEntries(
  db: Kysely<AuditDatabase>,
  logId: string,
  filter: AuditEntryFilter | undefined,
  order: AuditEntryOrder,
  requestedSize: number,
  pageToken: string,
): Promise<{ items: EntryRow[]; next: string }> {
  const size = pageSize(requestedSize);
  const f = filter;
  const filters = {
    l: logId,
    f: f ? JSON.stringify(f, (_k, v) => (typeof v === "bigint" ? v.toString() : v)) : "",
    o: order,
  };
  const after = decodePageToken(pageToken, filters);
  const oldestFirst = order === AuditEntryOrder.OLDEST_FIRST;
  const run = async (tx: Transaction<AuditDatabase>) => {
    let q = tx.selectFrom("entries").selectAll().where("log_id", "=", logId);
    if (after !== undefined) q = q.where("idx", oldestFirst ? ">" : "<", after);
    if (f) {
      if (f.actorId) q = q.where("actor_id", "=", f.actorId);
      if (f.impersonatorId) q = q.where("impersonator_id", "=", f.impersonatorId);
      if (f.principalType) q = q.where("actor_type", "=", ACTOR_TYPES[f.principalType] ?? -1);
      if (f.eventTypes.length) q = q.where((eb) => prefixOrExact(eb, "event_type", f.eventTypes));
      if (f.actions.length) q = q.where((eb) => prefixOrExact(eb, "action", f.actions));
      if (f.resourceType) q = q.where("resource_type", "=", f.resourceType);
      if (f.resourceId) q = q.where("resource_id", "=", f.resourceId);
      if (f.outcome) q = q.where("outcome", "=", f.outcome);
      if (f.ipAddress) q = q.where(sql<boolean>`ip_address <<= ${f.ipAddress}::inet`);
      if (f.startTime) q = q.where("occur_time", ">=", timestampDate(f.startTime));
      if (f.endTime) q = q.where("occur_time", "<", timestampDate(f.endTime));
      if (f.startIndex !== undefined) q = q.where("idx", ">=", String(f.startIndex));
      if (f.endIndex !== undefined) q = q.where("idx", "<", String(f.endIndex));
      if (f.requestId) q = q.where("request_id", "=", f.requestId);
      if (f.sessionId) q = q.where("session_id", "=", f.sessionId);
      if (f.query) {
        const like = likeContains(f.query);
        q = q.where((eb) =>
          eb.or([
            eb(sql`metadata::text`, "ilike", like),
            eb("resource_name", "ilike", like),
            eb("outcome_reason", "ilike", like),
          ]),
        );
      }
    }
    return q
      .orderBy("idx", oldestFirst ? "asc" : "desc")
      .limit(size + 1)
      .execute();
  };
  const rows =
    logId === "platform" ? await withPlatform(db, (tx) => run(tx)) : await withTenant(db, logId, (tx) => run(tx));
  if (rows.length <= size) return { items: rows, next: "" };
  const items = rows.slice(0, size);
  return { items, next: encodePageToken(items[items.length - 1]!.idx, filters) };
}
