/**
 * One signed delivery: a single HTTP(S) POST, classified into a {@link DeliveryResult} that
 * says whether it worked, whether trying again could help, and whether the receiver asked us
 * to stop. Network and HTTP failures are results, never exceptions, so a delivery worker can
 * record them and schedule the next attempt (retry.ts) without a try/catch per cause.
 *
 * It uses node:http(s) rather than fetch for three reasons: a custom DNS `lookup` lets the
 * SSRF guard check the address actually connected to (a public name that resolves to
 * 10.0.0.5 is refused, and so is a DNS answer that changes between a check and the connect);
 * redirects are never followed; and the response body can be cut off after the excerpt
 * without reading the rest.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from "node:dns";
import { type ClientRequest, request as httpRequest, type IncomingMessage, type RequestOptions } from "node:http";
import { request as httpsRequest } from "node:https";
import type { LookupFunction } from "node:net";
import { rootCertificates } from "node:tls";
import { blockedAddressReason, checkEndpointUrl, classifyAddress, hostOf } from "./address.js";
import { signatureHeaders } from "./signature.js";

/** The default total time a delivery may take: connect, send and response. */
export const DEFAULT_TIMEOUT_MS = 15_000;

/** The default length of the response excerpt kept in a result, in bytes. */
export const DEFAULT_MAX_RESPONSE_BYTES = 1024;

/** The default `User-Agent` of deliveries. */
export const DEFAULT_USER_AGENT = "UAB-Webhooks/1";

/** The longest wait a receiver's `Retry-After` can ask for: 1 hour. */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/** One message to deliver. */
export interface DeliveryRequest {
  /** The endpoint: an `https:` URL (`http:` only with `allowPrivateNetworks`). */
  readonly url: string;
  /** The message id (`webhook-id`): the same on every attempt, so receivers can deduplicate. */
  readonly id: string;
  /** The request body, sent and signed byte for byte (a string as UTF-8). */
  readonly body: string | Uint8Array;
  /** The body's media type, e.g. `application/json`. */
  readonly contentType: string;
  /**
   * Extra headers chosen by the endpoint's owner (an `Authorization` for a SIEM, say). They
   * cannot replace the `webhook-*` headers, `Content-Type`, `User-Agent` or the headers that
   * shape the HTTP exchange (`Host`, `Content-Length`, `Connection`, `Expect`, ...): those are
   * dropped.
   */
  readonly headers?: Readonly<Record<string, string>>;
  /** The endpoint's signing secrets (`whsec_…`); two while a rotation overlaps. */
  readonly secrets: readonly string[];
  /** The signing time; defaults to now. */
  readonly timestamp?: Date;
}

/** How to deliver. */
export interface DeliveryOptions {
  /** The total time for connect, send and response, in ms; default 15,000. */
  readonly timeoutMs?: number;
  /** How many bytes of the response body to keep as the excerpt; default 1024. The rest is not read. */
  readonly maxResponseBytes?: number;
  /**
   * Allow private, loopback and other non-public addresses, and `http:` URLs. Only for tests
   * and local development; default false.
   */
  readonly allowPrivateNetworks?: boolean;
  /** Extra trusted CA certificates (PEM), in addition to the public roots: for tests. */
  readonly ca?: string | Buffer;
  /** The `User-Agent` header; default `UAB-Webhooks/1`. */
  readonly userAgent?: string;
  /** Aborts the delivery (on shutdown, say); an aborted delivery is a retryable failure. */
  readonly signal?: AbortSignal;
}

/** What happened to a delivery, in one low-cardinality word (for metrics and branching). */
export type DeliveryOutcome =
  | "delivered"
  | "http-error"
  | "redirect"
  | "timeout"
  | "network-error"
  | "blocked"
  | "invalid-request"
  | "aborted"
  | "circuit-open";

/** The outcome of one delivery attempt. */
export interface DeliveryResult {
  /** True when the receiver answered 2xx. */
  readonly ok: boolean;
  /** What happened. */
  readonly outcome: DeliveryOutcome;
  /** The HTTP status, when a response arrived. */
  readonly statusCode?: number;
  /** How long the attempt took, in whole ms. */
  readonly durationMs: number;
  /** The start of the response body as UTF-8 (at most `maxResponseBytes` bytes; "" when none). */
  readonly responseExcerpt: string;
  /** Why it failed, for a person: `HTTP 503`, `timeout after 15000 ms`, `connection refused`. */
  readonly error?: string;
  /** Whether trying again later could succeed: network errors, timeouts, 408, 425, 429 and 5xx. */
  readonly retryable: boolean;
  /** True for HTTP 410 Gone: the receiver asks to stop sending to this endpoint. */
  readonly gone: boolean;
  /** How long the receiver asked us to wait (`Retry-After` on 429 and 503), capped at 1 hour. */
  readonly retryAfterMs?: number;
}

// Headers a caller cannot set: ours, and those that shape the HTTP exchange itself.
const RESERVED_HEADERS = new Set([
  "content-type",
  "content-length",
  "user-agent",
  "host",
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "expect",
]);

/** The header names a caller's extra headers cannot set (compared in lower case). */
export function isReservedHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return RESERVED_HEADERS.has(lower) || lower.startsWith("webhook-");
}

/** An address refused by the SSRF guard during DNS lookup. */
class BlockedAddressError extends Error {
  readonly code = "EUAB_BLOCKED";
}

/**
 * A DNS lookup that refuses non-public addresses: every address the name resolves to must
 * be public, otherwise the connection fails with a {@link BlockedAddressError}. Node calls it
 * for host names only, so literal IP hosts are checked before the request (checkEndpointUrl).
 */
const guardedLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...(options as LookupOptions), all: true }, (err, addresses: LookupAddress[]) => {
    if (err) {
      callback(err, "", undefined);
      return;
    }
    for (const { address } of addresses) {
      const cls = classifyAddress(address);
      if (cls !== "public") {
        callback(new BlockedAddressError(`blocked: ${blockedAddressReason(address, cls, hostname)}`), "", undefined);
        return;
      }
    }
    if ((options as LookupOptions).all) {
      callback(null, addresses);
      return;
    }
    const first = addresses[0];
    if (first === undefined)
      callback(Object.assign(new Error(`no address for ${hostname}`), { code: "ENOTFOUND" }), "");
    else callback(null, first.address, first.family);
  });
};

/**
 * The wait a `Retry-After` header asks for, in ms: delay-seconds or an HTTP-date, capped at
 * {@link MAX_RETRY_AFTER_MS}; 0 for a date in the past; undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(0, at - now), MAX_RETRY_AFTER_MS);
}

type Classified = Omit<DeliveryResult, "durationMs" | "responseExcerpt">;

function fromResponse(response: IncomingMessage, url: URL): Classified {
  const statusCode = response.statusCode ?? 0;
  if (statusCode >= 200 && statusCode < 300) {
    return { ok: true, outcome: "delivered", statusCode, retryable: false, gone: false };
  }
  if (statusCode >= 300 && statusCode < 400) {
    const location = response.headers.location;
    let target = location;
    if (location !== undefined) {
      try {
        target = new URL(location, url).toString();
      } catch {
        // Keep the header as sent.
      }
    }
    return {
      ok: false,
      outcome: "redirect",
      statusCode,
      error:
        target === undefined ? `HTTP ${statusCode} redirect without a Location` : `redirect to ${target.slice(0, 200)}`,
      retryable: false,
      gone: false,
    };
  }
  const retryable =
    statusCode === 408 || statusCode === 425 || statusCode === 429 || (statusCode >= 500 && statusCode < 600);
  const retryAfterMs =
    statusCode === 429 || statusCode === 503 ? parseRetryAfter(response.headers["retry-after"]) : undefined;
  return {
    ok: false,
    outcome: "http-error",
    statusCode,
    error: `HTTP ${statusCode}`,
    retryable,
    gone: statusCode === 410,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
}

function errorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; errors?: unknown[] };
  if (typeof e?.code === "string") return e.code;
  // Node's happy-eyeballs connect reports every address's failure in an AggregateError.
  if (Array.isArray(e?.errors)) return errorCode(e.errors[0]);
  return undefined;
}

function fromNetworkError(err: unknown, host: string): Classified {
  if (err instanceof BlockedAddressError) {
    return { ok: false, outcome: "blocked", error: err.message, retryable: false, gone: false };
  }
  const code = errorCode(err);
  const message = errorMessage(err);
  let error: string;
  switch (code) {
    case "ECONNREFUSED":
      error = "connection refused";
      break;
    case "ECONNRESET":
      error = "connection reset";
      break;
    case "EPIPE":
      error = "connection closed while sending";
      break;
    case "ENOTFOUND":
      error = `host not found: ${host}`;
      break;
    case "EAI_AGAIN":
      error = `DNS lookup failed for ${host} (try again)`;
      break;
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      error = `${host} is unreachable`;
      break;
    case "ETIMEDOUT":
      error = "connect timed out";
      break;
    default:
      if (code !== undefined && /CERT|SSL|TLS|EPROTO/.test(code)) error = `TLS error: ${message}`;
      else error = code === undefined || message.includes(code) ? message : `${code}: ${message}`;
  }
  return { ok: false, outcome: "network-error", error, retryable: true, gone: false };
}

function invalid(error: string, started: number): DeliveryResult {
  return {
    ok: false,
    outcome: "invalid-request",
    durationMs: elapsed(started),
    responseExcerpt: "",
    error,
    retryable: false,
    gone: false,
  };
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}

// Duck-typed: errors from node's own modules fail `instanceof Error` inside a vm context (jest).
function errorMessage(err: unknown): string {
  const message = (err as { message?: unknown })?.message;
  return typeof message === "string" && message !== "" ? message : String(err);
}

function buildHeaders(request: DeliveryRequest, userAgent: string, body: Buffer): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    if (!isReservedHeader(name)) headers[name.toLowerCase()] = value;
  }
  const signed = signatureHeaders(
    { id: request.id, timestamp: request.timestamp ?? new Date(), body },
    request.secrets,
  );
  return {
    ...headers,
    ...signed,
    "content-type": request.contentType,
    "content-length": String(body.length),
    "user-agent": userAgent,
  };
}

function checkOptions(options: DeliveryOptions): { timeoutMs: number; maxResponseBytes: number } {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new RangeError(`deliver: timeoutMs must be a positive number, not ${timeoutMs}`);
  }
  if (!(Number.isInteger(maxResponseBytes) && maxResponseBytes >= 0)) {
    throw new RangeError(`deliver: maxResponseBytes must be a non-negative integer, not ${maxResponseBytes}`);
  }
  return { timeoutMs, maxResponseBytes };
}

/**
 * Sends one signed POST and classifies the outcome. It never throws for a failed delivery:
 * a malformed URL, secret or header, a refused address, a network error, a timeout or an
 * HTTP error all come back as a result with `ok: false`, a reason and `retryable`.
 *
 * - Only `https:` URLs (`http:` with `allowPrivateNetworks`); credentials in URLs are refused.
 * - The SSRF guard refuses private, loopback, link-local, carrier-grade NAT, multicast,
 *   unspecified, reserved and cloud metadata addresses, IPv4 and IPv6 (IPv4-mapped too),
 *   both literal and as resolved from a name, before any connection to them is made.
 * - Redirects are not followed: a 3xx fails, naming its Location.
 * - One deadline (`timeoutMs`) covers connecting, sending and the response; on expiry the
 *   request is aborted.
 * - Only the first `maxResponseBytes` of the response body are read; then the connection is
 *   closed, so a huge or endless body costs nothing.
 * @throws RangeError only for out-of-range options (a programming error).
 */
export async function deliver(request: DeliveryRequest, options: DeliveryOptions = {}): Promise<DeliveryResult> {
  const started = performance.now();
  const { timeoutMs, maxResponseBytes } = checkOptions(options);
  const allowPrivateNetworks = options.allowPrivateNetworks === true;

  // 1. The URL: scheme, credentials, literal addresses.
  const check = checkEndpointUrl(request.url, { allowPrivateNetworks });
  if (!check.ok) {
    // The reason names no part of the URL but a refused address: it may hold credentials.
    return check.blocked ? { ...invalid(check.reason, started), outcome: "blocked" } : invalid(check.reason, started);
  }
  const url = check.url;
  const host = hostOf(url);

  // 2. Body and headers, signed.
  const body =
    typeof request.body === "string"
      ? Buffer.from(request.body, "utf8")
      : Buffer.from(request.body.buffer, request.body.byteOffset, request.body.byteLength);
  let headers: Record<string, string>;
  try {
    headers = buildHeaders(request, options.userAgent ?? DEFAULT_USER_AGENT, body);
  } catch (err) {
    return invalid(errorMessage(err), started);
  }
  if (options.signal?.aborted) {
    return { ...invalid("aborted", started), outcome: "aborted", retryable: true };
  }

  // 3. Send, and settle exactly once: on the response (once the excerpt is complete), on an
  // error, on the deadline or on abort.
  const requestOptions: RequestOptions & { ca?: (string | Buffer)[] } = {
    method: "POST",
    protocol: url.protocol,
    hostname: host,
    port: url.port === "" ? undefined : Number(url.port),
    path: `${url.pathname}${url.search}`,
    headers,
    agent: false,
    ...(allowPrivateNetworks ? {} : { lookup: guardedLookup }),
    ...(options.ca === undefined ? {} : { ca: [...rootCertificates, options.ca] }),
  };
  return new Promise<DeliveryResult>((resolve) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let response: IncomingMessage | undefined;
    let req: ClientRequest | undefined;
    let settled = false;

    const settle = (classified: Classified): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      req?.destroy();
      // A streaming decoder holds back a multi-byte character cut off at the excerpt's end.
      const responseExcerpt = new TextDecoder("utf-8").decode(Buffer.concat(chunks), { stream: true });
      resolve({ ...classified, durationMs: elapsed(started), responseExcerpt });
    };
    // Once a status has arrived, it decides the outcome even if the body is cut short.
    const settleOr = (classified: Classified): void =>
      settle(response === undefined ? classified : fromResponse(response, url));
    const onAbort = (): void =>
      settleOr({ ok: false, outcome: "aborted", error: "aborted", retryable: true, gone: false });
    const timer = setTimeout(
      () =>
        settleOr({
          ok: false,
          outcome: "timeout",
          error: `timeout after ${timeoutMs} ms`,
          retryable: true,
          gone: false,
        }),
      timeoutMs,
    );
    options.signal?.addEventListener("abort", onAbort, { once: true });

    try {
      req = (url.protocol === "https:" ? httpsRequest : httpRequest)(requestOptions);
    } catch (err) {
      // Invalid header names or values are refused synchronously.
      settle({
        ok: false,
        outcome: "invalid-request",
        error: `invalid request: ${errorMessage(err)}`,
        retryable: false,
        gone: false,
      });
      return;
    }
    req.on("error", (err) => settleOr(fromNetworkError(err, host)));
    req.on("response", (res) => {
      response = res;
      res.on("error", () => settle(fromResponse(res, url)));
      res.on("end", () => settle(fromResponse(res, url)));
      res.on("close", () => settle(fromResponse(res, url)));
      if (maxResponseBytes === 0) {
        settle(fromResponse(res, url));
        return;
      }
      res.on("data", (chunk: Buffer) => {
        const room = maxResponseBytes - received;
        if (room > 0) {
          const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
          chunks.push(kept);
          received += kept.length;
        }
        if (received >= maxResponseBytes) settle(fromResponse(res, url));
      });
    });
    req.end(body);
  });
}
