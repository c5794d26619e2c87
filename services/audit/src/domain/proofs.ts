/**
 * Inclusion and consistency proofs, always relative to a signed checkpoint, so a client can
 * check them offline against the published key: an entry is in the tree the checkpoint
 * commits to; an older checkpoint's tree is a prefix of a newer one's.
 *
 * Proofs are computed from the stored leaf hashes of the log's prefix (one indexed range
 * read); storing interior subtree hashes would make them O(log n) reads for very large logs.
 */
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "@uab/core";
import { withTenant } from "@uab/db";
import { consistencyProof, inclusionProof } from "@uab/tlog";
import type { Kysely, Transaction } from "kysely";
import type { AuditDatabase, CheckpointRow } from "../storage/tables.js";

type Tx = Transaction<AuditDatabase>;

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

async function leafHashes(tx: Tx, logId: string, size: number): Promise<Uint8Array[]> {
  const rows = await tx
    .selectFrom("entries")
    .select(["idx", "leaf_hash"])
    .where("log_id", "=", logId)
    .where("idx", "<", String(size))
    .orderBy("idx")
    .execute();
  if (rows.length !== size) {
    throw new FailedPreconditionError(
      "LOG_PREFIX_UNAVAILABLE",
      `the log holds ${rows.length} of the ${size} entries this proof needs (retention removed the older ones)`,
    );
  }
  return rows.map((r) => r.leaf_hash);
}

/** An inclusion proof of the entry at `index`, or of the entry with `leafHash`. */
export async function inclusion(
  db: Kysely<AuditDatabase>,
  tenantId: string,
  leaf: { index: number } | { leafHash: Uint8Array },
  treeSize: number,
): Promise<{ index: number; leafHash: Uint8Array; treeSize: number; path: Uint8Array[]; checkpoint: CheckpointRow }> {
  return withTenant(db, tenantId, async (tx) => {
    const checkpoint = await checkpointAt(tx, tenantId, treeSize);
    const size = Number(checkpoint.tree_size);
    let q = tx.selectFrom("entries").select(["idx", "leaf_hash"]).where("log_id", "=", tenantId);
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
    const leaves = await leafHashes(tx, tenantId, size);
    return { index, leafHash: entry.leaf_hash, treeSize: size, path: inclusionProof(index, leaves), checkpoint };
  });
}

/** A consistency proof from `first` entries to the checkpoint at `second` (0: the latest). */
export async function consistency(
  db: Kysely<AuditDatabase>,
  tenantId: string,
  first: number,
  second: number,
): Promise<{ first: number; second: number; proof: Uint8Array[]; checkpoint: CheckpointRow }> {
  return withTenant(db, tenantId, async (tx) => {
    const checkpoint = await checkpointAt(tx, tenantId, second);
    const size = Number(checkpoint.tree_size);
    if (first > size) {
      throw InvalidArgumentError.field("first_tree_size", `is larger than the checkpoint's tree size ${size}`);
    }
    const leaves = await leafHashes(tx, tenantId, size);
    return { first, second: size, proof: consistencyProof(first, leaves), checkpoint };
  });
}
