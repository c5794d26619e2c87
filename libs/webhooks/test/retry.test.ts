// The retry schedule (bounds, a monotone cap, Retry-After) with seeded randomness, and
// retry() with a recording sleep: in isolation and around real deliveries to a receiver that
// fails twice before it accepts.
import type { ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { seededRandom } from "@uab/testing";
import {
  backoffCeiling,
  DEFAULT_RETRY_POLICY,
  deliver,
  generateSecret,
  nextAttemptDelay,
  type RetryPolicy,
  retry,
  shouldRetryDelivery,
} from "@uab/webhooks";
import { type Received, startServer, type TestServer, testCertificate } from "./server.js";

describe("nextAttemptDelay", () => {
  it("the ceiling starts at twice minMs, never decreases, and reaches and keeps the cap", () => {
    expect(backoffCeiling(1)).toBe(2000);
    expect(backoffCeiling(2)).toBe(4000);
    let previous = 0;
    for (let attempt = 1; attempt <= 200; attempt++) {
      const ceiling = backoffCeiling(attempt);
      expect(ceiling).toBeGreaterThanOrEqual(previous);
      expect(ceiling).toBeLessThanOrEqual(DEFAULT_RETRY_POLICY.maxMs);
      previous = ceiling;
    }
    expect(backoffCeiling(12)).toBe(3_600_000); // 1 s · 2^12 = 4096 s > 1 h
    expect(backoffCeiling(11)).toBe(2_048_000);
    expect(backoffCeiling(10_000)).toBe(3_600_000);
  });

  it("stays within [minMs, ceiling] with full jitter, for the default and a custom policy", () => {
    const random = seededRandom(7);
    const policies: RetryPolicy[] = [DEFAULT_RETRY_POLICY, { minMs: 250, maxMs: 10_000, factor: 3 }];
    for (const policy of policies) {
      for (let attempt = 1; attempt <= 40; attempt++) {
        const ceiling = backoffCeiling(attempt, policy);
        const delays = Array.from({ length: 200 }, () => nextAttemptDelay(attempt, policy, random));
        const outside = delays.filter((d) => !Number.isInteger(d) || d < policy.minMs || d > ceiling);
        expect(outside).toEqual([]);
        // Jittered: spread over the range, not one value.
        expect(new Set(delays).size).toBeGreaterThan(100);
        // Full jitter: some delays in the lower and some in the upper quarter of the range.
        const quarter = (ceiling - policy.minMs) / 4;
        expect(delays.some((d) => d < policy.minMs + quarter)).toBe(true);
        expect(delays.some((d) => d > ceiling - quarter)).toBe(true);
      }
    }
  });

  it("gives the same schedule for the same seed", () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const run = (r: () => number) => Array.from({ length: 20 }, (_, i) => nextAttemptDelay(i + 1, undefined, r));
    expect(run(a)).toEqual(run(b));
  });

  it("the extremes of the random source give minMs and the ceiling", () => {
    expect(nextAttemptDelay(5, undefined, () => 0)).toBe(1000);
    expect(nextAttemptDelay(5, undefined, () => 1 - 2 ** -53)).toBe(backoffCeiling(5));
    expect(nextAttemptDelay(50, undefined, () => 1 - 2 ** -53)).toBe(3_600_000);
  });

  it("honors Retry-After: never sooner than it, and never past the cap", () => {
    const random = seededRandom(3);
    for (let i = 0; i < 100; i++) {
      expect(nextAttemptDelay(1, undefined, random, 30_000)).toBe(30_000); // ceiling 2 s < 30 s
      expect(nextAttemptDelay(1, undefined, random, 86_400_000)).toBe(3_600_000);
      expect(nextAttemptDelay(1, { minMs: 100, maxMs: 5000 }, random, 60_000)).toBe(5000);
    }
    // A Retry-After shorter than the backoff leaves the backoff alone.
    expect(nextAttemptDelay(10, undefined, () => 0.5, 5000)).toBe(Math.round(1000 + 0.5 * (1_024_000 - 1000)));
    expect(nextAttemptDelay(10, undefined, () => 0.5, 0)).toBe(nextAttemptDelay(10, undefined, () => 0.5));
  });

  it("rejects attempts below 1 and inconsistent policies", () => {
    expect(() => nextAttemptDelay(0)).toThrow(RangeError);
    expect(() => nextAttemptDelay(1.5)).toThrow(/integer >= 1/);
    expect(() => nextAttemptDelay(1, { minMs: 10, maxMs: 5 })).toThrow(/minMs <= maxMs/);
    expect(() => nextAttemptDelay(1, { minMs: 10, maxMs: 50, factor: 0.5 })).toThrow(/factor >= 1/);
    expect(() => nextAttemptDelay(1, { minMs: Number.NaN, maxMs: 50 })).toThrow(RangeError);
  });
});

/** A sleep that records what it was asked to wait, and waits for nothing. */
function recordingSleep(): { sleep: (ms: number) => Promise<void>; waits: number[] } {
  const waits: number[] = [];
  return { waits, sleep: async (ms: number) => void waits.push(ms) };
}

describe("retry", () => {
  const policy: RetryPolicy = { minMs: 100, maxMs: 1000 };

  it("retries what throws, then returns the first value", async () => {
    const { sleep, waits } = recordingSleep();
    const seen: number[] = [];
    const value = await retry(
      async (attempt) => {
        seen.push(attempt);
        if (attempt < 3) throw new Error(`failure ${attempt}`);
        return "done";
      },
      { attempts: 5, policy, sleep, random: seededRandom(1) },
    );
    expect(value).toBe("done");
    expect(seen).toEqual([1, 2, 3]);
    expect(waits).toHaveLength(2);
    expect(waits[0]).toBeGreaterThanOrEqual(100);
    expect(waits[0]).toBeLessThanOrEqual(200);
    expect(waits[1]).toBeLessThanOrEqual(400);
  });

  it("rethrows the last error once the attempts are used up", async () => {
    const { sleep, waits } = recordingSleep();
    let calls = 0;
    await expect(
      retry(
        async (attempt) => {
          calls++;
          throw new Error(`failure ${attempt}`);
        },
        { attempts: 3, policy, sleep },
      ),
    ).rejects.toThrow("failure 3");
    expect(calls).toBe(3);
    expect(waits).toHaveLength(2);
  });

  it("keeps a value shouldRetry does not want retried, and returns the last value when attempts run out", async () => {
    const { sleep, waits } = recordingSleep();
    const once = await retry(async () => "permanent", { attempts: 3, policy, sleep, shouldRetry: () => false });
    expect(once).toBe("permanent");
    let n = 0;
    const last = await retry(async () => ++n, { attempts: 4, policy, sleep, shouldRetry: () => true });
    expect(last).toBe(4);
    expect(waits).toHaveLength(3);
  });

  it("a decision with retryAfterMs sets the least wait, capped by the policy", async () => {
    const { sleep, waits } = recordingSleep();
    await retry(async (attempt) => attempt, {
      attempts: 3,
      policy,
      sleep,
      shouldRetry: (outcome) => ({ retryAfterMs: !outcome.threw && outcome.value === 1 ? 700 : 5000 }),
    });
    expect(waits).toEqual([700, 1000]);
  });

  it("stops when the signal aborts, with the signal's reason", async () => {
    const controller = new AbortController();
    let calls = 0;
    const sleep = async (_ms: number, signal?: AbortSignal) => {
      controller.abort(new Error("shutting down"));
      signal?.throwIfAborted();
    };
    await expect(
      retry(
        async () => {
          calls++;
          throw new Error("failure");
        },
        { attempts: 10, policy, sleep, signal: controller.signal },
      ),
    ).rejects.toThrow("shutting down");
    expect(calls).toBe(1);
    await expect(
      retry(async () => 1, { attempts: 1, signal: AbortSignal.abort(new Error("already")) }),
    ).rejects.toThrow("already");
  });

  it("the default sleep really waits, and aborts with the signal", async () => {
    const started = Date.now();
    let n = 0;
    expect(
      await retry(async () => ++n, { attempts: 2, policy: { minMs: 20, maxMs: 20 }, shouldRetry: () => true }),
    ).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(15);
    const controller = new AbortController();
    const pending = retry(async () => 0, {
      attempts: 2,
      policy: { minMs: 60_000, maxMs: 60_000 },
      shouldRetry: () => true,
      signal: controller.signal,
    });
    controller.abort(new Error("stop"));
    await expect(pending).rejects.toThrow("stop");
  });

  it("rejects fewer than one attempt", async () => {
    await expect(retry(async () => 1, { attempts: 0 })).rejects.toThrow(RangeError);
  });
});

describe("retry around deliver", () => {
  let server: TestServer;
  let ca: string;
  const secret = generateSecret();
  // The receiver fails the first two attempts of each message (503 with Retry-After: 1, then
  // 500), accepts the third, and answers /gone with 410.
  const seen = new Map<string, number>();
  function route(received: Received, res: ServerResponse): void {
    if (received.path === "/gone") {
      res.writeHead(410).end();
      return;
    }
    const id = received.headers["webhook-id"] ?? "";
    const n = (seen.get(id) ?? 0) + 1;
    seen.set(id, n);
    if (n === 1) res.writeHead(503, { "retry-after": "1" }).end();
    else if (n === 2) res.writeHead(500).end();
    else res.writeHead(200).end("ok");
  }

  beforeAll(async () => {
    server = await startServer(route, "127.0.0.1");
    ca = (await testCertificate()).cert;
  });

  afterAll(async () => {
    await server.close();
  });

  const message = (path: string, id: string) => ({
    url: `${server.url}${path}`,
    id,
    body: '{"type":"test"}',
    contentType: "application/json",
    secrets: [secret],
  });

  it("a test send succeeds on the third attempt, same message id each time, honoring Retry-After", async () => {
    const { sleep, waits } = recordingSleep();
    const result = await retry(() => deliver(message("/hook", "msg_retry"), { ca, allowPrivateNetworks: true }), {
      attempts: 5,
      policy: { minMs: 10, maxMs: 5000 },
      shouldRetry: shouldRetryDelivery,
      sleep,
      random: seededRandom(9),
    });
    expect(result).toMatchObject({ ok: true, statusCode: 200, responseExcerpt: "ok" });
    expect(seen.get("msg_retry")).toBe(3);
    expect(server.requests.filter((r) => r.headers["webhook-id"] === "msg_retry")).toHaveLength(3);
    expect(waits).toHaveLength(2);
    expect(waits[0]).toBe(1000); // Retry-After: 1 beats a 10–20 ms backoff
    expect(waits[1]).toBeLessThanOrEqual(40);
  });

  it("does not retry a permanent failure", async () => {
    const { sleep, waits } = recordingSleep();
    const result = await retry(() => deliver(message("/gone", "msg_gone"), { ca, allowPrivateNetworks: true }), {
      attempts: 5,
      policy: { minMs: 10, maxMs: 100 },
      shouldRetry: shouldRetryDelivery,
      sleep,
    });
    expect(result).toMatchObject({ ok: false, statusCode: 410, gone: true, retryable: false });
    expect(waits).toEqual([]);
    expect(server.requests.filter((r) => r.path === "/gone")).toHaveLength(1);
  });
});
