/**
 * Signed checkpoints: the size and root hash of a log at a moment, as a C2SP signed note
 * (Ed25519). A person can read one; Go's `golang.org/x/mod/sumdb/note` (or any
 * implementation of the spec) verifies it with the published verifier key.
 *
 * The signing key comes from `UAB_AUDIT_SIGNING_KEY` (a `PRIVATE+KEY+…` note key, from a
 * secret) in production. Without it (development) a key is generated on first start and
 * kept in the database, which is only as safe as the database.
 */
import { newId } from "@uab/core";
import { withPlatform } from "@uab/db";
import { generateNoteKey, MerkleFrontier, type NoteSigner, parseSignerKey, signCheckpoint } from "@uab/tlog";
import type { Kysely } from "kysely";
import type { AuditDatabase, CheckpointRow, CheckpointTrigger } from "../storage/tables.js";
import { ensureLogs } from "./append.js";

/** The active signing key and its id. */
export interface ActiveKey {
  readonly keyId: string;
  readonly signer: NoteSigner;
}

/** The key id of a note key: `<name>+<key hash hex>`, as in its verifier key. */
export function keyIdOf(signer: NoteSigner): string {
  return signer.verifierKey.split("+").slice(0, 2).join("+");
}

/**
 * The active key: the configured one (recorded as active, earlier ones retired), else the
 * active one in the database, else a new one (stored).
 */
export async function loadActiveKey(
  db: Kysely<AuditDatabase>,
  configured: string | undefined,
  name: string,
): Promise<ActiveKey> {
  return withPlatform(db, async (tx) => {
    if (configured) {
      const signer = parseSignerKey(configured);
      const keyId = keyIdOf(signer);
      await tx
        .updateTable("signing_keys")
        .set({ status: "retired", retired_at: new Date() })
        .where("status", "=", "active")
        .where("key_id", "<>", keyId)
        .execute();
      await tx
        .insertInto("signing_keys")
        // The private key stays in the secret it came from.
        .values({ key_id: keyId, name: signer.name, public_key: signer.publicKey, private_key: "", status: "active" })
        .onConflict((oc) => oc.column("key_id").doUpdateSet({ status: "active", retired_at: null }))
        .execute();
      return { keyId, signer };
    }
    const row = await tx.selectFrom("signing_keys").selectAll().where("status", "=", "active").executeTakeFirst();
    if (row?.private_key) return { keyId: row.key_id, signer: parseSignerKey(row.private_key) };
    const signer = generateNoteKey(name);
    const keyId = keyIdOf(signer);
    await tx
      .updateTable("signing_keys")
      .set({ status: "retired", retired_at: new Date() })
      .where("status", "=", "active")
      .execute();
    await tx
      .insertInto("signing_keys")
      .values({ key_id: keyId, name, public_key: signer.publicKey, private_key: signer.privateKey, status: "active" })
      .execute();
    return { keyId, signer };
  });
}

/** The origin line of a log's checkpoints: `<installation origin>/<log id>`. */
export function originOf(installation: string, logId: string): string {
  return `${installation}/${logId}`;
}

/**
 * Signs the current head of a log. The head row is share-locked while it is read, so the
 * checkpoint describes a state that committed and no append is half-way through it.
 */
export async function createCheckpoint(
  db: Kysely<AuditDatabase>,
  key: ActiveKey,
  installation: string,
  logId: string,
  trigger: CheckpointTrigger,
): Promise<CheckpointRow> {
  return withPlatform(db, async (tx) => {
    await ensureLogs(tx, [logId]);
    const head = await tx.selectFrom("logs").selectAll().where("id", "=", logId).forShare().executeTakeFirstOrThrow();
    const size = Number(head.size);
    const root = MerkleFrontier.from({ size, hashes: head.frontier }).root();
    const note = signCheckpoint({ origin: originOf(installation, logId), treeSize: size, rootHash: root }, key.signer);
    return tx
      .insertInto("checkpoints")
      .values({
        id: newId("checkpoint"),
        log_id: logId,
        tenant_id: logId === "platform" ? null : logId,
        tree_size: size,
        root_hash: root,
        chain_hash: head.chain_hash,
        key_id: key.keyId,
        note,
        trigger,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  });
}
