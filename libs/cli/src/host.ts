import { type Authorizer, TokenVerifier } from "@uab/auth";
import type { Logger } from "@uab/core";
import { migrateService, serviceRoles } from "@uab/db";
import type { EventBus } from "@uab/events";
import { contractRegistry } from "@uab/proto";
import {
  HealthState,
  type HttpRoute,
  type RunningServer,
  restGateway,
  type ServiceModule,
  type StartedModule,
  startServer,
  type TokenAuthority,
} from "@uab/server";

/** Options for {@link hostModules}. */
export interface HostOptions {
  readonly modules: readonly ServiceModule[];
  readonly adminDatabaseUrl: string;
  /** When set, modules connect with this URL as their runtime role (production); else the admin URL + SET ROLE. */
  readonly runtimeDatabaseUrl?: string | undefined;
  readonly migrate: boolean;
  readonly bus: EventBus;
  readonly logger: Logger;
  /**
   * Verifies access tokens. Unset: the hosted identity module's own key set is used (no
   * network hop, rotation seen at once).
   */
  readonly verifier?: TokenVerifier | undefined;
  /**
   * Answers enforcement when no hosted module does: the authorization module answers it
   * in process when it is hosted; otherwise pass a remote authorizer.
   */
  readonly authorizer?: Authorizer | undefined;
  readonly port: number;
  readonly host: string;
  readonly routes?: readonly HttpRoute[];
  readonly env: Record<string, string | undefined>;
  readonly readMaxBytes?: number;
  readonly writeMaxBytes?: number;
}

/** Running modules behind one server. */
export interface Host {
  readonly server: RunningServer;
  /** The hosted token authority (when identity is hosted here). */
  readonly tokens?: TokenAuthority | undefined;
  close(): Promise<void>;
}

/**
 * Migrates (optionally) and starts service modules and serves them all on one port. Used by
 * `uab dev` (every module, one process) and `uab serve` (the modules of one Deployment).
 */
export async function hostModules(o: HostOptions): Promise<Host> {
  // The embedded REST gateway and sibling-service clients call this same server.
  let self = "";
  if (o.migrate) {
    for (const m of o.modules) {
      await migrateService({ url: o.adminDatabaseUrl, service: m.name, migrations: m.migrations, logger: o.logger });
    }
  }
  const started: StartedModule[] = [];
  try {
    for (const m of o.modules) {
      started.push(
        await m.start({
          databaseUrl: o.runtimeDatabaseUrl ?? o.adminDatabaseUrl,
          databaseRole: o.runtimeDatabaseUrl ? undefined : serviceRoles(m.name).runtime,
          bus: o.bus,
          logger: o.logger,
          env: o.env,
          selfUrl: () => self,
        }),
      );
    }
  } catch (e) {
    await Promise.allSettled(started.map((s) => s.close()));
    throw e;
  }
  const authorizer = started.find((s) => s.authorizer)?.authorizer ?? o.authorizer;
  if (!authorizer) {
    await Promise.allSettled(started.map((s) => s.close()));
    throw new Error(
      "configuration error: nothing answers authorization: host the authorization service in this process (UAB_SERVICES) or set UAB_AUTHORIZATION_URL",
    );
  }
  const tokens = started.find((s) => s.tokens)?.tokens;
  const verifier =
    o.verifier ??
    (tokens
      ? new TokenVerifier({ keys: { provider: () => tokens.jwks() }, issuer: tokens.issuer, audience: tokens.audience })
      : undefined);
  if (!verifier) {
    await Promise.allSettled(started.map((s) => s.close()));
    throw new Error(
      "configuration error: nothing verifies access tokens: host identity in this process or set UAB_JWKS_URL",
    );
  }
  const health = new HealthState();
  for (const s of started) for (const check of s.readiness) health.addCheck(check);
  const gateway = restGateway(
    started.flatMap((s) => s.services.map((r) => r.service)),
    () => self,
    o.readMaxBytes,
  );
  const server = await startServer({
    logger: o.logger,
    port: o.port,
    host: o.host,
    services: started.flatMap((s) => s.services),
    verifier,
    authorizer,
    registry: contractRegistry,
    routes: [...(o.routes ?? []), ...started.flatMap((s) => s.routes ?? []), gateway],
    health,
    readMaxBytes: o.readMaxBytes,
    writeMaxBytes: o.writeMaxBytes,
  });
  self = `http://${["0.0.0.0", "::"].includes(o.host) ? "127.0.0.1" : o.host.includes(":") ? `[${o.host}]` : o.host}:${server.port}`;
  return {
    server,
    tokens,
    async close() {
      await server.close();
      await Promise.allSettled(started.map((s) => s.close()));
    },
  };
}
