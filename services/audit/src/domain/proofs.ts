/**
 * Inclusion and consistency proofs, always relative to a signed checkpoint, so a client can
 * check them offline against the published key: an entry is in the tree the checkpoint
 * commits to; an older checkpoint's tree is a prefix of a newer one's.
 *
 * Proofs are computed from the stored leaf hashes (one indexed range read). After a purge
 * the leaves before the log's first retained index are gone, but the Merkle frontier at that
 * boundary is kept: every subtree a proof for a retained entry needs is either made of
 * retained leaves or is one of the frontier's subtrees, so such proofs still work. Consistency
 * from a tree size inside the purged prefix is refused (its nodes are gone).
 */
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "@uab/core";
import { consistencyProof, inclusionProof, MerkleFrontier, nodeHash, type RangeHasher } from "@uab/tlog";
import type { Kysely } from "kysely";
import type { AuditDatabase, CheckpointRow } from "../storage/tables.js";
import { inLog, type Tx } from "./common.js";

/** The latest checkpoint of a log, or the newest one at `treeSize` (> 0). */
export async function checkpointAt(tx: Tx, logId: string, treeSize: number): Promise<CheckpointRow> {
  let q = tx.selectFrom("checkpoints").selectAll().where("log_id", "=", logId);
  if (treeSize > 0) q = q.where("tree_size", "=", String(treeSize));
  const row = await q.orderBy("tree_size", "desc").orderBy("created_at", "desc").limit(1).executeTakeFirst();
  if (!row) {
    throw treeSize > 0
      ? new NotFoundError("CHECKPOINT_NOT_FOUND", `no checkpoint of this log has tree size ${treeSize}`)
      : new FailedPreconditionError("NO_CHECKPOINT", "this log has no checkpoint yet; create one first");
  }
  return row;
}

/** The largest power of two below n (n > 1). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * A range hasher over a log whose leaves `[0, first)` were purged (`first` 0: none): subtrees
 * inside the purged part come from the boundary frontier, the rest from the retained leaves.
 * Subtree hashes are memoised, so the proofs of every entry of a tree cost O(n) hashing in all.
 */
export function boundaryRangeHasher(
  first: number,
  frontier: readonly Uint8Array[],
  retained: readonly Uint8Array[],
): RangeHasher {
  const pieces = new Map<string, Uint8Array>();
  let start = 0;
  let i = 0;
  for (let bit = 2 ** Math.floor(Math.log2(Math.max(first, 1))); bit >= 1 && i < frontier.length; bit /= 2) {
    if (Math.floor(first / bit) % 2 === 1) {
      pieces.set(`${start}:${start + bit}`, frontier[i]!);
      start += bit;
      i++;
    }
  }
  const memo = new Map<string, Uint8Array>();
  const hash = (s: number, e: number): Uint8Array => {
    if (e - s === 1 && s >= first) {
      const leaf = retained[s - first];
      if (!leaf) throw new RangeError(`no leaf ${s} in this log`);
      return leaf;
    }
    const key = `${s}:${e}`;
    const known = pieces.get(key) ?? memo.get(key);
    if (known) return known;
    if (e <= first || e - s === 1) {
      throw new FailedPreconditionError(
        "LOG_PREFIX_PURGED",
        `this proof needs entries before index ${first}, which retention removed`,
      );
    }
    const k = splitPoint(e - s);
    const h = nodeHash(hash(s, s + k), hash(s + k, e));
    memo.set(key, h);
    return h;
  };
  return hash;
}

/** A range hasher over `[0, size)` of a log, from its retained leaves and purge boundary. */
export async function rangeHasher(
  tx: Tx,
  logId: string,
  size: number,
): Promise<{ first: number; hasher: RangeHasher }> {
  const head = await tx
    .selectFrom("logs")
    .select(["first_index", "boundary_frontier"])
    .where("id", "=", logId)
    .executeTakeFirst();
  const first = Number(head?.first_index ?? 0);
  const rows = await tx
    .selectFrom("entries")
    .select("leaf_hash")
    .where("log_id", "=", logId)
    .where("idx", ">=", String(first))
    .where("idx", "<", String(size))
    .orderBy("idx")
    .execute();
  if (rows.length !== Math.max(0, size - first)) {
    throw new FailedPreconditionError(
      "LOG_PREFIX_UNAVAILABLE",
      `the log holds ${rows.length} of the ${size - first} entries this proof needs`,
    );
  }
  const leaves = rows.map((r) => r.leaf_hash);
  // The stored boundary must be a frontier of `first` leaves.
  MerkleFrontier.from({ size: first, hashes: head?.boundary_frontier ?? [] });
  return { first, hasher: boundaryRangeHasher(first, head?.boundary_frontier ?? [], leaves) };
}

/** An inclusion proof of the entry at `index`, or of the entry with `leafHash`. */
export async function inclusion(
  db: Kysely<AuditDatabase>,
  logId: string,
  leaf: { index: number } | { leafHash: Uint8Array },
  treeSize: number,
): Promise<{ index: number; leafHash: Uint8Array; treeSize: number; path: Uint8Array[]; checkpoint: CheckpointRow }> {
  return inLog(db, logId, async (tx) => {
    const checkpoint = await checkpointAt(tx, logId, treeSize);
    const size = Number(checkpoint.tree_size);
    let q = tx.selectFrom("entries").select(["idx", "leaf_hash"]).where("log_id", "=", logId);
    q =
      "index" in leaf ? q.where("idx", "=", String(leaf.index)) : q.where("leaf_hash", "=", Buffer.from(leaf.leafHash));
    const entry = await q.orderBy("idx").limit(1).executeTakeFirst();
    if (!entry) throw new NotFoundError("AUDIT_ENTRY_NOT_FOUND", "no entry of this log has that index or leaf hash");
    const index = Number(entry.idx);
    if (index >= size) {
      throw InvalidArgumentError.field(
        "tree_size",
        `entry ${index} is not in the checkpoint's tree of size ${size}; ask for a later checkpoint`,
      );
    }
    const { hasher } = await rangeHasher(tx, logId, size);
    return { index, leafHash: entry.leaf_hash, treeSize: size, path: inclusionProof(index, size, hasher), checkpoint };
  });
}

/** A consistency proof from `first` entries to the checkpoint at `second` (0: the latest). */
export async function consistency(
  db: Kysely<AuditDatabase>,
  logId: string,
  first: number,
  second: number,
): Promise<{ first: number; second: number; proof: Uint8Array[]; checkpoint: CheckpointRow }> {
  return inLog(db, logId, async (tx) => {
    const checkpoint = await checkpointAt(tx, logId, second);
    const size = Number(checkpoint.tree_size);
    if (first > size) {
      throw InvalidArgumentError.field("first_tree_size", `is larger than the checkpoint's tree size ${size}`);
    }
    const { hasher } = await rangeHasher(tx, logId, size);
    return { first, second: size, proof: consistencyProof(first, size, hasher), checkpoint };
  });
}
