// Internal byte helpers shared by the modules of this package (not exported from the index).
import { hash } from "node:crypto";
import { types } from "node:util";

/** Length in bytes of a SHA-256 digest, and so of every hash this package deals in. */
export const HASH_SIZE = 32;

/** SHA-256 of `data` as a plain Uint8Array (not a Buffer, so deep equality in tests is plain). */
export function sha256(data: Uint8Array): Uint8Array {
  const digest = hash("sha256", data, "buffer");
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
}

// Scratch space for the inputs of prefixed and concatenated hashes (hashing is synchronous,
// so one buffer serves every call); grown on demand, up to a limit.
let scratch = new Uint8Array(1024);
const SCRATCH_LIMIT = 1 << 20;

/**
 * SHA-256 of `prefix ‖ a ‖ b` (the prefix byte and `b` may be omitted), as the Buffer the
 * hash function returns: for hashes that are only compared or kept internally.
 */
export function sha256PartsRaw(prefix: number | undefined, a: Uint8Array, b?: Uint8Array): Uint8Array {
  const head = prefix === undefined ? 0 : 1;
  const length = head + a.length + (b === undefined ? 0 : b.length);
  if (length > scratch.length && length <= SCRATCH_LIMIT)
    scratch = new Uint8Array(Math.max(length, scratch.length * 2));
  const buf = length <= scratch.length ? scratch : new Uint8Array(length);
  if (prefix !== undefined) buf[0] = prefix;
  buf.set(a, head);
  if (b !== undefined) buf.set(b, head + a.length);
  return hash("sha256", buf.length === length ? buf : buf.subarray(0, length), "buffer");
}

/** SHA-256 of `prefix ‖ a ‖ b` as a plain Uint8Array (for hashes handed to callers). */
export function sha256Parts(prefix: number | undefined, a: Uint8Array, b?: Uint8Array): Uint8Array {
  const digest = sha256PartsRaw(prefix, a, b);
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
}

/**
 * Whether `x` is a Uint8Array (of any realm: `instanceof` fails across vm contexts, and is
 * slow where it works).
 */
export function isBytes(x: unknown): x is Uint8Array {
  return types.isUint8Array(x);
}

/** Whether `x` is a Uint8Array of exactly 32 bytes. */
export function isHash(x: unknown): x is Uint8Array {
  return types.isUint8Array(x) && x.length === HASH_SIZE;
}

/** Byte equality of two Uint8Arrays known to be such. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Byte equality; false for anything that is not a Uint8Array. */
export function bytesEqual(a: unknown, b: unknown): boolean {
  return types.isUint8Array(a) && types.isUint8Array(b) && sameBytes(a, b);
}

/** Lower-case hex of some bytes. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** Standard base64 (RFC 4648 §4, padded). */
export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decodes standard padded base64 strictly: only the RFC 4648 alphabet, correct padding and
 * canonical trailing bits (so one byte string has exactly one accepted encoding). Returns
 * undefined for anything else, where Node's decoder would silently skip characters.
 */
export function fromBase64Strict(text: string): Uint8Array | undefined {
  if (!BASE64.test(text)) return undefined;
  const buf = Buffer.from(text, "base64");
  if (buf.toString("base64") !== text) return undefined;
  return Uint8Array.from(buf); // a copy: small Buffers are slices of a shared pool
}

/** Whether `n` is a non-negative safe integer (a valid index or tree size). */
export function isSize(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}
