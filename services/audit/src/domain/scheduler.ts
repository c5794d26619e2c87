/**
 * Periodic checkpoints: every interval, each log that grew since its last checkpoint gets
 * a new signed one, so a tenant's log is never long without a signed tree head.
 */
import type { Logger } from "@uab/core";
import { withPlatform } from "@uab/db";
import { type Kysely, sql } from "kysely";
import type { AuditDatabase } from "../storage/tables.js";
import { type ActiveKey, createCheckpoint, type KeyRing } from "./checkpoints.js";

/** Logs whose size differs from their newest checkpoint's (or that have none). */
export async function logsNeedingCheckpoint(db: Kysely<AuditDatabase>, limit = 1000): Promise<string[]> {
  const rows = await withPlatform(db, (tx) =>
    tx
      .selectFrom("logs as l")
      .select("l.id")
      .where("l.size", ">", "0")
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom("checkpoints as c")
              .select(sql`1`.as("one"))
              .whereRef("c.log_id", "=", "l.id")
              .whereRef("c.tree_size", "=", "l.size"),
          ),
        ),
      )
      .orderBy("l.updated_at")
      .limit(limit)
      .execute(),
  );
  return rows.map((r) => r.id);
}

/** Checkpoints every log that grew; returns how many were made. */
export async function checkpointGrownLogs(
  db: Kysely<AuditDatabase>,
  key: ActiveKey | KeyRing,
  installation: string,
  logger: Logger,
): Promise<number> {
  let made = 0;
  for (const logId of await logsNeedingCheckpoint(db)) {
    try {
      await createCheckpoint(db, key, installation, logId, "scheduled");
      made++;
    } catch (err) {
      logger.error({ err, log: logId }, "scheduled checkpoint failed");
    }
  }
  return made;
}
