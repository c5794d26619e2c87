// JetStream specifics the contract suite does not cover: idempotent set-up of streams and
// consumers, and the circuit breaker.
import { afterAll, describe, expect, it } from "@jest/globals";
import { UnavailableError } from "@uab/core";
import { testNatsUrl, uniqueSuffix } from "@uab/testing";
import { connect } from "nats";
import { JetStreamBus, type OutboundEvent } from "../src/index.js";

const suffix = uniqueSuffix();
const names = { subjectPrefix: `j${suffix}`, streamName: `JEVT_${suffix}`, dlqStreamName: `JDLQ_${suffix}` };

afterAll(async () => {
  const nc = await connect({ servers: testNatsUrl() });
  const jsm = await nc.jetstreamManager();
  await jsm.streams.delete(names.streamName).catch(() => undefined);
  await jsm.streams.delete(names.dlqStreamName).catch(() => undefined);
  await nc.close();
});

describe("JetStreamBus", () => {
  it("creates the streams once and reuses or updates them on reconnect", async () => {
    const first = await JetStreamBus.connect({ url: testNatsUrl(), ...names });
    await first.close();
    const second = await JetStreamBus.connect({ url: testNatsUrl(), ...names, duplicateWindowMs: 60_000 });
    const sub = await second.subscribe(
      { name: "setup", filterSubjects: ["uab.events.x.>"], maxDeliver: 2 },
      async () => undefined,
    );
    await sub.stop();
    // Same durable, new settings: updated in place rather than failing.
    const again = await second.subscribe(
      { name: "setup", filterSubjects: ["uab.events.x.>"], maxDeliver: 4 },
      async () => undefined,
    );
    await again.stop();
    await second.close();

    const nc = await connect({ servers: testNatsUrl() });
    try {
      const jsm = await nc.jetstreamManager();
      const info = await jsm.streams.info(names.streamName);
      expect(info.config.subjects).toEqual([`${names.subjectPrefix}.events.>`]);
      expect(info.config.duplicate_window).toBe(60_000_000_000);
      expect(info.config.storage).toBe("file");
      // maxDeliver + 1: the extra delivery dead-letters a last delivery that timed out.
      expect((await jsm.consumers.info(names.streamName, "setup")).config.max_deliver).toBe(5);
    } finally {
      await nc.close();
    }
  });

  it("rejects subjects outside the uab root", async () => {
    const bus = await JetStreamBus.connect({ url: testNatsUrl(), ...names });
    try {
      await expect(
        bus.subscribe({ name: "bad", filterSubjects: ["other.events.>"] }, async () => undefined),
      ).rejects.toThrow(/uab/);
    } finally {
      await bus.close();
    }
  });

  it("opens the breaker after repeated publish failures", async () => {
    const bus = await JetStreamBus.connect({ url: testNatsUrl(), ...names });
    const event: OutboundEvent = {
      id: "evt_x",
      subject: "uab.events.x.platform.X",
      data: new Uint8Array(),
      headers: {},
    };
    // Without its stream nothing acknowledges a publish (503 no responders).
    const nc = await connect({ servers: testNatsUrl() });
    await (await nc.jetstreamManager()).streams.delete(names.streamName);
    await nc.close();
    const errors: unknown[] = [];
    try {
      for (let i = 0; i < 5; i++) errors.push(await bus.publish([event]).catch((e: unknown) => e));
    } finally {
      await bus.close();
    }
    expect(errors[0]).toBeInstanceOf(Error);
    expect(errors[0]).not.toBeInstanceOf(UnavailableError);
    expect(errors.at(-1)).toBeInstanceOf(UnavailableError);
    expect((errors.at(-1) as UnavailableError).reason).toBe("EVENT_BUS_UNAVAILABLE");
  });
});
