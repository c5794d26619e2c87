import type { Event } from "@uab/proto/gen/uab/events/v1/event_pb.js";

/** One serialized event on its way to the bus, as the relay reads it from the outbox. */
export interface OutboundEvent {
  /** The event id (`evt_…`); the de-duplication key on JetStream (`Nats-Msg-Id`). */
  readonly id: string;
  /** The logical subject, `uab.events.<source>.<tenant_id | platform>.<type>`. */
  readonly subject: string;
  /** The serialized `uab.events.v1.Event`. */
  readonly data: Uint8Array;
  /** Message headers, notably the W3C trace context of the request that made the change. */
  readonly headers: Record<string, string>;
}

/** One delivery of an event to a consumer. */
export interface DeliveredEvent {
  /** The decoded envelope. */
  readonly event: Event;
  /** The logical subject it was published on. */
  readonly subject: string;
  /** 1 on the first delivery, 2 on the first redelivery, and so on. */
  readonly deliveryCount: number;
  /** The message headers. */
  readonly headers: Record<string, string>;
}

/** A durable consumer: its name identifies it across restarts and replicas. */
export interface ConsumerSpec {
  /**
   * Durable name (`audit`, `notification-webhooks`). Replicas subscribing with the same
   * name share the work; each event is handled by one of them. One subject token.
   */
  readonly name: string;
  /** Logical subjects to receive, with NATS wildcards (`uab.events.tenancy.>`). */
  readonly filterSubjects: readonly string[];
  /** Deliveries before an event is dead-lettered; defaults to {@link DEFAULT_MAX_DELIVER}. */
  readonly maxDeliver?: number;
  /** How long a delivery may stay unacknowledged before JetStream redelivers it; defaults to 30 s. */
  readonly ackWaitMs?: number;
  /**
   * Delay before redelivering after the n-th failed delivery (index n - 1; the last entry
   * repeats); defaults to {@link DEFAULT_BACKOFF_MS}.
   */
  readonly backoffMs?: readonly number[];
}

/** An event a consumer gave up on after its last delivery failed. */
export interface DeadLetter {
  /** The consumer that failed. */
  readonly consumer: string;
  /** The event id, or empty when the message could not even be decoded. */
  readonly eventId: string;
  /** The logical subject the event was published on. */
  readonly subject: string;
  /** The last error's message. */
  readonly error: string;
  /** How many deliveries were attempted. */
  readonly deliveries: number;
  /** When it was dead-lettered. */
  readonly deadAt: Date;
  /** The event, when it could be decoded (for replay tools). */
  readonly event?: Event | undefined;
}

/** A consumer's handler: resolving acknowledges the delivery, throwing asks for a redelivery. */
export type EventHandler = (delivered: DeliveredEvent) => Promise<void>;

/**
 * A batch consumer's handler: it gets the events available at once, in order (at most
 * {@link BatchConsumerSpec.maxBatch}). Resolving acknowledges every one of them. Throwing
 * has each event of the batch handled again on its own (a batch of one), with the usual
 * retries and dead-lettering, so one poison event cannot hold back the others.
 */
export type BatchEventHandler = (batch: readonly DeliveredEvent[]) => Promise<void>;

/** A durable consumer whose handler takes events in batches (group commit). */
export interface BatchConsumerSpec extends ConsumerSpec {
  /** Most events per handler call; defaults to 256. */
  readonly maxBatch?: number;
}

/** Default {@link BatchConsumerSpec.maxBatch}. */
export const DEFAULT_MAX_BATCH = 256;

/** A running subscription. */
export interface Subscription {
  /** Stops receiving and waits for the handler call in flight, if any. */
  stop(): Promise<void>;
}

/**
 * Where events go after the outbox, and where consumers read them: JetStream in
 * deployments ({@link JetStreamBus}), in memory when no NATS is configured
 * ({@link InProcessBus}). Delivery is at least once on both; consumers make redeliveries
 * harmless with the inbox ({@link handleOnce}).
 */
export interface EventBus {
  /**
   * Publishes `events` in order. Resolves only once they are durable: acknowledged by the
   * JetStream stream, or, in-process, handled or dead-lettered by every subscribed consumer
   * whose filter matches. Rejects otherwise, so the relay keeps the outbox rows.
   */
  publish(events: readonly OutboundEvent[]): Promise<void>;
  /** Starts a durable consumer; events it fails on {@link ConsumerSpec.maxDeliver} times become dead letters. */
  subscribe(spec: ConsumerSpec, handler: EventHandler): Promise<Subscription>;
  /**
   * Starts a durable consumer that takes events in batches: whatever is waiting when the
   * handler is free, up to `maxBatch` (no artificial delay: under load batches grow, when
   * idle an event is handled alone at once). See {@link BatchEventHandler} for failures.
   */
  subscribeBatch(spec: BatchConsumerSpec, handler: BatchEventHandler): Promise<Subscription>;
  /** The events that ended in the dead-letter queue of `consumer`, oldest first. */
  deadLetters(consumer: string): Promise<DeadLetter[]>;
  /** Stops every subscription and releases connections. */
  close(): Promise<void>;
}

/** Default {@link ConsumerSpec.maxDeliver}. */
export const DEFAULT_MAX_DELIVER = 5;

/** Default {@link ConsumerSpec.backoffMs}: quick first retry, then slower ones for outages. */
export const DEFAULT_BACKOFF_MS: readonly number[] = [200, 1_000, 5_000, 15_000];

/** Default {@link ConsumerSpec.ackWaitMs}. */
export const DEFAULT_ACK_WAIT_MS = 30_000;

/** The redelivery delay after the `deliveryCount`-th delivery of `spec` failed. */
export function backoffFor(spec: ConsumerSpec, deliveryCount: number): number {
  const list = spec.backoffMs && spec.backoffMs.length > 0 ? spec.backoffMs : DEFAULT_BACKOFF_MS;
  return list[Math.min(Math.max(deliveryCount, 1), list.length) - 1] ?? 0;
}

/** The message of an unknown thrown value, on one line (it travels in a NATS header). */
export function errorMessage(e: unknown): string {
  const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return text.replace(/[\r\n]+/g, " ").slice(0, 1_000);
}
