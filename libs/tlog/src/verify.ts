/**
 * Offline verification of a log (or of its retained tail) against a trusted checkpoint: the
 * core of the audit service's VerifyLog RPC and of `uab audit verify`.
 *
 * Input: the records in the order they were read, each with its index, its content (canonical
 * bytes or the JSON entry; absent once retention purged it), its leaf hash, the previous chain
 * hash it stores and its chain hash; optionally the boundary where the records start (for a
 * log whose beginning was removed) and the checkpoint (already opened and signature-checked,
 * see note.ts).
 *
 * Checks, in one pass: each record's content hashes to its leaf hash, its chain hash is
 * `SHA-256(previous ‖ leaf)`, its previous chain hash is the chain hash of the record before it
 * (the boundary's for the first), and its index is its position. Then, with a checkpoint: the
 * records reach exactly its tree size, the last chain hash is the checkpoint's (when it has
 * one), and the Merkle root over the boundary frontier plus every leaf hash is its root.
 *
 * To verify a range `[a, b)` of a log against a checkpoint of size `n > b`, pass the records of
 * `[a, n)`, those after `b` as hashes only (no content): the root needs every leaf hash.
 *
 * ## Retention
 *
 * Two ways to drop old content and stay verifiable:
 * - purge content, keep the hashes: such records come without `entryBytes`/`entry`; their
 *   leaf hashes are still bound by the chain and the root;
 * - drop the records entirely: pass `boundary = { startIndex, previousChainHash, frontier }`,
 *   where `previousChainHash` is the chain hash of entry `startIndex - 1` (EntriesPurged's
 *   `last_chain_hash`) and `frontier` is the {@link MerkleFrontier} of leaves
 *   `[0, startIndex)` (a writer's frontier saved at the boundary, or computed from the leaf
 *   hashes before they are deleted: one hash per set bit of `startIndex`). Neither needs
 *   trust: a wrong frontier cannot produce the checkpoint's root, and a wrong boundary chain
 *   hash cannot produce the checkpoint's chain hash (short of breaking SHA-256; the chain is
 *   only bound when the checkpoint carries its chain hash, the leaves always are).
 *
 * ## Classifying the first problem
 *
 * The scan stops at the first record `p` (expected index `e = startIndex + p`) that fails a
 * check, and names the failure by these rules, in order (positions are array positions; the
 * chain hash "before" position 0 is the boundary's):
 *
 * 1. With a checkpoint, a record at or beyond its tree size: `inserted` at `e`.
 * 2. The record is internally consistent (content, leaf and chain hash agree) and its chain hash
 *    equals another record's: a replayed copy, `inserted` at `e`.
 * 3. Its previous chain hash links to the record before it (so the record itself is wrong):
 *    if the next record also links to the record before it, this record was slipped in,
 *    `inserted` at `e`; otherwise `changed` at `e` (content, hash or index field altered).
 * 4. Its previous chain hash is the chain hash of a later record: `reordered` at `e` (for two
 *    swapped records, the smaller index).
 * 5. A later record links to the record before this one: this record and those up to that one
 *    were slipped in, `inserted` at `e`.
 * 6. Its previous chain hash is the chain hash of an earlier record `q` (not the one right
 *    before): the records after `q` were slipped in (they did not break the chain on their
 *    own), `inserted` at `startIndex + q + 1`.
 * 7. The record is not internally consistent: `changed` at `e`.
 * 8. Otherwise it links to a chain hash found nowhere (its predecessor is gone): `removed` at
 *    `e` when its index skips ahead, or when the records end short of the checkpoint; else the
 *    record before it was replaced by one that links backwards but not forwards, `changed` at
 *    `e - 1` (at `e` for the first record, which does not link to the boundary).
 *
 * Without a record failing: records ending short of the checkpoint are `removed` at the first
 * missing index; a last chain hash or a Merkle root differing from the checkpoint's is
 * `root_mismatch` with no index (the whole chain was recomputed, or the boundary is wrong).
 * `verifiedCount` is the number of records before the first bad index (all records for
 * `root_mismatch`: each passed its own checks).
 */
import { isBytes, isHash, isSize, sameBytes, sha256PartsRaw } from "./bytes.js";
import { canonicalBytes, type JsonValue } from "./canonical.js";
import { genesisChainHash } from "./chain.js";
import { type FrontierState, MerkleFrontier } from "./merkle.js";

/**
 * What a verification found wrong; the names are those of the LogVerificationFailure enum of
 * uab.audit.v1 (`LOG_VERIFICATION_FAILURE_` + upper case). {@link verifyLog} reports the first
 * five; `bad_signature` and `inconsistent_checkpoint` are for callers checking notes and
 * consistency proofs.
 */
export type LogVerificationFailureKind =
  | "changed"
  | "removed"
  | "inserted"
  | "reordered"
  | "root_mismatch"
  | "bad_signature"
  | "inconsistent_checkpoint";

/** One record of a log as read back. */
export interface LogRecord {
  /** The index the record claims (its Merkle leaf index). */
  readonly index: number;
  /** The canonical bytes of the entry (preferred over `entry` when both are given). */
  readonly entryBytes?: Uint8Array;
  /** The entry as JSON, canonicalised with RFC 8785 (see canonical.ts) to check the leaf hash. */
  readonly entry?: JsonValue;
  /** The stored leaf hash, `SHA-256(0x00 ‖ entry bytes)`. */
  readonly leafHash: Uint8Array;
  /** The stored chain hash of the entry before (32 zero bytes for index 0). */
  readonly previousChainHash: Uint8Array;
  /** The stored chain hash, `SHA-256(previousChainHash ‖ leafHash)`. */
  readonly chainHash: Uint8Array;
}

/** Where the records start, for a log whose beginning is gone. */
export interface LogBoundary {
  /** Index of the first record. */
  readonly startIndex: number;
  /** Chain hash of entry `startIndex - 1` (32 zero bytes when `startIndex` is 0). */
  readonly previousChainHash: Uint8Array;
  /** The frontier of leaves `[0, startIndex)`; needed to check a checkpoint's root when `startIndex > 0`. */
  readonly frontier?: MerkleFrontier | FrontierState;
}

/** The checkpoint values to verify against (from a checkpoint whose signature was checked). */
export interface TrustedCheckpoint {
  /** Number of entries covered. */
  readonly treeSize: number;
  /** The Merkle root over the first `treeSize` leaf hashes. */
  readonly rootHash: Uint8Array;
  /** The chain hash of entry `treeSize - 1`, when the checkpoint carries one. */
  readonly chainHash?: Uint8Array;
}

/** Options of {@link verifyLog}. */
export interface VerifyLogOptions {
  /** Where the records start; by default index 0 after the genesis chain hash. */
  readonly boundary?: LogBoundary;
  /** The checkpoint the records must add up to; without one only the records are checked. */
  readonly checkpoint?: TrustedCheckpoint;
}

/** The outcome of {@link verifyLog}. */
export interface LogVerification {
  /** Everything verified. */
  readonly ok: boolean;
  /** Index of the first record (the boundary's start index). */
  readonly startIndex: number;
  /** One past the last index the records cover (`startIndex + records.length`). */
  readonly endIndex: number;
  /** Records verified before the first bad index (all of them when ok or for `root_mismatch`). */
  readonly verifiedCount: number;
  /** Index of the first bad entry; absent when ok or for `root_mismatch`. */
  readonly firstBadIndex?: number;
  /** What failed; absent when ok. */
  readonly failure?: LogVerificationFailureKind;
  /** What was found, for people. */
  readonly detail: string;
  /** The Merkle root recomputed from the frontier and the leaf hashes, when the scan got that far. */
  readonly computedRootHash?: Uint8Array;
  /** The chain hash after the last record, when the scan got that far. */
  readonly computedChainHash?: Uint8Array;
}

interface Inspection {
  readonly ok: boolean;
  /** Content, leaf and chain hash agree (the index field and the link are not part of it). */
  readonly internalOk: boolean;
  readonly linkOk: boolean;
  readonly index: number | undefined;
  readonly problem: string;
}

const LEAF_PREFIX = 0x00;

function inspect(record: LogRecord, expected: number, previous: Uint8Array): Inspection {
  const r = (record ?? {}) as Partial<LogRecord>;
  const index = isSize(r.index) ? r.index : undefined;
  const linkOk = isHash(r.previousChainHash) && sameBytes(r.previousChainHash, previous);
  if (!isHash(r.leafHash) || !isHash(r.previousChainHash) || !isHash(r.chainHash)) {
    return { ok: false, internalOk: false, linkOk, index, problem: `entry ${expected} has malformed hashes` };
  }
  let problem = "";
  let content: Uint8Array | undefined;
  if (r.entryBytes !== undefined) {
    content = isBytes(r.entryBytes) ? r.entryBytes : undefined;
    if (content === undefined) problem = `entry ${expected} has entry bytes that are not bytes`;
  } else if (r.entry !== undefined) {
    try {
      content = canonicalBytes(r.entry);
    } catch (err) {
      problem = `entry ${expected} is not canonicalisable JSON (${(err as Error).message})`;
    }
  }
  if (problem === "" && content !== undefined && !sameBytes(sha256PartsRaw(LEAF_PREFIX, content), r.leafHash)) {
    problem = `entry ${expected}'s content does not match its leaf hash`;
  }
  if (problem === "" && !sameBytes(sha256PartsRaw(undefined, r.previousChainHash, r.leafHash), r.chainHash)) {
    problem = `entry ${expected}'s chain hash is not SHA-256(previous chain hash ‖ leaf hash)`;
  }
  const internalOk = problem === "";
  if (internalOk && !linkOk) {
    problem = `entry ${expected}'s previous chain hash is not the chain hash of the entry before it`;
  }
  if (problem === "" && index !== expected) {
    problem = `the record at index ${expected} carries index ${String(r.index)}`;
  }
  return { ok: problem === "", internalOk, linkOk, index, problem };
}

/**
 * Verifies a log's records (and, with a checkpoint, that they add up to it); never throws on
 * bad records. See the module documentation for the checks and how the first problem is
 * classified.
 * @throws TypeError for malformed options (a boundary or checkpoint hash that is not 32
 * bytes, a start index or tree size that is not a safe integer), when a checkpoint is given
 * for records starting after index 0 without a boundary frontier, or when the checkpoint's
 * tree size is below the boundary's start index.
 */
export function verifyLog(records: readonly LogRecord[], options: VerifyLogOptions = {}): LogVerification {
  if (!Array.isArray(records)) throw new TypeError("verifyLog: records must be an array");
  const { boundary, checkpoint } = options;
  const start = boundary?.startIndex ?? 0;
  const boundaryChain = boundary?.previousChainHash ?? genesisChainHash();
  if (!isSize(start)) throw new TypeError("verifyLog: boundary.startIndex must be a safe integer ≥ 0");
  if (!isHash(boundaryChain)) throw new TypeError("verifyLog: boundary.previousChainHash must be 32 bytes");
  if (checkpoint !== undefined) {
    if (!isSize(checkpoint.treeSize) || !isHash(checkpoint.rootHash)) {
      throw new TypeError("verifyLog: the checkpoint needs a safe-integer tree size and a 32-byte root hash");
    }
    if (checkpoint.chainHash !== undefined && !isHash(checkpoint.chainHash)) {
      throw new TypeError("verifyLog: the checkpoint's chain hash must be 32 bytes");
    }
    if (checkpoint.treeSize < start) {
      throw new TypeError("verifyLog: the checkpoint's tree size is below the boundary's start index");
    }
    if (start > 0 && boundary?.frontier === undefined) {
      throw new TypeError("verifyLog: a boundary frontier is needed to check the checkpoint's root from index > 0");
    }
  }

  const n = records.length;
  const endIndex = start + n;
  const result = (
    failure: LogVerificationFailureKind,
    firstBadIndex: number | undefined,
    detail: string,
    extra: Partial<LogVerification> = {},
  ): LogVerification => ({
    ok: false,
    startIndex: start,
    endIndex,
    verifiedCount: firstBadIndex === undefined ? n : firstBadIndex - start,
    ...(firstBadIndex === undefined ? {} : { firstBadIndex }),
    failure,
    detail,
    ...extra,
  });
  // For classification only (after a failure): the stored hashes, validated once, so the
  // searches below are plain byte comparisons.
  let chains: (Uint8Array | undefined)[] | undefined;
  let prevs: (Uint8Array | undefined)[] | undefined;
  const hashes = (): [(Uint8Array | undefined)[], (Uint8Array | undefined)[]] => {
    chains ??= records.map((r) => (isHash(r?.chainHash) ? r.chainHash : undefined));
    prevs ??= records.map((r) => (isHash(r?.previousChainHash) ? r.previousChainHash : undefined));
    return [chains, prevs];
  };
  const same = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
    a !== undefined && b !== undefined && a[0] === b[0] && sameBytes(a, b);

  const classify = (p: number, c: Inspection): LogVerification => {
    const e = start + p;
    const [chain, prev] = hashes();
    const chainAt = (q: number): Uint8Array | undefined => (q < 0 ? boundaryChain : chain[q]);
    const own = chain[p];
    const ownPrev = prev[p];
    // 2. A replayed copy of another record.
    if (c.internalOk) {
      for (let q = 0; q < n; q++) {
        if (q !== p && same(chain[q], own)) {
          return result("inserted", e, `entry ${e} is a copy of the record at position ${start + q}`);
        }
      }
    }
    // 3. It links to its predecessor, so the record itself is wrong, or was slipped in.
    if (c.linkOk) {
      if (p + 1 < n && same(prev[p + 1], chainAt(p - 1))) {
        return result("inserted", e, `entry ${e} was inserted: the next record links to the one before it`);
      }
      return result("changed", e, c.problem);
    }
    // 4. It links to a later record.
    for (let q = p + 1; q < n; q++) {
      if (same(ownPrev, chain[q])) {
        return result("reordered", e, `entry ${e} follows the record at position ${start + q} in the chain`);
      }
    }
    // 5. A later record links to this one's predecessor.
    const before = chainAt(p - 1);
    for (let q = p + 1; q < n; q++) {
      if (same(prev[q], before)) {
        return result(
          "inserted",
          e,
          `records at positions ${e} to ${start + q - 1} were inserted: the record at ${start + q} links to the one before them`,
        );
      }
    }
    // 6. It links to an earlier record than its predecessor.
    for (let q = p - 2; q >= -1; q--) {
      if (same(ownPrev, chainAt(q))) {
        return result(
          "inserted",
          start + q + 1,
          `records at positions ${start + q + 1} to ${e - 1} were inserted: entry ${e} links to the one before them`,
        );
      }
    }
    // 7. The record is inconsistent in itself.
    if (!c.internalOk) return result("changed", e, c.problem);
    // 8. Its predecessor's chain hash is nowhere.
    if (c.index !== undefined && c.index > e) {
      return result("removed", e, `entries ${e} to ${c.index - 1} are missing: the next record is entry ${c.index}`);
    }
    if (checkpoint !== undefined && endIndex < checkpoint.treeSize) {
      return result("removed", e, `entry ${e} is missing: the record there links to an entry that is not in the log`);
    }
    if (p === 0) return result("changed", e, `entry ${e} does not link to the boundary's chain hash`);
    return result("changed", e - 1, `entry ${e - 1} was replaced: entry ${e} links to a different predecessor`);
  };

  let previous = boundaryChain;
  for (let p = 0; p < n; p++) {
    const e = start + p;
    if (checkpoint !== undefined && e >= checkpoint.treeSize) {
      return result("inserted", e, `entry ${e} is beyond the checkpoint's tree size ${checkpoint.treeSize}`);
    }
    const c = inspect(records[p] as LogRecord, e, previous);
    if (!c.ok) return classify(p, c);
    previous = (records[p] as LogRecord).chainHash;
  }

  // Every record passed; now the root (and the checkpoint's size and chain hash).
  let frontier: MerkleFrontier | undefined;
  let frontierProblem = "";
  if (boundary?.frontier !== undefined) {
    try {
      frontier =
        boundary.frontier instanceof MerkleFrontier
          ? boundary.frontier.clone()
          : MerkleFrontier.from(boundary.frontier);
      if (frontier.size !== start) {
        frontierProblem = `the boundary frontier covers ${frontier.size} entries, not ${start}`;
        frontier = undefined;
      }
    } catch {
      frontierProblem = "the boundary frontier is malformed";
    }
  } else if (start === 0) {
    frontier = new MerkleFrontier();
  } else {
    frontierProblem = "no boundary frontier";
  }
  if (frontier !== undefined) for (const r of records) frontier.append(r.leafHash);
  const computed: Partial<LogVerification> = {
    computedChainHash: Uint8Array.from(previous),
    ...(frontier === undefined ? {} : { computedRootHash: frontier.root() }),
  };

  if (checkpoint !== undefined) {
    if (endIndex < checkpoint.treeSize) {
      return result(
        "removed",
        endIndex,
        `the log ends at index ${endIndex} but the checkpoint covers ${checkpoint.treeSize} entries`,
        computed,
      );
    }
    if (checkpoint.chainHash !== undefined && !sameBytes(previous, checkpoint.chainHash)) {
      return result(
        "root_mismatch",
        undefined,
        `the chain hash of entry ${endIndex - 1} differs from the checkpoint's`,
        computed,
      );
    }
    if (computed.computedRootHash === undefined) {
      return result("root_mismatch", undefined, `the root cannot be recomputed: ${frontierProblem}`, computed);
    }
    if (!sameBytes(computed.computedRootHash, checkpoint.rootHash)) {
      return result("root_mismatch", undefined, "the recomputed Merkle root differs from the checkpoint's", computed);
    }
  }
  const what = checkpoint === undefined ? "" : `, matching the checkpoint of size ${checkpoint.treeSize}`;
  return {
    ok: true,
    startIndex: start,
    endIndex,
    verifiedCount: n,
    detail: `${n === 0 ? "no entries to verify" : `entries ${start} to ${endIndex - 1} verified`}${what}`,
    ...computed,
  };
}
