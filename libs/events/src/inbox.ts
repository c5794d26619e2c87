import { withPlatform, withTenant } from "@uab/db";
import type { Event } from "@uab/proto/gen/uab/events/v1/event_pb.js";
import type { Kysely, Transaction } from "kysely";
import type { DeliveredEvent, EventHandler } from "./bus.js";
import type { EventsTables } from "./outbox.js";

/** A consumer's effect, run at most once per (consumer, event) inside the inbox transaction. */
export type InboxEffect<DB> = (tx: Transaction<DB>, event: Event) => Promise<void>;

/**
 * Applies `fn` to a delivered event at most once per consumer. In one transaction —
 * scoped to the event's tenant, or to the platform for platform events, so row-level
 * security applies to the effect as to any request — it records (consumer, event id) in
 * the inbox and, only if that row is new, runs `fn`. A redelivery finds the row and
 * returns without a second effect; an `fn` that throws rolls the row back with the
 * effect, so the redelivery applies it. Returns true when `fn` ran.
 *
 * Two concurrent deliveries of one event serialise on the inbox's primary key: the second
 * waits for the first to commit, then sees the row.
 */
export async function handleOnce<DB>(
  db: Kysely<DB>,
  consumer: string,
  delivered: DeliveredEvent,
  fn: InboxEffect<DB>,
): Promise<boolean> {
  const event = delivered.event;
  if (!event.id) throw new Error("cannot record an event without id in the inbox");
  const run = async (tx: Transaction<DB>): Promise<boolean> => {
    const inserted = await (tx as unknown as Transaction<EventsTables>)
      .insertInto("inbox")
      .values({ consumer, event_id: event.id, tenant_id: event.tenantId || null })
      .onConflict((oc) => oc.columns(["consumer", "event_id"]).doNothing())
      .returning("event_id")
      .execute();
    if (inserted.length === 0) return false;
    await fn(tx, event);
    return true;
  };
  return event.tenantId ? withTenant(db, event.tenantId, run) : withPlatform(db, run);
}

/** A bus handler applying `fn` once per event with {@link handleOnce}; duplicates are acknowledged silently. */
export function inboxHandler<DB>(db: Kysely<DB>, consumer: string, fn: InboxEffect<DB>): EventHandler {
  return async (delivered) => {
    await handleOnce(db, consumer, delivered, fn);
  };
}
