// verifyLog beyond the main battery (tamper.test.ts): genuine logs, a retained tail with a
// boundary frontier and purged content, logs without a checkpoint, recomputed chains, JSON
// entries, malformed records and wrong boundaries.
import { describe, expect, it } from "@jest/globals";
import { seededRandom } from "@uab/testing";
import {
  canonicalBytes,
  chainHashes,
  genesisChainHash,
  type LogRecord,
  leafHash,
  MerkleFrontier,
  rootHash,
  type VerifyLogOptions,
  verifyLog,
} from "@uab/tlog";
import {
  battery,
  buildLog,
  firstDeviation,
  forged,
  type Log,
  MUTATORS,
  type Mutation,
  type Mutator,
  retainedTail,
} from "./logs.js";
import { hex } from "./support.js";

describe("verifyLog", () => {
  const logs = [buildLog(1, 1000, true), buildLog(2, 2000, false), buildLog(3, 3000, true)];

  it("accepts genuine logs and recomputes their root and chain hash", () => {
    for (const log of logs) {
      const result = verifyLog(log.records, log.options);
      expect(result).toMatchObject({
        ok: true,
        startIndex: 0,
        endIndex: log.records.length,
        verifiedCount: log.records.length,
      });
      expect(result.failure).toBeUndefined();
      expect(result.firstBadIndex).toBeUndefined();
      expect(hex(result.computedRootHash as Uint8Array)).toBe(hex(log.options.checkpoint?.rootHash as Uint8Array));
      expect(hex(result.computedChainHash as Uint8Array)).toBe(hex(log.options.checkpoint?.chainHash as Uint8Array));
    }
    expect(verifyLog([]).ok).toBe(true);
  });

  it("tamper battery on a retained tail (boundary and frontier, purged content)", () => {
    const tail = retainedTail(logs[1] as Log, 700, 1000);
    const genuine = verifyLog(tail.records, tail.options);
    expect(genuine).toMatchObject({ ok: true, startIndex: 700, endIndex: 2000, verifiedCount: 1300 });
    const { wrong } = battery(tail, 7, 300);
    expect(wrong).toEqual([]);
  });

  it("without a checkpoint, still finds and locates every mutation inside the log", () => {
    const log = buildLog(9, 1000, false);
    const noCheckpoint: Log = { ...log, options: {} };
    const inside = [
      "change a byte of an entry",
      "change a byte of a stored hash",
      "change an index field",
      "insert a garbage record",
      "insert a copy of a record",
      "swap two records",
      "swap two records and their index fields",
      "move a record",
    ];
    const rand = seededRandom(77);
    const wrong: string[] = [];
    for (let t = 0; t < 300; t++) {
      const m = (MUTATORS[inside[t % inside.length] as string] as Mutator)(noCheckpoint, rand) as Mutation;
      const d = firstDeviation(log.records, m.records);
      if (d >= m.records.length) continue; // an insertion at the very end is only caught by a checkpoint
      const r = verifyLog(m.records);
      if (`${r.failure} ${r.firstBadIndex}` !== `${m.kind} ${d}`)
        wrong.push(`${m.name}: ${r.failure} ${r.firstBadIndex} ≠ ${d}`);
    }
    // Deleting and inserting correctly linked records (no renumbering) is found by the chain.
    for (const p of [0, 1, 500, 998]) {
      const deleted = log.records.filter((_, i) => i !== p);
      expect(verifyLog(deleted)).toMatchObject({ failure: "removed", firstBadIndex: p });
      const inserted = log.records.slice();
      inserted.splice(p, 0, forged(noCheckpoint, inserted, p, rand));
      expect(verifyLog(inserted)).toMatchObject({ failure: "inserted", firstBadIndex: p });
    }
    expect(wrong).toEqual([]);
  });

  it("reports a recomputed chain (or a forged last record) as a root mismatch, with no index", () => {
    const log = logs[0] as Log;
    const leaves = log.records.map((r) => r.leafHash);
    // Rewrite entry 600 and recompute every hash after it.
    const records = log.records.slice();
    const bytes = canonicalBytes({ index: "600", action: "forged" });
    const newLeaves = leaves.slice();
    newLeaves[600] = leafHash(bytes);
    const chains = chainHashes(newLeaves);
    for (let i = 600; i < records.length; i++) {
      records[i] = {
        ...(records[i] as LogRecord),
        ...(i === 600 ? { entryBytes: bytes } : {}),
        leafHash: newLeaves[i] as Uint8Array,
        previousChainHash: i === 0 ? genesisChainHash() : (chains[i - 1] as Uint8Array),
        chainHash: chains[i] as Uint8Array,
      };
    }
    const rewritten = verifyLog(records, log.options);
    expect(rewritten).toMatchObject({ ok: false, failure: "root_mismatch", verifiedCount: 1000 });
    expect(rewritten.firstBadIndex).toBeUndefined();
    // Without the chain hash in the checkpoint, the Merkle root still catches it.
    const rootOnly = verifyLog(records, { checkpoint: { treeSize: 1000, rootHash: rootHash(leaves) } });
    expect(rootOnly).toMatchObject({ failure: "root_mismatch", detail: expect.stringMatching(/Merkle root/) });
    // And with no checkpoint at all the rewritten log is self-consistent: that is what checkpoints are for.
    expect(verifyLog(records).ok).toBe(true);
    // A forged last record.
    const last = log.records.slice();
    last[999] = forged(log, last, 999, seededRandom(3));
    expect(verifyLog(last, log.options)).toMatchObject({ failure: "root_mismatch" });
    // A checkpoint whose root is not this log's.
    const otherRoot = verifyLog(log.records, { checkpoint: { treeSize: 1000, rootHash: leafHash(new Uint8Array(1)) } });
    expect(otherRoot).toMatchObject({ ok: false, failure: "root_mismatch" });
  });

  it("checks entries given as JSON, and records whose content was purged", () => {
    const entries = Array.from({ length: 50 }, (_, i) => ({ index: String(i), action: "a.b.c", metadata: { k: i } }));
    const leaves = entries.map((e) => leafHash(canonicalBytes(e)));
    const chains = chainHashes(leaves);
    const records: LogRecord[] = entries.map((entry, i) => ({
      index: i,
      entry,
      leafHash: leaves[i] as Uint8Array,
      previousChainHash: i === 0 ? genesisChainHash() : (chains[i - 1] as Uint8Array),
      chainHash: chains[i] as Uint8Array,
    }));
    const checkpoint = { treeSize: 50, rootHash: rootHash(leaves), chainHash: chains[49] as Uint8Array };
    expect(verifyLog(records, { checkpoint }).ok).toBe(true);
    const changed = records.slice();
    changed[17] = { ...(records[17] as LogRecord), entry: { ...entries[17], metadata: { k: 18 } } };
    expect(verifyLog(changed, { checkpoint })).toMatchObject({ failure: "changed", firstBadIndex: 17 });
    const notJson = records.slice();
    notJson[3] = { ...(records[3] as LogRecord), entry: { when: new Date(0) } as never };
    expect(verifyLog(notJson, { checkpoint })).toMatchObject({ failure: "changed", firstBadIndex: 3 });
    // Purged content: the hashes still chain and add up to the root.
    const purged = records.map((r, i) => (i < 30 ? { ...r, entry: undefined } : r));
    expect(verifyLog(purged, { checkpoint }).ok).toBe(true);
    // Malformed records are "changed", never a crash.
    const malformed = records.slice();
    malformed[5] = { ...(records[5] as LogRecord), chainHash: new Uint8Array(3) };
    expect(verifyLog(malformed, { checkpoint })).toMatchObject({ failure: "changed", firstBadIndex: 5 });
    malformed[5] = null as never;
    expect(verifyLog(malformed, { checkpoint })).toMatchObject({ ok: false, firstBadIndex: 5 });
  });

  it("keeps retention verifiable, and rejects a wrong boundary", () => {
    const log = logs[0] as Log;
    const tail = retainedTail(log, 400, 400);
    expect(verifyLog(tail.records, tail.options)).toMatchObject({ ok: true, startIndex: 400, verifiedCount: 600 });
    const boundary = tail.options.boundary as NonNullable<VerifyLogOptions["boundary"]>;
    const frontier = MerkleFrontier.from(boundary.frontier as never);
    // A frontier of the wrong size, or a wrong one, cannot reproduce the root.
    const shorter = MerkleFrontier.fromLeaves(log.records.slice(0, 399).map((r) => r.leafHash));
    expect(verifyLog(tail.records, { ...tail.options, boundary: { ...boundary, frontier: shorter } })).toMatchObject({
      failure: "root_mismatch",
      detail: expect.stringMatching(/covers 399 entries/),
    });
    const wrongFrontier = frontier.clone();
    const hashes = wrongFrontier.hashes;
    hashes[0] = leafHash(new Uint8Array(2));
    expect(
      verifyLog(tail.records, { ...tail.options, boundary: { ...boundary, frontier: { size: 400, hashes } } }),
    ).toMatchObject({ failure: "root_mismatch" });
    expect(
      verifyLog(tail.records, { ...tail.options, boundary: { ...boundary, frontier: { size: 400, hashes: [] } } }),
    ).toMatchObject({ failure: "root_mismatch", detail: expect.stringMatching(/malformed/) });
    // A wrong boundary chain hash: the first record does not link to it.
    expect(
      verifyLog(tail.records, { ...tail.options, boundary: { ...boundary, previousChainHash: new Uint8Array(32) } }),
    ).toMatchObject({ failure: "changed", firstBadIndex: 400 });
    // The whole log purged down to its boundary: nothing to scan, the frontier is the tree.
    const empty = verifyLog([], {
      boundary: {
        startIndex: 1000,
        previousChainHash: log.options.checkpoint?.chainHash as Uint8Array,
        frontier: MerkleFrontier.fromLeaves(log.records.map((r) => r.leafHash)),
      },
      checkpoint: log.options.checkpoint,
    });
    expect(empty).toMatchObject({ ok: true, verifiedCount: 0 });
    // Misuse is an error, not a verdict.
    expect(() => verifyLog(tail.records, { ...tail.options, boundary: { ...boundary, frontier: undefined } })).toThrow(
      TypeError,
    );
    expect(() =>
      verifyLog(tail.records, { checkpoint: { treeSize: 1, rootHash: new Uint8Array(32) }, boundary }),
    ).toThrow(TypeError);
    expect(() => verifyLog(log.records, { checkpoint: { treeSize: 1000, rootHash: new Uint8Array(31) } })).toThrow(
      TypeError,
    );
  });
});
