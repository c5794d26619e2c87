/**
 * The audit consumer: a durable batch consumer of every domain event of every service
 * (`uab.events.>`), appending each batch to the logs in one transaction. Redeliveries after
 * a crash or a NATS restart are harmless (an event already in its log is skipped), so the
 * logs end with every event exactly once.
 */
import type { Logger } from "@uab/core";
import type { EventBus, Subscription } from "@uab/events";
import type { Kysely } from "kysely";
import type { AuditDatabase } from "../storage/tables.js";
import { appendEvents } from "./append.js";

/** The durable consumer name. */
export const AUDIT_CONSUMER = "audit";

/** Starts consuming; returns the subscription. */
export async function startIngestion(
  db: Kysely<AuditDatabase>,
  bus: EventBus,
  logger: Logger,
  options: {
    maxBatch?: number;
    /** How long a delivered batch may stay unacknowledged before redelivery (a crashed consumer). */
    ackWaitMs?: number;
    onAppended?: (logIds: readonly string[]) => void;
  } = {},
): Promise<Subscription> {
  return bus.subscribeBatch(
    {
      name: AUDIT_CONSUMER,
      filterSubjects: ["uab.events.>"],
      maxBatch: options.maxBatch ?? 1000,
      ...(options.ackWaitMs ? { ackWaitMs: options.ackWaitMs } : {}),
    },
    async (batch) => {
      const events = batch.map((d) => d.event);
      const appended = await appendEvents(db, events);
      if (appended > 0) {
        logger.debug({ appended, received: events.length }, "audit entries appended");
        options.onAppended?.([...new Set(events.map((e) => e.tenantId || "platform"))]);
      }
    },
  );
}
