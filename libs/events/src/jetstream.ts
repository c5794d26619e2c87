import { fromBinary } from "@bufbuild/protobuf";
import { createLogger, type Logger, UnavailableError } from "@uab/core";
import { type Event, EventSchema } from "@uab/proto/gen/uab/events/v1/event_pb.js";
import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerMessages,
  connect,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type MsgHdrs,
  type NatsConnection,
  NatsError,
  nanos,
  headers as natsHeaders,
  StorageType,
  type StreamConfig,
} from "nats";
import CircuitBreaker from "opossum";
import {
  type BatchConsumerSpec,
  type BatchEventHandler,
  backoffFor,
  type ConsumerSpec,
  DEFAULT_ACK_WAIT_MS,
  DEFAULT_MAX_BATCH,
  DEFAULT_MAX_DELIVER,
  type DeadLetter,
  type DeliveredEvent,
  type EventBus,
  type EventHandler,
  errorMessage,
  type OutboundEvent,
  type Subscription,
} from "./bus.js";
import { assertToken, SUBJECT_ROOT, subjectMatches } from "./subjects.js";
import { withConsumeSpan, withPublishSpan } from "./tracing.js";

/** Options for {@link JetStreamBus.connect}. */
export interface JetStreamBusOptions {
  /** NATS server URL(s), comma separated (`nats://nats:4222`). */
  readonly url: string;
  /**
   * First subject token on the wire, replacing the logical root `uab`; defaults to `uab`.
   * Tests pass a unique prefix so parallel files never see each other's events.
   */
  readonly subjectPrefix?: string;
  /** The events stream; defaults to `UAB_EVENTS`. */
  readonly streamName?: string;
  /** The dead-letter stream; defaults to `UAB_DLQ`. */
  readonly dlqStreamName?: string;
  /** JetStream's de-duplication window for `Nats-Msg-Id`; defaults to 2 minutes. */
  readonly duplicateWindowMs?: number;
  /** Connection name seen in NATS monitoring. */
  readonly name?: string;
  /** Logs publish failures, redeliveries and dead letters. */
  readonly logger?: Logger;
}

/** Headers the bus adds to a dead-lettered message. */
export const DLQ_HEADERS = {
  consumer: "Uab-Dlq-Consumer",
  subject: "Uab-Dlq-Subject",
  error: "Uab-Dlq-Error",
  deliveries: "Uab-Dlq-Deliveries",
  eventId: "Uab-Event-Id",
} as const;

// JetStream API error codes (nats-server errors.json).
const STREAM_NAME_IN_USE = 10058;

function apiErrorCode(e: unknown): number | undefined {
  return e instanceof NatsError ? e.api_error?.err_code : undefined;
}

function toRecord(h: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  for (const k of h.keys()) out[k] = h.get(k);
  return out;
}

function toHeaders(record: Record<string, string>): MsgHdrs {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(record)) h.set(k, v);
  return h;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The {@link EventBus} over NATS JetStream. Events go to one stream (`<prefix>.events.>`,
 * file storage) with `Nats-Msg-Id` = event id, so a republished event (the relay crashed
 * between publish and delete) is dropped inside the de-duplication window. Publishing goes
 * through a circuit breaker so an unreachable NATS fails fast and the relay backs off.
 *
 * Consumers are durable pull consumers with explicit acks: a failing handler's message is
 * nak'ed with the consumer's backoff delay; when the handler fails on the last allowed
 * delivery the message is copied to `<prefix>.dlq.<consumer>` (stream `UAB_DLQ`) with
 * headers naming the error and original subject, then terminated.
 */
export class JetStreamBus implements EventBus {
  private readonly subscriptions = new Set<Subscription>();
  private readonly breaker: CircuitBreaker<[readonly OutboundEvent[]], void>;
  private readonly multiFilter: boolean;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly prefix: string,
    private readonly streamName: string,
    private readonly dlqStreamName: string,
    private readonly logger: Logger,
  ) {
    this.breaker = new CircuitBreaker((events: readonly OutboundEvent[]) => this.send(events), {
      name: "jetstream-publish",
      // Longer than one JetStream publish timeout (5 s) with retries, so the breaker never
      // abandons a publish that may still be acknowledged.
      timeout: 30_000,
      errorThresholdPercentage: 50,
      volumeThreshold: 3,
      resetTimeout: 5_000,
    });
    // nats-server < 2.10 accepts only one filter subject per consumer.
    const [major = 0, minor = 0] = (nc.info?.version ?? "0.0.0").split(".").map(Number);
    this.multiFilter = major > 2 || (major === 2 && minor >= 10);
  }

  /** Connects to NATS and creates (or updates) the events and dead-letter streams. */
  static async connect(options: JetStreamBusOptions): Promise<JetStreamBus> {
    const prefix = options.subjectPrefix ?? SUBJECT_ROOT;
    assertToken("subject prefix", prefix);
    const logger = options.logger ?? createLogger({ service: "events", level: "silent" });
    const nc = await connect({
      servers: options.url.split(","),
      name: options.name ?? "uab-events",
      maxReconnectAttempts: -1,
    });
    try {
      const jsm = await nc.jetstreamManager();
      const streamName = options.streamName ?? "UAB_EVENTS";
      const dlqStreamName = options.dlqStreamName ?? "UAB_DLQ";
      const window = nanos(options.duplicateWindowMs ?? 120_000);
      await ensureStream(jsm, {
        name: streamName,
        subjects: [`${prefix}.events.>`],
        duplicate_window: window,
        storage: StorageType.File,
      });
      await ensureStream(jsm, {
        name: dlqStreamName,
        subjects: [`${prefix}.dlq.>`],
        duplicate_window: window,
        storage: StorageType.File,
      });
      return new JetStreamBus(nc, jsm, nc.jetstream(), prefix, streamName, dlqStreamName, logger);
    } catch (e) {
      await nc.close();
      throw e;
    }
  }

  /** See {@link EventBus.publish}. Rejects with `UnavailableError` while the breaker is open. */
  async publish(events: readonly OutboundEvent[]): Promise<void> {
    if (events.length === 0) return;
    try {
      await this.breaker.fire(events);
    } catch (e) {
      if ((e as { code?: string }).code === "EOPENBREAKER") {
        throw new UnavailableError("EVENT_BUS_UNAVAILABLE", "NATS JetStream is unavailable", { cause: e });
      }
      throw e;
    }
  }

  /** See {@link EventBus.subscribe}. Creates or updates the durable consumer first. */
  async subscribe(spec: ConsumerSpec, handler: EventHandler): Promise<Subscription> {
    const { consumer, maxDeliver, clientFilter } = await this.durable(spec);
    // A small pull batch: buffered messages wait for the sequential handler, and their ack
    // wait is already running.
    const messages: ConsumerMessages = await consumer.consume({ max_messages: 16 });
    const loop = (async () => {
      try {
        for await (const m of messages) {
          if (clientFilter && !spec.filterSubjects.some((f) => subjectMatches(f, this.toLogical(m.subject)))) {
            m.ack();
            continue;
          }
          await this.handle(spec, maxDeliver, handler, m);
        }
      } catch (e) {
        this.logger.error({ err: e, consumer: spec.name }, "event consumer stopped");
      }
    })();
    const sub: Subscription = {
      stop: async () => {
        this.subscriptions.delete(sub);
        await messages.close();
        await loop;
      },
    };
    this.subscriptions.add(sub);
    return sub;
  }

  /**
   * See {@link EventBus.subscribeBatch}. Messages are pulled continuously into a bounded
   * queue; whenever the handler is free it gets everything queued (up to `maxBatch`), so
   * batches grow with the backlog and an idle consumer handles an event at once.
   */
  async subscribeBatch(spec: BatchConsumerSpec, handler: BatchEventHandler): Promise<Subscription> {
    const maxBatch = spec.maxBatch ?? DEFAULT_MAX_BATCH;
    // Room for the batch being handled and two queued behind it; NATS's default (1,000)
    // would halve batches of 1,000.
    const { consumer, maxDeliver, clientFilter } = await this.durable(spec, {
      max_ack_pending: Math.max(1000, maxBatch * 3),
    });
    const messages: ConsumerMessages = await consumer.consume({ max_messages: maxBatch });
    const queue: JsMsg[] = [];
    let ended = false;
    let wake: (() => void) | undefined;
    let drained: (() => void) | undefined;
    const pump = (async () => {
      try {
        for await (const m of messages) {
          if (clientFilter && !spec.filterSubjects.some((f) => subjectMatches(f, this.toLogical(m.subject)))) {
            m.ack();
            continue;
          }
          queue.push(m);
          wake?.();
          // Bounded: stop pulling while two batches wait (their ack wait is running).
          if (queue.length >= maxBatch * 2) await new Promise<void>((r) => (drained = r));
        }
      } catch (e) {
        this.logger.error({ err: e, consumer: spec.name }, "event consumer stopped");
      } finally {
        ended = true;
        wake?.();
      }
    })();
    const loop = (async () => {
      for (;;) {
        if (queue.length === 0) {
          if (ended) return;
          await new Promise<void>((r) => (wake = r));
          wake = undefined;
          continue;
        }
        const batch = queue.splice(0, maxBatch);
        drained?.();
        drained = undefined;
        await this.handleBatch(spec, maxDeliver, handler, batch);
      }
    })();
    const sub: Subscription = {
      stop: async () => {
        this.subscriptions.delete(sub);
        await messages.close();
        drained?.();
        await pump;
        await loop;
      },
    };
    this.subscriptions.add(sub);
    return sub;
  }

  /** See {@link EventBus.deadLetters}. Reads the consumer's subject of the dead-letter stream. */
  async deadLetters(consumerName: string): Promise<DeadLetter[]> {
    assertToken("consumer name", consumerName);
    const subject = `${this.prefix}.dlq.${consumerName}`;
    const info = await this.jsm.streams.info(this.dlqStreamName, { subjects_filter: subject });
    const count = info.state.subjects?.[subject] ?? 0;
    if (count === 0) return [];
    const reader = await this.js.consumers.get(this.dlqStreamName, { filterSubjects: subject });
    const out: DeadLetter[] = [];
    for await (const m of await reader.fetch({ max_messages: count, expires: 5_000 })) {
      const h = toRecord(m.headers);
      let event: Event | undefined;
      try {
        event = fromBinary(EventSchema, m.data);
      } catch {
        event = undefined;
      }
      out.push({
        consumer: consumerName,
        eventId: h[DLQ_HEADERS.eventId] ?? event?.id ?? "",
        subject: h[DLQ_HEADERS.subject] ?? "",
        error: h[DLQ_HEADERS.error] ?? "",
        deliveries: Number(h[DLQ_HEADERS.deliveries] ?? 0),
        deadAt: new Date(m.info.timestampNanos / 1_000_000),
        event,
      });
      if (out.length >= count) break;
    }
    return out;
  }

  /** Stops every subscription, the breaker and the connection. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.subscriptions].map((s) => s.stop()));
    this.breaker.shutdown();
    if (!this.nc.isClosed()) await this.nc.close();
  }

  private toWire(subject: string): string {
    if (subject !== SUBJECT_ROOT && !subject.startsWith(`${SUBJECT_ROOT}.`)) {
      throw new Error(`subject ${subject} does not start with ${SUBJECT_ROOT}.`);
    }
    return this.prefix + subject.slice(SUBJECT_ROOT.length);
  }

  private toLogical(subject: string): string {
    return subject.startsWith(`${this.prefix}.`) ? SUBJECT_ROOT + subject.slice(this.prefix.length) : subject;
  }

  /** Creates or updates the durable consumer of `spec` and opens it. */
  private async durable(spec: ConsumerSpec, extra: Partial<ConsumerConfig> = {}) {
    assertToken("consumer name", spec.name);
    if (spec.filterSubjects.length === 0) throw new Error(`consumer ${spec.name} has no filter subject`);
    const maxDeliver = spec.maxDeliver ?? DEFAULT_MAX_DELIVER;
    const wireFilters = spec.filterSubjects.map((s) => this.toWire(s));
    const config: Partial<ConsumerConfig> = {
      durable_name: spec.name,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      // One more than the handler gets: if the last allowed delivery times out instead of
      // failing (ack_wait expired), the extra delivery dead-letters it without running the
      // handler, rather than leaving it unacknowledged forever.
      max_deliver: maxDeliver + 1,
      ack_wait: nanos(spec.ackWaitMs ?? DEFAULT_ACK_WAIT_MS),
      ...extra,
    };
    if (wireFilters.length === 1) config.filter_subject = wireFilters[0];
    else if (this.multiFilter) config.filter_subjects = wireFilters;
    // Older servers: take the whole stream and acknowledge non-matching events unhandled.
    const clientFilter = wireFilters.length > 1 && !this.multiFilter;
    await ensureConsumer(this.jsm, this.streamName, config);
    const consumer = await this.js.consumers.get(this.streamName, spec.name);
    return { consumer, maxDeliver, clientFilter };
  }

  /**
   * Handles one batch: undecodable or exhausted messages are dead-lettered alone, the rest
   * go to the handler together and are acknowledged together; if it throws, each is
   * handled alone (with the per-event retries and dead-lettering).
   */
  private async handleBatch(
    spec: ConsumerSpec,
    maxDeliver: number,
    handler: BatchEventHandler,
    batch: readonly JsMsg[],
  ): Promise<void> {
    const ready: { m: JsMsg; d: DeliveredEvent }[] = [];
    for (const m of batch) {
      const deliveryCount = m.info.redeliveryCount;
      const headers = toRecord(m.headers);
      const subject = this.toLogical(m.subject);
      let event: Event;
      try {
        event = fromBinary(EventSchema, m.data);
      } catch (e) {
        await this.deadLetter(spec.name, m, subject, headers, "", e, deliveryCount);
        continue;
      }
      if (deliveryCount > maxDeliver) {
        await this.deadLetter(
          spec.name,
          m,
          subject,
          headers,
          event.id,
          new Error("ack wait expired on the last delivery"),
          maxDeliver,
        );
        continue;
      }
      ready.push({ m, d: { event, subject, deliveryCount, headers } });
    }
    if (ready.length === 0) return;
    try {
      await handler(ready.map((r) => r.d));
      for (const r of ready) r.m.ack();
    } catch (e) {
      this.logger.warn(
        { err: e, consumer: spec.name, events: ready.length },
        "batch failed; handling its events one by one",
      );
      for (const r of ready) await this.handle(spec, maxDeliver, (d) => handler([d]), r.m);
    }
  }

  private async send(events: readonly OutboundEvent[]): Promise<void> {
    // Issued together (the client writes them in call order) and awaited together: one
    // round trip per batch instead of one per event.
    const acks = await Promise.all(
      events.map((e) =>
        withPublishSpan("nats", e, (headers) =>
          this.js.publish(this.toWire(e.subject), e.data, { msgID: e.id, headers: toHeaders(headers) }),
        ),
      ),
    );
    const duplicates = acks.filter((a) => a.duplicate).length;
    if (duplicates > 0) this.logger.info({ duplicates }, "JetStream dropped republished events");
  }

  private async handle(spec: ConsumerSpec, maxDeliver: number, handler: EventHandler, m: JsMsg): Promise<void> {
    const deliveryCount = m.info.redeliveryCount;
    const headers = toRecord(m.headers);
    const subject = this.toLogical(m.subject);
    let event: Event;
    try {
      event = fromBinary(EventSchema, m.data);
    } catch (e) {
      // No delivery can fix an undecodable message.
      await this.deadLetter(spec.name, m, subject, headers, "", e, deliveryCount);
      return;
    }
    if (deliveryCount > maxDeliver) {
      await this.deadLetter(
        spec.name,
        m,
        subject,
        headers,
        event.id,
        new Error("ack wait expired on the last delivery"),
        maxDeliver,
      );
      return;
    }
    try {
      await withConsumeSpan("nats", spec.name, subject, event.id, deliveryCount, headers, () =>
        handler({ event, subject, deliveryCount, headers }),
      );
      m.ack();
    } catch (e) {
      if (deliveryCount >= maxDeliver) {
        await this.deadLetter(spec.name, m, subject, headers, event.id, e, deliveryCount);
      } else {
        const delay = backoffFor(spec, deliveryCount);
        this.logger.warn(
          { err: e, consumer: spec.name, event_id: event.id, delivery: deliveryCount, retry_in_ms: delay },
          "event handler failed; will retry",
        );
        m.nak(delay);
      }
    }
  }

  private async deadLetter(
    consumer: string,
    m: JsMsg,
    subject: string,
    original: Record<string, string>,
    eventId: string,
    error: unknown,
    deliveries: number,
  ): Promise<void> {
    const headers: Record<string, string> = {
      ...original,
      [DLQ_HEADERS.consumer]: consumer,
      [DLQ_HEADERS.subject]: subject,
      [DLQ_HEADERS.error]: errorMessage(error),
      [DLQ_HEADERS.deliveries]: String(deliveries),
      [DLQ_HEADERS.eventId]: eventId,
    };
    delete headers["Nats-Msg-Id"];
    // The message id makes a repeated dead-lettering (crash before term) a no-op.
    const msgID = `${consumer}.${eventId || `${m.info.stream}.${m.seq}`}`;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.js.publish(`${this.prefix}.dlq.${consumer}`, m.data, { msgID, headers: toHeaders(headers) });
        break;
      } catch (e) {
        if (attempt >= 3) {
          // Leave it for a redelivery, which retries the dead-lettering while max_deliver
          // allows one; past that only this log line tells an operator.
          this.logger.error({ err: e, consumer, event_id: eventId }, "could not dead-letter event");
          m.nak(backoffFor({ name: consumer, filterSubjects: [] }, attempt));
          return;
        }
        await sleep(100 * attempt);
      }
    }
    // No reason argument: nats-server < 2.10.4 does not recognise `+TERM <reason>` and
    // silently leaves the message unacknowledged. The reason is in the DLQ headers anyway.
    m.term();
    this.logger.error({ err: error, consumer, event_id: eventId, subject, deliveries }, "event dead-lettered");
  }
}

async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    await jsm.streams.add(config);
  } catch (e) {
    if (apiErrorCode(e) !== STREAM_NAME_IN_USE) throw e;
    // It exists with another configuration (older subjects or window): bring it in line.
    const info = await jsm.streams.info(config.name);
    await jsm.streams.update(config.name, {
      ...info.config,
      subjects: config.subjects ?? [],
      duplicate_window: config.duplicate_window ?? 0,
    });
  }
}

async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  config: Partial<ConsumerConfig> & { durable_name?: string },
): Promise<void> {
  try {
    await jsm.consumers.add(stream, config);
  } catch (e) {
    if (!(e instanceof NatsError) || !config.durable_name) throw e;
    // It exists with another configuration (new max_deliver, filters): update it in place
    // so its position in the stream is kept.
    await jsm.consumers.update(stream, config.durable_name, config);
  }
}
