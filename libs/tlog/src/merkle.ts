/**
 * RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing, section 2.1, with SHA-256:
 * tree heads, inclusion proofs (audit paths) and consistency proofs, their verification, and
 * an incremental frontier (compact range) for writers.
 *
 * Tree sizes and indexes are JavaScript numbers and must be safe integers (below 2^53); the
 * arithmetic never uses 32-bit bitwise operators, so logs beyond 2^32 entries work.
 */
import { bytesEqual, HASH_SIZE, isBytes, isHash, isSize, sha256, sha256Parts, sha256PartsRaw } from "./bytes.js";

const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;

/**
 * Hash of the range `[start, end)` of a log's leaves: MTH(D[start:end]) of RFC 9162 section 2.1.1.
 * Proof generation asks only for ranges that are perfect subtrees (`start` a multiple of
 * `end - start`, a power of two) or that end at the tree size, so a caller can answer from
 * stored subtree hashes instead of re-reading every leaf.
 */
export type RangeHasher = (start: number, end: number) => Uint8Array;

/** The state of a {@link MerkleFrontier}: its size and the roots of its perfect subtrees, largest first. */
export interface FrontierState {
  /** Number of leaves covered. */
  readonly size: number;
  /** One 32-byte hash per set bit of `size`, from the highest bit (leftmost subtree) down. */
  readonly hashes: readonly Uint8Array[];
}

/** The root of the empty tree: SHA-256 of the empty string (a fresh copy on every call). */
export function emptyRootHash(): Uint8Array {
  return sha256(new Uint8Array(0));
}

/** The leaf hash of an entry: `SHA-256(0x00 ‖ entry)` (RFC 9162 section 2.1.1). */
export function leafHash(entry: Uint8Array): Uint8Array {
  if (!isBytes(entry)) throw new TypeError("leafHash: entry must be a Uint8Array");
  return sha256Parts(LEAF_PREFIX, entry);
}

/**
 * The hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)` (RFC 9162 section 2.1.1).
 * @throws TypeError when either child is not a 32-byte hash.
 */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  if (!isHash(left) || !isHash(right)) throw new TypeError("nodeHash: children must be 32-byte hashes");
  return sha256Parts(NODE_PREFIX, left, right);
}

/** The largest power of two strictly below `n` (n ≥ 2): RFC 9162's split point k. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function onesCount(n: number): number {
  let count = 0;
  for (let x = n; x > 0; x = Math.floor(x / 2)) count += x % 2;
  return count;
}

function half(n: number): number {
  return Math.floor(n / 2);
}

function isOdd(n: number): boolean {
  return n % 2 === 1;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && onesCount(n) === 1;
}

function checkLeafHashes(leafHashes: readonly Uint8Array[], what: string): void {
  if (!Array.isArray(leafHashes)) throw new TypeError(`${what}: leafHashes must be an array`);
}

/**
 * The Merkle tree head of some leaves, MTH(D[n]) of RFC 9162 section 2.1.1, from their leaf
 * hashes (the empty tree's head is SHA-256 of the empty string). O(n) hashing, O(log n) memory.
 * @throws TypeError when a leaf hash is not 32 bytes.
 */
export function rootHash(leafHashes: readonly Uint8Array[]): Uint8Array {
  checkLeafHashes(leafHashes, "rootHash");
  return MerkleFrontier.fromLeaves(leafHashes).root();
}

/**
 * The Merkle tree head of the leaves `[start, end)` of `leafHashes`, MTH(D[start:end]).
 * @throws RangeError when the range is not within the array or is empty.
 */
export function subtreeRoot(leafHashes: readonly Uint8Array[], start: number, end: number): Uint8Array {
  checkLeafHashes(leafHashes, "subtreeRoot");
  if (!isSize(start) || !isSize(end) || start >= end || end > leafHashes.length) {
    throw new RangeError(
      `subtreeRoot: range [${start}, ${end}) is not a non-empty range of ${leafHashes.length} leaves`,
    );
  }
  const frontier = new MerkleFrontier();
  for (let i = start; i < end; i++) frontier.append(leafHashes[i] as Uint8Array);
  return frontier.root();
}

/** A {@link RangeHasher} over an in-memory array of leaf hashes. */
export function arrayRangeHasher(leafHashes: readonly Uint8Array[]): RangeHasher {
  checkLeafHashes(leafHashes, "arrayRangeHasher");
  return (start, end) => subtreeRoot(leafHashes, start, end);
}

function askRange(hashRange: RangeHasher, start: number, end: number): Uint8Array {
  const h = hashRange(start, end);
  if (!isHash(h)) throw new TypeError(`range hasher returned no 32-byte hash for [${start}, ${end})`);
  return h;
}

/**
 * The inclusion proof (audit path) of leaf `index` in the tree of the given leaves:
 * PATH(m, D[n]) of RFC 9162 section 2.1.3.1, from the leaf's sibling up to the root's child.
 * @throws RangeError when `index` is not below the tree size.
 */
export function inclusionProof(index: number, leafHashes: readonly Uint8Array[]): Uint8Array[];
/**
 * The inclusion proof of leaf `index` in a tree of `treeSize` leaves, asking `hashRange` for
 * the subtree hashes it needs (O(log n) calls).
 * @throws RangeError when `index` is not below `treeSize`.
 */
export function inclusionProof(index: number, treeSize: number, hashRange: RangeHasher): Uint8Array[];
export function inclusionProof(
  index: number,
  leavesOrSize: readonly Uint8Array[] | number,
  hashRange?: RangeHasher,
): Uint8Array[] {
  const [treeSize, range] = resolveTree(leavesOrSize, hashRange, "inclusionProof");
  if (!isSize(index) || index >= treeSize) {
    throw new RangeError(`inclusionProof: index ${index} is not below the tree size ${treeSize}`);
  }
  // PATH(m, D[start:end]) unrolled: walk down from the root, collecting the sibling of the
  // subtree holding the leaf at each level; the proof lists them bottom-up.
  const siblings: Uint8Array[] = [];
  let m = index;
  let start = 0;
  let end = treeSize;
  while (end - start > 1) {
    const k = splitPoint(end - start);
    if (m < k) {
      siblings.push(askRange(range, start + k, end));
      end = start + k;
    } else {
      siblings.push(askRange(range, start, start + k));
      m -= k;
      start += k;
    }
  }
  return siblings.reverse();
}

/**
 * The consistency proof between the tree of the first `size1` leaves and the tree of all
 * the given leaves: PROOF(m, D[n]) of RFC 9162 section 2.1.4.1. Empty when `size1` is 0 or
 * equals the tree size (nothing to prove).
 * @throws RangeError when `size1` exceeds the tree size.
 */
export function consistencyProof(size1: number, leafHashes: readonly Uint8Array[]): Uint8Array[];
/**
 * The consistency proof between tree sizes `size1` and `size2`, asking `hashRange` for the
 * subtree hashes it needs (O(log n) calls).
 * @throws RangeError when `size1` exceeds `size2`.
 */
export function consistencyProof(size1: number, size2: number, hashRange: RangeHasher): Uint8Array[];
export function consistencyProof(
  size1: number,
  leavesOrSize: readonly Uint8Array[] | number,
  hashRange?: RangeHasher,
): Uint8Array[] {
  const [size2, range] = resolveTree(leavesOrSize, hashRange, "consistencyProof");
  if (!isSize(size1) || size1 > size2) {
    throw new RangeError(`consistencyProof: size ${size1} is not within the tree size ${size2}`);
  }
  if (size1 === 0 || size1 === size2) return [];
  // SUBPROOF(m, D[start:end], b) unrolled. `top` collects the siblings from the root down;
  // the recursion's base case (the old subtree itself, unless it is the whole old tree) comes
  // first in the proof, then the siblings bottom-up.
  const top: Uint8Array[] = [];
  let m = size1;
  let start = 0;
  let end = size2;
  let isWholeOldTree = true;
  let base: Uint8Array | undefined;
  for (;;) {
    const n = end - start;
    if (m === n) {
      if (!isWholeOldTree) base = askRange(range, start, end);
      break;
    }
    const k = splitPoint(n);
    if (m <= k) {
      top.push(askRange(range, start + k, end));
      end = start + k;
    } else {
      top.push(askRange(range, start, start + k));
      m -= k;
      start += k;
      isWholeOldTree = false;
    }
  }
  top.reverse();
  return base === undefined ? top : [base, ...top];
}

function resolveTree(
  leavesOrSize: readonly Uint8Array[] | number,
  hashRange: RangeHasher | undefined,
  what: string,
): [number, RangeHasher] {
  if (typeof leavesOrSize === "number") {
    if (!isSize(leavesOrSize)) throw new RangeError(`${what}: tree size ${leavesOrSize} is not a safe integer ≥ 0`);
    if (typeof hashRange !== "function") throw new TypeError(`${what}: a range hasher is required with a tree size`);
    return [leavesOrSize, hashRange];
  }
  return [leavesOrSize.length, arrayRangeHasher(leavesOrSize)];
}

function isProof(proof: unknown): proof is readonly Uint8Array[] {
  return Array.isArray(proof) && proof.every(isHash);
}

/**
 * Verifies an inclusion proof (RFC 9162 section 2.1.3.2): that `leafHash` is leaf `index` of
 * the tree of `treeSize` leaves whose head is `root`. Never throws: malformed input (an index
 * not below the size, sizes that are not safe integers, hashes that are not 32 bytes, a proof
 * too long or too short) is simply false.
 *
 * A proof states a position in a tree shape, and trees of different sizes share shapes: the
 * path of leaf 0 in a tree of 5 leaves is also a well-formed path of leaf 0 in a tree of 6,
 * 7 or 8 leaves, so it verifies against the same root with those sizes too (as in every RFC
 * 9162 verifier). The size a root belongs to must come from the signed checkpoint, never
 * from the proof's sender.
 */
export function verifyInclusion(
  leafHash: Uint8Array,
  index: number,
  treeSize: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isHash(leafHash) || !isHash(root) || !isSize(index) || !isSize(treeSize) || !isProof(proof)) return false;
  if (index >= treeSize) return false;
  let fn = index;
  let sn = treeSize - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      r = sha256PartsRaw(NODE_PREFIX, p, r);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = sha256PartsRaw(NODE_PREFIX, r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && bytesEqual(r, root);
}

/**
 * Verifies a consistency proof (RFC 9162 section 2.1.4.2): that the tree of `size2` leaves
 * with head `root2` extends the tree of `size1` leaves with head `root1`. Never throws;
 * malformed input is false. Equal sizes need an empty proof and equal roots. A first size of
 * 0 needs an empty proof and `root1` equal to the empty tree's head (every tree extends the
 * empty tree; RFC 9162 defines proofs only for 0 < size1 < size2).
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): boolean {
  if (!isSize(size1) || !isSize(size2) || !isHash(root1) || !isHash(root2) || !isProof(proof)) return false;
  if (size1 > size2) return false;
  if (size1 === 0) return proof.length === 0 && bytesEqual(root1, emptyRootHash());
  if (size1 === size2) return proof.length === 0 && bytesEqual(root1, root2);
  if (proof.length === 0) return false;
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0] as Uint8Array;
  let sr = fr;
  for (let i = 1; i < path.length; i++) {
    const c = path[i] as Uint8Array;
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      fr = sha256PartsRaw(NODE_PREFIX, c, fr);
      sr = sha256PartsRaw(NODE_PREFIX, c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = sha256PartsRaw(NODE_PREFIX, sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && bytesEqual(fr, root1) && bytesEqual(sr, root2);
}

/**
 * An incremental Merkle tree head: the compact range `[0, size)`, i.e. the roots of the
 * perfect subtrees that cover the leaves so far (one per set bit of `size`, largest first).
 * A writer keeps it next to the log and appends each new leaf hash in O(log n) amortised
 * hashing, so the tree head never needs the old leaves; a verifier that lost a log's
 * beginning (retention) starts from the frontier at that boundary.
 */
export class MerkleFrontier {
  #size = 0;
  #hashes: Uint8Array[] = [];

  /** A frontier over the given leaf hashes. @throws TypeError when one is not 32 bytes. */
  static fromLeaves(leafHashes: readonly Uint8Array[]): MerkleFrontier {
    const frontier = new MerkleFrontier();
    for (const h of leafHashes) frontier.append(h);
    return frontier;
  }

  /**
   * Restores a frontier from its {@link FrontierState}.
   * @throws TypeError when the state is malformed (a size that is not a safe integer, a hash
   * count other than the number of set bits of the size, a hash that is not 32 bytes).
   */
  static from(state: FrontierState): MerkleFrontier {
    const { size, hashes } = state ?? {};
    if (!isSize(size) || !Array.isArray(hashes) || hashes.length !== onesCount(size) || !hashes.every(isHash)) {
      throw new TypeError("MerkleFrontier.from: malformed frontier state");
    }
    const frontier = new MerkleFrontier();
    frontier.#size = size;
    frontier.#hashes = hashes.map((h) => Uint8Array.from(h));
    return frontier;
  }

  /**
   * Restores a frontier from its size and the concatenation of its hashes ({@link toBytes}).
   * @throws TypeError when the byte length does not match the size.
   */
  static fromBytes(size: number, bytes: Uint8Array): MerkleFrontier {
    if (!isSize(size) || !isBytes(bytes) || bytes.length !== onesCount(size) * HASH_SIZE) {
      throw new TypeError("MerkleFrontier.fromBytes: the bytes do not hold one hash per set bit of the size");
    }
    const hashes: Uint8Array[] = [];
    for (let off = 0; off < bytes.length; off += HASH_SIZE) hashes.push(bytes.slice(off, off + HASH_SIZE));
    return MerkleFrontier.from({ size, hashes });
  }

  /** Number of leaves appended so far. */
  get size(): number {
    return this.#size;
  }

  /** The perfect-subtree roots, largest (leftmost) first; copies. */
  get hashes(): Uint8Array[] {
    return this.#hashes.map((h) => Uint8Array.from(h));
  }

  /** The serialisable state (restore with {@link MerkleFrontier.from}). */
  state(): FrontierState {
    return { size: this.#size, hashes: this.hashes };
  }

  /** The hashes concatenated, 32 bytes each (restore with {@link MerkleFrontier.fromBytes}). */
  toBytes(): Uint8Array {
    const out = new Uint8Array(this.#hashes.length * HASH_SIZE);
    this.#hashes.forEach((h, i) => {
      out.set(h, i * HASH_SIZE);
    });
    return out;
  }

  /**
   * Appends one leaf hash. @throws TypeError when it is not 32 bytes; RangeError when the
   * size would exceed 2^53 - 1.
   */
  append(leafHash: Uint8Array): void {
    if (!isHash(leafHash)) throw new TypeError("MerkleFrontier.append: a leaf hash must be 32 bytes");
    if (this.#size >= Number.MAX_SAFE_INTEGER) throw new RangeError("MerkleFrontier.append: the tree is full");
    let node: Uint8Array = Uint8Array.from(leafHash);
    // Each trailing 1 bit of the old size is a subtree of the same height as `node` so far:
    // merge them, as carrying in a binary increment.
    for (let s = this.#size; isOdd(s); s = half(s)) {
      node = sha256PartsRaw(NODE_PREFIX, this.#hashes.pop() as Uint8Array, node);
    }
    this.#hashes.push(node);
    this.#size += 1;
  }

  /** The tree head of the leaves so far: MTH(D[size]) (the empty tree's head when empty). */
  root(): Uint8Array {
    const n = this.#hashes.length;
    if (n === 0) return emptyRootHash();
    let r = this.#hashes[n - 1] as Uint8Array;
    for (let i = n - 2; i >= 0; i--) r = sha256PartsRaw(NODE_PREFIX, this.#hashes[i] as Uint8Array, r);
    return Uint8Array.from(r);
  }

  /** An independent copy. */
  clone(): MerkleFrontier {
    return MerkleFrontier.from({ size: this.#size, hashes: this.#hashes });
  }
}
