// One contract, two buses: every behaviour the relay and consumers rely on is checked
// against JetStream (real NATS) and the in-process bus alike, end to end through the outbox.

import { toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace";
import { newId, SpanKind, startTelemetry, withSpan } from "@uab/core";
import { withPlatform, withTenant } from "@uab/db";
import { type Event, EventSchema } from "@uab/proto/gen/uab/events/v1/event_pb.js";
import { TenantPurgedSchema } from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import { eventually, testNatsUrl, uniqueSuffix } from "@uab/testing";
import { connect, type NatsConnection } from "nats";
import {
  buildEvent,
  type DeliveredEvent,
  type EventBus,
  eventSubject,
  InProcessBus,
  inboxHandler,
  JetStreamBus,
  type OutboundEvent,
  startOutboxRelay,
  unpackPayload,
} from "../src/index.js";
import { appendTestEvent, countRows, outboxCount, recordEffect, setUpDatabase, type TestEnv } from "./support.js";

const exporter = new InMemorySpanExporter();
// sdk-trace 3.x processors take an options object, not the exporter itself.
startTelemetry({ processors: [new SimpleSpanProcessor({ exporter })] });

interface Harness {
  readonly bus: EventBus;
  /** JetStream drops a republished event id inside its window; the in-process bus does not. */
  readonly dedupes: boolean;
  /** Resolves once the consumer has nothing pending or unacknowledged. */
  idle(consumer: string): Promise<void>;
  close(): Promise<void>;
}

const suffix = uniqueSuffix();

async function jetStreamHarness(): Promise<Harness> {
  const names = { subjectPrefix: `t${suffix}`, streamName: `EVT_${suffix}`, dlqStreamName: `DLQ_${suffix}` };
  const bus = await JetStreamBus.connect({ url: testNatsUrl(), ...names });
  const nc: NatsConnection = await connect({ servers: testNatsUrl() });
  const jsm = await nc.jetstreamManager();
  return {
    bus,
    dedupes: true,
    async idle(consumer) {
      await eventually(async () => {
        const info = await jsm.consumers.info(names.streamName, consumer);
        // A delayed nak keeps the message in ack-pending until it is redelivered.
        return info.num_pending === 0 && info.num_ack_pending === 0;
      }, 10_000);
    },
    async close() {
      await bus.close();
      await jsm.streams.delete(names.streamName).catch(() => undefined);
      await jsm.streams.delete(names.dlqStreamName).catch(() => undefined);
      await nc.close();
    },
  };
}

async function inProcessHarness(): Promise<Harness> {
  const bus = new InProcessBus();
  return { bus, dedupes: false, idle: async () => undefined, close: () => bus.close() };
}

let env: TestEnv;

beforeAll(async () => {
  env = await setUpDatabase();
});

afterAll(async () => {
  await env?.close();
});

describe.each([
  ["jetstream", jetStreamHarness],
  ["in-process", inProcessHarness],
])("%s bus", (kind, makeHarness) => {
  let h: Harness;
  let n = 0;
  // Each test has its own source (so its own subjects) and consumer name.
  const names = () => {
    n++;
    const source = `s${n}`;
    return { source, consumer: `${kind.replace("-", "")}_${n}`, filter: `uab.events.${source}.>` };
  };
  const relay = (bus?: EventBus) =>
    startOutboxRelay({ db: env.db, pool: env.database.pool, bus: bus ?? h.bus, pollIntervalMs: 60_000 });

  beforeAll(async () => {
    h = await makeHarness();
  });

  afterAll(async () => {
    await h?.close();
  });

  it("delivers a committed change exactly once", async () => {
    const { source, consumer, filter } = names();
    const delivered: DeliveredEvent[] = [];
    const sub = await h.bus.subscribe({ name: consumer, filterSubjects: [filter] }, async (d) => {
      delivered.push(d);
    });
    const r = await relay();
    try {
      const tenant = newId("tenant");
      const event = await withTenant(env.db, tenant, (tx) => appendTestEvent(tx, source, tenant));
      await r.drain();
      await eventually(() => delivered.length === 1);
      await h.idle(consumer);
      expect(delivered).toHaveLength(1);
      const d = delivered[0]!;
      expect(d.event.id).toBe(event.id);
      expect(d.subject).toBe(eventSubject(source, tenant, TenantPurgedSchema.typeName));
      expect(d.deliveryCount).toBe(1);
      expect(unpackPayload(d.event, TenantPurgedSchema)?.tenantId).toBe(tenant);
      expect(await outboxCount(env.db)).toBe(0);
    } finally {
      await r.stop();
      await sub.stop();
    }
  });

  it("delivers nothing for a rolled-back transaction", async () => {
    const { source, consumer, filter } = names();
    const delivered: string[] = [];
    const sub = await h.bus.subscribe({ name: consumer, filterSubjects: [filter] }, async (d) => {
      delivered.push(d.event.id);
    });
    const r = await relay();
    try {
      const tenant = newId("tenant");
      await expect(
        withTenant(env.db, tenant, async (tx) => {
          await appendTestEvent(tx, source, tenant);
          throw new Error("rollback");
        }),
      ).rejects.toThrow("rollback");
      // A committed event after it proves the consumer is live, and is all it receives.
      const committed = await withTenant(env.db, tenant, (tx) => appendTestEvent(tx, source, tenant));
      await r.drain();
      await eventually(() => delivered.length >= 1);
      await h.idle(consumer);
      expect(delivered).toEqual([committed.id]);
    } finally {
      await r.stop();
      await sub.stop();
    }
  });

  it("loses nothing and applies nothing twice when the relay dies between publish and commit", async () => {
    const { source, consumer, filter } = names();
    let calls = 0;
    const sub = await h.bus.subscribe(
      { name: consumer, filterSubjects: [filter] },
      inboxHandler(env.db, consumer, async (tx, e) => {
        await recordEffect(tx, consumer, e);
      }),
    );
    const counting = await h.bus.subscribe({ name: `${consumer}_count`, filterSubjects: [filter] }, async () => {
      calls++;
    });
    // Published, then "crashed" before the DELETE commits: the rows stay.
    const crashing: EventBus = {
      publish: async (events) => {
        await h.bus.publish(events);
        throw new Error("relay crashed after publish");
      },
      subscribe: (spec, handler) => h.bus.subscribe(spec, handler),
      subscribeBatch: (spec, handler) => h.bus.subscribeBatch(spec, handler),
      deadLetters: (c) => h.bus.deadLetters(c),
      close: async () => undefined,
    };
    const tenant = newId("tenant");
    await withTenant(env.db, tenant, async (tx) => {
      for (let i = 0; i < 3; i++) await appendTestEvent(tx, source, tenant);
    });
    const dying = await relay(crashing);
    await expect(dying.drain()).rejects.toThrow("relay crashed");
    await dying.stop();
    expect(await outboxCount(env.db)).toBe(3);

    const fresh = await relay();
    try {
      // Its loop may already have drained on start; drain() waits for that batch.
      await fresh.drain();
      expect(await outboxCount(env.db)).toBe(0);
      await eventually(async () => (await countRows(env.db, "effects", consumer)) === 3);
      await h.idle(consumer);
      await h.idle(`${consumer}_count`);
      expect(await countRows(env.db, "effects", consumer)).toBe(3);
      expect(await countRows(env.db, "inbox", consumer)).toBe(3);
      // JetStream dropped the republished ids; in-process, the inbox absorbed them.
      if (h.dedupes) expect(calls).toBe(3);
      else expect(calls).toBeGreaterThanOrEqual(6);
    } finally {
      await fresh.stop();
      await sub.stop();
      await counting.stop();
    }
  });

  it("delivers a duplicate publish of one event id once on JetStream, harmlessly in-process", async () => {
    const { source, consumer, filter } = names();
    let calls = 0;
    const sub = await h.bus.subscribe(
      { name: consumer, filterSubjects: [filter] },
      inboxHandler(env.db, consumer, async (tx, e) => {
        calls++;
        await recordEffect(tx, consumer, e);
      }),
    );
    let deliveries = 0;
    const counting = await h.bus.subscribe({ name: `${consumer}_count`, filterSubjects: [filter] }, async () => {
      deliveries++;
    });
    try {
      const tenant = newId("tenant");
      const event: Event = buildEvent({
        source,
        schema: TenantPurgedSchema,
        payload: { tenantId: tenant },
        tenantId: tenant,
        resource: { type: "tenancy.tenant", id: tenant },
      });
      const out: OutboundEvent = {
        id: event.id,
        subject: eventSubject(source, tenant, event.type),
        data: toBinary(EventSchema, event),
        headers: {},
      };
      await h.bus.publish([out]);
      await h.bus.publish([out]);
      await eventually(async () => (await countRows(env.db, "effects", consumer)) === 1);
      await h.idle(consumer);
      await h.idle(`${consumer}_count`);
      expect(deliveries).toBe(h.dedupes ? 1 : 2);
      expect(calls).toBe(1);
      expect(await countRows(env.db, "effects", consumer)).toBe(1);
    } finally {
      await sub.stop();
      await counting.stop();
    }
  });

  it("redelivers after a handler error and applies the event once", async () => {
    const { source, consumer, filter } = names();
    const deliveryCounts: number[] = [];
    const inner = inboxHandler(env.db, consumer, async (tx, e) => {
      await recordEffect(tx, consumer, e);
      // The effect is rolled back with the inbox row.
      if (deliveryCounts.length === 1) throw new Error("transient failure before ack");
    });
    const sub = await h.bus.subscribe({ name: consumer, filterSubjects: [filter], backoffMs: [20] }, async (d) => {
      deliveryCounts.push(d.deliveryCount);
      await inner(d);
    });
    const r = await relay();
    try {
      const tenant = newId("tenant");
      await withTenant(env.db, tenant, (tx) => appendTestEvent(tx, source, tenant));
      await r.drain();
      await eventually(() => deliveryCounts.length === 2);
      await h.idle(consumer);
      expect(deliveryCounts).toEqual([1, 2]);
      expect(await countRows(env.db, "inbox", consumer)).toBe(1);
      expect(await countRows(env.db, "effects", consumer)).toBe(1);
    } finally {
      await r.stop();
      await sub.stop();
    }
  });

  it("has no second effect when the ack is lost after the effect committed", async () => {
    const { source, consumer, filter } = names();
    let applied = 0;
    let calls = 0;
    const inner = inboxHandler(env.db, consumer, async (tx, e) => {
      applied++;
      await recordEffect(tx, consumer, e);
    });
    const sub = await h.bus.subscribe({ name: consumer, filterSubjects: [filter], backoffMs: [20] }, async (d) => {
      calls++;
      await inner(d);
      if (calls === 1) throw new Error("crashed before ack");
    });
    const r = await relay();
    try {
      await withPlatform(env.db, (tx) => appendTestEvent(tx, source));
      await r.drain();
      await eventually(() => calls === 2);
      await h.idle(consumer);
      expect(applied).toBe(1);
      expect(await countRows(env.db, "inbox", consumer)).toBe(1);
      expect(await countRows(env.db, "effects", consumer)).toBe(1);
    } finally {
      await r.stop();
      await sub.stop();
    }
  });

  it("delivers a burst to a batch consumer in order, each event once, in fewer calls than events", async () => {
    const { source, consumer, filter } = names();
    const batches: string[][] = [];
    const sub = await h.bus.subscribeBatch({ name: consumer, filterSubjects: [filter], maxBatch: 50 }, async (b) => {
      batches.push(b.map((d) => d.event.id));
      // Slow enough that later events queue up behind this call.
      await new Promise((r) => setTimeout(r, 20));
    });
    const r = await relay();
    try {
      const tenant = newId("tenant");
      const ids: string[] = [];
      await withTenant(env.db, tenant, async (tx) => {
        for (let i = 0; i < 120; i++) ids.push((await appendTestEvent(tx, source, tenant)).id);
      });
      await r.drain();
      await eventually(() => batches.flat().length >= 120);
      await h.idle(consumer);
      const seen = batches.flat();
      expect(seen).toEqual(ids);
      expect(batches.length).toBeLessThan(120);
      expect(Math.max(...batches.map((b) => b.length))).toBeLessThanOrEqual(50);
    } finally {
      await r.stop();
      await sub.stop();
    }
  });

  it("retries a failed batch event by event: the poison event is dead-lettered, the others are handled once", async () => {
    const { source, consumer, filter } = names();
    const handled: string[] = [];
    let poison = "";
    let batchCalls = 0;
    const sub = await h.bus.subscribeBatch(
      { name: consumer, filterSubjects: [filter], maxDeliver: 2, backoffMs: [10] },
      async (b) => {
        batchCalls++;
        if (b.some((d) => d.event.id === poison)) throw new Error("poison pill in the batch");
        handled.push(...b.map((d) => d.event.id));
      },
    );
    // The relay starts after the poison is chosen: it must not publish the events first.
    const tenant = newId("tenant");
    const ids: string[] = [];
    await withTenant(env.db, tenant, async (tx) => {
      for (let i = 0; i < 5; i++) ids.push((await appendTestEvent(tx, source, tenant)).id);
    });
    poison = ids[2]!;
    const r = await relay();
    try {
      await r.drain();
      const dead = await eventually(async () => {
        const list = await h.bus.deadLetters(consumer);
        return list.length > 0 ? list : undefined;
      });
      await eventually(() => handled.length >= 4);
      await h.idle(consumer);
      expect(dead.map((d) => d.eventId)).toEqual([poison]);
      expect([...handled].sort()).toEqual(ids.filter((id) => id !== poison).sort());
      expect(new Set(handled).size).toBe(handled.length);
      expect(batchCalls).toBeGreaterThan(1);
    } finally {
      await r.stop();
      await sub.stop();
    }
  });

  it("dead-letters a poison event after maxDeliver", async () => {
    const { source, consumer, filter } = names();
    let calls = 0;
    const sub = await h.bus.subscribe(
      { name: consumer, filterSubjects: [filter], maxDeliver: 3, backoffMs: [10, 20] },
      async () => {
        calls++;
        throw new Error("poison pill");
      },
    );
    const healthy: string[] = [];
    const other = await h.bus.subscribe({ name: `${consumer}_ok`, filterSubjects: [filter] }, async (d) => {
      healthy.push(d.event.id);
    });
    const r = await relay();
    try {
      const tenant = newId("tenant");
      const event = await withTenant(env.db, tenant, (tx) => appendTestEvent(tx, source, tenant));
      await r.drain();
      const dead = await eventually(async () => {
        const list = await h.bus.deadLetters(consumer);
        return list.length > 0 ? list : undefined;
      });
      await h.idle(consumer);
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({
        consumer,
        eventId: event.id,
        subject: eventSubject(source, tenant, event.type),
        deliveries: 3,
      });
      expect(dead[0]?.error).toContain("poison pill");
      expect(dead[0]?.event?.id).toBe(event.id);
      expect(calls).toBe(3);
      // Other consumers are unaffected, and nobody else's dead letters are mixed in.
      expect(healthy).toEqual([event.id]);
      expect(await h.bus.deadLetters(`${consumer}_ok`)).toEqual([]);
    } finally {
      await r.stop();
      await sub.stop();
      await other.stop();
    }
  });

  it("receives only the subjects of its filters", async () => {
    const first = names();
    const second = names();
    const third = names();
    const got: string[] = [];
    const tenant = newId("tenant");
    const sub = await h.bus.subscribe(
      { name: first.consumer, filterSubjects: [first.filter, `uab.events.${second.source}.*.TenantPurged`] },
      async (d) => {
        got.push(d.event.source);
      },
    );
    const r = await relay();
    try {
      await withTenant(env.db, tenant, async (tx) => {
        for (const n of [first, second, third]) await appendTestEvent(tx, n.source, tenant);
      });
      await r.drain();
      await eventually(() => got.length === 2);
      await h.idle(first.consumer);
      expect(got.sort()).toEqual([first.source, second.source].sort());
    } finally {
      await r.stop();
      await sub.stop();
    }
  });

  it("continues the trace of the request in the consumer", async () => {
    const { source, consumer, filter } = names();
    const seen: DeliveredEvent[] = [];
    const sub = await h.bus.subscribe({ name: consumer, filterSubjects: [filter] }, async (d) => {
      seen.push(d);
    });
    const r = await relay();
    try {
      const tenant = newId("tenant");
      let traceId = "";
      await withSpan("request", { kind: SpanKind.SERVER }, async (span) => {
        traceId = span.spanContext().traceId;
        await withTenant(env.db, tenant, (tx) => appendTestEvent(tx, source, tenant));
      });
      await r.drain();
      await eventually(() => seen.length === 1);
      expect(seen[0]?.headers.traceparent).toContain(traceId);
      const spans = await eventually(() => {
        const all = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
        const consume = all.find(
          (s) => s.kind === SpanKind.CONSUMER && s.attributes["messaging.consumer.group.name"] === consumer,
        );
        const publish = all.find((s) => s.kind === SpanKind.PRODUCER);
        return consume && publish ? { consume, publish } : undefined;
      });
      // consume → publish → request: one trace across the outbox and the bus.
      expect(spans.consume.parentSpanContext?.spanId).toBe(spans.publish.spanContext().spanId);
      expect(spans.consume.attributes["messaging.destination.name"]).toBe(seen[0]?.subject);
    } finally {
      await r.stop();
      await sub.stop();
    }
  });
});
