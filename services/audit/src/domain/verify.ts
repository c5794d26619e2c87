/**
 * Verifying a stored log against a signed checkpoint: the checkpoint's signature (with the
 * key that made it, by origin), then every record from the start of the log up to the
 * checkpoint's size: its canonical bytes against its leaf hash, the hash chain, and the
 * Merkle root recomputed from the leaves against the signed root. The first bad record is
 * named (changed, removed, inserted, reordered), as the offline verifier does for an export.
 */
import { NotFoundError } from "@uab/core";
import { withTenant } from "@uab/db";
import { type LogRecord, type LogVerification, openCheckpoint, verifierKeyOf, verifyLog } from "@uab/tlog";
import type { Kysely } from "kysely";
import type { AuditDatabase, CheckpointRow } from "../storage/tables.js";
import { originOf } from "./checkpoints.js";
import { checkpointAt } from "./proofs.js";

/** A verification and the checkpoint it used. */
export interface StoredLogVerification extends LogVerification {
  readonly checkpoint: CheckpointRow;
}

/** Verifies a tenant's log against a checkpoint (by id, or the latest). */
export async function verifyStoredLog(
  db: Kysely<AuditDatabase>,
  tenantId: string,
  installation: string,
  checkpointId: string,
): Promise<StoredLogVerification> {
  return withTenant(db, tenantId, async (tx) => {
    let checkpoint: CheckpointRow | undefined;
    if (checkpointId) {
      checkpoint = await tx
        .selectFrom("checkpoints")
        .selectAll()
        .where("id", "=", checkpointId)
        .where("log_id", "=", tenantId)
        .executeTakeFirst();
      if (!checkpoint) throw new NotFoundError("CHECKPOINT_NOT_FOUND", `checkpoint ${checkpointId} not found`);
    } else {
      checkpoint = await checkpointAt(tx, tenantId, 0);
    }
    const key = await tx
      .selectFrom("signing_keys")
      .select(["name", "public_key"])
      .where("key_id", "=", checkpoint.key_id)
      .executeTakeFirst();
    const size = Number(checkpoint.tree_size);
    const base = { startIndex: 0, endIndex: size, verifiedCount: 0, checkpoint };
    if (!key) {
      return {
        ...base,
        ok: false,
        failure: "bad_signature",
        detail: `the checkpoint's key ${checkpoint.key_id} is unknown`,
      };
    }
    try {
      openCheckpoint(checkpoint.note, [verifierKeyOf(key.name, key.public_key)], {
        origin: originOf(installation, tenantId),
      });
    } catch (e) {
      return { ...base, ok: false, failure: "bad_signature", detail: (e as Error).message };
    }
    const rows = await tx
      .selectFrom("entries")
      .select(["idx", "canonical", "leaf_hash", "prev_chain_hash", "chain_hash"])
      .where("log_id", "=", tenantId)
      .where("idx", "<", String(size))
      .orderBy("idx")
      .execute();
    const records: LogRecord[] = rows.map((r) => ({
      index: Number(r.idx),
      entryBytes: r.canonical,
      leafHash: r.leaf_hash,
      previousChainHash: r.prev_chain_hash,
      chainHash: r.chain_hash,
    }));
    const result = verifyLog(records, {
      checkpoint: { treeSize: size, rootHash: checkpoint.root_hash, chainHash: checkpoint.chain_hash },
    });
    return { ...result, checkpoint };
  });
}
