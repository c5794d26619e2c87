import type { Migration } from "kysely/migration";
import * as outbox from "./migrations/2026_11_22_000001_uab_events_outbox.js";
import * as inbox from "./migrations/2026_11_22_000002_uab_events_inbox.js";

/**
 * The migrations of the outbox and inbox tables, by name. A service merges them with its
 * own (`{ ...eventsMigrations(), ...serviceMigrations }`); the names sort before a
 * service's later migrations and are frozen, so changing the tables means adding a new
 * migration here, never editing one.
 *
 * They run as the service's schema owner with `search_path` set to the service schema, so
 * the tables are created unqualified, one pair per service.
 */
export function eventsMigrations(): Record<string, Migration> {
  return {
    "2026_11_22_000001_uab_events_outbox": outbox,
    "2026_11_22_000002_uab_events_inbox": inbox,
  };
}
