/**
 * Ingestion end to end: events written to a service's outbox reach the audit logs through
 * the relay and the bus (JetStream and in process), each exactly once, in verifiable
 * chains; a consumer restart mid-stream loses and duplicates nothing; scheduled
 * checkpoints cover every log that grew.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createLogger, newId } from "@uab/core";
import { createDatabase, type Database, migrateService, withTenant } from "@uab/db";
import {
  appendEvent,
  type EventBus,
  type EventsTables,
  eventsMigrations,
  InProcessBus,
  JetStreamBus,
  startOutboxRelay,
} from "@uab/events";
import { TenantPurgedSchema } from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import { createTestDatabase, eventually, type TestDatabase, testNatsUrl, uniqueSuffix } from "@uab/testing";
import { chainHash, genesisChainHash, leafHash } from "@uab/tlog";
import {
  type AuditDatabase,
  auditMigrations,
  checkpointGrownLogs,
  loadActiveKey,
  logsNeedingCheckpoint,
  startIngestion,
} from "../src/index.js";

const logger = createLogger({ service: "audit-test", level: process.env.UAB_TEST_LOG_LEVEL ?? "silent" });
let database: TestDatabase;
let audit: Database<AuditDatabase>;
/** The superuser, to read every log (the runtime role sees only a scoped tenant's). */
let reader: Database<AuditDatabase>;
let source: Database<EventsTables>;

beforeAll(async () => {
  database = await createTestDatabase();
  await migrateService({ url: database.url, service: "audit", migrations: auditMigrations });
  // A stand-in producer service with only the events library's tables (outbox, inbox).
  await migrateService({ url: database.url, service: "producer", migrations: eventsMigrations() });
  audit = createDatabase<AuditDatabase>({ url: database.url, schema: "audit", role: "uab_audit", max: 4 });
  reader = createDatabase<AuditDatabase>({ url: database.url, schema: "audit", max: 2 });
  source = createDatabase<EventsTables>({ url: database.url, schema: "producer", role: "uab_producer", max: 4 });
});
afterAll(async () => {
  await audit?.close();
  await reader?.close();
  await source?.close();
  await database?.drop();
});

async function produce(tenants: readonly string[], perTenant: number): Promise<string[]> {
  const ids: string[] = [];
  for (const t of tenants) {
    await withTenant(source.db, t, async (tx) => {
      for (let i = 0; i < perTenant; i++) {
        const e = await appendEvent(tx, {
          source: "producer",
          schema: TenantPurgedSchema,
          payload: { tenantId: t, slug: `s${i}` },
          tenantId: t,
          resource: { type: "tenancy.tenant", id: t },
        });
        ids.push(e.id);
      }
    });
  }
  return ids;
}

async function verifyChains(logIds: readonly string[]): Promise<number> {
  let total = 0;
  for (const logId of logIds) {
    const rows = await reader.db
      .selectFrom("entries")
      .select(["idx", "canonical", "leaf_hash", "prev_chain_hash", "chain_hash"])
      .where("log_id", "=", logId)
      .orderBy("idx")
      .execute();
    let prev = genesisChainHash();
    rows.forEach((r, i) => {
      expect(Number(r.idx)).toBe(i);
      expect(Buffer.from(r.leaf_hash).equals(Buffer.from(leafHash(r.canonical)))).toBe(true);
      prev = chainHash(prev, r.leaf_hash);
      expect(Buffer.from(r.chain_hash).equals(Buffer.from(prev))).toBe(true);
    });
    total += rows.length;
  }
  return total;
}

// The in-process bus keeps nothing for a consumer that is not subscribed (it serves a single
// dev process), so the restart is exercised on JetStream, whose consumers are durable.
describe.each([
  ["in-process", false, async () => new InProcessBus({ logger })],
  [
    "jetstream",
    true,
    async () => {
      const s = uniqueSuffix();
      return JetStreamBus.connect({
        url: testNatsUrl(),
        subjectPrefix: `au${s}`,
        streamName: `EVT_${s}`,
        dlqStreamName: `DLQ_${s}`,
        logger,
      });
    },
  ],
] as const)("over the %s bus", (_kind, durable, makeBus) => {
  let bus: EventBus;
  beforeAll(async () => {
    bus = await makeBus();
  });
  afterAll(async () => {
    await bus?.close();
  });

  it("appends every event of many tenants exactly once, and survives a consumer restart mid-stream", async () => {
    const tenants = Array.from({ length: 5 }, () => newId("tenant"));
    const relay = await startOutboxRelay({ db: source.db, pool: source.pool, bus, logger });
    let sub = await startIngestion(audit.db, bus, logger, { maxBatch: 200 });
    try {
      const first = await produce(tenants, 200);
      if (durable) {
        // Restart the consumer while the relay is still publishing the first wave.
        await sub.stop();
        sub = await startIngestion(audit.db, bus, logger, { maxBatch: 200 });
      }
      const second = await produce(tenants, 100);
      await relay.drain();
      const all = [...first, ...second];
      await eventually(async () => {
        const n = await reader.db
          .selectFrom("entries")
          .select((eb) => eb.fn.countAll<string>().as("n"))
          .where("log_id", "in", tenants)
          .executeTakeFirstOrThrow();
        return Number(n.n) >= all.length ? true : undefined;
      }, 30_000);
      const stored = await reader.db.selectFrom("entries").select("event_id").where("log_id", "in", tenants).execute();
      expect(stored).toHaveLength(all.length);
      expect(new Set(stored.map((r) => r.event_id))).toEqual(new Set(all));
      expect(await verifyChains(tenants)).toBe(all.length);
    } finally {
      await sub.stop();
      await relay.stop();
    }
  }, 60_000);
});

describe("scheduled checkpoints", () => {
  it("checkpoint exactly the logs that grew since their last checkpoint", async () => {
    const key = await loadActiveKey(audit.db, undefined, "uab.test/audit");
    const before = await logsNeedingCheckpoint(audit.db);
    expect(before.length).toBeGreaterThan(0);
    expect(await checkpointGrownLogs(audit.db, key, "uab.test/audit", logger)).toBe(before.length);
    expect(await logsNeedingCheckpoint(audit.db)).toEqual([]);
    expect(await checkpointGrownLogs(audit.db, key, "uab.test/audit", logger)).toBe(0);
  });
});
