/**
 * Test harness: the authorization and tenancy services on one fresh database of the real
 * PostgreSQL, behind the real server stack, with authorization's in-process authorizer
 * enforcing both (as in the all-in-one server). The platform admin is a bootstrap
 * administrator: an ordinary platform-admin binding.
 */
import type { Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import type { SigningKey } from "@uab/auth";
import { createLogger, newId } from "@uab/core";
import { createDatabase, migrateService } from "@uab/db";
import { type DeliveredEvent, type EventBus, InProcessBus } from "@uab/events";
import { contractRegistry } from "@uab/proto";
import { AuthorizationService } from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { HealthState, type RunningServer, restGateway, type StartedModule, startServer } from "@uab/server";
import { tenancyMigrations, tenancyModule } from "@uab/tenancy";
import { clientFactory, createTestDatabase, createTestIssuer, eventually, type TestDatabase } from "@uab/testing";
import type { Kysely } from "kysely";
import { authorizationMigrations, authorizationModule } from "../src/index.js";
import type { AuthorizationDatabase } from "../src/storage/tables.js";

export const ISSUER = "uab-test";
export const AUDIENCE = "uab";

export type AuthorizationClient = Client<typeof AuthorizationService>;
export type TenancyClient = Client<typeof TenancyService>;

/** Claims of a test token. */
export interface TestClaims {
  sub: string;
  tid?: string;
  typ?: "user" | "service_account" | "api_key";
  mfa_time?: number;
  amr?: string[];
}

/** A tenant made through tenancy, with its owner. */
export interface TestTenant {
  readonly tenantId: string;
  readonly ownerId: string;
  /** The owner's token (tenant-owner through the membership projection). */
  readonly ownerToken: string;
}

export interface Harness {
  readonly url: string;
  readonly database: TestDatabase;
  readonly server: RunningServer;
  readonly bus: EventBus;
  readonly key: SigningKey;
  /** The bootstrap (platform) administrator. */
  readonly adminId: string;
  readonly adminToken: string;
  /** Authorization events delivered so far. */
  readonly events: DeliveredEvent[];
  /** An AuthorizationService client (Connect protocol) with the given bearer token. */
  client(token?: string, headers?: Record<string, string>): AuthorizationClient;
  /** An AuthorizationService client over gRPC. */
  grpcClient(token?: string): AuthorizationClient;
  /** A TenancyService client with the given bearer token. */
  tenancy(token?: string, headers?: Record<string, string>): TenancyClient;
  /** A token for any principal. */
  token(claims: TestClaims): Promise<string>;
  /** Creates a tenant through tenancy and waits until authorization knows its owner. */
  tenant(prefix?: string): Promise<TestTenant>;
  /** Adds a member to a tenant through tenancy and waits until authorization knows it. */
  member(tenantId: string, userId?: string): Promise<{ userId: string; token: string }>;
  /** A superuser Kysely on the test database (search_path authorization), bypassing RLS. */
  readonly adminDb: Kysely<AuthorizationDatabase>;
  close(): Promise<void>;
}

let counter = 0;

/** Starts the harness; pass `{ bus }` to use another bus (JetStream). */
export async function startHarness(options: { bus?: EventBus; env?: Record<string, string> } = {}): Promise<Harness> {
  const logger = createLogger({ service: "authorization-test", level: process.env.UAB_TEST_LOG_LEVEL ?? "silent" });
  const database = await createTestDatabase();
  await migrateService({ url: database.url, service: "authorization", migrations: authorizationMigrations });
  await migrateService({ url: database.url, service: "tenancy", migrations: tenancyMigrations });
  const bus = options.bus ?? new InProcessBus({ logger });
  const events: DeliveredEvent[] = [];
  await bus.subscribe(
    { name: `harness-${newId("request").slice(4, 14)}`, filterSubjects: ["uab.events.authorization.>"] },
    async (e) => {
      events.push(e);
    },
  );
  const adminId = newId("user");
  const env = {
    UAB_BOOTSTRAP_ADMIN_IDS: adminId,
    UAB_AUTHORIZATION_SWEEP_INTERVAL_SECONDS: "3600",
    UAB_TENANCY_PURGE_INTERVAL_SECONDS: "3600",
    UAB_TENANCY_TENANT_CACHE_TTL_MS: "0",
    ...options.env,
  };
  const started: StartedModule[] = [];
  for (const [m, role] of [
    [authorizationModule, "uab_authorization"],
    [tenancyModule, "uab_tenancy"],
  ] as const) {
    started.push(await m.start({ databaseUrl: database.url, databaseRole: role, poolSize: 8, bus, logger, env }));
  }
  const issuer = await createTestIssuer({ kid: "test-key", issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 600 });
  let self = "";
  const server = await startServer({
    logger,
    port: 0,
    services: started.flatMap((s) => s.services),
    verifier: issuer.verifier,
    authorizer: started[0]!.authorizer!,
    registry: contractRegistry,
    health: new HealthState(),
    readMaxBytes: 256 * 1024,
    routes: [restGateway([AuthorizationService, TenancyService], () => self, 256 * 1024)],
  });
  self = server.url;
  const token: Harness["token"] = (claims) => issuer.token(claims);
  const adminToken = await token({ sub: adminId });
  const admin = createDatabase<AuthorizationDatabase>({ url: database.url, schema: "authorization", max: 2 });
  const connect = clientFactory(server.url, (o) => createConnectTransport({ ...o, httpVersion: "2" }));
  const grpc = clientFactory(server.url, createGrpcTransport);
  const tenancy = (t?: string, extra?: Record<string, string>) => connect(TenancyService, t, extra);
  const known = async (tenantId: string, userId: string) => {
    await eventually(async () =>
      (await admin.db
        .selectFrom("bindings")
        .select("id")
        .where("tenant_id", "=", tenantId)
        .where("principal_id", "=", userId)
        .where("source", "=", "membership")
        .executeTakeFirst()) !== undefined
        ? true
        : undefined,
    );
  };
  return {
    url: server.url,
    database,
    server,
    bus,
    key: issuer.key,
    adminId,
    adminToken,
    events,
    client: (t, extra) => connect(AuthorizationService, t, extra),
    grpcClient: (t) => grpc(AuthorizationService, t),
    tenancy,
    token,
    async tenant(prefix = "t") {
      const ownerId = newId("user");
      counter++;
      const res = await tenancy(adminToken).createTenant({
        slug: `${prefix}-${counter}-${newId("request").slice(-8)}`,
        displayName: `Tenant ${prefix} ${counter}`,
        ownerUserId: ownerId,
      });
      const tenantId = res.tenant!.id;
      await known(tenantId, ownerId);
      return { tenantId, ownerId, ownerToken: await token({ sub: ownerId, tid: tenantId }) };
    },
    async member(tenantId, userId = newId("user")) {
      await tenancy(adminToken).createMembership({ tenantId, userId });
      await known(tenantId, userId);
      return { userId, token: await token({ sub: userId, tid: tenantId }) };
    },
    adminDb: admin.db,
    async close() {
      await server.close(1000);
      for (const s of started.reverse()) await s.close();
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
