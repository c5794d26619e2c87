/**
 * Test harness: the tenancy service on a fresh database of the real PostgreSQL, behind the
 * real server stack (all interceptors), on a random port, enforced by the real authorization
 * service hosted beside it (same database, same bus, its in-process authorizer, as in the
 * all-in-one server). The platform admin is a bootstrap administrator: an ordinary
 * platform-admin binding. Tenant users are authorized by the bindings authorization projects
 * from tenancy's events (a member holds `member`, an owner also `tenant-owner`).
 */
import type { Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import type { Authorizer, SigningKey } from "@uab/auth";
import { authorizationMigrations, authorizationModule } from "@uab/authorization";
import { createLogger, newId } from "@uab/core";
import { createDatabase, migrateService } from "@uab/db";
import { type DeliveredEvent, type EventBus, InProcessBus } from "@uab/events";
import { contractRegistry } from "@uab/proto";
import { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { HealthState, type RunningServer, restGateway, startServer } from "@uab/server";
import { clientFactory, createTestDatabase, createTestIssuer, type TestDatabase } from "@uab/testing";
import type { Kysely } from "kysely";
import { tenancyMigrations, tenancyModule } from "../src/index.js";
import type { TenancyDatabase } from "../src/storage/tables.js";

export const ISSUER = "uab-test";
export const AUDIENCE = "uab";

export interface Harness {
  readonly url: string;
  readonly database: TestDatabase;
  readonly server: RunningServer;
  readonly bus: EventBus;
  readonly key: SigningKey;
  /** The bootstrap (platform) administrator: a platform-admin binding. */
  readonly adminId: string;
  /** Bootstrap admin token. */
  readonly adminToken: string;
  /** The authorization service's in-process authorizer the server enforces with. */
  readonly authorizer: Authorizer;
  /** Events delivered on the bus so far (tenancy's). */
  readonly events: DeliveredEvent[];
  /** A Connect-protocol client with the given bearer token (none when undefined). */
  client(token?: string, headers?: Record<string, string>): Client<typeof TenancyService>;
  /** A gRPC-protocol client. */
  grpcClient(token?: string): Client<typeof TenancyService>;
  /** A token for any principal. */
  token(claims: {
    sub: string;
    tid?: string;
    typ?: "user" | "service_account" | "api_key";
    mfa_time?: number;
  }): Promise<string>;
  /** A superuser Kysely on the test database (search_path tenancy), to inspect rows bypassing the service. */
  readonly adminDb: Kysely<TenancyDatabase>;
  close(): Promise<void>;
}

/** Starts the harness; pass `{ bus }` to use another bus (JetStream). */
export async function startHarness(options: { bus?: EventBus; env?: Record<string, string> } = {}): Promise<Harness> {
  const logger = createLogger({ service: "tenancy-test", level: process.env.UAB_TEST_LOG_LEVEL ?? "silent" });
  const database = await createTestDatabase();
  await migrateService({ url: database.url, service: "authorization", migrations: authorizationMigrations });
  await migrateService({ url: database.url, service: "tenancy", migrations: tenancyMigrations });
  const bus = options.bus ?? new InProcessBus({ logger });
  const events: DeliveredEvent[] = [];
  await bus.subscribe(
    { name: `harness-${newId("request").slice(4, 14)}`, filterSubjects: ["uab.events.tenancy.>"] },
    async (e) => {
      events.push(e);
    },
  );
  const adminId = newId("user");
  const common = { databaseUrl: database.url, poolSize: 8, bus, logger };
  // Authorization starts first, so its projection is subscribed before tenancy publishes.
  const authorization = await authorizationModule.start({
    ...common,
    databaseRole: "uab_authorization",
    env: { UAB_BOOTSTRAP_ADMIN_IDS: adminId, UAB_AUTHORIZATION_SWEEP_INTERVAL_SECONDS: "3600", ...options.env },
  });
  const module = await tenancyModule.start({
    ...common,
    databaseRole: "uab_tenancy",
    // Tests change rows behind the service's back (as another replica would), so the
    // GetTenant cache is off unless a test turns it on; cache.test.ts covers it.
    env: { UAB_TENANCY_PURGE_INTERVAL_SECONDS: "3600", UAB_TENANCY_TENANT_CACHE_TTL_MS: "0", ...options.env },
  });
  const authorizer = authorization.authorizer!;
  const issuer = await createTestIssuer({ kid: "test-key", issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 600 });
  const health = new HealthState();
  let self = "";
  const server = await startServer({
    logger,
    port: 0,
    services: module.services,
    verifier: issuer.verifier,
    authorizer,
    registry: contractRegistry,
    health,
    readMaxBytes: 64 * 1024,
    routes: [restGateway([TenancyService], () => self, 64 * 1024)],
  });
  self = server.url;
  const token: Harness["token"] = (claims) => issuer.token(claims);
  const adminToken = await token({ sub: adminId });
  const admin = createDatabase<TenancyDatabase>({ url: database.url, schema: "tenancy", max: 2 });
  const connect = clientFactory(server.url, (o) => createConnectTransport({ ...o, httpVersion: "2" }));
  const grpc = clientFactory(server.url, createGrpcTransport);
  return {
    url: server.url,
    database,
    server,
    bus,
    key: issuer.key,
    adminId,
    adminToken,
    authorizer,
    events,
    client: (t, headers) => connect(TenancyService, t, headers),
    grpcClient: (t) => grpc(TenancyService, t),
    token,
    adminDb: admin.db,
    async close() {
      await server.close(1000);
      await module.close();
      await authorization.close();
      await admin.close();
      if (!options.bus) await bus.close();
      await database.drop();
    },
  };
}

/** A fresh user id. */
export function userId(): string {
  return newId("user");
}
