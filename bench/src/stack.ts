/**
 * What the in-process RPC benchmarks (authz.ts, tenancy.ts) stand on, built as the services'
 * test harnesses build it: a fresh database on the real PostgreSQL with authorization's and
 * tenancy's migrations, an in-process bus, the service modules, and the real server stack
 * (every interceptor) on a free loopback port, enforced by the authorization module's
 * in-process authorizer, with a bootstrap administrator's token.
 */
import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Authorizer } from "@uab/auth";
import { authorizationMigrations } from "@uab/authorization";
import { type Logger, newId } from "@uab/core";
import { migrateService } from "@uab/db";
import { InProcessBus } from "@uab/events";
import { contractRegistry } from "@uab/proto";
import {
  HealthState,
  type ServiceModule,
  type ServiceRegistration,
  type StartedModule,
  startServer,
} from "@uab/server";
import { tenancyMigrations } from "@uab/tenancy";
import { bearer, createTestDatabase, createTestIssuer, type TestDatabase } from "@uab/testing";

const ISSUER = "uab-bench";
const AUDIENCE = "uab";

/** A fresh database and bus; what is started on them is closed by `close`, last first. */
export interface BenchBase {
  readonly logger: Logger;
  readonly database: TestDatabase;
  readonly bus: InProcessBus;
  /** The bootstrap administrator: give it to the authorization module as `UAB_BOOTSTRAP_ADMIN_IDS`. */
  readonly adminId: string;
  /** Has `close` run `fn` (before what was registered earlier). */
  onClose(fn: () => Promise<unknown>): void;
}

/**
 * Opens a {@link BenchBase} (a fresh database with both services' migrations, an in-process
 * bus) and runs `build` on it. Returns what `build` returns with `close`, which closes
 * everything registered, last first (ignoring failures), and drops the database; when
 * `build` throws, closes it all and rethrows.
 */
export async function withBenchBase<T extends object>(
  logger: Logger,
  build: (base: BenchBase) => Promise<T>,
): Promise<T & { close(): Promise<void> }> {
  const database = await createTestDatabase("uab_bench");
  const cleanups: (() => Promise<unknown>)[] = [() => database.drop()];
  const close = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  try {
    await migrateService({ url: database.url, service: "authorization", migrations: authorizationMigrations });
    await migrateService({ url: database.url, service: "tenancy", migrations: tenancyMigrations });
    const bus = new InProcessBus({ logger });
    cleanups.push(() => bus.close());
    const base: BenchBase = { logger, database, bus, adminId: newId("user"), onClose: (fn) => cleanups.push(fn) };
    return { ...(await build(base)), close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Starts `module` on the base's database and bus as the database role `role`; `close` stops it. */
export async function startModule(
  base: BenchBase,
  module: ServiceModule,
  o: { role: string; poolSize: number; env: Record<string, string> },
): Promise<StartedModule> {
  const started = await module.start({
    databaseUrl: base.database.url,
    databaseRole: o.role,
    poolSize: o.poolSize,
    bus: base.bus,
    logger: base.logger,
    env: o.env,
  });
  base.onClose(() => started.close());
  return started;
}

/** A running server of {@link startBenchServer}. */
export interface BenchServer {
  readonly url: string;
  /** The bootstrap administrator's token (an hour). */
  readonly adminToken: string;
  /** A gRPC transport to the server that sends the admin token. */
  readonly transport: Transport;
}

/**
 * Starts the real server stack for `services` on a free loopback port, verifying tokens of a
 * fresh signing key and enforcing with `authorizer`; `close` stops it.
 */
export async function startBenchServer(
  base: BenchBase,
  o: { services: readonly ServiceRegistration[]; authorizer: Authorizer; readMaxBytes: number },
): Promise<BenchServer> {
  const issuer = await createTestIssuer({ kid: "bench-key", issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 3600 });
  const server = await startServer({
    logger: base.logger,
    port: 0,
    services: o.services,
    verifier: issuer.verifier,
    authorizer: o.authorizer,
    registry: contractRegistry,
    health: new HealthState(),
    readMaxBytes: o.readMaxBytes,
  });
  base.onClose(() => server.close(1000));
  const adminToken = await issuer.token({ sub: base.adminId });
  return {
    url: server.url,
    adminToken,
    transport: createGrpcTransport({ baseUrl: server.url, interceptors: [bearer(adminToken)] }),
  };
}
