import { describe, expect, it } from "@jest/globals";
import { seededRandom } from "@uab/testing";
import {
  arrayRangeHasher,
  consistencyProof,
  emptyRootHash,
  inclusionProof,
  leafHash,
  MerkleFrontier,
  nodeHash,
  rootHash,
  subtreeRoot,
  verifyConsistency,
  verifyInclusion,
} from "@uab/tlog";
import { hex, randomBytes, referenceLeafHash, referenceTree, unhex } from "./support.js";

// The Certificate Transparency reference tree (RFC 6962 test data, as published by
// transparency-dev/merkle and certificate-transparency-go): eight leaves and the tree head of
// every prefix, and proofs over it.
const CT_LEAVES = [
  "",
  "00",
  "10",
  "2021",
  "3031",
  "40414243",
  "5051525354555657",
  "606162636465666768696a6b6c6d6e6f",
].map(unhex);
const CT_ROOTS = [
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", // empty tree
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
  "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
  "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
  "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
  "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
  "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];
// transparency-dev/merkle proof/verify_test.go (leaf numbers there are 1-based).
const CT_INCLUSION: [index: number, size: number, proof: string[]][] = [
  [0, 1, []],
  [
    0,
    8,
    [
      "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
  ],
  [
    5,
    8,
    [
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
  ],
  [2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]],
  [
    1,
    5,
    [
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
  ],
];
const CT_CONSISTENCY: [size1: number, size2: number, proof: string[]][] = [
  [1, 1, []],
  [
    1,
    8,
    [
      "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
  ],
  [
    6,
    8,
    [
      "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
  ],
  [
    2,
    5,
    [
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
  ],
  [
    6,
    7,
    [
      "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
  ],
];

const ctLeafHashes = CT_LEAVES.map(leafHash);
const ctRoot = (size: number): Uint8Array => unhex(CT_ROOTS[size] as string);

describe("RFC 9162 hashing against the CT reference vectors", () => {
  it("hashes leaves and nodes with the 0x00 and 0x01 prefixes", () => {
    expect(hex(emptyRootHash())).toBe(CT_ROOTS[0]);
    expect(hex(leafHash(new Uint8Array(0)))).toBe(CT_ROOTS[1]);
    expect(hex(nodeHash(ctLeafHashes[0] as Uint8Array, ctLeafHashes[1] as Uint8Array))).toBe(CT_ROOTS[2]);
    for (const data of CT_LEAVES) expect(hex(leafHash(data))).toBe(hex(referenceLeafHash(data)));
  });

  it("gives the published tree head for every size 0..8, by array, frontier and range", () => {
    for (let n = 0; n <= 8; n++) {
      expect(hex(rootHash(ctLeafHashes.slice(0, n)))).toBe(CT_ROOTS[n]);
      expect(hex(MerkleFrontier.fromLeaves(ctLeafHashes.slice(0, n)).root())).toBe(CT_ROOTS[n]);
      if (n > 0) expect(hex(subtreeRoot(ctLeafHashes, 0, n))).toBe(CT_ROOTS[n]);
    }
  });

  it.each(CT_INCLUSION)(
    "generates and verifies the published inclusion proof of leaf %i in %i",
    (index, size, proof) => {
      const tree = ctLeafHashes.slice(0, size);
      expect(inclusionProof(index, tree).map(hex)).toEqual(proof);
      expect(inclusionProof(index, size, arrayRangeHasher(tree)).map(hex)).toEqual(proof);
      expect(verifyInclusion(ctLeafHashes[index] as Uint8Array, index, size, proof.map(unhex), ctRoot(size))).toBe(
        true,
      );
    },
  );

  it.each(CT_CONSISTENCY)("generates and verifies the published consistency proof %i → %i", (size1, size2, proof) => {
    const tree = ctLeafHashes.slice(0, size2);
    expect(consistencyProof(size1, tree).map(hex)).toEqual(proof);
    expect(consistencyProof(size1, size2, arrayRangeHasher(tree)).map(hex)).toEqual(proof);
    expect(verifyConsistency(size1, size2, proof.map(unhex), ctRoot(size1), ctRoot(size2))).toBe(true);
  });

  it("rejects the published proofs against other roots", () => {
    const [, , proof] = CT_CONSISTENCY[2] as [number, number, string[]];
    expect(verifyConsistency(6, 8, proof.map(unhex), ctRoot(5), ctRoot(8))).toBe(false);
    expect(verifyConsistency(6, 8, proof.map(unhex), ctRoot(8), ctRoot(6))).toBe(false);
    const [index, size, path] = CT_INCLUSION[2] as [number, number, string[]];
    expect(verifyInclusion(ctLeafHashes[index] as Uint8Array, index, size, path.map(unhex), ctRoot(7))).toBe(false);
  });
});

describe("edge cases of proofs", () => {
  const some = unhex("abacaba000000000000000000000000000000000000000000060061e00123456");

  it("treats sizes 0, an index at or beyond the size and malformed values as false, never throwing", () => {
    const leaf = ctLeafHashes[0] as Uint8Array;
    expect(verifyInclusion(leaf, 0, 0, [], emptyRootHash())).toBe(false);
    expect(verifyInclusion(leaf, 1, 1, [], leaf)).toBe(false);
    expect(verifyInclusion(leaf, 0, 1, [], leaf)).toBe(true);
    expect(verifyInclusion(leaf, 0, 1, [some], leaf)).toBe(false);
    expect(verifyInclusion(new Uint8Array(31), 0, 1, [], new Uint8Array(31))).toBe(false);
    expect(verifyInclusion(leaf, -1, 1, [], leaf)).toBe(false);
    expect(verifyInclusion(leaf, 0.5, 1, [], leaf)).toBe(false);
    expect(verifyInclusion(leaf, 0, 2 ** 53, [], leaf)).toBe(false);
    const garbage: unknown[] = [null, undefined, "x", 7, {}, [new Uint8Array(33)], [null]];
    for (const g of garbage) {
      expect(verifyInclusion(g as Uint8Array, 0, 1, [], leaf)).toBe(false);
      expect(verifyInclusion(leaf, 0, 1, g as Uint8Array[], leaf)).toBe(false);
      expect(verifyInclusion(leaf, g as number, 1, [], leaf)).toBe(false);
      expect(verifyConsistency(1, 2, g as Uint8Array[], leaf, leaf)).toBe(false);
      expect(verifyConsistency(g as number, 2, [leaf], leaf, leaf)).toBe(false);
      expect(verifyConsistency(1, 2, [leaf], g as Uint8Array, leaf)).toBe(false);
    }
  });

  it("handles the trivial consistency cases", () => {
    const r2 = ctRoot(2);
    expect(verifyConsistency(0, 0, [], emptyRootHash(), emptyRootHash())).toBe(true);
    expect(verifyConsistency(0, 5, [], emptyRootHash(), ctRoot(5))).toBe(true);
    expect(verifyConsistency(0, 5, [], r2, ctRoot(5))).toBe(false); // size 0 has the empty root
    expect(verifyConsistency(0, 5, [some], emptyRootHash(), ctRoot(5))).toBe(false);
    expect(verifyConsistency(2, 2, [], r2, r2)).toBe(true);
    expect(verifyConsistency(2, 2, [], r2, ctRoot(3))).toBe(false);
    expect(verifyConsistency(2, 2, [some], r2, r2)).toBe(false);
    expect(verifyConsistency(3, 2, [], ctRoot(3), r2)).toBe(false);
    expect(verifyConsistency(1, 2, [], ctRoot(1), r2)).toBe(false);
    expect(consistencyProof(0, ctLeafHashes)).toEqual([]);
    expect(consistencyProof(8, ctLeafHashes)).toEqual([]);
  });

  it("refuses to generate proofs outside the tree", () => {
    expect(() => inclusionProof(8, ctLeafHashes)).toThrow(RangeError);
    expect(() => inclusionProof(0, [])).toThrow(RangeError);
    expect(() => consistencyProof(9, ctLeafHashes)).toThrow(RangeError);
    expect(() => inclusionProof(0, 4, (() => new Uint8Array(3)) as never)).toThrow(TypeError);
    expect(() => subtreeRoot(ctLeafHashes, 3, 3)).toThrow(RangeError);
    expect(() => nodeHash(new Uint8Array(32), new Uint8Array(31))).toThrow(TypeError);
  });

  it("asks a range hasher only for perfect subtrees and ranges ending at the tree size", () => {
    const rand = seededRandom(11);
    const leaves = Array.from({ length: 300 }, () => leafHash(randomBytes(rand, 8)));
    const ref = referenceTree(leaves);
    for (const size of [1, 2, 3, 5, 7, 8, 13, 64, 100, 255, 256, 257, 300]) {
      const asked: [number, number][] = [];
      const hasher = (s: number, e: number): Uint8Array => {
        asked.push([s, e]);
        return ref(s, e);
      };
      for (let i = 0; i < size; i += 7) inclusionProof(i, size, hasher);
      for (let m = 1; m <= size; m += 5) consistencyProof(m, size, hasher);
      for (const [s, e] of asked) {
        const width = e - s;
        const perfect = (width & (width - 1)) === 0 && s % width === 0;
        expect(perfect || e === size).toBe(true);
      }
    }
  });
});

describe("MerkleFrontier", () => {
  it("equals the tree head of every prefix of a random log", () => {
    const rand = seededRandom(2024);
    const leaves = Array.from({ length: 1100 }, () => leafHash(randomBytes(rand, 1 + Math.floor(rand() * 40))));
    const ref = referenceTree(leaves);
    const frontier = new MerkleFrontier();
    expect(hex(frontier.root())).toBe(hex(emptyRootHash()));
    for (let n = 1; n <= leaves.length; n++) {
      frontier.append(leaves[n - 1] as Uint8Array);
      expect(frontier.size).toBe(n);
      expect(frontier.hashes.length).toBe(n.toString(2).replaceAll("0", "").length);
      const root = hex(frontier.root());
      expect(root).toBe(hex(ref(0, n)));
      if (n % 97 === 0) expect(hex(rootHash(leaves.slice(0, n)))).toBe(root);
    }
  });

  it("round-trips through its state and its bytes, and continues identically", () => {
    const rand = seededRandom(5);
    const leaves = Array.from({ length: 77 }, () => leafHash(randomBytes(rand, 16)));
    const a = MerkleFrontier.fromLeaves(leaves.slice(0, 45));
    const b = MerkleFrontier.from(a.state());
    const c = MerkleFrontier.fromBytes(a.size, a.toBytes());
    const d = a.clone();
    for (const leaf of leaves.slice(45)) for (const f of [a, b, c, d]) f.append(leaf);
    const want = hex(rootHash(leaves));
    for (const f of [a, b, c, d]) expect(hex(f.root())).toBe(want);
  });

  it("rejects malformed states and leaves", () => {
    const h = new Uint8Array(32);
    expect(() => MerkleFrontier.from({ size: 3, hashes: [h] })).toThrow(TypeError);
    expect(() => MerkleFrontier.from({ size: 2, hashes: [h, h] })).toThrow(TypeError);
    expect(() => MerkleFrontier.from({ size: 1, hashes: [new Uint8Array(31)] })).toThrow(TypeError);
    expect(() => MerkleFrontier.from({ size: -1, hashes: [] })).toThrow(TypeError);
    expect(() => MerkleFrontier.fromBytes(3, new Uint8Array(32))).toThrow(TypeError);
    expect(() => new MerkleFrontier().append(new Uint8Array(33))).toThrow(TypeError);
    expect(MerkleFrontier.from({ size: 0, hashes: [] }).root()).toEqual(emptyRootHash());
  });

  it("keeps its size exact beyond 2^32 leaves (no 32-bit arithmetic)", () => {
    const h = leafHash(new Uint8Array(1));
    const big = 2 ** 33 + 2 ** 32 + 1; // three set bits, above 32 bits
    const f = MerkleFrontier.from({ size: big, hashes: [h, h, h] });
    f.append(h);
    expect(f.size).toBe(big + 1);
    expect(f.hashes.length).toBe(3); // ...0011 → ...0010 carries into one subtree: bits 33, 32, 1
    // Verification arithmetic too: the last leaf of a huge tree whose root is the frontier's.
    const g = MerkleFrontier.from({ size: 2 ** 40, hashes: [h] });
    g.append(h);
    expect(verifyInclusion(h, 2 ** 40, 2 ** 40 + 1, [h], g.root())).toBe(true);
    expect(verifyInclusion(h, 2 ** 40, 2 ** 40 + 2, [h], g.root())).toBe(false);
  });
});
