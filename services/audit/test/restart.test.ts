/**
 * No gap and no duplicate in a log when the consumer, NATS or PostgreSQL restarts
 * mid-stream. Thousands of events of a few tenants are written to a producer's outbox and
 * relayed to JetStream continuously while the failure happens; at the end each tenant's log
 * holds every produced event exactly once, at indices 0..n-1, nothing was dead-lettered, the
 * durable consumer has nothing left to deliver, and the stored log verifies against a fresh
 * signed checkpoint.
 *
 * - The consumer runs in a child process (fixtures/audit-consumer.mjs, the built package:
 *   `npx tsc -b` first) and is killed with SIGKILL while it appends, then started again.
 * - NATS is a private nats-server started by this file (never the shared one), stopped with
 *   SIGTERM and, in a second case, SIGKILL, and started again on the same port and store
 *   directory; the relay and the consumer reconnect by themselves.
 * - The consumer's PostgreSQL backends are terminated several times while a batch is in
 *   flight (only this file's database, only the audit pool's connections).
 *
 * startIngestion gives the durable consumer JetStream's default ack wait of 30 s (it has no
 * option for it), so deliveries a dead consumer held come back only after 30 s. To keep each
 * case within seconds the test shortens the ack wait of the durable consumer on the server
 * (as an operator could) after every start of the consumer: starting it resets the
 * configuration to its own.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import { createLogger, newId } from "@uab/core";
import { createDatabase, type Database, migrateService, withTenant } from "@uab/db";
import {
  appendEvent,
  type EventsTables,
  eventsMigrations,
  JetStreamBus,
  type OutboxRelay,
  type Subscription,
  startOutboxRelay,
} from "@uab/events";
import { TenantPurgedSchema } from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import { createTestDatabase, eventually, type TestDatabase, testNatsUrl, uniqueSuffix } from "@uab/testing";
import { sql } from "kysely";
import {
  AUDIT_CONSUMER,
  type AuditDatabase,
  auditMigrations,
  createCheckpoint,
  loadActiveKey,
  startIngestion,
  verifyStoredLog,
} from "../src/index.js";

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), "fixtures/audit-consumer.mjs");
const NATS_SERVER = "/usr/sbin/nats-server";
const INSTALLATION = "uab.test/audit-restart";
/** The application_name of the audit pool (createDatabase's default, `uab-<schema>`). */
const AUDIT_APPLICATION = "uab-audit";
/** The ack wait the test gives the durable consumer instead of the default 30 s. */
const ACK_WAIT_MS = 3_000;
const MAX_BATCH = 200;

const logger = createLogger({ service: "audit-restart-test", level: process.env.UAB_TEST_LOG_LEVEL ?? "silent" });
let database: TestDatabase;
/** The consumer's pool in this process (the runtime role, default application name). */
let audit: Database<AuditDatabase>;
/** Checkpoints and verification, as the runtime role, on a pool no termination touches. */
let verifier: Database<AuditDatabase>;
/** The superuser: reads every log and terminates backends. */
let reader: Database<AuditDatabase>;
let source: Database<EventsTables>;

/** Cleanups of the running test, run in reverse order after it, failed or not. */
let deferred: (() => Promise<unknown>)[] = [];
const defer = (fn: () => Promise<unknown>) => deferred.push(fn);
/** Child processes of the running test, killed after it. */
const processes = new Set<Proc>();
// And if jest itself goes away, no consumer or private nats-server outlives it.
process.once("exit", () => {
  for (const p of processes) p.child.kill("SIGKILL");
});

beforeAll(async () => {
  database = await createTestDatabase();
  await migrateService({ url: database.url, service: "audit", migrations: auditMigrations });
  await migrateService({ url: database.url, service: "producer", migrations: eventsMigrations() });
  audit = createDatabase<AuditDatabase>({ url: database.url, schema: "audit", role: "uab_audit", max: 4 });
  verifier = createDatabase<AuditDatabase>({
    url: database.url,
    schema: "audit",
    role: "uab_audit",
    max: 2,
    applicationName: "audit-restart-verifier",
  });
  reader = createDatabase<AuditDatabase>({
    url: database.url,
    schema: "audit",
    max: 2,
    applicationName: "audit-restart-reader",
  });
  source = createDatabase<EventsTables>({ url: database.url, schema: "producer", role: "uab_producer", max: 4 });
});

afterEach(async () => {
  const fns = deferred.reverse();
  deferred = [];
  for (const fn of fns) {
    try {
      await fn();
    } catch (err) {
      logger.warn({ err }, "cleanup failed");
    }
  }
  // Processes last: the clients above close while their server still runs.
  const procs = [...processes];
  processes.clear();
  await Promise.allSettled(procs.map((p) => p.stop("SIGKILL")));
});

afterAll(async () => {
  await Promise.allSettled([...processes].map((p) => p.stop("SIGKILL")));
  await audit?.close();
  await verifier?.close();
  await reader?.close();
  await source?.close();
  await database?.drop();
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Processes

interface Proc {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (unless it already exited) and waits for the exit. */
  stop(signal: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts a process and resolves once its output (stdout and stderr) matches `ready`. */
async function startProcess(
  what: string,
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
): Promise<Proc> {
  const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let exitStatus: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once("exit", (code, signal) => {
      exitStatus = { code, signal };
      r(exitStatus);
    }),
  );
  const proc: Proc = {
    child,
    output: () => out,
    exited,
    async stop(signal, timeoutMs = 15_000) {
      if (!exitStatus) child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what} did not exit within ${timeoutMs} ms of ${signal}`)),
          timeoutMs,
        );
      });
      try {
        return await Promise.race([exited, timeout]);
      } catch (e) {
        child.kill("SIGKILL");
        throw e;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  // Killed after the test whatever happens (a no-op once it exited).
  processes.add(proc);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} not ready within 15 s:\n${out}`)), 15_000);
    const onData = (c: Buffer) => {
      out += c.toString();
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited before it was ready (${code ?? signal}):\n${out}`));
    });
  });
  return proc;
}

/** The environment of a child: this one's, without jest's node options. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  return env;
}

interface Names {
  readonly url: string;
  readonly prefix: string;
  readonly stream: string;
  readonly dlq: string;
}

function names(url: string): Names {
  const s = uniqueSuffix();
  return { url, prefix: `ar${s}`, stream: `EVT_${s}`, dlq: `DLQ_${s}` };
}

/** The audit consumer in a child process (the built package). */
function startConsumerProcess(n: Names): Promise<Proc> {
  return startProcess(
    "audit consumer",
    process.execPath,
    [FIXTURE],
    childEnv({
      AUDIT_DATABASE_URL: database.url,
      AUDIT_NATS_URL: n.url,
      AUDIT_SUBJECT_PREFIX: n.prefix,
      AUDIT_STREAM: n.stream,
      AUDIT_DLQ_STREAM: n.dlq,
      AUDIT_MAX_BATCH: String(MAX_BATCH),
    }),
    /^ready$/m,
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

/** A private JetStream-enabled nats-server on `port` storing in `dir`. */
function startNats(port: number, dir: string): Promise<Proc> {
  return startProcess(
    "nats-server",
    NATS_SERVER,
    ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir],
    childEnv({}),
    /Server is ready/,
  );
}

// ---------------------------------------------------------------------------------------------
// The bus, the relay and the durable consumer

/** What the test needs of the bus's JetStream manager (a private field of JetStreamBus). */
interface JetStreamAdmin {
  readonly consumers: {
    update(stream: string, durable: string, config: { ack_wait: number }): Promise<unknown>;
    info(
      stream: string,
      durable: string,
    ): Promise<{ num_pending: number; num_ack_pending: number; config: { ack_wait?: number } }>;
  };
  readonly streams: { delete(stream: string): Promise<boolean> };
}

function jetStreamAdmin(bus: JetStreamBus): JetStreamAdmin {
  const jsm = (bus as unknown as { jsm?: JetStreamAdmin }).jsm;
  if (!jsm?.consumers || !jsm.streams) throw new Error("JetStreamBus no longer keeps its manager in `jsm`");
  return jsm;
}

/** Shortens the durable audit consumer's ack wait (see the file comment). */
async function shortenAckWait(bus: JetStreamBus, n: Names): Promise<void> {
  const admin = jetStreamAdmin(bus);
  await admin.consumers.update(n.stream, AUDIT_CONSUMER, { ack_wait: ACK_WAIT_MS * 1_000_000 });
  const info = await admin.consumers.info(n.stream, AUDIT_CONSUMER);
  expect(info.config.ack_wait).toBe(ACK_WAIT_MS * 1_000_000);
}

async function connectBus(n: Names, name: string): Promise<JetStreamBus> {
  const bus = await JetStreamBus.connect({
    url: n.url,
    subjectPrefix: n.prefix,
    streamName: n.stream,
    dlqStreamName: n.dlq,
    name,
    logger,
  });
  defer(() => bus.close());
  return bus;
}

async function startRelay(bus: JetStreamBus): Promise<OutboxRelay> {
  // Quick retries: the outages here last seconds, not the default backoff's 30 s.
  const relay = await startOutboxRelay({
    db: source.db,
    pool: source.pool,
    bus,
    logger,
    pollIntervalMs: 100,
    maxBackoffMs: 1_000,
  });
  defer(() => relay.stop());
  return relay;
}

async function startConsumerHere(bus: JetStreamBus): Promise<Subscription> {
  const sub = await startIngestion(audit.db, bus, logger, { maxBatch: MAX_BATCH });
  defer(() => sub.stop());
  return sub;
}

// ---------------------------------------------------------------------------------------------
// Producing and checking

interface Production {
  /** Event ids by tenant, for the transactions that committed. */
  readonly ids: ReadonlyMap<string, readonly string[]>;
  readonly produced: () => number;
  readonly done: Promise<void>;
}

/**
 * Writes `total` events to the producer's outbox, round-robin over `tenants`, 20 per
 * transaction with a short pause between transactions (about 1,000 a second), so the
 * stream is still flowing when the failure is injected. Once `holdAt` events are written it
 * waits for `failed` first: at least `total - holdAt` events are produced after the failure.
 */
function startProducing(
  tenants: readonly string[],
  total: number,
  holdAt: number,
  failed: Promise<unknown>,
): Production {
  const ids = new Map<string, string[]>(tenants.map((t) => [t, []]));
  let produced = 0;
  const done = (async () => {
    for (let i = 0; produced < total; i++) {
      if (produced >= holdAt) await failed;
      const tenant = tenants[i % tenants.length]!;
      const n = Math.min(20, total - produced);
      const batch = await withTenant(source.db, tenant, async (tx) => {
        const out: string[] = [];
        for (let k = 0; k < n; k++) {
          const e = await appendEvent(tx, {
            source: "producer",
            schema: TenantPurgedSchema,
            payload: { tenantId: tenant, slug: `s${produced + k}` },
            tenantId: tenant,
            resource: { type: "tenancy.tenant", id: tenant },
          });
          out.push(e.id);
        }
        return out;
      });
      ids.get(tenant)!.push(...batch);
      produced += n;
      await sleep(15);
    }
  })();
  // Reported by the test awaiting it; never an unhandled rejection meanwhile.
  done.catch(() => undefined);
  return { ids, produced: () => produced, done };
}

async function appended(tenants: readonly string[]): Promise<number> {
  const r = await reader.db
    .selectFrom("entries")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where("log_id", "in", tenants)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

/** Resolves with the number of appended entries once it reaches `n`. */
function appendedAtLeast(tenants: readonly string[], n: number, timeoutMs: number): Promise<number> {
  return eventually(
    async () => {
      const count = await appended(tenants);
      return count >= n ? count : undefined;
    },
    timeoutMs,
    10,
  );
}

/** Backends of this database's audit pool that are in a query or a transaction. */
async function busyAuditBackends(): Promise<number> {
  const r = await sql<{ n: string }>`
    SELECT count(*) AS n FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND (usename = 'uab_audit' OR application_name = ${AUDIT_APPLICATION})
      AND state IN ('active', 'idle in transaction')`.execute(reader.db);
  return Number(r.rows[0]?.n ?? 0);
}

function deferredSignal(): { promise: Promise<void>; fire: () => void } {
  let fire!: () => void;
  const promise = new Promise<void>((r) => (fire = r));
  return { promise, fire };
}

/**
 * Waits until every event is appended and the durable consumer has nothing left to deliver
 * or to be acknowledged (so late redeliveries had their chance), then checks each tenant's
 * log: every produced event exactly once, indices 0..n-1, the head's size, no dead letter,
 * and the stored log verifying against a fresh signed checkpoint.
 */
async function expectExactlyOnce(production: Production, bus: JetStreamBus, n: Names): Promise<void> {
  const tenants = [...production.ids.keys()];
  const total = production.produced();
  const admin = jetStreamAdmin(bus);
  // Bounded waits; when one runs out, the checks below say what is missing.
  const complete = await appendedAtLeast(tenants, total, 30_000).then(
    () => true,
    () => false,
  );
  if (complete) {
    await eventually(
      async () => {
        const info = await admin.consumers.info(n.stream, AUDIT_CONSUMER);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      15_000,
      100,
    ).catch(() => undefined);
  }
  expect(await bus.deadLetters(AUDIT_CONSUMER)).toEqual([]);

  const key = await loadActiveKey(verifier.db, undefined, INSTALLATION);
  for (const tenant of tenants) {
    const produced = production.ids.get(tenant)!;
    const rows = await reader.db
      .selectFrom("entries")
      .select(["idx", "event_id"])
      .where("log_id", "=", tenant)
      .orderBy("idx")
      .execute();
    const head = await reader.db.selectFrom("logs").select("size").where("id", "=", tenant).executeTakeFirst();
    const stored = new Set(rows.map((r) => r.event_id));
    const wanted = new Set(produced);
    expect({
      tenant,
      entries: rows.length,
      distinct: stored.size,
      missing: produced.filter((id) => !stored.has(id)).length,
      unexpected: rows.filter((r) => !wanted.has(r.event_id)).length,
      contiguous: rows.every((r, i) => Number(r.idx) === i),
      headSize: Number(head?.size ?? 0),
    }).toEqual({
      tenant,
      entries: produced.length,
      distinct: produced.length,
      missing: 0,
      unexpected: 0,
      contiguous: true,
      headSize: produced.length,
    });

    const checkpoint = await createCheckpoint(verifier.db, key, INSTALLATION, tenant, "on_demand");
    expect(Number(checkpoint.tree_size)).toBe(rows.length);
    const verification = await verifyStoredLog(verifier.db, tenant, INSTALLATION, checkpoint.id);
    expect(verification).toMatchObject({ ok: true, verifiedCount: rows.length, endIndex: rows.length });
  }
  // Nothing left to deliver or to acknowledge: no redelivery is still to come.
  const info = await admin.consumers.info(n.stream, AUDIT_CONSUMER);
  expect({ pending: info.num_pending, ackPending: info.num_ack_pending }).toEqual({ pending: 0, ackPending: 0 });
}

function newTenants(n: number): string[] {
  return Array.from({ length: n }, () => newId("tenant"));
}

/** Removes the test's streams from a NATS server that outlives the test. */
function dropStreamsAfter(bus: JetStreamBus, n: Names): void {
  defer(async () => {
    const admin = jetStreamAdmin(bus);
    await admin.streams.delete(n.stream).catch(() => false);
    await admin.streams.delete(n.dlq).catch(() => false);
  });
}

// ---------------------------------------------------------------------------------------------

describe("no gap and no duplicate in a log when something restarts mid-stream", () => {
  it("the consumer process is killed with SIGKILL while appending and started again", async () => {
    const n = names(testNatsUrl());
    const tenants = newTenants(4);
    const total = 4_000;
    const bus = await connectBus(n, "audit-restart-relay");
    dropStreamsAfter(bus, n);
    await startRelay(bus);
    const first = await startConsumerProcess(n);
    await shortenAckWait(bus, n);

    const killed = deferredSignal();
    const production = startProducing(tenants, total, 2_400, killed.promise);
    await appendedAtLeast(tenants, 800, 20_000);
    // Killed while it is appending: its audit connection is in a transaction.
    await eventually(async () => ((await busyAuditBackends()) > 0 ? true : undefined), 10_000, 1);
    const exit = await first.stop("SIGKILL");
    expect(exit.signal).toBe("SIGKILL");
    const atKill = await appended(tenants);
    const producedAtKill = production.produced();
    killed.fire();
    // Mid-stream: some but not all events were appended, and more were still to come.
    expect(atKill).toBeGreaterThanOrEqual(800);
    expect(atKill).toBeLessThan(total);
    expect(producedAtKill).toBeLessThan(total);

    // Nothing appends while no consumer runs (a commit already sent had 300 ms to land).
    await sleep(300);
    const settled = await appended(tenants);
    await sleep(300);
    expect(await appended(tenants)).toBe(settled);

    const second = await startConsumerProcess(n);
    await shortenAckWait(bus, n);
    await production.done;
    expect(production.produced()).toBe(total);
    await expectExactlyOnce(production, bus, n);
    expect((await second.stop("SIGTERM")).code).toBe(0);
  }, 50_000);

  it.each(["SIGTERM", "SIGKILL"] as const)(
    "NATS is stopped with %s mid-stream and started again on the same port and store",
    async (signal) => {
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), "uab-audit-nats-"));
      defer(async () => rmSync(dir, { recursive: true, force: true }));
      let nats = await startNats(port, dir);
      const n = names(`nats://127.0.0.1:${port}`);
      const tenants = newTenants(3);
      const total = 3_000;
      // The relay and the consumer are separate clients, as they are separate services.
      const relayBus = await connectBus(n, "audit-restart-relay");
      const consumerBus = await connectBus(n, "audit-restart-consumer");
      await startRelay(relayBus);
      await startConsumerHere(consumerBus);
      await shortenAckWait(relayBus, n);

      const restarted = deferredSignal();
      const production = startProducing(tenants, total, 1_800, restarted.promise);
      await appendedAtLeast(tenants, 600, 20_000);
      const exit = await nats.stop(signal);
      // SIGKILL ends it at once; on SIGTERM it shuts JetStream down and exits by itself.
      if (signal === "SIGKILL") expect(exit.signal).toBe("SIGKILL");
      else expect(nats.output()).toMatch(/JetStream Shutdown[\s\S]*Server Exiting/);
      const atStop = await appended(tenants);
      // Down for a while as events keep being produced into the outbox.
      await sleep(1_500);
      expect(production.produced()).toBeLessThan(total);
      nats = await startNats(port, dir);
      restarted.fire();
      expect(atStop).toBeLessThan(total);

      await production.done;
      await expectExactlyOnce(production, consumerBus, n);
      expect(atStop).toBeGreaterThanOrEqual(600);
    },
    50_000,
  );

  it("the consumer's PostgreSQL connections are terminated several times while a batch is in flight", async () => {
    const n = names(testNatsUrl());
    const tenants = newTenants(4);
    const total = 3_000;
    const bus = await connectBus(n, "audit-restart-relay");
    dropStreamsAfter(bus, n);
    await startRelay(bus);
    // In a process of its own, as in production: what a lost connection does to the process shows.
    const consumer = await startConsumerProcess(n);
    await shortenAckWait(bus, n);

    const terminated = deferredSignal();
    const production = startProducing(tenants, total, 2_000, terminated.promise);
    const rounds: { state: string; query: string }[][] = [];
    for (let round = 1; round <= 4; round++) {
      await appendedAtLeast(tenants, round * 300, 20_000);
      // Only this database's audit pool, and only while it is busy (a batch in flight).
      const victims = await eventually(
        async () => {
          const r = await sql<{ state: string; query: string; terminated: boolean }>`
            SELECT state, query, pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()
              AND (usename = 'uab_audit' OR application_name = ${AUDIT_APPLICATION})
              AND state IN ('active', 'idle in transaction')`.execute(reader.db);
          return r.rows.length > 0 && r.rows.every((v) => v.terminated) ? r.rows : undefined;
        },
        10_000,
        2,
      );
      rounds.push(victims.map((v) => ({ state: v.state, query: v.query.slice(0, 60) })));
      await sleep(200);
      // A lost connection is an error to retry, not the end of the consumer.
      if (consumer.child.exitCode !== null || consumer.child.signalCode !== null) {
        throw new Error(
          `the consumer process exited (${consumer.child.exitCode ?? consumer.child.signalCode}) after its ` +
            `PostgreSQL backend was terminated in round ${round} (${JSON.stringify(rounds.at(-1))}):\n${consumer.output()}`,
        );
      }
    }
    terminated.fire();
    expect(rounds).toHaveLength(4);
    expect(production.produced()).toBeLessThan(total);

    await production.done;
    await expectExactlyOnce(production, bus, n);
    expect((await consumer.stop("SIGTERM")).code).toBe(0);
  }, 50_000);
});
