/**
 * The audit service's migrations in the order they run: the shared libraries' frozen
 * migrations (outbox, inbox, idempotency keys) and then the service's own.
 */
import { eventsMigrations } from "@uab/events";
import { idempotencyMigrations } from "@uab/server";
import type { Migration } from "kysely/migration";
import * as createAudit from "./2026_11_22_000300_create_audit.js";
import * as streamsExportsRetention from "./2026_11_22_000400_audit_streams_exports_retention.js";

export const migrations: Record<string, Migration> = {
  ...eventsMigrations(),
  ...idempotencyMigrations(),
  "2026_11_22_000300_create_audit": createAudit,
  "2026_11_22_000400_audit_streams_exports_retention": streamsExportsRetention,
};
