/**
 * Password hashing: argon2id at or above OWASP's parameters (m = 19 MiB, t = 2, p = 1), on
 * libuv's thread pool (`@node-rs/argon2`), with a bound on hashes in flight so a flood of
 * sign-ins queues instead of allocating 19 MiB per request until memory runs out. A hash made
 * with older parameters is reported as needing a rehash, which sign-in does on success.
 */
import { hash, verify } from "@node-rs/argon2";

/** `Algorithm.Argon2id` of @node-rs/argon2 (a const enum, not importable as a value here). */
const ARGON2ID = 2;

import { ResourceExhaustedError } from "@uab/core";

/** argon2id cost parameters. */
export interface Argon2Parameters {
  /** Memory in KiB (OWASP minimum 19456). */
  readonly memoryKiB: number;
  /** Iterations (OWASP minimum 2 at 19 MiB). */
  readonly iterations: number;
  /** Lanes. */
  readonly parallelism: number;
}

/** OWASP Password Storage Cheat Sheet, argon2id, first recommended configuration. */
export const OWASP_ARGON2: Argon2Parameters = { memoryKiB: 19_456, iterations: 2, parallelism: 1 };

/** Options of {@link PasswordHasher}. */
export interface PasswordHasherOptions {
  readonly parameters?: Argon2Parameters;
  /** Hashes computed at once; the rest wait (default 4: libuv's default pool size). */
  readonly maxConcurrent?: number;
  /** Hashes that may wait; beyond it callers get RESOURCE_EXHAUSTED at once (default 2,000). */
  readonly maxQueued?: number;
}

const PHC = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$/;

/** Hashes and verifies passwords; see the module comment. */
export class PasswordHasher {
  readonly parameters: Argon2Parameters;
  private readonly maxConcurrent: number;
  private readonly maxQueued: number;
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private dummy: Promise<string> | undefined;

  constructor(options: PasswordHasherOptions = {}) {
    this.parameters = options.parameters ?? OWASP_ARGON2;
    if (this.parameters.memoryKiB < OWASP_ARGON2.memoryKiB || this.parameters.iterations < OWASP_ARGON2.iterations) {
      throw new Error("argon2id parameters below OWASP's minimum (m=19456 KiB, t=2)");
    }
    this.maxConcurrent = options.maxConcurrent ?? 4;
    this.maxQueued = options.maxQueued ?? 2000;
  }

  /** Hashes in flight or waiting (for metrics and tests). */
  get load(): { running: number; queued: number } {
    return { running: this.running, queued: this.waiting.length };
  }

  private async slot<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxConcurrent) {
      if (this.waiting.length >= this.maxQueued) {
        throw new ResourceExhaustedError("PASSWORD_HASHING_BUSY", "too many sign-ins in progress; retry shortly", {
          metadata: { retry_after_seconds: "1" },
        });
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  /** A PHC-format argon2id hash of `password`. */
  hash(password: string): Promise<string> {
    const p = this.parameters;
    return this.slot(() =>
      hash(password, {
        algorithm: ARGON2ID,
        memoryCost: p.memoryKiB,
        timeCost: p.iterations,
        parallelism: p.parallelism,
      }),
    );
  }

  /** Whether `password` matches `phc`; false for a malformed hash. */
  verify(phc: string, password: string): Promise<boolean> {
    return this.slot(() => verify(phc, password).catch(() => false));
  }

  /**
   * Spends the same work as a real verification against a hash nobody has, so an unknown
   * account answers in the same time as a known one with a wrong password.
   */
  async verifyNothing(password: string): Promise<void> {
    this.dummy ??= this.hash(`uab-dummy-${Math.random()}`);
    await this.verify(await this.dummy, password);
  }

  /** Whether `phc` was made with weaker parameters than the current ones. */
  needsRehash(phc: string): boolean {
    const m = PHC.exec(phc);
    if (!m) return true;
    const p = this.parameters;
    return Number(m[1]) < p.memoryKiB || Number(m[2]) < p.iterations || Number(m[3]) !== p.parallelism;
  }
}
