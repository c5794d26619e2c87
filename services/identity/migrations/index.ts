/**
 * The identity service's migrations in the order they run: the shared libraries' frozen
 * migrations (outbox, inbox, idempotency keys) and then the service's own.
 */
import { eventsMigrations } from "@uab/events";
import { idempotencyMigrations } from "@uab/server";
import type { Migration } from "kysely/migration";
import * as createIdentity from "./2026_11_22_000500_create_identity.js";

export const migrations: Record<string, Migration> = {
  ...eventsMigrations(),
  ...idempotencyMigrations(),
  "2026_11_22_000500_create_identity": createIdentity,
};
