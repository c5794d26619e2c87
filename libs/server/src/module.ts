import type { Authorizer } from "@uab/auth";
import type { Logger } from "@uab/core";
import type { EventBus } from "@uab/events";
import type { Migration } from "kysely/migration";
import type { ReadinessCheck } from "./health.js";
import type { HttpRoute, ServiceRegistration } from "./server.js";

/** What a service module gets from its host (a standalone main or the all-in-one server). */
export interface ModuleContext {
  /** PostgreSQL URL the service connects with. */
  readonly databaseUrl: string;
  /**
   * The role to `SET ROLE` to on every connection: the service's runtime role when
   * `databaseUrl` logs in as an administrator (development), undefined when it already logs
   * in as the runtime role (production).
   */
  readonly databaseRole?: string | undefined;
  /** Pool size for the service. */
  readonly poolSize?: number;
  /** The event bus (JetStream, or in-process). */
  readonly bus: EventBus;
  /** The host's logger; the module derives a child. */
  readonly logger: Logger;
  /** The environment, for module-specific configuration. */
  readonly env: Record<string, string | undefined>;
}

/** A started service module. */
export interface StartedModule {
  /** The RPC services it serves. */
  readonly services: readonly ServiceRegistration[];
  /** Readiness checks (database reachable). */
  readonly readiness: readonly ReadinessCheck[];
  /**
   * The enforcement port this module answers (the authorization module does): the host
   * hands it to the server's authorization interceptor for every service it hosts.
   */
  readonly authorizer?: Authorizer | undefined;
  /** Plain HTTP routes it serves beside its RPCs (signed download links, say). */
  readonly routes?: readonly HttpRoute[] | undefined;
  /** Stops background work (outbox relay, sweepers) and closes its pool. */
  close(): Promise<void>;
}

/**
 * One UAB service as a unit a host can run: its name (also its schema), its migrations and
 * how to start it. The all-in-one dev server hosts every module on one port; production runs
 * one module per Deployment.
 */
export interface ServiceModule {
  /** `tenancy`, `identity`, …; also the schema and role names. */
  readonly name: string;
  /** Migrations in order (library migrations first). */
  readonly migrations: Record<string, Migration>;
  /** Starts the module. */
  start(ctx: ModuleContext): Promise<StartedModule>;
}
