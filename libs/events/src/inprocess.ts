import { fromBinary } from "@bufbuild/protobuf";
import { createLogger, type Logger } from "@uab/core";
import { type Event, EventSchema } from "@uab/proto/gen/uab/events/v1/event_pb.js";
import {
  type BatchConsumerSpec,
  type BatchEventHandler,
  backoffFor,
  type ConsumerSpec,
  DEFAULT_MAX_BATCH,
  DEFAULT_MAX_DELIVER,
  type DeadLetter,
  type EventBus,
  type EventHandler,
  errorMessage,
  type OutboundEvent,
  type Subscription,
} from "./bus.js";
import { assertToken, subjectMatches } from "./subjects.js";
import { withConsumeSpan, withPublishSpan } from "./tracing.js";

/** Options for {@link InProcessBus}. */
export interface InProcessBusOptions {
  /** Logs retries and dead letters. */
  readonly logger?: Logger;
}

interface Member {
  readonly handler: EventHandler;
  /** Set for batch consumers: takes the whole matching part of a publish at once. */
  readonly batch?: BatchEventHandler | undefined;
  readonly inFlight: Set<Promise<void>>;
}

interface Group {
  readonly spec: ConsumerSpec;
  readonly members: Member[];
  next: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * An {@link EventBus} inside one process, for when no NATS is configured (the dev server,
 * single-node installs). `publish` hands each event to every consumer whose filter matches,
 * retries a failing handler with the consumer's backoff up to `maxDeliver` times, then
 * keeps a dead letter (in memory, logged at error), and resolves only after all of that:
 * the relay deletes outbox rows only once in-process consumers ran, so a crash before that
 * republishes them and the consumers' inbox makes the repeat harmless.
 *
 * Unlike JetStream there is no de-duplication window and no retention: consumers receive
 * only events published while they are subscribed.
 */
export class InProcessBus implements EventBus {
  private readonly groups = new Map<string, Group>();
  private readonly dead = new Map<string, DeadLetter[]>();
  private readonly logger: Logger;

  /** Creates an empty bus. */
  constructor(options: InProcessBusOptions = {}) {
    this.logger = options.logger ?? createLogger({ service: "events", level: "silent" });
  }

  /** See {@link EventBus.publish}. Consumers run concurrently; each sees the batch in order. */
  async publish(events: readonly OutboundEvent[]): Promise<void> {
    // The publish span covers routing only; each handler call gets a consumer span below it.
    const traced = await Promise.all(
      events.map((e) => withPublishSpan("in_process", e, async (headers) => ({ ...e, headers }))),
    );
    await Promise.all(
      [...this.groups.values()].map(async (group) => {
        const matching = traced.filter((e) => group.spec.filterSubjects.some((f) => subjectMatches(f, e.subject)));
        if (group.members[0]?.batch) await this.deliverBatches(group, matching);
        else for (const e of matching) await this.deliver(group, e);
      }),
    );
  }

  /**
   * See {@link EventBus.subscribe}. Subscribing twice with one name makes the two handlers
   * share the consumer's events (round-robin), like replicas of a JetStream consumer.
   */
  async subscribe(spec: ConsumerSpec, handler: EventHandler): Promise<Subscription> {
    assertToken("consumer name", spec.name);
    let group = this.groups.get(spec.name);
    if (!group) {
      group = { spec, members: [], next: 0 };
      this.groups.set(spec.name, group);
    }
    const member: Member = { handler, inFlight: new Set() };
    group.members.push(member);
    const owner = group;
    return {
      stop: async () => {
        const i = owner.members.indexOf(member);
        if (i >= 0) owner.members.splice(i, 1);
        if (owner.members.length === 0 && this.groups.get(spec.name) === owner) this.groups.delete(spec.name);
        await Promise.allSettled([...member.inFlight]);
      },
    };
  }

  /** See {@link EventBus.subscribeBatch}. The events of one publish arrive as one batch (up to `maxBatch`). */
  async subscribeBatch(spec: BatchConsumerSpec, handler: BatchEventHandler): Promise<Subscription> {
    assertToken("consumer name", spec.name);
    const existing = this.groups.get(spec.name);
    if (existing && !existing.members[0]?.batch) throw new Error(`consumer ${spec.name} is not a batch consumer`);
    const group = existing ?? { spec, members: [], next: 0 };
    this.groups.set(spec.name, group);
    const member: Member = { handler: (d) => handler([d]), batch: handler, inFlight: new Set() };
    group.members.push(member);
    return {
      stop: async () => {
        const i = group.members.indexOf(member);
        if (i >= 0) group.members.splice(i, 1);
        if (group.members.length === 0 && this.groups.get(spec.name) === group) this.groups.delete(spec.name);
        await Promise.allSettled([...member.inFlight]);
      },
    };
  }

  private async deliverBatches(group: Group, events: readonly OutboundEvent[]): Promise<void> {
    const max = (group.spec as BatchConsumerSpec).maxBatch ?? DEFAULT_MAX_BATCH;
    for (let start = 0; start < events.length; start += max) {
      const chunk = events.slice(start, start + max);
      const member = this.pick(group);
      if (!member?.batch) return;
      const decoded: { out: OutboundEvent; event: Event }[] = [];
      for (const out of chunk) {
        try {
          decoded.push({ out, event: fromBinary(EventSchema, out.data) });
        } catch (e) {
          this.deadLetter(group.spec.name, out, undefined, e, 0);
        }
      }
      if (decoded.length === 0) continue;
      const run = member.batch(
        decoded.map(({ out, event }) => ({ event, subject: out.subject, deliveryCount: 1, headers: out.headers })),
      );
      member.inFlight.add(run);
      try {
        await run;
      } catch (e) {
        this.logger.warn(
          { err: e, consumer: group.spec.name, events: decoded.length },
          "batch failed; retrying its events one by one",
        );
        for (const { out } of decoded) await this.deliver(group, out);
      } finally {
        member.inFlight.delete(run);
      }
    }
  }

  /** See {@link EventBus.deadLetters}. */
  async deadLetters(consumer: string): Promise<DeadLetter[]> {
    return [...(this.dead.get(consumer) ?? [])];
  }

  /** Forgets every subscription, waiting for handler calls in flight. */
  async close(): Promise<void> {
    const inFlight = [...this.groups.values()].flatMap((g) => g.members.flatMap((m) => [...m.inFlight]));
    this.groups.clear();
    await Promise.allSettled(inFlight);
  }

  private pick(group: Group): Member | undefined {
    if (group.members.length === 0) return undefined;
    const member = group.members[group.next % group.members.length];
    group.next = (group.next + 1) % group.members.length;
    return member;
  }

  private async deliver(group: Group, out: OutboundEvent): Promise<void> {
    const spec = group.spec;
    const maxDeliver = spec.maxDeliver ?? DEFAULT_MAX_DELIVER;
    let event: Event | undefined;
    let lastError: unknown;
    try {
      event = fromBinary(EventSchema, out.data);
    } catch (e) {
      // Undecodable: no retry can fix it.
      this.deadLetter(spec.name, out, undefined, e, 0);
      return;
    }
    for (let deliveryCount = 1; deliveryCount <= maxDeliver; deliveryCount++) {
      const member = this.pick(group);
      // Every member stopped meanwhile: nobody is left to take the event, as with a
      // JetStream consumer that has no client; it is not a failure of the event.
      if (!member) return;
      const delivered = { event, subject: out.subject, deliveryCount, headers: out.headers };
      const run = withConsumeSpan("in_process", spec.name, out.subject, out.id, deliveryCount, out.headers, () =>
        member.handler(delivered),
      );
      member.inFlight.add(run);
      try {
        await run;
        return;
      } catch (e) {
        lastError = e;
        if (deliveryCount < maxDeliver) {
          this.logger.warn(
            { err: e, consumer: spec.name, event_id: out.id, delivery: deliveryCount },
            "event handler failed; retrying",
          );
          await sleep(backoffFor(spec, deliveryCount));
        }
      } finally {
        member.inFlight.delete(run);
      }
    }
    this.deadLetter(spec.name, out, event, lastError, maxDeliver);
  }

  private deadLetter(
    consumer: string,
    out: OutboundEvent,
    event: Event | undefined,
    error: unknown,
    deliveries: number,
  ): void {
    const letter: DeadLetter = {
      consumer,
      eventId: event?.id ?? out.id,
      subject: out.subject,
      error: errorMessage(error),
      deliveries,
      deadAt: new Date(),
      event,
    };
    const list = this.dead.get(consumer) ?? [];
    list.push(letter);
    this.dead.set(consumer, list);
    this.logger.error(
      { err: error, consumer, event_id: letter.eventId, subject: out.subject, deliveries },
      "event dead-lettered",
    );
  }
}
