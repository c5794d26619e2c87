/**
 * Signed checkpoints: the size, Merkle root and chain head of a log at a moment, as a C2SP
 * signed note (Ed25519). A person can read one; Go's `golang.org/x/mod/sumdb/note` (or any
 * implementation of the spec) verifies it with the published verifier key. The chain head is
 * an extension line (`chain-hash <base64>`), so it is signed as well as the root.
 *
 * The signing key comes from `UAB_AUDIT_SIGNING_KEY` (a `PRIVATE+KEY+…` note key, from a
 * secret) in production. Without it a key is generated on first start and kept in the
 * database (only as safe as the database), and RotateSigningKey replaces it.
 */
import { FailedPreconditionError, NotFoundError, newId } from "@uab/core";
import { decodePageToken, pageSize, paginate, withPlatform } from "@uab/db";
import { generateNoteKey, MerkleFrontier, type NoteSigner, parseSignerKey, signCheckpoint } from "@uab/tlog";
import { type Kysely, sql } from "kysely";
import type { AuditDatabase, CheckpointRow, CheckpointTrigger, SigningKeyRow } from "../storage/tables.js";
import { ensureLogs } from "./append.js";
import { inLog, type Tx } from "./common.js";

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
    return insertNewKey(tx, name);
  });
}

async function insertNewKey(tx: Tx, name: string): Promise<ActiveKey> {
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
}

/**
 * The signing keys of this installation. Replicas share the database: the active key is
 * looked up by id in each signing transaction, so a rotation on one replica is used by all
 * from their next checkpoint.
 */
export class KeyRing {
  private readonly signers = new Map<string, NoteSigner>();

  /**
   * @param configured the `UAB_AUDIT_SIGNING_KEY` note key, when the key is managed outside.
   * @param name the key name of generated keys (the installation origin).
   */
  constructor(
    private readonly configured: ActiveKey | undefined,
    readonly name: string,
  ) {}

  /** Whether the key is managed by configuration (RotateSigningKey is then refused). */
  get managed(): boolean {
    return this.configured !== undefined;
  }

  /** The key to sign with, read in the signing transaction. */
  async active(tx: Tx): Promise<ActiveKey> {
    if (this.configured) return this.configured;
    const read = () =>
      tx.selectFrom("signing_keys").select(["key_id", "private_key"]).where("status", "=", "active").executeTakeFirst();
    let row = await read();
    if (!row?.private_key) {
      // Concurrent first checkpoints (any replica) must not each make a key: one makes it, the rest read it.
      await sql`SELECT pg_advisory_xact_lock(hashtext('uab.audit.signing_keys'))`.execute(tx);
      row = await read();
      if (!row?.private_key) return insertNewKey(tx, this.name);
    }
    let signer = this.signers.get(row.key_id);
    if (!signer) {
      signer = parseSignerKey(row.private_key);
      this.signers.set(row.key_id, signer);
    }
    return { keyId: row.key_id, signer };
  }

  /** Replaces the active key by a new one; returns the new and the retired key rows. */
  async rotate(db: Kysely<AuditDatabase>): Promise<{ active: SigningKeyRow; retired: SigningKeyRow | undefined }> {
    if (this.configured) {
      throw new FailedPreconditionError(
        "SIGNING_KEY_MANAGED",
        "the checkpoint signing key comes from UAB_AUDIT_SIGNING_KEY; rotate it by changing that secret and restarting",
      );
    }
    return withPlatform(db, async (tx) => {
      const old = await tx
        .selectFrom("signing_keys")
        .selectAll()
        .where("status", "=", "active")
        .forUpdate()
        .executeTakeFirst();
      const created = await insertNewKey(tx, this.name);
      const active = await tx
        .selectFrom("signing_keys")
        .selectAll()
        .where("key_id", "=", created.keyId)
        .executeTakeFirstOrThrow();
      const retired = old
        ? await tx.selectFrom("signing_keys").selectAll().where("key_id", "=", old.key_id).executeTakeFirst()
        : undefined;
      return { active, retired };
    });
  }
}

/** The origin line of a log's checkpoints: `<installation origin>/<log id>`. */
export function originOf(installation: string, logId: string): string {
  return `${installation}/${logId}`;
}

/** The checkpoint extension line carrying the chain head. */
export function chainHashLine(chain: Uint8Array): string {
  return `chain-hash ${Buffer.from(chain).toString("base64")}`;
}

/**
 * Signs the current head of a log. The head row is share-locked while it is read, so the
 * checkpoint describes a state that committed and no append is half-way through it. With
 * `reuse`, an existing checkpoint of the same size is returned instead (`created` false).
 */
export async function createCheckpoint(
  db: Kysely<AuditDatabase>,
  key: ActiveKey | KeyRing,
  installation: string,
  logId: string,
  trigger: CheckpointTrigger,
  options: { reuse?: boolean } = {},
): Promise<CheckpointRow & { created: boolean }> {
  return withPlatform(db, async (tx) => {
    await ensureLogs(tx, [logId]);
    const head = await tx.selectFrom("logs").selectAll().where("id", "=", logId).forShare().executeTakeFirstOrThrow();
    const size = Number(head.size);
    if (options.reuse) {
      const same = await tx
        .selectFrom("checkpoints")
        .selectAll()
        .where("log_id", "=", logId)
        .where("tree_size", "=", String(size))
        .orderBy("created_at", "desc")
        .limit(1)
        .executeTakeFirst();
      if (same) return { ...same, created: false };
    }
    const signing = key instanceof KeyRing ? await key.active(tx) : key;
    const root = MerkleFrontier.from({ size, hashes: head.frontier }).root();
    const note = signCheckpoint(
      {
        origin: originOf(installation, logId),
        treeSize: size,
        rootHash: root,
        extensions: [chainHashLine(head.chain_hash)],
      },
      signing.signer,
    );
    const row = await tx
      .insertInto("checkpoints")
      .values({
        id: newId("checkpoint"),
        log_id: logId,
        tenant_id: logId === "platform" ? null : logId,
        tree_size: size,
        root_hash: root,
        chain_hash: head.chain_hash,
        key_id: signing.keyId,
        note,
        trigger,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return { ...row, created: true };
  });
}

function notFound(id: string): NotFoundError {
  return new NotFoundError("CHECKPOINT_NOT_FOUND", `checkpoint ${id} not found`);
}

/** One checkpoint of a log. */
export async function getCheckpoint(db: Kysely<AuditDatabase>, logId: string, id: string): Promise<CheckpointRow> {
  const row = await inLog(db, logId, (tx) =>
    tx.selectFrom("checkpoints").selectAll().where("id", "=", id).where("log_id", "=", logId).executeTakeFirst(),
  );
  if (!row) throw notFound(id);
  return row;
}

/** The newest checkpoint of a log (the largest tree). */
export async function latestCheckpoint(db: Kysely<AuditDatabase>, logId: string): Promise<CheckpointRow> {
  const row = await inLog(db, logId, (tx) =>
    tx
      .selectFrom("checkpoints")
      .selectAll()
      .where("log_id", "=", logId)
      .orderBy("tree_size", "desc")
      .orderBy("created_at", "desc")
      .limit(1)
      .executeTakeFirst(),
  );
  if (!row) throw new NotFoundError("CHECKPOINT_NOT_FOUND", "this log has no checkpoint yet");
  return row;
}

/** A page of a log's checkpoints, newest first. */
export async function listCheckpoints(
  db: Kysely<AuditDatabase>,
  logId: string,
  q: { pageSize: number; pageToken: string; minTreeSize: number; start?: Date | undefined; end?: Date | undefined },
): Promise<{ items: CheckpointRow[]; next: string }> {
  const size = pageSize(q.pageSize);
  const filters = { l: logId, m: q.minTreeSize, s: q.start?.toISOString() ?? "", e: q.end?.toISOString() ?? "" };
  const after = decodePageToken(q.pageToken, filters);
  const rows = await inLog(db, logId, (tx) => {
    let s = tx.selectFrom("checkpoints").selectAll().where("log_id", "=", logId);
    if (q.minTreeSize > 0) s = s.where("tree_size", ">=", String(q.minTreeSize));
    if (q.start) s = s.where("created_at", ">=", q.start);
    if (q.end) s = s.where("created_at", "<", q.end);
    // Ids are time-ordered: newest first is descending id.
    if (after !== undefined) s = s.where("id", "<", after);
    return s
      .orderBy("id", "desc")
      .limit(size + 1)
      .execute();
  });
  return paginate(rows, size, filters);
}
