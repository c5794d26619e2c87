// Helpers shared by the tlog tests.
import { createHash } from "node:crypto";

/** Lower-case hex of some bytes. */
export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

/** Bytes from hex. */
export const unhex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text, "hex"));

/** An integer in [lo, hi] from a seeded generator. */
export function randomInt(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

/** Some pseudo-random bytes from a seeded generator. */
export function randomBytes(rand: () => number, length: number): Uint8Array {
  return Uint8Array.from({ length }, () => Math.floor(rand() * 256));
}

/** A copy of `bytes` with bit `bit` flipped. */
export function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[bit >> 3] = (out[bit >> 3] as number) ^ (1 << (bit & 7));
  return out;
}

/**
 * An independent reference for RFC 9162 MTH (section 2.1.1), written from the definition with
 * createHash rather than the package's helpers; memoised per range, so every prefix of a
 * long log costs little.
 */
export function referenceTree(leafHashes: readonly Uint8Array[]): (start: number, end: number) => Uint8Array {
  const memo = new Map<string, Uint8Array>();
  const mth = (start: number, end: number): Uint8Array => {
    const key = `${start}:${end}`;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let out: Uint8Array;
    if (end - start === 0) out = createHash("sha256").digest();
    else if (end - start === 1) out = leafHashes[start] as Uint8Array;
    else {
      let k = 1;
      while (k * 2 < end - start) k *= 2;
      out = createHash("sha256")
        .update(Uint8Array.of(1))
        .update(mth(start, start + k))
        .update(mth(start + k, end))
        .digest();
    }
    memo.set(key, out);
    return out;
  };
  return mth;
}

/** SHA-256(0x00 ‖ data), written independently of the package. */
export function referenceLeafHash(data: Uint8Array): Uint8Array {
  return createHash("sha256").update(Uint8Array.of(0)).update(data).digest();
}
