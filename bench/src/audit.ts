/**
 * The audit log core benchmark (`BENCH_ONLY=audit`): services/audit's `appendEvents` and
 * JetStream ingestion (`startIngestion`), and libs/tlog's `verifyLog`, on a fresh database
 * stood up as services/audit/test/log.test.ts and ingest.test.ts do (the audit migrations,
 * the runtime role `uab_audit`, a superuser connection to read every log back).
 *
 * The events are realistic tenancy events: `uab.tenancy.v1.ProjectUpdated` with the project
 * packed in the `Any` payload (so `appendEvents` pays for the payload's proto3 JSON and its
 * canonical form), a user actor with session, IP and user agent, a resource, a trace context
 * and a request id. They are built before each measured stretch, never inside it.
 *
 * run.ts times and meters the pieces below; each piece also gives what its row checks, so a
 * fast but wrong run cannot pass: entry counts and log sizes against what was sent, and every
 * written log verified with `verifyLog` against its head (the chain hash, and the Merkle root
 * recomputed from the head's frontier).
 */
import { readdirSync, readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { Writable } from "node:stream";
import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type AuditDatabase, appendEvents, auditMigrations, startIngestion } from "@uab/audit";
import { createLogger, type Logger, newId } from "@uab/core";
import { createDatabase, type Database, migrateService } from "@uab/db";
import { type EventBus, eventSubject, JetStreamBus, type OutboundEvent } from "@uab/events";
import { type Event, EventSchema, PrincipalType } from "@uab/proto/gen/uab/events/v1/event_pb.js";
import { ProjectUpdatedSchema } from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import { createTestDatabase, type TestDatabase, testNatsUrl, uniqueSuffix } from "@uab/testing";
import { type LogRecord, type LogVerification, MerkleFrontier, type TrustedCheckpoint, verifyLog } from "@uab/tlog";
import { sql } from "kysely";
import { connect } from "nats";
import { cpuTicks } from "./proc.js";

/** The installation origin of the bench's checkpoints. */
export const INSTALLATION = "uab.bench/audit";

/** A fresh database with the audit schema, the runtime role's pool and a superuser reader. */
export interface AuditBench {
  readonly databaseName: string;
  /** As the audit service connects: role `uab_audit`, a pool of 4. */
  readonly rt: Database<AuditDatabase>;
  /** The superuser (bypasses row-level security), to read every log back. */
  readonly reader: Database<AuditDatabase>;
  /** Logs warn and above into {@link problems} (a failed ingestion batch is logged at warn). */
  readonly logger: Logger;
  readonly problems: { count: number; first: string[] };
  /** Opens every connection of both pools, so the CPU meter sees all their backends. */
  warmPools(): Promise<void>;
  close(): Promise<void>;
}

export async function startAuditBench(): Promise<AuditBench> {
  const problems = { count: 0, first: [] as string[] };
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) {
        if (!line || !/"level":"(warn|error|fatal)"/.test(line)) continue;
        problems.count++;
        if (problems.first.length < 3) problems.first.push(line.slice(0, 300));
      }
      done();
    },
  });
  const logger = createLogger({ service: "audit-bench", level: "info", destination: sink });
  const database: TestDatabase = await createTestDatabase("uab_bench");
  try {
    await migrateService({ url: database.url, service: "audit", migrations: auditMigrations });
  } catch (e) {
    await database.drop();
    throw e;
  }
  const rt = createDatabase<AuditDatabase>({ url: database.url, schema: "audit", role: "uab_audit", max: 4, logger });
  const reader = createDatabase<AuditDatabase>({ url: database.url, schema: "audit", max: 2, logger });
  const open = async (d: Database<AuditDatabase>, n: number) => {
    const clients = await Promise.all(Array.from({ length: n }, () => d.pool.connect()));
    for (const c of clients) c.release();
  };
  return {
    databaseName: database.name,
    rt,
    reader,
    logger,
    problems,
    warmPools: async () => {
      await open(rt, 4);
      await open(reader, 2);
    },
    async close() {
      await rt.close().catch(() => undefined);
      await reader.close().catch(() => undefined);
      await database.drop();
    },
  };
}

/** `n` fresh tenant ids. */
export function newTenants(n: number): string[] {
  return Array.from({ length: n }, () => newId("tenant"));
}

/**
 * Builds ProjectUpdated events; each tenant has 20 users and 50 projects that the events
 * pick from, so actors and resources repeat as in a real log.
 */
export class EventFactory {
  private seq = 0;
  private readonly people = new Map<string, { users: string[]; sessions: string[]; projects: string[] }>();

  private of(tenantId: string) {
    let p = this.people.get(tenantId);
    if (!p) {
      p = {
        users: Array.from({ length: 20 }, () => newId("user")),
        sessions: Array.from({ length: 20 }, () => newId("session")),
        projects: Array.from({ length: 50 }, () => newId("project")),
      };
      this.people.set(tenantId, p);
    }
    return p;
  }

  /** One event of `tenantId`. */
  event(tenantId: string): Event {
    const i = this.seq++;
    const p = this.of(tenantId);
    const u = i % p.users.length;
    const projectId = p.projects[i % p.projects.length]!;
    const now = timestampFromDate(new Date());
    const created = timestampFromDate(new Date(Date.UTC(2026, 0, 1, 0, 0, i % 86_400)));
    const slug = `project-${i % p.projects.length}`;
    return create(EventSchema, {
      id: newId("event"),
      type: ProjectUpdatedSchema.typeName,
      source: "tenancy",
      tenantId,
      actor: {
        principalId: p.users[u]!,
        principalType: PrincipalType.USER,
        principalTenantId: tenantId,
        sessionId: p.sessions[u]!,
        ipAddress: `203.0.113.${(u % 250) + 1}`,
        userAgent: "uab-console/1.4 (Mozilla/5.0; X11; Linux x86_64)",
      },
      occurredAt: now,
      resource: { type: "tenancy.project", id: projectId, displayName: `Project ${slug}` },
      payload: anyPack(
        ProjectUpdatedSchema,
        create(ProjectUpdatedSchema, {
          project: {
            id: projectId,
            tenantId,
            slug,
            displayName: `Project ${slug} (${i})`,
            description: "Renamed by the benchmark",
            createTime: created,
            updateTime: now,
            etag: `W/"${i}"`,
          },
          changedFields: ["display_name"],
        }),
      ),
      trace: { traceparent: `00-${i.toString(16).padStart(32, "0")}-0123456789abcdef-01`, tracestate: "" },
      schemaVersion: 1,
      requestId: newId("request"),
    });
  }

  /** `size` events spread round-robin over `tenants` (a batch of 1,000 over 100 tenants: 10 each). */
  batch(tenants: readonly string[], size: number): Event[] {
    return Array.from({ length: size }, (_, k) => this.event(tenants[k % tenants.length]!));
  }
}

/** What one run of {@link appendBatches} did. */
export interface AppendRun {
  readonly events: number;
  readonly appended: number;
  readonly ms: number;
  /** Milliseconds per appendEvents call. */
  readonly batchMs: number[];
}

/**
 * Calls `appendEvents` on each batch in turn (one in flight, as the ingestion consumer does)
 * until they run out or `untilMs` (a `performance.now()` deadline) passes.
 */
export async function appendBatches(
  db: Database<AuditDatabase>,
  batches: readonly (readonly Event[])[],
  untilMs = Number.POSITIVE_INFINITY,
): Promise<AppendRun> {
  const start = performance.now();
  const batchMs: number[] = [];
  let events = 0;
  let appended = 0;
  for (const b of batches) {
    const t0 = performance.now();
    appended += await appendEvents(db.db, b);
    const t1 = performance.now();
    batchMs.push(t1 - t0);
    events += b.length;
    if (t1 >= untilMs) break;
  }
  return { events, appended, ms: performance.now() - start, batchMs };
}

/** Sum of the logs' sizes and the number of entries, over `logIds`. */
export async function countLogs(
  reader: Database<AuditDatabase>,
  logIds: readonly string[],
): Promise<{ size: number; entries: number }> {
  const s = await reader.db
    .selectFrom("logs")
    .select((eb) => eb.fn.sum<string>("size").as("n"))
    .where("id", "in", logIds)
    .executeTakeFirstOrThrow();
  const e = await reader.db
    .selectFrom("entries")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where("log_id", "in", logIds)
    .executeTakeFirstOrThrow();
  return { size: Number(s.n ?? 0), entries: Number(e.n) };
}

/** A log's records (as verifyStoredLog reads them) and its head as a checkpoint to verify against. */
export async function readLog(
  reader: Database<AuditDatabase>,
  logId: string,
): Promise<{ records: LogRecord[]; head: TrustedCheckpoint; ms: number }> {
  const t0 = performance.now();
  const head = await reader.db.selectFrom("logs").selectAll().where("id", "=", logId).executeTakeFirstOrThrow();
  const rows = await reader.db
    .selectFrom("entries")
    .select(["idx", "canonical", "leaf_hash", "prev_chain_hash", "chain_hash"])
    .where("log_id", "=", logId)
    .orderBy("idx")
    .execute();
  const records: LogRecord[] = rows.map((r) => ({
    index: Number(r.idx),
    entryBytes: r.canonical,
    leafHash: r.leaf_hash,
    previousChainHash: r.prev_chain_hash,
    chainHash: r.chain_hash,
  }));
  const size = Number(head.size);
  return {
    records,
    head: {
      treeSize: size,
      rootHash: MerkleFrontier.from({ size, hashes: head.frontier }).root(),
      chainHash: head.chain_hash,
    },
    ms: performance.now() - t0,
  };
}

/**
 * Verifies every log of `logIds` against its head (chain hash, and the Merkle root of its
 * frontier): the correctness check of the append and ingestion rows.
 */
export async function checkLogs(
  reader: Database<AuditDatabase>,
  logIds: readonly string[],
): Promise<{ ok: boolean; records: number; detail: string }> {
  let records = 0;
  for (const logId of logIds) {
    const log = await readLog(reader, logId);
    const v = verifyLog(log.records, { checkpoint: log.head });
    records += log.records.length;
    if (!v.ok) return { ok: false, records, detail: `log ${logId}: ${v.failure} — ${v.detail}` };
  }
  return { ok: true, records, detail: `${logIds.length} logs verified against their heads` };
}

/** `verifyLog` over the same records again and again for about `seconds` (at least twice). */
export function verifyTimed(
  records: readonly LogRecord[],
  checkpoint: TrustedCheckpoint,
  seconds: number,
): { perS: number; passes: number; passMs: number[]; result: LogVerification } {
  const passMs: number[] = [];
  let result: LogVerification | undefined;
  const start = performance.now();
  const end = start + seconds * 1000;
  let now = start;
  while (passMs.length < 2 || now < end) {
    const t0 = performance.now();
    result = verifyLog(records, { checkpoint });
    now = performance.now();
    passMs.push(now - t0);
    if (!result.ok) break;
  }
  return {
    perS: (records.length * passMs.length) / ((now - start) / 1000),
    passes: passMs.length,
    passMs,
    result: result!,
  };
}

/**
 * The verifier must notice: one changed byte in the canonical bytes of a record in the middle
 * of the first 10,000 must be reported as `changed` at that index. Returns what went wrong, or
 * undefined.
 */
export function tamperCheck(records: readonly LogRecord[]): string | undefined {
  const slice = records.slice(0, Math.min(10_000, records.length));
  if (slice.length < 2) return "too few records";
  const k = Math.floor(slice.length / 2);
  const victim = slice[k]!;
  const bytes = Uint8Array.from(victim.entryBytes!);
  const at = bytes.length >> 1;
  bytes[at] = bytes[at]! ^ 1;
  slice[k] = { ...victim, entryBytes: bytes };
  const v = verifyLog(slice);
  return v.ok || v.failure !== "changed" || v.firstBadIndex !== k
    ? `a changed byte in entry ${k} was reported as ${v.ok ? "ok" : `${v.failure} at ${v.firstBadIndex}`}`
    : undefined;
}

/** A JetStream bus on fresh streams (unique prefix and names). */
export interface FreshJetStream {
  readonly bus: JetStreamBus;
  /** The durable consumer's ack limit (`max_ack_pending`), or undefined when it does not exist. */
  maxAckPending(consumer: string): Promise<number | undefined>;
  /** Closes the bus and deletes the streams. */
  close(): Promise<void>;
}

export async function freshJetStream(logger: Logger): Promise<FreshJetStream> {
  const s = uniqueSuffix();
  const names = { subjectPrefix: `aub${s}`, streamName: `BENCH_AUDIT_${s}`, dlqStreamName: `BENCH_AUDIT_DLQ_${s}` };
  const nc = await connect({ servers: testNatsUrl().split(","), name: "uab-bench-audit-admin" });
  let bus: JetStreamBus;
  try {
    bus = await JetStreamBus.connect({ url: testNatsUrl(), ...names, name: "uab-bench-audit", logger });
  } catch (e) {
    await nc.close();
    throw e;
  }
  const jsm = await nc.jetstreamManager();
  return {
    bus,
    async maxAckPending(consumer) {
      const info = await jsm.consumers.info(names.streamName, consumer).catch(() => undefined);
      return info?.config.max_ack_pending;
    },
    async close() {
      await bus.close().catch(() => undefined);
      try {
        await jsm.streams.delete(names.streamName).catch(() => undefined);
        await jsm.streams.delete(names.dlqStreamName).catch(() => undefined);
      } finally {
        await nc.close();
      }
    },
  };
}

/** An event as the outbox relay publishes it. */
export function outbound(e: Event): OutboundEvent {
  return { id: e.id, subject: eventSubject(e.source, e.tenantId, e.type), data: toBinary(EventSchema, e), headers: {} };
}

/**
 * Publishes `count` events spread over `tenants` in chunks of `chunk` (built per chunk, outside
 * the ingestion's measured run). Returns the publishing time (building included).
 */
export async function publishEvents(
  bus: EventBus,
  factory: EventFactory,
  tenants: readonly string[],
  count: number,
  chunk = 1_000,
): Promise<{ ms: number; bytes: number }> {
  const t0 = performance.now();
  let bytes = 0;
  for (let done = 0; done < count; done += chunk) {
    const out = factory.batch(tenants, Math.min(chunk, count - done)).map(outbound);
    for (const o of out) bytes += o.data.length;
    await bus.publish(out);
  }
  return { ms: performance.now() - t0, bytes };
}

/**
 * Starts the audit consumer (`startIngestion`, batches of up to `maxBatch`) and waits until the
 * logs of `tenants` hold `count` entries (polling the heads every 20 ms) or `timeoutMs` passes.
 */
export async function ingest(
  a: AuditBench,
  bus: EventBus,
  tenants: readonly string[],
  count: number,
  o: { maxBatch: number; timeoutMs: number },
): Promise<{ ms: number; reached: number; batches: number }> {
  let batches = 0;
  const t0 = performance.now();
  const sub = await startIngestion(a.rt.db, bus, a.logger, { maxBatch: o.maxBatch, onAppended: () => batches++ });
  try {
    const deadline = t0 + o.timeoutMs;
    for (;;) {
      const r = await a.reader.db
        .selectFrom("logs")
        .select((eb) => eb.fn.sum<string>("size").as("n"))
        .where("id", "in", tenants)
        .executeTakeFirstOrThrow();
      const reached = Number(r.n ?? 0);
      const now = performance.now();
      if (reached >= count || now > deadline) return { ms: now - t0, reached, batches };
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await sub.stop();
  }
}

/** The pids of the local nats-server(s). */
function natsPids(): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/comm`, "utf8").trim() === "nats-server") out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** Measures the CPU of the local nats-server over a window, in cores (0 when NATS runs elsewhere). */
export function startNatsMeter(): () => number {
  const pids = natsPids();
  const ticks = () => pids.reduce((n, p) => n + cpuTicks(p), 0);
  const a = ticks();
  const t0 = performance.now();
  return () => (ticks() - a) / 100 / ((performance.now() - t0) / 1000);
}

/**
 * Before a measured run: VACUUM ANALYZE the audit tables, as autovacuum would have in a
 * system that has been running (without statistics the planner answers appendEvents'
 * "already appended?" SELECT by reading the whole log, O(log size) per batch; an autovacuum
 * worker starting mid-run would also take a core), then a CHECKPOINT, so the dirty pages of
 * the previous run are not flushed during this one.
 */
export async function settleDatabase(a: AuditBench): Promise<void> {
  await sql`VACUUM (ANALYZE) audit.logs, audit.entries`.execute(a.reader.db);
  await sql`CHECKPOINT`.execute(a.reader.db);
}
