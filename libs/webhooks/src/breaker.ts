/**
 * Circuit breakers per endpoint origin: after a run of failed deliveries to one origin, stop
 * sending to it for a while, so a dead receiver does not hold a worker's connections and
 * timeouts (15 s each) while every other tenant's deliveries wait.
 *
 * The breakers are opossum's (its state machine: closed, open for `resetTimeoutMs`, then
 * half-open with a single trial delivery that closes or reopens it). What trips them is a
 * count of consecutive retryable failures rather than opossum's error percentage over a
 * rolling window: deliveries to one endpoint are often sparse and spread out by backoff, so a
 * time window would rarely hold enough of them to judge, while "the last 5 attempts failed"
 * means the same at any rate. Outcomes that are not retryable (4xx, refused addresses) show
 * the origin answering or our own refusal, so they count as successes and never trip it.
 */
import { EventEmitter } from "node:events";
import CircuitBreaker from "opossum";
import { type DeliveryOptions, type DeliveryRequest, type DeliveryResult, deliver } from "./deliver.js";

/** The state of an origin's circuit. */
export type CircuitState = "closed" | "open" | "half-open";

/** Options for {@link EndpointBreakers}. */
export interface EndpointBreakersOptions {
  /** Consecutive retryable failures to one origin that open its circuit; default 5. */
  readonly failureThreshold?: number;
  /** How long an open circuit skips its origin before one trial delivery, in ms; default 60,000. */
  readonly resetTimeoutMs?: number;
  /** How many origins to track; the least recently used beyond it are forgotten. Default 10,000. */
  readonly maxOrigins?: number;
  /** Called when an origin's circuit changes state: to log it or count it. */
  readonly onStateChange?: (origin: string, state: CircuitState) => void;
}

type Breaker = CircuitBreaker<[DeliveryRequest, DeliveryOptions | undefined], DeliveryResult>;

interface Entry {
  readonly breaker: Breaker;
  /** Retryable failures in a row. */
  failures: number;
  /** When the circuit last opened (ms since the epoch). */
  openedAt: number;
}

/** Carries a retryable failure through opossum, which counts only rejections as failures. */
class RetryableFailure extends Error {
  constructor(readonly result: DeliveryResult) {
    super(result.error ?? "delivery failed");
  }
}

// opossum keeps rolling statistics (unused here) in buckets that must be rotated, by a timer
// per breaker unless a shared emitter does it; one emitter and one timer serve all origins.
const ROLLING_WINDOW_MS = 60_000;
const ROLLING_BUCKETS = 6;

/**
 * One circuit breaker per endpoint origin (`https://siem.example.com:8443`) around
 * {@link deliver}. While an origin's circuit is open, deliveries to it return at once with
 * `{ ok: false, outcome: "circuit-open", retryable: true, error: "circuit open for <origin>" }`
 * and a `retryAfterMs` until the trial. Call {@link EndpointBreakers.close} on shutdown.
 */
export class EndpointBreakers {
  readonly #failureThreshold: number;
  readonly #resetTimeoutMs: number;
  readonly #maxOrigins: number;
  readonly #onStateChange: ((origin: string, state: CircuitState) => void) | undefined;
  readonly #entries = new Map<string, Entry>();
  readonly #rotator = new EventEmitter().setMaxListeners(0);
  #rotation: NodeJS.Timeout | undefined;
  #closed = false;

  /** @throws RangeError for a threshold, timeout or size below 1. */
  constructor(options: EndpointBreakersOptions = {}) {
    this.#failureThreshold = options.failureThreshold ?? 5;
    this.#resetTimeoutMs = options.resetTimeoutMs ?? 60_000;
    this.#maxOrigins = options.maxOrigins ?? 10_000;
    this.#onStateChange = options.onStateChange;
    for (const [name, value] of [
      ["failureThreshold", this.#failureThreshold],
      ["resetTimeoutMs", this.#resetTimeoutMs],
      ["maxOrigins", this.#maxOrigins],
    ] as const) {
      if (!(Number.isInteger(value) && value >= 1)) {
        throw new RangeError(`EndpointBreakers: ${name} must be an integer >= 1, not ${value}`);
      }
    }
  }

  /**
   * Delivers through the breaker of the request URL's origin: like {@link deliver}, except
   * that an open circuit returns a `circuit-open` failure without sending anything.
   * @throws Error after {@link EndpointBreakers.close}; RangeError for out-of-range options.
   */
  async deliver(request: DeliveryRequest, options?: DeliveryOptions): Promise<DeliveryResult> {
    if (this.#closed) throw new Error("EndpointBreakers: deliver() called after close()");
    const origin = originOf(request.url);
    // A URL without an origin cannot be sent to; deliver() says why.
    if (origin === undefined) return deliver(request, options);
    const entry = this.#entry(origin);
    try {
      const result = await entry.breaker.fire(request, options);
      entry.failures = 0;
      return result;
    } catch (err) {
      if (err instanceof RetryableFailure) {
        entry.failures++;
        if (entry.failures >= this.#failureThreshold && entry.breaker.closed) entry.breaker.open();
        return err.result;
      }
      if ((err as { code?: unknown }).code === "EOPENBREAKER") return this.#openResult(origin, entry);
      throw err;
    }
  }

  /** The circuit state of a URL's origin; `closed` for an origin not tracked (or an invalid URL). */
  state(url: string): CircuitState {
    const origin = originOf(url);
    const breaker = origin === undefined ? undefined : this.#entries.get(origin)?.breaker;
    if (breaker === undefined) return "closed";
    return breaker.opened ? "open" : breaker.halfOpen ? "half-open" : "closed";
  }

  /** How many origins are tracked. */
  get size(): number {
    return this.#entries.size;
  }

  /** Shuts every breaker down and stops the shared timer; deliver() fails afterwards. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#entries.values()) entry.breaker.shutdown();
    this.#entries.clear();
    clearInterval(this.#rotation);
    this.#rotation = undefined;
  }

  #entry(origin: string): Entry {
    const existing = this.#entries.get(origin);
    if (existing !== undefined) {
      // Most recently used last: Map keeps insertion order, so the first key is the eviction candidate.
      this.#entries.delete(origin);
      this.#entries.set(origin, existing);
      return existing;
    }
    while (this.#entries.size >= this.#maxOrigins) {
      const [oldest, entry] = this.#entries.entries().next().value as [string, Entry];
      entry.breaker.shutdown();
      this.#entries.delete(oldest);
    }
    if (this.#rotation === undefined) {
      this.#rotation = setInterval(() => this.#rotator.emit("rotate"), ROLLING_WINDOW_MS / ROLLING_BUCKETS);
      this.#rotation.unref();
    }
    const breaker: Breaker = new CircuitBreaker(
      async (request: DeliveryRequest, options: DeliveryOptions | undefined) => {
        const result = await deliver(request, options);
        if (!result.ok && result.retryable) throw new RetryableFailure(result);
        return result;
      },
      {
        name: origin,
        timeout: false, // deliver() has its own deadline
        resetTimeout: this.#resetTimeoutMs,
        // Never open on opossum's own statistics (we open on consecutive failures); a failed
        // half-open trial still reopens the circuit.
        volumeThreshold: Number.MAX_SAFE_INTEGER,
        rollingCountTimeout: ROLLING_WINDOW_MS,
        rollingCountBuckets: ROLLING_BUCKETS,
        rollingPercentilesEnabled: false,
        enableSnapshots: false,
        rotateBucketController: this.#rotator,
      },
    );
    const entry: Entry = { breaker, failures: 0, openedAt: 0 };
    breaker.on("open", () => {
      entry.openedAt = Date.now();
      this.#onStateChange?.(origin, "open");
    });
    breaker.on("halfOpen", () => this.#onStateChange?.(origin, "half-open"));
    breaker.on("close", () => {
      entry.failures = 0;
      this.#onStateChange?.(origin, "closed");
    });
    this.#entries.set(origin, entry);
    return entry;
  }

  #openResult(origin: string, entry: Entry): DeliveryResult {
    // Half-open with the trial in flight counts as open too, with no wait to announce.
    const retryAfterMs = entry.breaker.opened
      ? Math.max(0, entry.openedAt + this.#resetTimeoutMs - Date.now())
      : undefined;
    return {
      ok: false,
      outcome: "circuit-open",
      durationMs: 0,
      responseExcerpt: "",
      error: `circuit open for ${origin}`,
      retryable: true,
      gone: false,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    };
  }
}

function originOf(url: string): string | undefined {
  try {
    const origin = new URL(url).origin;
    return origin === "null" ? undefined : origin;
  } catch {
    return undefined;
  }
}
