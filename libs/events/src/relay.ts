import { createLogger, type Logger } from "@uab/core";
import { withPlatform } from "@uab/db";
import type { Kysely } from "kysely";
import type pg from "pg";
import type { EventBus, OutboundEvent } from "./bus.js";
import type { EventsTables } from "./outbox.js";

/** The channel the outbox trigger notifies, with the schema name as payload. */
export const OUTBOX_CHANNEL = "uab_outbox";

/** Options for {@link startOutboxRelay}. */
export interface OutboxRelayOptions<DB> {
  /** The service's Kysely instance (its `search_path` names the schema whose outbox to relay). */
  readonly db: Kysely<DB>;
  /** The pool behind `db`; one connection is kept for LISTEN while the relay runs. */
  readonly pool: pg.Pool;
  /** Where events go. */
  readonly bus: EventBus;
  /** Logs failures. */
  readonly logger?: Logger;
  /** Rows per transaction; defaults to 100. */
  readonly batchSize?: number;
  /** How often to look without a notification (a missed NOTIFY, a lost LISTEN connection); defaults to 1 000 ms. */
  readonly pollIntervalMs?: number;
  /** Upper bound of the backoff after failed publishes; defaults to 30 000 ms. */
  readonly maxBackoffMs?: number;
}

/** A running relay. */
export interface OutboxRelay {
  /**
   * Publishes every row pending now, waiting for a batch in flight first, and resolves
   * with how many it published; rejects when publishing fails (rows stay). Rows locked
   * by another relay at that moment are left to it.
   */
  drain(): Promise<number>;
  /** Stops the loop after the batch in flight and releases the LISTEN connection. */
  stop(): Promise<void>;
}

/**
 * Starts moving outbox rows to the bus. Each batch is one platform-scope transaction that
 * claims up to `batchSize` rows in id order with `FOR UPDATE SKIP LOCKED`, publishes them,
 * deletes them and commits; full batches are followed at once by the next. So:
 * - a row is deleted only after the bus accepted it; a crash or a failed publish rolls the
 *   claim back and the row is published again later (at least once; JetStream's dedup
 *   window and the consumers' inbox absorb the repeat);
 * - several relays on one schema (replicas) never publish the same row concurrently:
 *   rows claimed by one are skipped, not waited for, by the others.
 * It wakes on the outbox trigger's NOTIFY (a dedicated LISTEN connection), or every
 * `pollIntervalMs`; after a failure it backs off exponentially and ignores notifications
 * until the backoff ends, so a NATS outage is not hammered by every insert.
 */
export async function startOutboxRelay<DB>(options: OutboxRelayOptions<DB>): Promise<OutboxRelay> {
  const db = options.db as unknown as Kysely<EventsTables>;
  const { bus, pool } = options;
  const logger = options.logger ?? createLogger({ service: "events", level: "silent" });
  const batchSize = options.batchSize ?? 100;
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const maxBackoffMs = options.maxBackoffMs ?? 30_000;

  let stopped = false;
  let poked = false;
  let wake: (() => void) | undefined;
  let listener: pg.PoolClient | undefined;
  let schema: string | undefined;
  let relistenTimer: NodeJS.Timeout | undefined;

  const poke = () => {
    poked = true;
    wake?.();
  };

  // One batch at a time per relay: drain() must not return while the loop still holds rows
  // it skipped.
  let tail: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };

  const batch = (): Promise<number> =>
    withPlatform(db, async (tx) => {
      const rows = await tx
        .selectFrom("outbox")
        .select(["id", "subject", "data", "headers"])
        .orderBy("id")
        .limit(batchSize)
        .forUpdate()
        .skipLocked()
        .execute();
      if (rows.length === 0) return 0;
      const events: OutboundEvent[] = rows.map((r) => ({
        id: r.id,
        subject: r.subject,
        data: r.data,
        headers: r.headers ?? {},
      }));
      await bus.publish(events);
      await tx
        .deleteFrom("outbox")
        .where(
          "id",
          "in",
          rows.map((r) => r.id),
        )
        .execute();
      return rows.length;
    });

  const drainAll = async (): Promise<number> => {
    let total = 0;
    for (;;) {
      const n = await batch();
      total += n;
      if (n < batchSize || stopped) return total;
    }
  };

  // Gives the LISTEN connection back to the pool, detached from our handlers (a pooled
  // client keeps its listeners, and an idle one failing later is not ours to handle).
  const releaseListener = (c: pg.PoolClient, err?: Error) => {
    if (listener === c) listener = undefined;
    c.removeAllListeners("notification");
    c.removeAllListeners("error");
    c.release(err);
  };

  const listen = async (): Promise<void> => {
    let client: pg.PoolClient | undefined;
    try {
      client = await pool.connect();
      const c = client;
      c.on("notification", (n) => {
        // Every service's outbox notifies the same channel; only ours matters.
        if (n.channel === OUTBOX_CHANNEL && (schema === undefined || n.payload === schema)) poke();
      });
      c.on("error", (err) => {
        logger.warn({ err }, "outbox LISTEN connection failed; polling until it is back");
        releaseListener(c, err);
        scheduleRelisten();
      });
      const res = await c.query<{ schema: string }>("SELECT current_schema() AS schema");
      schema = res.rows[0]?.schema;
      await c.query(`LISTEN ${OUTBOX_CHANNEL}`);
      listener = c;
      client = undefined;
      if (stopped) {
        await unlisten();
        return;
      }
      // Rows inserted while we were not listening would otherwise wait for the poll.
      poke();
    } catch (err) {
      logger.warn({ err }, "could not LISTEN for outbox notifications; polling");
      if (client) releaseListener(client, err instanceof Error ? err : new Error(String(err)));
      scheduleRelisten();
    }
  };

  const unlisten = async (): Promise<void> => {
    const c = listener;
    if (!c) return;
    listener = undefined;
    try {
      await c.query(`UNLISTEN ${OUTBOX_CHANNEL}`);
      releaseListener(c);
    } catch (err) {
      releaseListener(c, err instanceof Error ? err : new Error(String(err)));
    }
  };

  const scheduleRelisten = () => {
    if (stopped || relistenTimer) return;
    relistenTimer = setTimeout(() => {
      relistenTimer = undefined;
      void listen();
    }, pollIntervalMs);
  };

  const waitFor = (ms: number, wakeOnNotify: boolean): Promise<void> =>
    new Promise((resolve) => {
      if (stopped || (wakeOnNotify && poked)) {
        resolve();
        return;
      }
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = () => {
        if (stopped || wakeOnNotify) done();
      };
    });

  await listen();

  const loop = (async () => {
    let failures = 0;
    while (!stopped) {
      poked = false;
      try {
        await serial(drainAll);
        failures = 0;
      } catch (err) {
        failures++;
        logger.error({ err, failures }, "outbox relay failed to publish; rows kept for retry");
      }
      if (stopped) break;
      if (failures > 0) await waitFor(Math.min(pollIntervalMs * 2 ** (failures - 1), maxBackoffMs), false);
      else await waitFor(pollIntervalMs, true);
    }
  })();

  return {
    drain: () => serial(drainAll),
    async stop() {
      if (stopped) return loop;
      stopped = true;
      if (relistenTimer) clearTimeout(relistenTimer);
      wake?.();
      await loop;
      await unlisten();
    },
  };
}
