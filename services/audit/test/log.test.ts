/**
 * The log in the database: batches of events become contiguous, chained, Merkle-hashed
 * entries of their tenant's (or the platform's) log; a redelivered event is not appended
 * again; a signed checkpoint opens with the published key and matches a root recomputed
 * from the stored leaves; the entries are append-only for the runtime role and, through
 * the trigger, for anyone else; and each tenant sees only its own log.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { newId } from "@uab/core";
import { createDatabase, type Database, migrateService, withTenant } from "@uab/db";
import { type Event, EventSchema } from "@uab/proto/gen/uab/events/v1/event_pb.js";
import { createTestDatabase, type TestDatabase } from "@uab/testing";
import {
  chainHash,
  genesisChainHash,
  leafHash,
  openCheckpoint,
  rootHash,
  verifyConsistency,
  verifyInclusion,
} from "@uab/tlog";
import { sql } from "kysely";
import {
  type AuditDatabase,
  appendEvents,
  auditMigrations,
  consistency,
  createCheckpoint,
  inclusion,
  loadActiveKey,
  verifyStoredLog,
} from "../src/index.js";

let database: TestDatabase;
let rt: Database<AuditDatabase>;
let admin: Database<AuditDatabase>;
const A = newId("tenant");
const B = newId("tenant");

function event(tenantId: string, i: number, extra: Partial<Event> = {}): Event {
  return create(EventSchema, {
    id: newId("event"),
    type: "uab.tenancy.v1.ProjectCreated",
    source: "tenancy",
    tenantId,
    occurredAt: timestampFromDate(new Date(Date.UTC(2026, 10, 22, 0, 0, i))),
    actor: { principalId: `usr_${"a".repeat(26)}`, principalType: 1, ipAddress: "10.0.0.1", userAgent: "test" },
    resource: { type: "tenancy.project", id: `prj_${String(i).padStart(26, "0")}`, displayName: `P${i}` },
    requestId: `req_${i}`,
    ...extra,
  });
}

beforeAll(async () => {
  database = await createTestDatabase();
  await migrateService({ url: database.url, service: "audit", migrations: auditMigrations });
  rt = createDatabase<AuditDatabase>({ url: database.url, schema: "audit", role: "uab_audit", max: 4 });
  admin = createDatabase<AuditDatabase>({ url: database.url, schema: "audit", max: 2 });
});
afterAll(async () => {
  await rt?.close();
  await admin?.close();
  await database?.drop();
});

async function entriesOf(logId: string) {
  return admin.db.selectFrom("entries").selectAll().where("log_id", "=", logId).orderBy("idx").execute();
}

describe("appending", () => {
  it("appends batches to each tenant's log in index order with a hash chain and Merkle frontier", async () => {
    const first = [event(A, 0), event(B, 0), event(A, 1), event("", 0, { source: "authorization" })];
    const second = Array.from({ length: 300 }, (_, i) => event(i % 3 === 0 ? B : A, i + 2));
    expect(await appendEvents(rt.db, first)).toBe(4);
    expect(await appendEvents(rt.db, second)).toBe(300);
    for (const logId of [A, B, "platform"]) {
      const rows = await entriesOf(logId);
      expect(rows.map((r) => Number(r.idx))).toEqual(rows.map((_, i) => i));
      let prev = genesisChainHash();
      for (const r of rows) {
        expect(Buffer.from(r.leaf_hash)).toEqual(Buffer.from(leafHash(r.canonical)));
        expect(Buffer.from(r.prev_chain_hash)).toEqual(Buffer.from(prev));
        prev = chainHash(prev, r.leaf_hash);
        expect(Buffer.from(r.chain_hash)).toEqual(Buffer.from(prev));
      }
      const head = await admin.db.selectFrom("logs").selectAll().where("id", "=", logId).executeTakeFirstOrThrow();
      expect(Number(head.size)).toBe(rows.length);
      expect(Buffer.from(head.chain_hash)).toEqual(Buffer.from(prev));
    }
    const a = await entriesOf(A);
    expect(a[0]).toMatchObject({
      action: "tenancy.project.created",
      actor_id: `usr_${"a".repeat(26)}`,
      ip_address: "10.0.0.1",
    });
    const canonical = JSON.parse(Buffer.from(a[1]!.canonical).toString("utf8"));
    expect(canonical).toMatchObject({ v: 1, log: A, index: 1, event_type: "uab.tenancy.v1.ProjectCreated" });
  });

  it("does not append a redelivered event again", async () => {
    const e = event(A, 1000);
    expect(await appendEvents(rt.db, [e, e])).toBe(1);
    expect(await appendEvents(rt.db, [e])).toBe(0);
    const rows = await admin.db.selectFrom("entries").select("idx").where("event_id", "=", e.id).execute();
    expect(rows).toHaveLength(1);
  });

  it("keeps an actor address that is not an IP in the record but not in the inet column", async () => {
    const e = event(B, 2000, { actor: { principalId: "system", principalType: 4, ipAddress: "not-an-ip" } });
    await appendEvents(rt.db, [e]);
    const row = await admin.db.selectFrom("entries").selectAll().where("event_id", "=", e.id).executeTakeFirstOrThrow();
    expect(row.ip_address).toBeNull();
    expect(JSON.parse(Buffer.from(row.canonical).toString("utf8")).actor.ip).toBe("not-an-ip");
  });
});

describe("checkpoints", () => {
  it("signs the head: the note opens with the verifier key and its root is the recomputed one", async () => {
    const key = await loadActiveKey(rt.db, undefined, "uab.test/audit");
    const again = await loadActiveKey(rt.db, undefined, "uab.test/audit");
    expect(again.keyId).toBe(key.keyId);
    const cp = await createCheckpoint(rt.db, key, "uab.test/audit", A, "on_demand");
    const opened = openCheckpoint(cp.note, [key.signer.verifierKey]);
    const leaves = (await entriesOf(A)).map((r) => r.leaf_hash);
    expect(opened.origin).toBe(`uab.test/audit/${A}`);
    expect(opened.treeSize).toBe(leaves.length);
    expect(Buffer.from(opened.rootHash)).toEqual(Buffer.from(rootHash(leaves)));
    expect(Buffer.from(cp.root_hash)).toEqual(Buffer.from(opened.rootHash));
    // A checkpoint of a log with no entries yet is the empty tree.
    const empty = await createCheckpoint(rt.db, key, "uab.test/audit", newId("tenant"), "scheduled");
    expect(Number(empty.tree_size)).toBe(0);
  });
});

describe("proofs", () => {
  it("proves inclusion of entries and consistency between checkpoints, against the signed roots", async () => {
    const key = await loadActiveKey(rt.db, undefined, "uab.test/audit");
    const T = newId("tenant");
    await appendEvents(
      rt.db,
      Array.from({ length: 37 }, (_, i) => event(T, i)),
    );
    const small = await createCheckpoint(rt.db, key, "uab.test/audit", T, "on_demand");
    await appendEvents(
      rt.db,
      Array.from({ length: 26 }, (_, i) => event(T, 100 + i)),
    );
    const big = await createCheckpoint(rt.db, key, "uab.test/audit", T, "on_demand");
    const root = openCheckpoint(big.note, [key.signer.verifierKey]).rootHash;
    for (const index of [0, 1, 36, 37, 62]) {
      const p = await inclusion(rt.db, T, { index }, 0);
      expect(p.treeSize).toBe(63);
      expect(verifyInclusion(p.leafHash, p.index, p.treeSize, p.path, root)).toBe(true);
      const byHash = await inclusion(rt.db, T, { leafHash: p.leafHash }, 0);
      expect(byHash.index).toBe(index);
    }
    // Against the older checkpoint; an entry after it is refused, naming the field.
    const old = await inclusion(rt.db, T, { index: 5 }, 37);
    expect(verifyInclusion(old.leafHash, 5, 37, old.path, small.root_hash)).toBe(true);
    await expect(inclusion(rt.db, T, { index: 40 }, 37)).rejects.toMatchObject({ reason: "INVALID_FIELD" });
    await expect(inclusion(rt.db, T, { index: 0 }, 38)).rejects.toMatchObject({ reason: "CHECKPOINT_NOT_FOUND" });
    await expect(inclusion(rt.db, T, { index: 99 }, 0)).rejects.toMatchObject({ reason: "AUDIT_ENTRY_NOT_FOUND" });
    const c = await consistency(rt.db, T, 37, 0);
    expect(verifyConsistency(37, 63, c.proof, small.root_hash, root)).toBe(true);
    expect(verifyConsistency(37, 63, c.proof, root, small.root_hash)).toBe(false);
    // Another tenant's log: nothing of it is visible.
    await expect(inclusion(rt.db, newId("tenant"), { index: 0 }, 0)).rejects.toMatchObject({ reason: "NO_CHECKPOINT" });
  });
});

describe("verifying the stored log", () => {
  /** Runs `fn` as the superuser with the append-only trigger off: what a DBA-level attacker can do. */
  async function tamper(fn: () => Promise<unknown>): Promise<void> {
    await sql`ALTER TABLE entries DISABLE TRIGGER USER`.execute(admin.db);
    try {
      await fn();
    } finally {
      await sql`ALTER TABLE entries ENABLE TRIGGER USER`.execute(admin.db);
    }
  }

  it("accepts an intact log, names the first changed record and refuses another log's checkpoint", async () => {
    const key = await loadActiveKey(rt.db, undefined, "uab.test/audit");
    const T = newId("tenant");
    await appendEvents(
      rt.db,
      Array.from({ length: 50 }, (_, i) => event(T, i)),
    );
    await createCheckpoint(rt.db, key, "uab.test/audit", T, "on_demand");
    const ok = await verifyStoredLog(rt.db, T, "uab.test/audit", "");
    expect(ok).toMatchObject({ ok: true, verifiedCount: 50 });

    // Change one byte of record 17's canonical form.
    await tamper(() =>
      sql`UPDATE entries SET canonical = overlay(canonical placing '\x58'::bytea from 20 for 1) WHERE log_id = ${T} AND idx = 17`.execute(
        admin.db,
      ),
    );
    const changed = await verifyStoredLog(rt.db, T, "uab.test/audit", "");
    expect(changed).toMatchObject({ ok: false, firstBadIndex: 17, failure: "changed" });

    // A checkpoint from another log (right key, wrong origin) is refused.
    const other = newId("tenant");
    await appendEvents(rt.db, [event(other, 0)]);
    const foreign = await createCheckpoint(rt.db, key, "uab.test/audit", other, "on_demand");
    await tamper(() =>
      sql`UPDATE checkpoints SET log_id = ${T}, tenant_id = ${T} WHERE id = ${foreign.id}`.execute(admin.db),
    );
    const wrongOrigin = await verifyStoredLog(rt.db, T, "uab.test/audit", foreign.id);
    expect(wrongOrigin).toMatchObject({ ok: false, failure: "bad_signature" });
  });

  it("names a removed record", async () => {
    const key = await loadActiveKey(rt.db, undefined, "uab.test/audit");
    const T = newId("tenant");
    await appendEvents(
      rt.db,
      Array.from({ length: 20 }, (_, i) => event(T, i)),
    );
    await createCheckpoint(rt.db, key, "uab.test/audit", T, "on_demand");
    await tamper(() => sql`DELETE FROM entries WHERE log_id = ${T} AND idx = 8`.execute(admin.db));
    const removed = await verifyStoredLog(rt.db, T, "uab.test/audit", "");
    expect(removed).toMatchObject({ ok: false, firstBadIndex: 8, failure: "removed" });
  });
});

describe("append-only", () => {
  it("the runtime role cannot change, delete or truncate entries", async () => {
    for (const stmt of [sql`UPDATE entries SET action = 'x'`, sql`DELETE FROM entries`, sql`TRUNCATE entries`]) {
      await expect(withTenant(rt.db, A, (tx) => stmt.execute(tx))).rejects.toMatchObject({ code: "42501" });
    }
  });

  it("the trigger refuses changes even to a superuser", async () => {
    await expect(sql`UPDATE entries SET action = 'x'`.execute(admin.db)).rejects.toThrow(/append-only/);
    await expect(sql`DELETE FROM entries`.execute(admin.db)).rejects.toThrow(/append-only/);
    await expect(sql`TRUNCATE entries`.execute(admin.db)).rejects.toThrow(/append-only/);
    expect((await entriesOf(A)).length).toBeGreaterThan(0);
  });

  it("a tenant sees only its own log", async () => {
    const seen = await withTenant(rt.db, A, (tx) => tx.selectFrom("entries").select("log_id").distinct().execute());
    expect(seen.map((r) => r.log_id)).toEqual([A]);
    const heads = await withTenant(rt.db, B, (tx) => tx.selectFrom("logs").select("id").execute());
    expect(heads.map((r) => r.id)).toEqual([B]);
  });
});
