import { extractTraceContext, injectTraceContext, SpanKind, withSpan } from "@uab/core";
import type { OutboundEvent } from "./bus.js";

const TRACE_HEADERS = ["traceparent", "tracestate"];

/**
 * Runs `send` inside a PRODUCER span that continues the trace of the request which wrote
 * the event (its context travels in the outbox headers), and hands it the headers to put
 * on the wire: the original ones with the trace context replaced by the producer span's,
 * so consumer spans hang below the publish.
 */
export function withPublishSpan<T>(
  system: string,
  event: OutboundEvent,
  send: (headers: Record<string, string>) => Promise<T>,
): Promise<T> {
  return withSpan(
    `publish ${event.subject}`,
    {
      kind: SpanKind.PRODUCER,
      parent: extractTraceContext(event.headers),
      attributes: {
        "messaging.system": system,
        "messaging.operation.type": "send",
        "messaging.destination.name": event.subject,
        "messaging.message.id": event.id,
      },
    },
    () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(event.headers)) if (!TRACE_HEADERS.includes(k)) headers[k] = v;
      return send({ ...headers, ...injectTraceContext() });
    },
  );
}

/** Runs a consumer's handler inside a CONSUMER span whose parent is the trace context in `headers`. */
export function withConsumeSpan<T>(
  system: string,
  consumer: string,
  subject: string,
  eventId: string,
  deliveryCount: number,
  headers: Record<string, string>,
  fn: () => Promise<T>,
): Promise<T> {
  return withSpan(
    `process ${consumer}`,
    {
      kind: SpanKind.CONSUMER,
      parent: extractTraceContext(headers),
      attributes: {
        "messaging.system": system,
        "messaging.operation.type": "process",
        "messaging.destination.name": subject,
        "messaging.consumer.group.name": consumer,
        "messaging.message.id": eventId,
        "messaging.message.delivery_count": deliveryCount,
      },
    },
    fn,
  );
}
