/**
 * Retention: each tenant keeps its log for `retain_days` (the installation default when it
 * set none; a legal hold keeps everything). A purge removes the entries older than that, yet
 * the log still verifies: a checkpoint covering the purged range is made first, and the log
 * head keeps the boundary (the chain hash of the last purged entry and the Merkle frontier of
 * the purged leaves), from which verification, proofs and exports continue. Streams whose
 * cursor was inside the purged range move past it.
 */
import { create } from "@bufbuild/protobuf";
import { InvalidArgumentError } from "@uab/core";
import { withPlatform, withTenant } from "@uab/db";
import { EntriesPurgedSchema, RetentionPolicyUpdatedSchema } from "@uab/proto/gen/uab/audit/v1/events_pb.js";
import { MerkleFrontier } from "@uab/tlog";
import { sql } from "kysely";
import { checkpointToProto, retentionToProto } from "../convert.js";
import type { RetentionPolicyRow } from "../storage/tables.js";
import { createCheckpoint, originOf } from "./checkpoints.js";
import { type AuditDeps, checkEtag, emit, type Tx } from "./common.js";

const DAY = 86_400_000;
/** Entries removed per purge statement. */
const PURGE_BATCH = 50_000;

async function view(deps: AuditDeps, tx: Tx, tenantId: string, row: RetentionPolicyRow | undefined) {
  const head = await tx
    .selectFrom("logs")
    .select(["first_index", "size"])
    .where("id", "=", tenantId)
    .executeTakeFirst();
  const firstIndex = Number(head?.first_index ?? 0);
  const oldest = await tx
    .selectFrom("entries")
    .select("record_time")
    .where("log_id", "=", tenantId)
    .where("idx", ">=", String(firstIndex))
    .orderBy("idx")
    .limit(1)
    .executeTakeFirst();
  const days = row?.retain_days ?? deps.settings.defaultRetainDays;
  const nextPurge =
    oldest && days > 0 && !row?.legal_hold ? new Date(oldest.record_time.getTime() + days * DAY) : undefined;
  return retentionToProto(
    tenantId,
    row,
    { retainDays: days },
    { firstIndex, oldestTime: oldest?.record_time, nextPurge },
  );
}

/** A tenant's policy (the default one when it set none). */
export async function getRetention(deps: AuditDeps, tenantId: string) {
  return withTenant(deps.db, tenantId, async (tx) => {
    const row = await tx
      .selectFrom("retention_policies")
      .selectAll()
      .where("tenant_id", "=", tenantId)
      .executeTakeFirst();
    return view(deps, tx, tenantId, row);
  });
}

/** Changes a tenant's policy (fields in `paths`). */
export async function updateRetention(
  deps: AuditDeps,
  tenantId: string,
  input: { retainDays: number; legalHold: boolean; legalHoldReason: string },
  paths: readonly string[],
  etag: string,
) {
  const has = (p: string) => paths.includes(p);
  if (has("legal_hold") && input.legalHold && !input.legalHoldReason && !has("legal_hold_reason")) {
    throw InvalidArgumentError.field("legal_hold_reason", "a legal hold needs a reason");
  }
  return withTenant(deps.db, tenantId, async (tx) => {
    const row = await tx
      .selectFrom("retention_policies")
      .selectAll()
      .where("tenant_id", "=", tenantId)
      .forUpdate()
      .executeTakeFirst();
    checkEtag(etag, row?.revision ?? 0, "the retention policy");
    const previousDays = row?.retain_days ?? deps.settings.defaultRetainDays;
    const next = {
      retain_days: has("retain_days")
        ? input.retainDays
        : (row?.retain_days ?? Math.max(30, deps.settings.defaultRetainDays || 3650)),
      legal_hold: has("legal_hold") ? input.legalHold : (row?.legal_hold ?? false),
      legal_hold_reason: has("legal_hold_reason") ? input.legalHoldReason : (row?.legal_hold_reason ?? ""),
    };
    if (next.legal_hold && !next.legal_hold_reason) {
      throw InvalidArgumentError.field("legal_hold_reason", "a legal hold needs a reason");
    }
    const saved = await tx
      .insertInto("retention_policies")
      .values({ tenant_id: tenantId, ...next, last_purge_at: null })
      .onConflict((oc) =>
        oc.column("tenant_id").doUpdateSet(() => ({
          ...next,
          updated_at: new Date(),
          revision: sql`retention_policies.revision + 1`,
        })),
      )
      .returningAll()
      .executeTakeFirstOrThrow();
    const policy = await view(deps, tx, tenantId, saved);
    await emit(
      tx,
      RetentionPolicyUpdatedSchema,
      { retentionPolicy: policy, changedFields: [...paths], previousRetainDays: previousDays },
      tenantId,
      { type: "audit.retention_policy", id: tenantId },
    );
    return policy;
  });
}

/** Tenants whose log has entries past their retention. */
async function logsToPurge(deps: AuditDeps, now: Date): Promise<{ logId: string; days: number }[]> {
  const rows = await withPlatform(deps.db, (tx) =>
    sql<{ id: string; days: number }>`
      SELECT l.id, coalesce(p.retain_days, ${deps.settings.defaultRetainDays})::int AS days
      FROM logs l LEFT JOIN retention_policies p ON p.tenant_id = l.id
      WHERE l.tenant_id IS NOT NULL AND l.size > l.first_index
        AND NOT coalesce(p.legal_hold, false)
        AND coalesce(p.retain_days, ${deps.settings.defaultRetainDays}) > 0
        AND EXISTS (
          SELECT 1 FROM entries e WHERE e.log_id = l.id AND e.idx = l.first_index
            AND e.record_time < ${now}::timestamptz - make_interval(days => coalesce(p.retain_days, ${deps.settings.defaultRetainDays})))`.execute(
      tx,
    ),
  );
  return rows.rows.map((r) => ({ logId: r.id, days: r.days }));
}

/** Purges one log's expired entries; returns how many were removed. */
export async function purgeLog(deps: AuditDeps, logId: string, days: number, now = new Date()): Promise<number> {
  const cutoff = new Date(now.getTime() - days * DAY);
  // A signed checkpoint that covers what is about to go (and what stays).
  const checkpoint = await createCheckpoint(deps.db, deps.keys, deps.settings.installation, logId, "retention", {
    reuse: true,
  });
  return withTenant(deps.db, logId, async (tx) => {
    const head = await tx.selectFrom("logs").selectAll().where("id", "=", logId).forUpdate().executeTakeFirstOrThrow();
    const first = Number(head.first_index);
    const limit = Math.min(Number(checkpoint.tree_size), first + PURGE_BATCH);
    const purged = await tx
      .selectFrom("entries")
      .select(["idx", "leaf_hash", "chain_hash"])
      .where("log_id", "=", logId)
      .where("idx", ">=", String(first))
      .where("idx", "<", String(limit))
      .where("record_time", "<", cutoff)
      .orderBy("idx")
      .execute();
    // Only a contiguous run from the first retained entry can go.
    let cut = first;
    const frontier = MerkleFrontier.from({ size: first, hashes: head.boundary_frontier });
    let chain = head.boundary_chain_hash;
    for (const r of purged) {
      if (Number(r.idx) !== cut) break;
      frontier.append(r.leaf_hash);
      chain = r.chain_hash;
      cut++;
    }
    if (cut === first || !chain) return 0;
    const removed = await sql<{ n: string }>`SELECT purge_entries(${logId}, ${cut})::text AS n`.execute(tx);
    await tx
      .updateTable("logs")
      .set({ first_index: cut, boundary_chain_hash: chain, boundary_frontier: frontier.hashes })
      .where("id", "=", logId)
      .execute();
    await tx
      .updateTable("streams")
      .set({ cursor: cut })
      .where("tenant_id", "=", logId)
      .where("cursor", "<", String(cut))
      .execute();
    await tx
      .insertInto("retention_policies")
      .values({ tenant_id: logId, retain_days: Math.max(30, days), last_purge_at: now })
      .onConflict((oc) => oc.column("tenant_id").doUpdateSet({ last_purge_at: now }))
      .execute();
    const count = Number(removed.rows[0]?.n ?? 0);
    await emit(
      tx,
      EntriesPurgedSchema,
      create(EntriesPurgedSchema, {
        tenantId: logId,
        firstIndex: BigInt(first),
        lastIndex: BigInt(cut - 1),
        entryCount: BigInt(count),
        lastLeafHash: purged[cut - first - 1]!.leaf_hash,
        lastChainHash: chain,
        checkpoint: checkpointToProto(checkpoint, originOf(deps.settings.installation, logId)),
        retainDays: days,
      }),
      logId,
      { type: "audit.log", id: logId },
    );
    return count;
  });
}

/** Purges every log past its retention; returns how many entries were removed. */
export async function purgeExpired(deps: AuditDeps, now = new Date()): Promise<number> {
  let total = 0;
  for (const { logId, days } of await logsToPurge(deps, now)) {
    try {
      for (;;) {
        const n = await purgeLog(deps, logId, days, now);
        total += n;
        if (n < PURGE_BATCH) break;
      }
    } catch (err) {
      deps.logger.error({ err, log: logId }, "audit retention purge failed");
    }
  }
  return total;
}
