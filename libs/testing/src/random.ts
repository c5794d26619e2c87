/** Seeded randomness for property tests and benchmark data: the same sequence on every run. */

/**
 * A seeded pseudo-random generator (mulberry32): each call returns the next number in [0, 1).
 * Small and fast, not cryptographic; equal seeds give equal sequences, so a failing property
 * test or a benchmark's data set can be reproduced from its seed.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
