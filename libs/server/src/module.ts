import type { Authorizer, JSONWebKeySet } from "@uab/auth";
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
  /**
   * The base URL of the server that hosts this module (known once it listens), for calls to
   * sibling services hosted in the same process when no service URL is configured.
   */
  readonly selfUrl?: (() => string) | undefined;
}

/** What the module that issues access tokens (identity) offers its host. */
export interface TokenAuthority {
  /** `iss` of the tokens it issues. */
  readonly issuer: string;
  /** `aud` of the tokens it issues. */
  readonly audience: string;
  /** The published verification keys (the JWKS document). */
  jwks(): Promise<JSONWebKeySet>;
  /** An access token for a platform principal (the bootstrap administrator of `uab dev`). */
  issuePlatformToken(subject: string, ttlSeconds: number): Promise<string>;
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
  /** The token authority, when this module issues access tokens (identity does). */
  readonly tokens?: TokenAuthority | undefined;
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
