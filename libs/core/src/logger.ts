import { trace } from "@opentelemetry/api";
import { type Logger, type LoggerOptions, pino } from "pino";
import { currentRequestContext } from "./context.js";

export type { Logger } from "pino";

/**
 * Paths pino redacts everywhere: credentials in headers, request bodies and errors. Values
 * are replaced by `[redacted]`, never logged in part.
 */
export const REDACT_PATHS: readonly string[] = [
  "password",
  "*.password",
  "*.currentPassword",
  "*.newPassword",
  "token",
  "*.token",
  "accessToken",
  "*.accessToken",
  "refreshToken",
  "*.refreshToken",
  "secret",
  "*.secret",
  "*.clientSecret",
  "*.apiKey",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "headers.cookie",
  "*.headers.cookie",
  'headers["x-api-key"]',
  "databaseUrl",
  "*.databaseUrl",
];

/** Options for {@link createLogger}. */
export interface CreateLoggerOptions {
  /** The service or component name, logged as `service`. */
  readonly service: string;
  /** pino level; defaults to `info`. */
  readonly level?: string;
  /** Where to write; defaults to stdout. Tests pass a stream to read lines back. */
  readonly destination?: NodeJS.WritableStream;
}

/**
 * Creates UAB's JSON logger. Every line carries `service`, and inside a request also
 * `request_id`, `tenant_id` and `trace_id` (from the request context and the active span);
 * secrets at {@link REDACT_PATHS} are redacted.
 */
export function createLogger(options: CreateLoggerOptions): Logger {
  const opts: LoggerOptions = {
    level: options.level ?? "info",
    base: { service: options.service },
    redact: { paths: [...REDACT_PATHS], censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin() {
      const ctx = currentRequestContext();
      const span = trace.getActiveSpan()?.spanContext();
      const out: Record<string, string> = {};
      if (ctx) {
        out.request_id = ctx.requestId;
        if (ctx.tenantId) out.tenant_id = ctx.tenantId;
        if (ctx.principal) out.principal_id = ctx.principal.id;
      }
      if (span && span.traceId !== "00000000000000000000000000000000") out.trace_id = span.traceId;
      return out;
    },
  };
  return options.destination ? pino(opts, options.destination as pino.DestinationStream) : pino(opts);
}
