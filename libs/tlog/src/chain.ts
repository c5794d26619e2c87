/**
 * The per-log hash chain: `chain[i] = SHA-256(chain[i-1] ‖ leaf[i])`, starting from 32 zero
 * bytes. Each entry's chain hash pins it to its predecessor, so a linear scan finds a changed,
 * removed, inserted or reordered entry without any checkpoint (see verify.ts); the Merkle
 * tree over the same leaf hashes gives the proofs.
 */
import { isHash, sha256Parts } from "./bytes.js";
import { canonicalBytes, type JsonValue } from "./canonical.js";
import { leafHash } from "./merkle.js";

/** The chain hash before the first entry of a log: 32 zero bytes (a fresh copy on every call). */
export function genesisChainHash(): Uint8Array {
  return new Uint8Array(32);
}

/**
 * The chain hash of an entry: `SHA-256(previousChainHash ‖ leafHash)`.
 * @throws TypeError when either input is not a 32-byte hash.
 */
export function chainHash(previousChainHash: Uint8Array, leafHash: Uint8Array): Uint8Array {
  if (!isHash(previousChainHash) || !isHash(leafHash)) {
    throw new TypeError("chainHash: the previous chain hash and the leaf hash must be 32 bytes");
  }
  return sha256Parts(undefined, previousChainHash, leafHash);
}

/**
 * The chain hashes of a run of entries, one per leaf hash, continuing from
 * `previousChainHash` (the genesis hash for a log's first entry).
 * @throws TypeError when a hash is not 32 bytes.
 */
export function chainHashes(
  leafHashes: readonly Uint8Array[],
  previousChainHash: Uint8Array = genesisChainHash(),
): Uint8Array[] {
  const out: Uint8Array[] = [];
  let previous = previousChainHash;
  for (const leaf of leafHashes) {
    previous = chainHash(previous, leaf);
    out.push(previous);
  }
  return out;
}

/**
 * The chain hash after a run of entries (`previousChainHash` itself when there are none).
 * @throws TypeError when a hash is not 32 bytes.
 */
export function chainHead(
  leafHashes: readonly Uint8Array[],
  previousChainHash: Uint8Array = genesisChainHash(),
): Uint8Array {
  let previous = previousChainHash;
  for (const leaf of leafHashes) previous = chainHash(previous, leaf);
  if (!isHash(previous)) throw new TypeError("chainHead: the previous chain hash must be 32 bytes");
  return previous;
}

/**
 * The leaf hash of a JSON entry: `SHA-256(0x00 ‖ JCS(entry))`. For an audit entry, `entry` is
 * its proto3 JSON form without `leafHash`, `previousChainHash` and `chainHash`.
 * @throws TypeError when the entry is not I-JSON (see canonical.ts).
 */
export function entryLeafHash(entry: JsonValue): Uint8Array {
  return leafHash(canonicalBytes(entry));
}
