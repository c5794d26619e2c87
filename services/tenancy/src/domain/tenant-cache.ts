import type { TenantRow } from "../storage/tables.js";

/**
 * A per-process cache of tenant rows for GetTenant, the read every caller makes. It is kept
 * fresh in two ways: this process's own tenant writes invalidate their entry when they
 * commit, and every entry expires after `ttlMs`, which bounds how stale another replica's
 * view can be after a write elsewhere. Writes never read through it: they lock the row in
 * their transaction. A generation counter per id keeps a read that raced a write from
 * caching the row the write replaced.
 */
export class TenantCache {
  private readonly entries = new Map<string, { row: TenantRow; expiresAt: number }>();
  private readonly generations = new Map<string, number>();

  /**
   * @param ttlMs how long an entry may be served (0 disables the cache)
   * @param maxEntries how many tenants to keep; the oldest entries go first
   */
  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  /** The cached row, if fresh. */
  get(id: string): TenantRow | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    if (e.expiresAt <= Date.now()) {
      this.entries.delete(id);
      return undefined;
    }
    return e.row;
  }

  /** A token to pass to {@link set}: taken before reading the row from the database. */
  generation(id: string): number {
    return this.generations.get(id) ?? 0;
  }

  /** Caches a row read at `generation`, unless a write invalidated the id since. */
  set(id: string, row: TenantRow, generation: number): void {
    if (this.ttlMs <= 0 || this.generation(id) !== generation) return;
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(id, { row, expiresAt: Date.now() + this.ttlMs });
  }

  /** Drops an id after a write to it committed (or failed: dropping is always safe). */
  invalidate(id: string): void {
    this.entries.delete(id);
    this.generations.set(id, this.generation(id) + 1);
  }
}
