// The proof battery: valid inclusion and consistency proofs over many random tree sizes
// verify, and every corrupted variant is rejected.
//
// One subtlety decides how "rejected" is asserted for wrong tree sizes. A proof proves a
// position in a tree *shape*, and different sizes can share a shape: leaf 0's path in a tree
// of 5 leaves (siblings: leaf 1, leaves 2-3, leaf 4) is also a well-formed path of leaf 0 in
// trees of 6, 7 or 8 leaves (the last sibling being the subtree of leaves 4-5, 4-6, 4-7). The
// verifier cannot tell a leaf hash from a subtree hash, so every RFC 9162 verifier (Go's
// transparency-dev/merkle included) accepts those sizes against the same root; that is why
// the tree size must come from the signed checkpoint. So a wrong size must be rejected unless
// the RFC's own recursion (PATH and SUBPROOF of sections 2.1.3.1 and 2.1.4.1, re-derived
// below symbolically, independently of the verifier) gives literally the same hash
// computation over the same proof elements, in which case the claim is the same and it must
// be accepted. Every other corruption must be rejected, 100%.
import { describe, expect, it } from "@jest/globals";
import { seededRandom } from "@uab/testing";
import { consistencyProof, inclusionProof, leafHash, verifyConsistency, verifyInclusion } from "@uab/tlog";
import { flipBit, hex, randomBytes, randomInt, referenceTree } from "./support.js";

const MAX = 300;
const rand = seededRandom(0x7109);
const leaves = Array.from({ length: MAX }, () => leafHash(randomBytes(rand, 1 + Math.floor(rand() * 24))));
const mth = referenceTree(leaves);
const garbage = leafHash(Uint8Array.of(0xde, 0xad));

function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** PATH(m, D[n]) as a formula over the leaf `L` and proof elements p0, p1… (bottom-up). */
function inclusionFormula(index: number, size: number): string | undefined {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return undefined;
  let next = 0;
  const path = (m: number, n: number): string => {
    if (n === 1) return "L";
    const k = split(n);
    if (m < k) {
      const sub = path(m, k);
      return `H(${sub},p${next++})`;
    }
    const sub = path(m - k, n - k);
    return `H(p${next++},${sub})`;
  };
  return path(index, size);
}

/**
 * SUBPROOF(m, D[n], true) as two formulas over the proof elements (and `R1`, the old root a
 * verifier already holds when the old tree is a whole subtree): the old root and the new one.
 */
function consistencyFormula(size1: number, size2: number): string | undefined {
  if (!Number.isSafeInteger(size1) || !Number.isSafeInteger(size2) || size1 <= 0 || size1 >= size2) return undefined;
  let next = 0;
  const sub = (m: number, n: number, whole: boolean): [string, string] => {
    if (m === n) {
      if (whole) return ["R1", "R1"];
      const e = `p${next++}`;
      return [e, e];
    }
    const k = split(n);
    if (m <= k) {
      const [o, w] = sub(m, k, whole);
      return [o, `H(${w},p${next++})`];
    }
    const [o, w] = sub(m - k, n - k, false);
    const e = `p${next++}`;
    return [`H(${e},${o})`, `H(${e},${w})`];
  };
  const [o, w] = sub(size1, size2, true);
  return `${o} / ${w} / ${next}`;
}

interface Tally {
  probes: number;
  sizeProbes: number;
  sameShapeAccepted: number;
}

/** Every corruption of an inclusion proof; returns [description, accepted, mustAccept]. */
function inclusionProbes(index: number, size: number): [string, boolean, boolean][] {
  const leaf = leaves[index] as Uint8Array;
  const root = mth(0, size);
  const proof = inclusionProof(index, size, mth);
  const out: [string, boolean, boolean][] = [];
  const probe = (what: string, ok: boolean, mustAccept = false): void => {
    out.push([what, ok, mustAccept]);
  };
  expect(verifyInclusion(leaf, index, size, proof, root)).toBe(true);
  const formula = inclusionFormula(index, size);
  // Wrong index: ±1, ^1, ^2, a random other, beyond the size.
  for (const i of new Set([index - 1, index + 1, index ^ 1, index ^ 2, randomInt(rand, 0, size - 1), size, size + 7])) {
    if (i === index) continue;
    probe(`index ${i}`, verifyInclusion(leaf, i, size, proof, root), false);
    expect(inclusionFormula(i, size) === formula).toBe(false); // never the same shape
  }
  // Wrong tree size: ±1, ±2, ×2, ÷2, a random other, 0.
  const sizes = [size - 1, size + 1, size - 2, size + 2, size * 2, Math.floor(size / 2), randomInt(rand, 1, MAX), 0];
  for (const s of new Set(sizes)) {
    if (s === size || s < 0) continue;
    probe(`size ${s}`, verifyInclusion(leaf, index, s, proof, root), inclusionFormula(index, s) === formula);
    // With the true root of that size the claim is false whatever the shape: always rejected.
    if (s > index && s <= MAX) probe(`size ${s} with its root`, verifyInclusion(leaf, index, s, proof, mth(0, s)));
  }
  // Wrong leaf, wrong root.
  probe("wrong leaf", verifyInclusion(flipBit(leaf, randomInt(rand, 0, 255)), index, size, proof, root));
  probe("other leaf", verifyInclusion(leaves[(index + 1) % MAX] as Uint8Array, index, size, proof, root));
  probe("wrong root", verifyInclusion(leaf, index, size, proof, flipBit(root, randomInt(rand, 0, 255))));
  probe("other root", verifyInclusion(leaf, index, size, proof, mth(0, size === MAX ? size - 1 : size + 1)));
  // Bit flips: every bit of every element for small trees, a random bit of each otherwise.
  proof.forEach((p, at) => {
    const bits = size <= 8 ? Array.from({ length: 256 }, (_, b) => b) : [randomInt(rand, 0, 255)];
    for (const b of bits) {
      const bad = proof.slice();
      bad[at] = flipBit(p, b);
      probe(`bit ${b} of element ${at}`, verifyInclusion(leaf, index, size, bad, root));
    }
  });
  // Elements added (at every position), removed (each), swapped (each adjacent pair, ends).
  for (let at = 0; at <= proof.length; at++) {
    for (const extra of at === 0 || at === proof.length ? [garbage, root] : [proof[at] as Uint8Array]) {
      const bad = proof.slice();
      bad.splice(at, 0, extra);
      probe(`element added at ${at}`, verifyInclusion(leaf, index, size, bad, root));
    }
  }
  for (let at = 0; at < proof.length; at++) {
    const bad = proof.slice();
    bad.splice(at, 1);
    probe(`element ${at} removed`, verifyInclusion(leaf, index, size, bad, root));
  }
  const swaps = proof.length > 2 ? [[0, proof.length - 1]] : [];
  for (let at = 0; at + 1 < proof.length; at++) swaps.push([at, at + 1]);
  for (const [a, b] of swaps as [number, number][]) {
    const bad = proof.slice();
    [bad[a], bad[b]] = [bad[b] as Uint8Array, bad[a] as Uint8Array];
    probe(`elements ${a} and ${b} swapped`, verifyInclusion(leaf, index, size, bad, root));
  }
  return out;
}

function consistencyProbes(size1: number, size2: number): [string, boolean, boolean][] {
  const root1 = mth(0, size1);
  const root2 = mth(0, size2);
  const proof = consistencyProof(size1, size2, mth);
  const out: [string, boolean, boolean][] = [];
  const probe = (what: string, ok: boolean, mustAccept = false): void => {
    out.push([what, ok, mustAccept]);
  };
  expect(verifyConsistency(size1, size2, proof, root1, root2)).toBe(true);
  const formula = consistencyFormula(size1, size2);
  const firstSizes = [size1 - 1, size1 + 1, size1 ^ 1, size1 ^ 2, size1 * 2, randomInt(rand, 1, size2), size2, 0];
  for (const s of new Set(firstSizes)) {
    if (s === size1 || s < 0) continue;
    probe(`size1 ${s}`, verifyConsistency(s, size2, proof, root1, root2), consistencyFormula(s, size2) === formula);
    if (s > 0 && s <= size2) probe(`size1 ${s} with its root`, verifyConsistency(s, size2, proof, mth(0, s), root2));
  }
  const secondSizes = [size2 - 1, size2 + 1, size2 + 2, size2 * 2, Math.floor(size2 / 2), randomInt(rand, 1, MAX)];
  for (const s of new Set(secondSizes)) {
    if (s === size2 || s < 0) continue;
    probe(`size2 ${s}`, verifyConsistency(size1, s, proof, root1, root2), consistencyFormula(size1, s) === formula);
    if (s > 0 && s <= MAX) probe(`size2 ${s} with its root`, verifyConsistency(size1, s, proof, root1, mth(0, s)));
  }
  probe("swapped roots", verifyConsistency(size1, size2, proof, root2, root1));
  probe("wrong root1", verifyConsistency(size1, size2, proof, flipBit(root1, randomInt(rand, 0, 255)), root2));
  probe("wrong root2", verifyConsistency(size1, size2, proof, root1, flipBit(root2, randomInt(rand, 0, 255))));
  probe("other root1", verifyConsistency(size1, size2, proof, mth(0, size1 + 1), root2));
  probe("other root2", verifyConsistency(size1, size2, proof, root1, mth(0, size2 === MAX ? size2 - 1 : size2 + 1)));
  probe("empty proof", verifyConsistency(size1, size2, [], root1, root2));
  proof.forEach((p, at) => {
    const bits = size2 <= 8 ? Array.from({ length: 256 }, (_, b) => b) : [randomInt(rand, 0, 255)];
    for (const b of bits) {
      const bad = proof.slice();
      bad[at] = flipBit(p, b);
      probe(`bit ${b} of element ${at}`, verifyConsistency(size1, size2, bad, root1, root2));
    }
  });
  for (let at = 0; at <= proof.length; at++) {
    for (const extra of at === 0 || at === proof.length ? [garbage, root1, root2] : [proof[at] as Uint8Array]) {
      const bad = proof.slice();
      bad.splice(at, 0, extra);
      probe(`element added at ${at}`, verifyConsistency(size1, size2, bad, root1, root2));
    }
  }
  for (let at = 0; at < proof.length; at++) {
    const bad = proof.slice();
    bad.splice(at, 1);
    probe(`element ${at} removed`, verifyConsistency(size1, size2, bad, root1, root2));
  }
  const swaps = proof.length > 2 ? [[0, proof.length - 1]] : [];
  for (let at = 0; at + 1 < proof.length; at++) swaps.push([at, at + 1]);
  for (const [a, b] of swaps as [number, number][]) {
    const bad = proof.slice();
    [bad[a], bad[b]] = [bad[b] as Uint8Array, bad[a] as Uint8Array];
    probe(`elements ${a} and ${b} swapped`, verifyConsistency(size1, size2, bad, root1, root2));
  }
  return out;
}

function run(
  cases: [number, number][],
  probes: (a: number, b: number) => [string, boolean, boolean][],
): { tally: Tally; wrong: string[] } {
  const tally: Tally = { probes: 0, sizeProbes: 0, sameShapeAccepted: 0 };
  const wrong: string[] = [];
  for (const [a, b] of cases) {
    for (const [what, accepted, mustAccept] of probes(a, b)) {
      tally.probes += 1;
      if (what.startsWith("size")) tally.sizeProbes += 1;
      if (mustAccept) tally.sameShapeAccepted += 1;
      if (accepted !== mustAccept) wrong.push(`(${a}, ${b}) ${what}: ${accepted ? "accepted" : "rejected"}`);
    }
  }
  return { tally, wrong };
}

describe("proof battery", () => {
  it("the symbolic shapes agree with the generated proofs and the reference vectors' lengths", () => {
    // The formula's element count is the proof length, for every case the battery uses.
    for (let n = 1; n <= 64; n++) {
      for (let i = 0; i < n; i++) {
        const f = inclusionFormula(i, n) as string;
        expect((f.match(/p\d+/g) ?? []).length).toBe(inclusionProof(i, n, mth).length);
      }
      for (let m = 1; m < n; m++) {
        expect(Number((consistencyFormula(m, n) as string).split(" / ")[2])).toBe(consistencyProof(m, n, mth).length);
      }
    }
    // The known shared shape: leaf 0 of 5 has the path shape of leaf 0 of 6, 7 and 8.
    expect(inclusionFormula(0, 6)).toBe(inclusionFormula(0, 5));
    const proof5 = inclusionProof(0, 5, mth);
    for (const s of [5, 6, 7, 8]) expect(verifyInclusion(leaves[0] as Uint8Array, 0, s, proof5, mth(0, 5))).toBe(true);
    expect(verifyInclusion(leaves[0] as Uint8Array, 0, 4, proof5, mth(0, 5))).toBe(false);
    expect(verifyInclusion(leaves[0] as Uint8Array, 0, 9, proof5, mth(0, 5))).toBe(false);
  });

  it("inclusion: valid proofs verify and 100% of corruptions are rejected (sizes 1..300)", () => {
    const cases: [number, number][] = [];
    for (let n = 1; n <= 40; n++) for (let i = 0; i < n; i++) cases.push([i, n]);
    for (let t = 0; t < 50; t++) {
      const n = randomInt(rand, 65, MAX);
      const indexes = new Set([
        0,
        n - 1,
        Math.floor(n / 2),
        ...Array.from({ length: 8 }, () => randomInt(rand, 0, n - 1)),
      ]);
      for (const i of indexes) cases.push([i, n]);
    }
    cases.push([0, MAX], [MAX - 1, MAX], [255, 256], [256, 257], [127, 300]);
    const { tally, wrong } = run(cases, inclusionProbes);
    expect(wrong).toEqual([]);
    expect(tally.probes).toBeGreaterThan(50_000);
    // Only wrong sizes with the very same path shape verify, a minority of the wrong sizes.
    expect(tally.sameShapeAccepted).toBeLessThan(tally.sizeProbes / 2);
  });

  it("consistency: valid proofs verify and 100% of corruptions are rejected (sizes 1..300)", () => {
    const cases: [number, number][] = [];
    for (let n = 2; n <= 32; n++) for (let m = 1; m < n; m++) cases.push([m, n]);
    for (let t = 0; t < 400; t++) {
      const n = randomInt(rand, 41, MAX);
      cases.push([randomInt(rand, 1, n - 1), n]);
    }
    cases.push([1, MAX], [MAX - 1, MAX], [128, 256], [256, 257], [255, 256], [64, 300]);
    const { tally, wrong } = run(cases, consistencyProbes);
    expect(wrong).toEqual([]);
    expect(tally.probes).toBeGreaterThan(50_000);
    expect(tally.sameShapeAccepted).toBeLessThan(tally.sizeProbes / 2);
  });

  it("array-backed and range-backed generation agree", () => {
    for (const n of [1, 2, 3, 17, 100, 300]) {
      const tree = leaves.slice(0, n);
      for (const i of [0, Math.floor(n / 3), n - 1]) {
        expect(inclusionProof(i, tree).map(hex)).toEqual(inclusionProof(i, n, mth).map(hex));
        expect(consistencyProof(i + 1, tree).map(hex)).toEqual(consistencyProof(i + 1, n, mth).map(hex));
      }
    }
  });
});
