import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { newId } from "@uab/core";
import { withPlatform, withTenant } from "@uab/db";
import { eventually } from "@uab/testing";
import { type EventBus, InProcessBus, type OutboundEvent, startOutboxRelay } from "../src/index.js";
import { appendTestEvent, outboxCount, setUpDatabase, sleep, type TestEnv } from "./support.js";

let env: TestEnv;

beforeAll(async () => {
  env = await setUpDatabase();
});

afterAll(async () => {
  await env?.close();
});

/** A real in-process bus that also records what each publish call carried. */
function recordingBus(options: { delayMs?: number; failFirst?: number } = {}) {
  const inner = new InProcessBus();
  const published: string[] = [];
  let calls = 0;
  const bus: EventBus = {
    async publish(events: readonly OutboundEvent[]) {
      calls++;
      if (calls <= (options.failFirst ?? 0)) throw new Error("NATS down");
      // Holding the claim a little longer makes relays overlap.
      if (options.delayMs) await sleep(options.delayMs);
      await inner.publish(events);
      published.push(...events.map((e) => e.id));
    },
    subscribe: (spec, handler) => inner.subscribe(spec, handler),
    subscribeBatch: (spec, handler) => inner.subscribeBatch(spec, handler),
    deadLetters: (c) => inner.deadLetters(c),
    close: () => inner.close(),
  };
  return { bus, published, calls: () => calls };
}

describe("outbox relay", () => {
  it("publishes each of 1,000 rows exactly once with two concurrent relays", async () => {
    const tenants = [newId("tenant"), newId("tenant"), newId("tenant")];
    const ids: string[] = [];
    for (let t = 0; t < 10; t++) {
      const tenant = tenants[t % tenants.length];
      const batch = tenant
        ? await withTenant(env.db, tenant, async (tx) => {
            const out: string[] = [];
            for (let i = 0; i < 100; i++) out.push((await appendTestEvent(tx, "bulk", tenant)).id);
            return out;
          })
        : [];
      ids.push(...batch);
    }
    expect(await outboxCount(env.db)).toBe(1_000);
    const a = recordingBus({ delayMs: 5 });
    const b = recordingBus({ delayMs: 5 });
    const [ra, rb] = await Promise.all([
      startOutboxRelay({ db: env.db, pool: env.database.pool, bus: a.bus, batchSize: 50, pollIntervalMs: 60_000 }),
      startOutboxRelay({ db: env.db, pool: env.database.pool, bus: b.bus, batchSize: 50, pollIntervalMs: 60_000 }),
    ]);
    try {
      await eventually(async () => (await outboxCount(env.db)) === 0, 20_000);
      await Promise.all([ra.drain(), rb.drain()]);
      const all = [...a.published, ...b.published];
      expect(all).toHaveLength(1_000);
      expect(new Set(all).size).toBe(1_000);
      expect(new Set(all)).toEqual(new Set(ids));
      // Both did part of the work: the claims really were concurrent.
      expect(a.published.length).toBeGreaterThan(0);
      expect(b.published.length).toBeGreaterThan(0);
      // Each relay publishes in id order.
      expect(a.published).toEqual([...a.published].sort());
    } finally {
      await Promise.all([ra.stop(), rb.stop()]);
    }
  });

  it("wakes on NOTIFY instead of waiting for the poll interval", async () => {
    const r = recordingBus();
    const relay = await startOutboxRelay({ db: env.db, pool: env.database.pool, bus: r.bus, pollIntervalMs: 60_000 });
    try {
      const event = await withPlatform(env.db, (tx) => appendTestEvent(tx, "notify"));
      // Published first, deleted on commit just after: wait for the commit.
      await eventually(async () => (await outboxCount(env.db)) === 0, 3_000);
      expect(r.published).toEqual([event.id]);
    } finally {
      await relay.stop();
    }
  });

  it("keeps rows when publishing fails and retries with backoff", async () => {
    const r = recordingBus({ failFirst: 2 });
    const tenant = newId("tenant");
    const event = await withTenant(env.db, tenant, (tx) => appendTestEvent(tx, "retry", tenant));
    const relay = await startOutboxRelay({ db: env.db, pool: env.database.pool, bus: r.bus, pollIntervalMs: 20 });
    try {
      await eventually(async () => (await outboxCount(env.db)) === 0, 5_000);
      expect(r.calls()).toBeGreaterThanOrEqual(3);
      expect(r.published).toEqual([event.id]);
    } finally {
      await relay.stop();
    }
  });

  it("drain() rejects on a failed publish and leaves the rows", async () => {
    const r = recordingBus({ failFirst: 1_000 });
    const relay = await startOutboxRelay({ db: env.db, pool: env.database.pool, bus: r.bus, pollIntervalMs: 60_000 });
    try {
      await withPlatform(env.db, (tx) => appendTestEvent(tx, "fail"));
      await expect(relay.drain()).rejects.toThrow("NATS down");
      expect(await outboxCount(env.db)).toBe(1);
    } finally {
      await relay.stop();
      await withPlatform(env.db, (tx) => tx.deleteFrom("outbox").execute());
    }
  });

  it("stops promptly and gives its LISTEN connection back", async () => {
    const r = recordingBus();
    const before = env.database.pool.totalCount - env.database.pool.idleCount;
    const relay = await startOutboxRelay({ db: env.db, pool: env.database.pool, bus: r.bus, pollIntervalMs: 60_000 });
    expect(env.database.pool.totalCount - env.database.pool.idleCount).toBe(before + 1);
    const started = Date.now();
    await relay.stop();
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(env.database.pool.totalCount - env.database.pool.idleCount).toBe(before);
  });
});
