/**
 * The inside of a load client (authz-client.ts, node-client.ts): a process of its own, started
 * by `runLoadClient` of child.ts, that calls the server from concurrent loops and reports
 * throughput and latency.
 */
import { performance } from "node:perf_hooks";
import { type LatencySummary, summariseMicros } from "./stats.js";

/** How hard and how long a load client calls. */
export interface LoadShape {
  /** Clients, each with a transport (one HTTP/2 session) of its own. */
  readonly connections: number;
  /** Concurrent call loops per client. */
  readonly streams: number;
  /** Seconds of calls before measuring. */
  readonly warmupS: number;
  /** Seconds measured. */
  readonly durationS: number;
}

/** What {@link measureCalls} measured. */
export interface LoadResult {
  /** Calls per second that succeeded while measuring. */
  readonly rps: number;
  /** Calls that failed while measuring. */
  readonly errors: number;
  /** The first failure (warm-up included), if any. */
  readonly firstError?: string;
  /** Per successful call. */
  readonly latency: LatencySummary;
}

/**
 * Makes `shape.connections` clients with `connect`, runs `shape.streams` loops of `call` on
 * each, for `warmupS` seconds unmeasured and then `durationS` seconds measured, and waits for
 * the calls in flight to end. A call fails by throwing (a wrong answer too): it is not timed,
 * and counts as an error while measuring.
 */
export async function measureCalls<C>(
  shape: LoadShape,
  connect: () => C,
  call: (client: C) => Promise<void>,
): Promise<LoadResult> {
  const clients = Array.from({ length: shape.connections }, connect);
  let phase: "warmup" | "measure" | "done" = "warmup";
  const samples: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const loop = async (client: C) => {
    while (phase !== "done") {
      const start = performance.now();
      try {
        await call(client);
        if (phase === "measure") samples.push((performance.now() - start) * 1000);
      } catch (e) {
        if (phase === "measure") errors++;
        firstError ??= String(e);
      }
    }
  };
  const loops = clients.flatMap((c) => Array.from({ length: shape.streams }, () => loop(c)));
  await new Promise((r) => setTimeout(r, shape.warmupS * 1000));
  phase = "measure";
  const start = performance.now();
  await new Promise((r) => setTimeout(r, shape.durationS * 1000));
  const elapsedS = (performance.now() - start) / 1000;
  const count = samples.length;
  phase = "done";
  await Promise.all(loops);
  return {
    rps: count / elapsedS,
    errors,
    ...(firstError ? { firstError } : {}),
    latency: summariseMicros(samples),
  };
}

/**
 * The body of a load client: reads the options (JSON) from stdin, runs `main` on them, prints
 * its result as one JSON line and exits 0; when `main` fails, prints the error on stderr and
 * exits 1.
 */
export function loadClientMain<O, R>(main: (options: O) => Promise<R>): void {
  let input = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (d) => {
    input += d;
  });
  process.stdin.on("end", () => {
    main(JSON.parse(input) as O).then(
      (r) => {
        process.stdout.write(`${JSON.stringify(r)}\n`);
        process.exit(0);
      },
      (e) => {
        process.stderr.write(`${String(e)}\n`);
        process.exit(1);
      },
    );
  });
}
