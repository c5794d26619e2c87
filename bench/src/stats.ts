/** Small numeric helpers shared by the benchmarks. */

/** The `p`-th percentile (0–100, nearest rank) of ascending `sorted`; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** The median of any numbers. */
export function median(values: readonly number[]): number {
  return percentile(Float64Array.from(values).sort(), 50);
}

/** Latency summary in milliseconds of samples given in microseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Summarises latency samples given in microseconds. */
export function summariseMicros(samples: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    meanMs: sorted.length ? sum / sorted.length / 1000 : Number.NaN,
    p50Ms: percentile(sorted, 50) / 1000,
    p90Ms: percentile(sorted, 90) / 1000,
    p99Ms: percentile(sorted, 99) / 1000,
    maxMs: sorted.length ? sorted[sorted.length - 1]! / 1000 : Number.NaN,
  };
}

/** `1234.5` → `"1,235"`. */
export function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a";
}

/** Milliseconds with two decimals below 10, one below 100, none above. */
export function fmtMs(n: number): string {
  if (!Number.isFinite(n)) return "n/a";
  return `${n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n)} ms`;
}

/** Bytes in kB → `"123.4 MB"` (MiB, as /proc reports kB = KiB). */
export function fmtMb(kb: number): string {
  return Number.isFinite(kb) ? `${(kb / 1024).toFixed(1)} MB` : "n/a";
}
