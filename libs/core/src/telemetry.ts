import {
  type Attributes,
  type Context,
  context,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapSetter,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { BatchSpanProcessor, type SpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";

export { SpanKind };

/** UAB's tracer: every span UAB makes (RPC, DB, publish, consume) comes from it. */
export function tracer(): Tracer {
  return trace.getTracer("uab");
}

/** Options for {@link startTelemetry}. */
export interface TelemetryOptions {
  /** Span processors to add (tests pass a SimpleSpanProcessor over an in-memory exporter). */
  readonly processors?: readonly SpanProcessor[];
  /** OTLP/HTTP traces endpoint (`http://collector:4318/v1/traces`); no export when unset. */
  readonly otlpEndpoint?: string | undefined;
}

let started: TracerProvider | undefined;

/**
 * Installs the global tracer provider, W3C propagator and async context manager, once per
 * process. Without processors or an OTLP endpoint spans are still created and propagated
 * (trace ids reach logs and NATS headers) but not exported.
 */
export function startTelemetry(options: TelemetryOptions = {}): TracerProvider {
  if (started) return started;
  const processors: SpanProcessor[] = [...(options.processors ?? [])];
  if (options.otlpEndpoint)
    processors.push(new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: options.otlpEndpoint }) }));
  const provider = new TracerProvider({ spanProcessors: processors });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  started = provider;
  return provider;
}

/**
 * Runs `fn` inside a new active span; records an exception and an error status when it
 * throws, and always ends the span.
 */
export async function withSpan<T>(
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes; parent?: Context },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = options.parent ?? context.active();
  return tracer().startActiveSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes ?? {} },
    parent,
    async (span) => {
      try {
        return await fn(span);
      } catch (e) {
        span.recordException(e instanceof Error ? e : String(e));
        span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
        throw e;
      } finally {
        span.end();
      }
    },
  );
}

const recordSetter: TextMapSetter<Record<string, string>> = {
  set(carrier, key, value) {
    carrier[key] = value;
  },
};

const recordGetter: TextMapGetter<Record<string, string>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/** The W3C trace context (`traceparent`, `tracestate`) of `ctx` as plain headers. */
export function injectTraceContext(ctx: Context = context.active()): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier, recordSetter);
  return carrier;
}

/** A context whose remote parent is the trace context in `headers`. */
export function extractTraceContext(headers: Record<string, string>): Context {
  return propagation.extract(context.active(), headers, recordGetter);
}
