/**
 * Tampering with the STORED log: a tenant's log of a few hundred entries is built with
 * appendEvents and checkpointed, then its rows in audit.entries are changed directly, as a
 * database superuser can (the append-only trigger is skipped with `SET LOCAL
 * session_replication_role = replica`): one byte of the canonical bytes, of the leaf hash,
 * of the chain hash or of the previous chain hash; the index moved out of the log; a row
 * deleted (with and without renumbering the rest); a copy of a row or a fabricated
 * well-formed row inserted (the rows after it renumbered); two rows swapped; one row
 * rewritten with the chain recomputed after it. verifyStoredLog must fail and name the
 * failure and the first bad index.
 *
 * The fixed cases are committed and verified through the runtime role's pool, then the rows
 * are restored. The randomized battery (thousands of mutations) applies each one in a
 * transaction on one connection and verifies through that same connection before rolling
 * it back: verifyStoredLog gets a Kysely whose transactions are savepoints of the open
 * transaction (and which acts as the runtime role there), so it reads the tampered rows as
 * they would be after a commit, and nothing needs restoring. The fixed cases check that this
 * gives the same verdicts as the committed path.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { newId } from "@uab/core";
import { createDatabase, type Database, migrateService, withTenant } from "@uab/db";
import { type Event, EventSchema } from "@uab/proto/gen/uab/events/v1/event_pb.js";
import { createTestDatabase, seededRandom, type TestDatabase } from "@uab/testing";
import { chainHash, genesisChainHash, leafHash } from "@uab/tlog";
import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  sql,
} from "kysely";
import {
  type AuditDatabase,
  appendEvents,
  auditMigrations,
  canonicalEntry,
  createCheckpoint,
  factsOf,
  loadActiveKey,
  type StoredLogVerification,
  verifyStoredLog,
} from "../src/index.js";

const INSTALLATION = "uab.test/audit-tamper";
/** Entries per log. */
const N = 300;
/** Random mutations in the battery, spread over the workers' logs. */
const MUTATIONS = 2_000;
/** Logs (each with its own connection) the battery runs on in parallel. */
const WORKERS = 2;
const SEED = 0x5eed_a0d1;

let database: TestDatabase;
/** The runtime role, as the service runs. */
let rt: Database<AuditDatabase>;
/** The superuser: the attacker. */
let admin: Database<AuditDatabase>;

/** What the tests use of a pooled pg client. */
interface SqlClient {
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>;
  release(err?: Error | boolean): void;
}

interface StoredEntry {
  readonly canonical: Uint8Array;
  readonly leaf: Uint8Array;
  readonly prev: Uint8Array;
  readonly chain: Uint8Array;
}

interface Log {
  readonly id: string;
  readonly checkpointId: string;
  /** The entries as appended, by index. */
  readonly entries: readonly StoredEntry[];
}

const logs: Log[] = [];
/** The columns of audit.entries, in order (for copying a row). */
let columns: string[] = [];

function event(tenantId: string, i: number): Event {
  return create(EventSchema, {
    id: newId("event"),
    type: i % 7 === 0 ? "uab.tenancy.v1.ProjectDeleted" : "uab.tenancy.v1.ProjectCreated",
    source: "tenancy",
    tenantId,
    occurredAt: timestampFromDate(new Date(Date.UTC(2026, 10, 22, 0, 0, i))),
    actor: {
      principalId: `usr_${String(i % 13).padStart(26, "0")}`,
      principalType: 1,
      ipAddress: `10.0.${i % 250}.1`,
      userAgent: `agent/${i % 5}`,
    },
    resource: { type: "tenancy.project", id: `prj_${String(i).padStart(26, "0")}`, displayName: `Project ${i}` },
    requestId: `req_${i}`,
  });
}

beforeAll(async () => {
  database = await createTestDatabase();
  await migrateService({ url: database.url, service: "audit", migrations: auditMigrations });
  rt = createDatabase<AuditDatabase>({ url: database.url, schema: "audit", role: "uab_audit", max: 2 });
  admin = createDatabase<AuditDatabase>({ url: database.url, schema: "audit", max: WORKERS + 2 });
  const key = await loadActiveKey(rt.db, undefined, INSTALLATION);
  for (let w = 0; w < WORKERS; w++) {
    const id = newId("tenant");
    // Three batches, so the log is made by several appends.
    for (const [from, to] of [
      [0, 100],
      [100, 210],
      [210, N],
    ] as const) {
      expect(
        await appendEvents(
          rt.db,
          Array.from({ length: to - from }, (_, i) => event(id, from + i)),
        ),
      ).toBe(to - from);
    }
    const checkpoint = await createCheckpoint(rt.db, key, INSTALLATION, id, "on_demand");
    expect(Number(checkpoint.tree_size)).toBe(N);
    const rows = await admin.db.selectFrom("entries").selectAll().where("log_id", "=", id).orderBy("idx").execute();
    logs.push({
      id,
      checkpointId: checkpoint.id,
      entries: rows.map((r) => ({
        canonical: r.canonical,
        leaf: r.leaf_hash,
        prev: r.prev_chain_hash,
        chain: r.chain_hash,
      })),
    });
  }
  // The original rows, to restore after a committed tamper.
  await sql`CREATE TABLE entries_snapshot AS SELECT * FROM entries`.execute(admin.db);
  const cols = await sql<{ column_name: string }>`
    SELECT column_name FROM information_schema.columns
    WHERE table_schema = 'audit' AND table_name = 'entries' ORDER BY ordinal_position`.execute(admin.db);
  columns = cols.rows.map((r) => r.column_name);
}, 30_000);

afterAll(async () => {
  await rt?.close();
  await admin?.close();
  await database?.drop();
});

// ---------------------------------------------------------------------------------------------
// Mutations

type HashColumn = "canonical" | "leaf_hash" | "chain_hash" | "prev_chain_hash";
const BYTE_COLUMNS: readonly HashColumn[] = ["canonical", "leaf_hash", "chain_hash", "prev_chain_hash"];

type Mutation =
  /** One byte of a column of entry `index` XORed with `xor` (1..255). */
  | {
      readonly kind: "flip";
      readonly column: HashColumn;
      readonly index: number;
      readonly byte: number;
      readonly xor: number;
    }
  /** Entry `index` given the index `to` (outside 0..n-1). */
  | { readonly kind: "move"; readonly index: number; readonly to: number }
  /** Entry `index` deleted; with `renumber`, the entries after it moved down by one. */
  | { readonly kind: "delete"; readonly index: number; readonly renumber: boolean }
  /** A copy of entry `from` inserted at `at` (the entries from `at` on moved up by one). */
  | { readonly kind: "copy"; readonly from: number; readonly at: number }
  /** A fabricated well-formed entry (its own hashes right, chained to entry at-1) inserted at `at`. */
  | { readonly kind: "forge"; readonly at: number }
  /** Entries `a` and `b` swapped (their indices exchanged). */
  | { readonly kind: "swap"; readonly a: number; readonly b: number }
  /** Entry `index` rewritten (new content, its hashes right) and the chain recomputed to the end. */
  | { readonly kind: "rechain"; readonly index: number };

interface Expected {
  readonly failure: "changed" | "removed" | "inserted" | "reordered" | "root_mismatch";
  readonly firstBadIndex?: number;
}

/**
 * The verdict a mutation must get on a log of `n` entries verified against its checkpoint
 * of size n. Not detectable, hence never generated: a copy of the last entry inserted right
 * before it, which leaves entries 0..n-1 hash for hash as they were (the extra row is past
 * the checkpoint).
 */
function expected(m: Mutation, n: number): Expected {
  switch (m.kind) {
    case "flip":
      return { failure: "changed", firstBadIndex: m.index };
    case "move":
    case "delete":
      return { failure: "removed", firstBadIndex: m.index };
    case "copy":
      // A copy right before its original: the second of the two is the one out of place.
      if (m.from === m.at) return { failure: "inserted", firstBadIndex: m.at + 1 };
      // The last entry, pushed past the checkpoint, is seen once, out of its place.
      if (m.from === n - 1) return { failure: "reordered", firstBadIndex: m.at };
      return { failure: "inserted", firstBadIndex: m.at };
    case "forge":
      // Before the last entry: the last one is pushed past the checkpoint, and the
      // fabricated one chains correctly, so only the signed chain head and root differ.
      return m.at === n - 1 ? { failure: "root_mismatch" } : { failure: "inserted", firstBadIndex: m.at };
    case "swap":
      return { failure: "reordered", firstBadIndex: Math.min(m.a, m.b) };
    case "rechain":
      return { failure: "root_mismatch" };
  }
}

function describeMutation(m: Mutation): string {
  switch (m.kind) {
    case "flip":
      return `flip byte ${m.byte} of ${m.column} of entry ${m.index} (xor ${m.xor})`;
    case "move":
      return `move entry ${m.index} to index ${m.to}`;
    case "delete":
      return `delete entry ${m.index}${m.renumber ? " and renumber the rest" : ""}`;
    case "copy":
      return `insert a copy of entry ${m.from} at ${m.at}`;
    case "forge":
      return `insert a fabricated entry at ${m.at}`;
    case "swap":
      return `swap entries ${m.a} and ${m.b}`;
    case "rechain":
      return `rewrite entry ${m.index} and recompute the chain after it`;
  }
}

/** Moves the entries of `log` with index ≥ `from` by `by` (±1), without transient key clashes. */
async function shift(c: SqlClient, log: Log, from: number, by: 1 | -1): Promise<void> {
  await c.query("UPDATE entries SET idx = idx + 1000000 WHERE log_id = $1 AND idx >= $2", [log.id, from]);
  await c.query("UPDATE entries SET idx = idx - 1000000 + $2 WHERE log_id = $1 AND idx >= 1000000", [log.id, by]);
}

/** Applies `m` to the rows of `log` (the caller bypasses the trigger). */
async function apply(c: SqlClient, log: Log, m: Mutation): Promise<void> {
  const n = log.entries.length;
  switch (m.kind) {
    case "flip": {
      const r = await c.query(
        `UPDATE entries SET ${m.column} = set_byte(${m.column}, $3, get_byte(${m.column}, $3) # $4)
         WHERE log_id = $1 AND idx = $2`,
        [log.id, m.index, m.byte, m.xor],
      );
      expect(r.rowCount).toBe(1);
      return;
    }
    case "move": {
      const r = await c.query("UPDATE entries SET idx = $3 WHERE log_id = $1 AND idx = $2", [log.id, m.index, m.to]);
      expect(r.rowCount).toBe(1);
      return;
    }
    case "delete": {
      const r = await c.query("DELETE FROM entries WHERE log_id = $1 AND idx = $2", [log.id, m.index]);
      expect(r.rowCount).toBe(1);
      if (m.renumber) await shift(c, log, m.index + 1, -1);
      return;
    }
    case "copy": {
      await shift(c, log, m.at, 1);
      const source = m.from >= m.at ? m.from + 1 : m.from;
      // A new row id, and an event id column that is not a duplicate of the original's (the
      // unique key would refuse it); the hashed record, with its event id, is the original's.
      const list = columns.map((col) =>
        col === "idx" ? "$3::bigint" : col === "id" ? "$4" : col === "event_id" ? "event_id || '.copy'" : col,
      );
      const r = await c.query(
        `INSERT INTO entries (${columns.join(", ")})
         SELECT ${list.join(", ")} FROM entries WHERE log_id = $1 AND idx = $2`,
        [log.id, source, m.at, newId("auditEntry")],
      );
      expect(r.rowCount).toBe(1);
      return;
    }
    case "forge": {
      await shift(c, log, m.at, 1);
      const facts = factsOf(event(log.id, 100_000 + m.at));
      const canonical = canonicalEntry(log.id, m.at, new Date(), facts);
      const leaf = leafHash(canonical);
      const prev = m.at === 0 ? genesisChainHash() : log.entries[m.at - 1]!.chain;
      await c.query(
        `INSERT INTO entries (log_id, idx, tenant_id, id, event_id, event_type, source, action, outcome,
           occur_time, record_time, canonical, leaf_hash, prev_chain_hash, chain_hash)
         VALUES ($1, $2, $1, $3, $4, $5, $6, $7, $8, $9, now(), $10, $11, $12, $13)`,
        [
          log.id,
          m.at,
          newId("auditEntry"),
          facts.eventId,
          facts.eventType,
          facts.source,
          facts.action,
          facts.outcome,
          facts.occurTime,
          Buffer.from(canonical),
          Buffer.from(leaf),
          Buffer.from(prev),
          Buffer.from(chainHash(prev, leaf)),
        ],
      );
      return;
    }
    case "swap": {
      await c.query("UPDATE entries SET idx = -1 WHERE log_id = $1 AND idx = $2", [log.id, m.a]);
      await c.query("UPDATE entries SET idx = $2 WHERE log_id = $1 AND idx = $3", [log.id, m.a, m.b]);
      await c.query("UPDATE entries SET idx = $2 WHERE log_id = $1 AND idx = -1", [log.id, m.b]);
      return;
    }
    case "rechain": {
      const canonical = canonicalEntry(log.id, m.index, new Date(), factsOf(event(log.id, 200_000 + m.index)));
      const idx: number[] = [];
      const leaves: Buffer[] = [];
      const prevs: Buffer[] = [];
      const chains: Buffer[] = [];
      let prev = log.entries[m.index]!.prev;
      for (let i = m.index; i < n; i++) {
        const leaf = i === m.index ? leafHash(canonical) : log.entries[i]!.leaf;
        const chain = chainHash(prev, leaf);
        idx.push(i);
        leaves.push(Buffer.from(leaf));
        prevs.push(Buffer.from(prev));
        chains.push(Buffer.from(chain));
        prev = chain;
      }
      await c.query("UPDATE entries SET canonical = $3 WHERE log_id = $1 AND idx = $2", [
        log.id,
        m.index,
        Buffer.from(canonical),
      ]);
      const r = await c.query(
        `UPDATE entries e SET leaf_hash = v.leaf, prev_chain_hash = v.prev, chain_hash = v.chain
         FROM unnest($2::bigint[], $3::bytea[], $4::bytea[], $5::bytea[]) AS v(idx, leaf, prev, chain)
         WHERE e.log_id = $1 AND e.idx = v.idx`,
        [log.id, idx, leaves, prevs, chains],
      );
      expect(r.rowCount).toBe(n - m.index);
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Applying and verifying

async function connect(): Promise<SqlClient> {
  return (await admin.pool.connect()) as SqlClient;
}

/** Applies `m` for good, as the superuser with the trigger bypassed. */
async function tamperCommitted(log: Log, m: Mutation): Promise<void> {
  const c = await connect();
  try {
    await c.query("BEGIN");
    await c.query("SET LOCAL session_replication_role = replica");
    await apply(c, log, m);
    await c.query("COMMIT");
  } catch (e) {
    await c.query("ROLLBACK");
    throw e;
  } finally {
    c.release();
  }
}

/** Puts the original rows of `log` back and checks they are exactly the original ones. */
async function restore(log: Log): Promise<void> {
  const c = await connect();
  try {
    await c.query("BEGIN");
    await c.query("SET LOCAL session_replication_role = replica");
    await c.query("DELETE FROM entries WHERE log_id = $1", [log.id]);
    await c.query("INSERT INTO entries SELECT * FROM entries_snapshot WHERE log_id = $1", [log.id]);
    await c.query("COMMIT");
  } catch (e) {
    await c.query("ROLLBACK");
    throw e;
  } finally {
    c.release();
  }
  const diff = await sql<{ n: string }>`
    SELECT count(*) AS n FROM (
      (SELECT * FROM entries WHERE log_id = ${log.id} EXCEPT ALL SELECT * FROM entries_snapshot WHERE log_id = ${log.id})
      UNION ALL
      (SELECT * FROM entries_snapshot WHERE log_id = ${log.id} EXCEPT ALL SELECT * FROM entries WHERE log_id = ${log.id})
    ) d`.execute(admin.db);
  expect(Number(diff.rows[0]!.n)).toBe(0);
}

/**
 * A Kysely on one connection that is inside an open transaction: its transactions are
 * savepoints of that transaction, so whatever runs through it sees the transaction's
 * uncommitted changes.
 */
function kyselyInTransaction(client: SqlClient): Kysely<AuditDatabase> {
  const connection: DatabaseConnection = {
    async executeQuery<R>(q: CompiledQuery) {
      const r = await client.query(q.sql, [...q.parameters]);
      return { rows: r.rows as R[], ...(r.rowCount === null ? {} : { numAffectedRows: BigInt(r.rowCount) }) };
    },
    streamQuery() {
      throw new Error("streaming is not supported inside the tamper transaction");
    },
  };
  const driver: Driver = {
    init: async () => {},
    acquireConnection: async () => connection,
    beginTransaction: async (c) => {
      await c.executeQuery(CompiledQuery.raw("SAVEPOINT verify"));
    },
    commitTransaction: async (c) => {
      await c.executeQuery(CompiledQuery.raw("RELEASE SAVEPOINT verify"));
    },
    rollbackTransaction: async (c) => {
      await c.executeQuery(CompiledQuery.raw("ROLLBACK TO SAVEPOINT verify"));
    },
    releaseConnection: async () => {},
    destroy: async () => {},
  };
  return new Kysely<AuditDatabase>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => driver,
      createIntrospector: (db) => new PostgresIntrospector(db),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
  });
}

/** One connection that tampers in a transaction, verifies through it and rolls back. */
interface Tamperer {
  verify(m: Mutation | undefined): Promise<StoredLogVerification>;
  close(): Promise<void>;
}

async function tamperer(log: Log): Promise<Tamperer> {
  const client = await connect();
  const db = kyselyInTransaction(client);
  return {
    async verify(m) {
      await client.query("BEGIN");
      try {
        await client.query("SET LOCAL session_replication_role = replica");
        if (m) await apply(client, log, m);
        // Verified as the service verifies: the runtime role, scoped to the tenant (RLS).
        await client.query("SET LOCAL ROLE uab_audit");
        return await verifyStoredLog(db, log.id, INSTALLATION, log.checkpointId);
      } finally {
        await client.query("ROLLBACK");
      }
    },
    async close() {
      await db.destroy();
      client.release();
    },
  };
}

function verdict(v: StoredLogVerification): { ok: boolean; failure?: string; firstBadIndex?: number } {
  return {
    ok: v.ok,
    ...(v.failure === undefined ? {} : { failure: v.failure }),
    ...(v.firstBadIndex === undefined ? {} : { firstBadIndex: v.firstBadIndex }),
  };
}

// ---------------------------------------------------------------------------------------------

describe("tampering with the stored entries of a log", () => {
  it("the intact logs verify against their checkpoints, directly and through the tamper transaction", async () => {
    for (const log of logs) {
      expect(await verifyStoredLog(rt.db, log.id, INSTALLATION, log.checkpointId)).toMatchObject({
        ok: true,
        verifiedCount: N,
      });
      const t = await tamperer(log);
      try {
        expect(await t.verify(undefined)).toMatchObject({ ok: true, verifiedCount: N });
      } finally {
        await t.close();
      }
    }
  });

  it("the rows can be changed only by a superuser who bypasses the append-only trigger", async () => {
    const log = logs[0]!;
    // The runtime role: no UPDATE or DELETE grant, and no way to skip triggers.
    for (const stmt of [
      sql`UPDATE entries SET canonical = canonical WHERE log_id = ${log.id} AND idx = 0`,
      sql`DELETE FROM entries WHERE log_id = ${log.id} AND idx = 0`,
      sql`SET LOCAL session_replication_role = replica`,
    ]) {
      await expect(withTenant(rt.db, log.id, (tx) => stmt.execute(tx))).rejects.toMatchObject({ code: "42501" });
    }
    // The superuser without the bypass: the trigger refuses.
    for (const stmt of [
      sql`UPDATE entries SET canonical = canonical WHERE log_id = ${log.id} AND idx = 0`,
      sql`DELETE FROM entries WHERE log_id = ${log.id} AND idx = 0`,
    ]) {
      await expect(stmt.execute(admin.db)).rejects.toMatchObject({
        code: "42501",
        message: expect.stringMatching(/append-only/),
      });
    }
    // With it, a change goes through (rolled back here).
    const c = await connect();
    try {
      await c.query("BEGIN");
      await c.query("SET LOCAL session_replication_role = replica");
      const r = await c.query("DELETE FROM entries WHERE log_id = $1 AND idx = 0", [log.id]);
      expect(r.rowCount).toBe(1);
    } finally {
      await c.query("ROLLBACK");
      c.release();
    }
    expect(await verifyStoredLog(rt.db, log.id, INSTALLATION, log.checkpointId)).toMatchObject({ ok: true });
  });

  const fixed: [string, Mutation][] = [
    ["one byte of entry 17's canonical bytes", { kind: "flip", column: "canonical", index: 17, byte: 40, xor: 0x20 }],
    ["one byte of entry 0's leaf hash", { kind: "flip", column: "leaf_hash", index: 0, byte: 0, xor: 0x01 }],
    ["one byte of entry 150's chain hash", { kind: "flip", column: "chain_hash", index: 150, byte: 31, xor: 0x80 }],
    [
      "one byte of the last entry's chain hash",
      { kind: "flip", column: "chain_hash", index: N - 1, byte: 7, xor: 0xff },
    ],
    [
      "one byte of entry 42's previous chain hash",
      { kind: "flip", column: "prev_chain_hash", index: 42, byte: 3, xor: 9 },
    ],
    ["entry 99's index moved past the end", { kind: "move", index: 99, to: N + 5 }],
    ["entry 5's index made negative", { kind: "move", index: 5, to: -1 }],
    ["the last entry's index moved past the end", { kind: "move", index: N - 1, to: N + 1 }],
    ["entry 123 deleted", { kind: "delete", index: 123, renumber: false }],
    ["entry 0 deleted", { kind: "delete", index: 0, renumber: false }],
    ["the last entry deleted", { kind: "delete", index: N - 1, renumber: false }],
    ["entry 200 deleted and the entries after it renumbered", { kind: "delete", index: 200, renumber: true }],
    ["entry 0 deleted and the entries after it renumbered", { kind: "delete", index: 0, renumber: true }],
    ["a copy of entry 10 inserted at 250", { kind: "copy", from: 10, at: 250 }],
    ["a copy of entry 60 inserted right before it", { kind: "copy", from: 60, at: 60 }],
    ["a copy of entry 61 inserted right after it", { kind: "copy", from: 61, at: 62 }],
    ["a copy of the last entry inserted at 100", { kind: "copy", from: N - 1, at: 100 }],
    ["a fabricated well-formed entry inserted at 77", { kind: "forge", at: 77 }],
    ["a fabricated well-formed entry inserted at 0", { kind: "forge", at: 0 }],
    ["a fabricated well-formed entry inserted before the last", { kind: "forge", at: N - 1 }],
    ["entries 30 and 31 swapped", { kind: "swap", a: 30, b: 31 }],
    ["entries 3 and 280 swapped", { kind: "swap", a: 3, b: 280 }],
    ["entry 150 rewritten and the chain recomputed to the end", { kind: "rechain", index: 150 }],
  ];
  const cases = fixed.map(([name, m]): [string, Mutation, Expected] => [name, m, expected(m, N)]);

  it.each(cases)("committed, then restored: %s", async (_name, m, want) => {
    const log = logs[0]!;
    await tamperCommitted(log, m);
    let committed: StoredLogVerification;
    try {
      committed = await verifyStoredLog(rt.db, log.id, INSTALLATION, log.checkpointId);
    } finally {
      await restore(log);
    }
    expect(verdict(committed)).toEqual({ ok: false, ...want });
    // The tamper transaction gives the same verdict.
    const t = await tamperer(log);
    try {
      expect(verdict(await t.verify(m))).toEqual(verdict(committed));
    } finally {
      await t.close();
    }
    expect(await verifyStoredLog(rt.db, log.id, INSTALLATION, log.checkpointId)).toMatchObject({
      ok: true,
      verifiedCount: N,
    });
  });

  it(`detects all of ${MUTATIONS} random mutations and names their first bad index`, async () => {
    const rand = seededRandom(SEED);
    const int = (k: number) => Math.floor(rand() * k);
    const random = (log: Log): Mutation => {
      const n = log.entries.length;
      for (;;) {
        switch (int(11)) {
          case 0:
          case 1:
          case 2:
          case 3: {
            const column = BYTE_COLUMNS[int(4)]!;
            const index = int(n);
            const length = column === "canonical" ? log.entries[index]!.canonical.length : 32;
            return { kind: "flip", column, index, byte: int(length), xor: 1 + int(255) };
          }
          case 4:
            return { kind: "move", index: int(n), to: n + int(1_000) };
          case 5:
            return { kind: "move", index: int(n), to: -1 - int(1_000) };
          case 6:
            return { kind: "delete", index: int(n), renumber: false };
          case 7:
            return { kind: "delete", index: int(n), renumber: true };
          case 8: {
            const from = int(n);
            const at = int(n);
            if (from === n - 1 && at === n - 1) continue; // not detectable (see expected())
            return { kind: "copy", from, at };
          }
          case 9:
            return { kind: "forge", at: int(n) };
          default: {
            const a = int(n);
            let b = int(n - 1);
            if (b >= a) b++;
            return { kind: "swap", a, b };
          }
        }
      }
    };
    // Drawn up front, so the sequence does not depend on how the workers interleave.
    const plan = logs.map(() => [] as Mutation[]);
    for (let i = 0; i < MUTATIONS; i++) plan[i % WORKERS]!.push(random(logs[i % WORKERS]!));

    const wrong: string[] = [];
    const byKind = new Map<string, number>();
    let detected = 0;
    let controls = 0;
    await Promise.all(
      logs.map(async (log, w) => {
        const t = await tamperer(log);
        try {
          for (const [i, m] of plan[w]!.entries()) {
            const got = verdict(await t.verify(m));
            const want = { ok: false, ...expected(m, N) };
            if (!got.ok) detected++;
            byKind.set(m.kind, (byKind.get(m.kind) ?? 0) + 1);
            if (JSON.stringify(got) !== JSON.stringify(want)) {
              wrong.push(`${describeMutation(m)}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
            }
            // Now and then, nothing changed: the harness still says ok (it is not failing everything).
            if (i % 100 === 0) {
              expect(await t.verify(undefined)).toMatchObject({ ok: true, verifiedCount: N });
              controls++;
            }
          }
        } finally {
          await t.close();
        }
      }),
    );
    expect(wrong.slice(0, 20)).toEqual([]);
    expect(detected).toBe(MUTATIONS);
    expect(controls).toBeGreaterThan(0);
    // Every kind was drawn many times.
    for (const kind of ["flip", "move", "delete", "copy", "forge", "swap"]) {
      expect(byKind.get(kind) ?? 0).toBeGreaterThan(MUTATIONS / 20);
    }
    // And the stored logs were never changed.
    for (const log of logs) {
      expect(await verifyStoredLog(rt.db, log.id, INSTALLATION, log.checkpointId)).toMatchObject({
        ok: true,
        verifiedCount: N,
      });
    }
  }, 90_000);
});
