// The tamper battery: logs of 1,000–3,000 records and thousands of random mutations (changed
// bytes, deleted, inserted, copied, swapped and moved records, truncated tails, with and
// without renumbering); each must be detected, classified, and located exactly: the first bad
// index is the first position where the mutated log differs from the genuine one (for a swap,
// the smaller index). verify.test.ts runs it on a retained tail and without a checkpoint.
import { describe, expect, it } from "@jest/globals";
import { battery, buildLog, type Log } from "./logs.js";

describe("tamper battery", () => {
  const logs = [buildLog(1, 1000, true), buildLog(2, 2000, false), buildLog(3, 3000, true)];

  it.each([
    [0, 700],
    [1, 350],
    [2, 150],
  ])("tamper battery on log %i: every mutation detected, classified and located exactly", (which, count) => {
    const log = logs[which] as Log;
    const { counts, wrong } = battery(log, 100 + which, count);
    expect(wrong).toEqual([]);
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(count);
    // Every kind of mutation ran (the two renumbering ones only where content lacks the index).
    expect(Object.keys(counts).length).toBe(log.indexInContent ? 12 : 14);
  });
});
