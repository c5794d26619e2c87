/**
 * When to try again. {@link nextAttemptDelay} is the schedule a delivery worker stores as the
 * next attempt time: exponential backoff with full jitter, so endpoints that failed together
 * (an outage at a SIEM vendor) are not all retried at the same instant, and never sooner than
 * the receiver's `Retry-After`. {@link retry} runs short retries in process, for sends a
 * person waits on (a "send test event" button).
 */
import type { DeliveryResult } from "./deliver.js";

/** A backoff schedule. */
export interface RetryPolicy {
  /** The shortest delay, in ms. */
  readonly minMs: number;
  /** The longest delay, in ms: the cap on backoff and on `Retry-After`. */
  readonly maxMs: number;
  /** How much the ceiling grows per failure; 2 when omitted. */
  readonly factor?: number;
}

/** The default schedule: from 1 second, doubling, capped at 1 hour. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({ minMs: 1000, maxMs: 3_600_000, factor: 2 });

function checkPolicy(policy: RetryPolicy): void {
  const { minMs, maxMs, factor = 2 } = policy;
  if (!(Number.isFinite(minMs) && minMs >= 0 && Number.isFinite(maxMs) && maxMs >= minMs && factor >= 1)) {
    throw new RangeError(
      `retry policy needs 0 <= minMs <= maxMs (finite) and factor >= 1, got minMs ${minMs}, maxMs ${maxMs}, factor ${factor}`,
    );
  }
}

function checkAttempt(attempt: number): void {
  if (!(Number.isInteger(attempt) && attempt >= 1)) {
    throw new RangeError(`attempt must be an integer >= 1 (failures so far), not ${attempt}`);
  }
}

/**
 * The upper bound of the delay after `attempt` failures: `minMs · factor^attempt`, capped at
 * `maxMs`. It never decreases as `attempt` grows.
 * @throws RangeError for an attempt below 1 or an inconsistent policy.
 */
export function backoffCeiling(attempt: number, policy: RetryPolicy = DEFAULT_RETRY_POLICY): number {
  checkAttempt(attempt);
  checkPolicy(policy);
  // Past 2^64 the cap has long won; bounding the exponent keeps the arithmetic finite.
  const growth = (policy.factor ?? 2) ** Math.min(attempt, 64);
  return Math.min(policy.maxMs, policy.minMs * growth);
}

/**
 * The delay before the next attempt, in whole ms, after `attempt` failures (1 after the first
 * failure): uniformly random between `minMs` and {@link backoffCeiling} ("full jitter"). A
 * receiver's `retryAfterMs` raises it to at least that wait; the result never exceeds `maxMs`.
 * @param random a source of numbers in [0, 1), for reproducible tests; defaults to Math.random.
 * @throws RangeError for an attempt below 1 or an inconsistent policy.
 */
export function nextAttemptDelay(
  attempt: number,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
  random: () => number = Math.random,
  retryAfterMs?: number,
): number {
  const ceiling = backoffCeiling(attempt, policy);
  const jittered = policy.minMs + random() * (ceiling - policy.minMs);
  const wanted = retryAfterMs !== undefined && retryAfterMs > jittered ? retryAfterMs : jittered;
  return Math.round(Math.min(policy.maxMs, wanted));
}

/** What one attempt of {@link retry} produced: a value, or a thrown error. */
export type RetryOutcome<T> =
  | { readonly threw: false; readonly value: T }
  | { readonly threw: true; readonly error: unknown };

/**
 * Whether to try again after an outcome: false to stop, true to back off by the policy, or a
 * `retryAfterMs` the next delay must not be shorter than.
 */
export type RetryDecision = boolean | { readonly retryAfterMs?: number };

/** Options for {@link retry}. */
export interface RetryOptions<T> {
  /** How many attempts in all, the first included (>= 1). */
  readonly attempts: number;
  /** The backoff between attempts; defaults to {@link DEFAULT_RETRY_POLICY}, whose cap suits a queue, not a person. */
  readonly policy?: RetryPolicy;
  /** Whether an outcome is worth another attempt; by default, retry what threw and keep what returned. */
  readonly shouldRetry?: (outcome: RetryOutcome<T>, attempt: number) => RetryDecision;
  /** Waits `ms`; rejects when `signal` aborts. Tests pass one that records the delays. */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Stops retrying: the pending wait rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** The jitter source; defaults to Math.random. */
  readonly random?: () => number;
}

// Rejects with the signal's own reason (timers/promises would reject with a generic AbortError).
function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Calls `fn` up to `attempts` times, waiting {@link nextAttemptDelay} between attempts while
 * `shouldRetry` asks for another. Returns the last value, or rethrows the last error when the
 * last attempt threw. `fn` gets the 1-based attempt number.
 * @throws the last error of `fn`; the signal's reason when aborted; RangeError for `attempts` < 1.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions<T>): Promise<T> {
  const { attempts, policy = DEFAULT_RETRY_POLICY, signal, random = Math.random } = options;
  const shouldRetry = options.shouldRetry ?? ((outcome: RetryOutcome<T>) => outcome.threw);
  const sleep = options.sleep ?? defaultSleep;
  if (!(Number.isInteger(attempts) && attempts >= 1)) {
    throw new RangeError(`retry: attempts must be an integer >= 1, not ${attempts}`);
  }
  checkPolicy(policy);
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    let outcome: RetryOutcome<T>;
    try {
      outcome = { threw: false, value: await fn(attempt) };
    } catch (error) {
      outcome = { threw: true, error };
    }
    const decision = attempt < attempts ? shouldRetry(outcome, attempt) : false;
    if (decision === false) {
      if (outcome.threw) throw outcome.error;
      return outcome.value;
    }
    const retryAfterMs = typeof decision === "object" ? decision.retryAfterMs : undefined;
    await sleep(nextAttemptDelay(attempt, policy, random, retryAfterMs), signal);
  }
}

/**
 * A {@link RetryOptions.shouldRetry} for {@link deliver}: retry retryable failures, honoring the
 * receiver's `Retry-After`; keep successes and permanent failures.
 */
export function shouldRetryDelivery(outcome: RetryOutcome<DeliveryResult>): RetryDecision {
  if (outcome.threw) return false;
  const result = outcome.value;
  if (result.ok || !result.retryable) return false;
  return result.retryAfterMs === undefined ? true : { retryAfterMs: result.retryAfterMs };
}
