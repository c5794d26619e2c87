/**
 * Verifying a stored log against a signed checkpoint: the checkpoint's signature (with the
 * key that made it, by origin), then the records up to the checkpoint's size: their
 * canonical bytes against their leaf hashes, the hash chain, and the Merkle root recomputed
 * from the leaves against the signed root and the chain head against the signed one. The
 * first bad record is named (changed, removed, inserted, reordered), as the offline verifier
 * does for an export. After a purge, verification starts at the kept boundary (the chain hash
 * before the first retained entry and the frontier of the purged leaves).
 *
 * A range `[start, end)` checks the content of those records only; the leaves before and
 * after still enter the root, so the range is proven to be in the signed tree.
 */
import { isIP, SocketAddress } from "node:net";
import { InvalidArgumentError, NotFoundError } from "@uab/core";
import { AuditOutcome } from "@uab/proto/gen/uab/audit/v1/audit_entry_pb.js";
import { LogVerificationFailedSchema } from "@uab/proto/gen/uab/audit/v1/events_pb.js";
import {
  canonicalJson,
  chainHashFromExtensions,
  type JsonValue,
  type LogRecord,
  type LogVerification,
  MerkleFrontier,
  openCheckpoint,
  verifierKeyOf,
  verifyLog,
} from "@uab/tlog";
import { type Kysely, sql } from "kysely";
import { checkpointToProto } from "../convert.js";
import type { AuditDatabase, CheckpointRow, EntryRow } from "../storage/tables.js";
import { ACTOR_TYPE_CODES } from "./append.js";
import { originOf } from "./checkpoints.js";
import { emit, inLog, type Tx } from "./common.js";
import { checkpointAt } from "./proofs.js";

/** The first searchable column of a stored entry that disagrees with its canonical record. */
export function columnMismatch(r: EntryRow): string | undefined {
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(Buffer.from(r.canonical).toString("utf8")) as Record<string, unknown>;
  } catch {
    return "canonical";
  }
  const actor = (c.actor ?? {}) as Record<string, unknown>;
  const resource = (c.resource ?? {}) as Record<string, unknown>;
  const expected: [string, unknown, unknown][] = [
    ["event_id", r.event_id, c.event_id],
    ["event_type", r.event_type, c.event_type],
    ["source", r.source, c.source],
    ["action", r.action, c.action],
    ["outcome", r.outcome, AuditOutcome[c.outcome as keyof typeof AuditOutcome] ?? -1],
    ["outcome_reason", r.outcome_reason, c.outcome_reason],
    ["actor_id", r.actor_id, actor.id],
    ["actor_type", r.actor_type, ACTOR_TYPE_CODES[String(actor.type)] ?? 0],
    ["actor_tenant_id", r.actor_tenant_id, actor.tenant_id],
    ["impersonator_id", r.impersonator_id, actor.impersonator_id],
    ["session_id", r.session_id, actor.session_id],
    ["user_agent", r.user_agent, actor.user_agent],
    ["resource_type", r.resource_type, resource.type],
    ["resource_id", r.resource_id, resource.id],
    ["resource_name", r.resource_name, resource.name],
    ["request_id", r.request_id, c.request_id],
    ["trace_id", r.trace_id, c.trace_id],
    ["occur_time", r.occur_time.toISOString(), c.occur_time],
    ["record_time", r.record_time.toISOString(), c.record_time],
    ["metadata", canonicalJson(r.metadata as JsonValue), canonicalJson((c.metadata ?? {}) as JsonValue)],
  ];
  for (const [name, stored, hashed] of expected) if (stored !== hashed) return name;
  if (r.ip_address !== null && isIP(String(actor.ip)) && !sameAddress(r.ip_address, String(actor.ip))) {
    return "ip_address";
  }
  return undefined;
}

function sameAddress(a: string, b: string): boolean {
  const norm = (x: string) => {
    const v = x.replace(/\/(32|128)$/, "");
    return isIP(v) === 6 ? new SocketAddress({ address: v, family: "ipv6" }).address : v;
  };
  return norm(a) === norm(b);
}

/** The signed values of a stored checkpoint, opened with the key that made it and for this log's origin. */
async function openStored(
  tx: Tx,
  checkpoint: CheckpointRow,
  origin: string,
): Promise<
  | { ok: true; signed: { treeSize: number; rootHash: Uint8Array; chainHash?: Uint8Array } }
  | { ok: false; detail: string }
> {
  const key = await tx
    .selectFrom("signing_keys")
    .select(["name", "public_key"])
    .where("key_id", "=", checkpoint.key_id)
    .executeTakeFirst();
  if (!key) return { ok: false, detail: `the checkpoint's key ${checkpoint.key_id} is unknown` };
  try {
    const opened = openCheckpoint(checkpoint.note, [verifierKeyOf(key.name, key.public_key)], { origin });
    const chain = chainHashFromExtensions(opened.extensions);
    return {
      ok: true,
      signed: { treeSize: opened.treeSize, rootHash: opened.rootHash, ...(chain ? { chainHash: chain } : {}) },
    };
  } catch (e) {
    return { ok: false, detail: (e as Error).message };
  }
}

/** A verification and the checkpoint it used. */
export interface StoredLogVerification extends LogVerification {
  readonly checkpoint: CheckpointRow;
  /** The root recomputed from the stored leaves, when the scan got that far. */
  readonly computedRoot?: Uint8Array;
}

/** Verifies a log against a checkpoint (by id, or the latest), optionally one index range. */
export async function verifyStoredLog(
  db: Kysely<AuditDatabase>,
  logId: string,
  installation: string,
  checkpointId: string,
  range: { start?: number; end?: number } = {},
): Promise<StoredLogVerification> {
  const result = await inLog(db, logId, async (tx) => {
    let checkpoint: CheckpointRow | undefined;
    if (checkpointId) {
      checkpoint = await tx
        .selectFrom("checkpoints")
        .selectAll()
        .where("id", "=", checkpointId)
        .where("log_id", "=", logId)
        .executeTakeFirst();
      if (!checkpoint) throw new NotFoundError("CHECKPOINT_NOT_FOUND", `checkpoint ${checkpointId} not found`);
    } else {
      checkpoint = await checkpointAt(tx, logId, 0);
    }
    const storedSize = Number(checkpoint.tree_size);
    const base = { startIndex: range.start ?? 0, endIndex: range.end || storedSize, verifiedCount: 0, checkpoint };
    const opened = await openStored(tx, checkpoint, originOf(installation, logId));
    if (!opened.ok) return { ...base, ok: false, failure: "bad_signature" as const, detail: opened.detail };
    const signed = opened.signed;
    const size = signed.treeSize;
    const end = range.end || size;
    if (end > size) throw InvalidArgumentError.field("end_index", `is beyond the checkpoint's tree size ${size}`);
    const head = await tx
      .selectFrom("logs")
      .select(["first_index", "boundary_chain_hash", "boundary_frontier"])
      .where("id", "=", logId)
      .executeTakeFirst();
    const first = Number(head?.first_index ?? 0);
    const start = Math.max(range.start ?? 0, first);
    // A row stored beyond the log's head was slipped in (the writer never puts one there).
    const beyond = await tx
      .selectFrom("logs as l")
      .innerJoin("entries as e", "e.log_id", "l.id")
      .select(sql<string>`min(e.idx)`.as("idx"))
      .where("l.id", "=", logId)
      .whereRef("e.idx", ">=", "l.size")
      .executeTakeFirst();
    const rows = await tx
      .selectFrom("entries")
      .selectAll()
      .where("log_id", "=", logId)
      .where("idx", ">=", String(first))
      .where("idx", "<", String(size))
      .orderBy("idx")
      .execute();
    // Records before the range enter as the boundary: their leaves into the frontier.
    const frontier = MerkleFrontier.from({ size: first, hashes: head?.boundary_frontier ?? [] });
    let previous = first > 0 && head?.boundary_chain_hash ? head.boundary_chain_hash : undefined;
    let p = 0;
    while (p < rows.length && Number(rows[p]!.idx) < start && Number(rows[p]!.idx) === first + p) {
      frontier.append(rows[p]!.leaf_hash);
      previous = rows[p]!.chain_hash;
      p++;
    }
    const records: LogRecord[] = rows.slice(p).map((r) => {
      const index = Number(r.idx);
      return {
        index,
        ...(index < end ? { entryBytes: r.canonical } : {}),
        leafHash: r.leaf_hash,
        previousChainHash: r.prev_chain_hash,
        chainHash: r.chain_hash,
      };
    });
    const startIndex = first + p;
    const verification = verifyLog(records, {
      boundary: {
        startIndex,
        previousChainHash: previous ?? new Uint8Array(32),
        frontier: { size: frontier.size, hashes: frontier.hashes },
      },
      checkpoint: signed,
    });
    if (!verification.ok) return { ...verification, startIndex: start, endIndex: end, checkpoint };
    // The searchable columns are what the API shows: they must say what the hashed record says.
    for (const r of rows) {
      const index = Number(r.idx);
      if (index < start || index >= end) continue;
      const column = columnMismatch(r);
      if (column) {
        return {
          ...verification,
          ok: false,
          failure: "changed" as const,
          firstBadIndex: index,
          verifiedCount: index - start,
          detail: `entry ${index}: its ${column} column differs from the hashed record`,
          startIndex: start,
          endIndex: end,
          checkpoint,
        };
      }
    }
    if (beyond?.idx != null) {
      return {
        ...verification,
        ok: false,
        failure: "inserted" as const,
        firstBadIndex: Number(beyond.idx),
        detail: `entry ${beyond.idx} is stored beyond the log's head: it was inserted`,
        startIndex: start,
        endIndex: end,
        checkpoint,
      };
    }
    // Consistency with the previous checkpoint: its signed root is the root of this log's prefix.
    const previousCheckpoint = await tx
      .selectFrom("checkpoints")
      .selectAll()
      .where("log_id", "=", logId)
      .where("tree_size", "<", String(size))
      .where("tree_size", ">=", String(Math.max(first, 1)))
      .orderBy("tree_size", "desc")
      .limit(1)
      .executeTakeFirst();
    if (previousCheckpoint) {
      const prevSize = Number(previousCheckpoint.tree_size);
      const prefix = MerkleFrontier.from({ size: first, hashes: head?.boundary_frontier ?? [] });
      for (const r of rows) {
        if (Number(r.idx) >= prevSize) break;
        prefix.append(r.leaf_hash);
      }
      const previous = await openStored(tx, previousCheckpoint, originOf(installation, logId));
      const prevRoot = previous.ok ? previous.signed.rootHash : undefined;
      if (!prevRoot || !Buffer.from(prefix.root()).equals(Buffer.from(prevRoot))) {
        return {
          ...verification,
          ok: false,
          failure: "inconsistent_checkpoint" as const,
          detail: `the earlier checkpoint ${previousCheckpoint.id} (size ${prevSize}) ${prevRoot ? "has a root this log's prefix does not reproduce" : "does not open with its key"}`,
          startIndex: start,
          endIndex: end,
          checkpoint,
        };
      }
    }
    return { ...verification, startIndex: start, endIndex: end, checkpoint };
  });
  return result;
}

/** Records a failed verification as an event (it lands in the log it is about). */
export async function recordVerificationFailure(
  db: Kysely<AuditDatabase>,
  logId: string,
  installation: string,
  result: StoredLogVerification,
  proto: Parameters<typeof emit<typeof LogVerificationFailedSchema>>[2]["result"],
): Promise<void> {
  await inLog(db, logId, (tx) =>
    emit(tx, LogVerificationFailedSchema, { result: proto }, logId === "platform" ? null : logId, {
      type: "audit.log",
      id: logId,
      displayName: checkpointToProto(result.checkpoint, originOf(installation, logId)).origin,
    }),
  );
}
