/**
 * Drives a server with h2load (nghttp2-client): cleartext HTTP/2 with prior knowledge, a
 * fixed request body, fixed headers, for a fixed duration. Throughput comes from h2load's
 * summary; latency percentiles from its per-request log (`--log-file`), since h2load itself
 * prints only min/max/mean/sd.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand } from "./child.js";
import { type LatencySummary, summariseMicros } from "./stats.js";

/** True when `h2load` is on PATH. */
export function h2loadVersion(): string | undefined {
  const r = spawnSync("h2load", ["--version"], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** One h2load run. */
export interface H2loadOptions {
  /** Full URL, `http://127.0.0.1:port/pkg.Service/Method`. */
  readonly url: string;
  readonly durationS: number;
  /** TCP connections (`-c`). */
  readonly connections: number;
  /** Concurrent streams per connection (`-m`). */
  readonly streams: number;
  readonly headers?: Record<string, string>;
  /** Request body; makes the request a POST. */
  readonly body?: Uint8Array;
  /** Native threads (`-t`); defaults to 1 so the server keeps the other core. */
  readonly threads?: number;
}

/** What one run (or several merged) measured. */
export interface H2loadResult {
  readonly rps: number;
  readonly durationS: number;
  readonly done: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly errored: number;
  readonly timeout: number;
  /** Responses with a 2xx status (gRPC errors are 200 too: check grpc-status elsewhere). */
  readonly status2xx: number;
  readonly latency: LatencySummary;
  /** The raw latency samples in µs (for merging). */
  readonly samples: Float64Array;
}

function parse(stdout: string, samples: Float64Array): H2loadResult {
  const finished = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(stdout);
  const requests =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
      stdout,
    );
  const codes = /status codes: (\d+) 2xx/.exec(stdout);
  if (!finished || !requests || !codes) throw new Error(`cannot parse h2load output:\n${stdout}`);
  return {
    rps: Number(finished[3]),
    durationS: Number(finished[1]) / (finished[2] === "ms" ? 1000 : 1),
    done: Number(requests[3]),
    succeeded: Number(requests[4]),
    failed: Number(requests[5]),
    errored: Number(requests[6]),
    timeout: Number(requests[7]),
    status2xx: Number(codes[1]),
    latency: summariseMicros(samples),
    samples,
  };
}

/** Runs h2load once and returns its numbers. */
export async function runH2load(o: H2loadOptions): Promise<H2loadResult> {
  const dir = mkdtempSync(join(tmpdir(), "uab-h2load-"));
  try {
    const args = [
      "-D",
      String(o.durationS),
      "-c",
      String(o.connections),
      "-m",
      String(o.streams),
      "-t",
      String(o.threads ?? 1),
      "--log-file",
      join(dir, "log.tsv"),
    ];
    if (o.body) {
      writeFileSync(join(dir, "body.bin"), o.body);
      args.push("-d", join(dir, "body.bin"));
    }
    for (const [k, v] of Object.entries(o.headers ?? {})) args.push("-H", `${k}: ${v}`);
    args.push(o.url);
    const stdout = await runCommand("h2load", args);
    // Columns: start time (µs since epoch), HTTP status, µs until the end of the response.
    const lines = readFileSync(join(dir, "log.tsv"), "utf8").split("\n");
    const samples = new Float64Array(lines.length);
    let n = 0;
    for (const line of lines) {
      const cols = line.split("\t");
      if (cols.length >= 3) samples[n++] = Number(cols[2]);
    }
    return parse(stdout, samples.subarray(0, n));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs several h2load processes at once (one per distinct body) and merges their numbers. */
export async function runH2loadParallel(runs: readonly H2loadOptions[]): Promise<H2loadResult> {
  const results = await Promise.all(runs.map(runH2load));
  const total = results.reduce((n, r) => n + r.samples.length, 0);
  const samples = new Float64Array(total);
  let at = 0;
  for (const r of results) {
    samples.set(r.samples, at);
    at += r.samples.length;
  }
  const sum = (f: (r: H2loadResult) => number) => results.reduce((n, r) => n + f(r), 0);
  return {
    rps: sum((r) => r.rps),
    durationS: Math.max(...results.map((r) => r.durationS)),
    done: sum((r) => r.done),
    succeeded: sum((r) => r.succeeded),
    failed: sum((r) => r.failed),
    errored: sum((r) => r.errored),
    timeout: sum((r) => r.timeout),
    status2xx: sum((r) => r.status2xx),
    latency: summariseMicros(samples),
    samples,
  };
}

/** Splits a total concurrency into connections × streams (at most 4 connections). */
export function split(concurrency: number, maxConnections = 4): { connections: number; streams: number } {
  const connections = Math.max(1, Math.min(maxConnections, concurrency));
  return { connections, streams: Math.max(1, Math.ceil(concurrency / connections)) };
}
