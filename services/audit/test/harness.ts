/**
 * Test harness: the audit, authorization and tenancy services on one fresh database of the
 * real PostgreSQL, behind the real server stack (authentication, protovalidate, the
 * authorization interceptor with authorization's in-process authorizer), with the modules'
 * HTTP routes (the signed export download) and the REST gateway, on an in-process bus by
 * default. Every domain event of the three services reaches audit's ingestion, so a change
 * made through tenancy or authorization lands in its tenant's audit log.
 *
 * Clients speak the Connect protocol over HTTP/1.1 with the runtime's fetch (services/audit
 * depends on @connectrpc/connect only, not on connect-node).
 */
import { rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import type { UniversalClientFn } from "@connectrpc/connect/protocol";
import { createTransport } from "@connectrpc/connect/protocol-connect";
// Not dependencies of @uab/audit: jest maps them to their sources (see jest.config.js).
import { authorizationMigrations, authorizationModule } from "@uab/authorization";
import { createLogger, newId, SecretBox } from "@uab/core";
import { createDatabase, type Database, migrateService } from "@uab/db";
import { type DeliveredEvent, type EventBus, InProcessBus } from "@uab/events";
import { contractRegistry, Scope } from "@uab/proto";
import { AuditService } from "@uab/proto/gen/uab/audit/v1/audit_service_pb.js";
import { AuthorizationService } from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import { PrincipalType } from "@uab/proto/gen/uab/authorization/v1/principal_pb.js";
import { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { HealthState, type RunningServer, restGateway, type StartedModule, startServer } from "@uab/server";
import { tenancyMigrations, tenancyModule } from "@uab/tenancy";
import { bearer, createTestDatabase, createTestIssuer, eventually, type TestDatabase } from "@uab/testing";
import { type Kysely, sql } from "kysely";
// The webhook tests' HTTPS receiver and certificate (selfsigned is a devDependency of @uab/webhooks only).
import { testCertificate } from "../../../libs/webhooks/test/server.js";

export {
  type Handler as ReceiverHandler,
  type Received,
  startServer as startReceiver,
  type TestServer as Receiver,
} from "../../../libs/webhooks/test/server.js";

import { type AuditDeps, auditMigrations, auditModule, KeyRing } from "../src/index.js";
import type { AuditDatabase } from "../src/storage/tables.js";

export const ISSUER = "uab-test";
export const AUDIENCE = "uab";
/** The installation origin the harness configures (checkpoint origins are `<it>/<log id>`). */
export const ORIGIN = "uab.test";
/** Consecutive failed deliveries after which a stream is failing. */
export const FAILING_AFTER = 2;

export type AuditClient = Client<typeof AuditService>;
export type TenancyClient = Client<typeof TenancyService>;
export type AuthorizationClient = Client<typeof AuthorizationService>;

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

/** A user of a tenant and its token. */
export interface TestUser {
  readonly userId: string;
  readonly token: string;
}

export interface Harness {
  readonly url: string;
  readonly database: TestDatabase;
  readonly server: RunningServer;
  readonly bus: EventBus;
  /** The audit service's own events published so far (`uab.events.audit.>`). */
  readonly events: DeliveredEvent[];
  /** The key ring of UAB_ENCRYPTION_KEYS (signs download links). */
  readonly box: SecretBox;
  /** The PEM certificate stream endpoints of the tests serve (trusted via UAB_AUDIT_STREAM_CA_FILE). */
  readonly certificate: { cert: string; key: string };
  /** The bootstrap (platform) administrator. */
  readonly adminId: string;
  readonly adminToken: string;
  /** An AuditService client (Connect protocol) with the given bearer token. */
  audit(token?: string, headers?: Record<string, string>): AuditClient;
  /** A TenancyService client. */
  tenancy(token?: string, headers?: Record<string, string>): TenancyClient;
  /** An AuthorizationService client. */
  authz(token?: string, headers?: Record<string, string>): AuthorizationClient;
  /** A token for any principal. */
  token(claims: TestClaims): Promise<string>;
  /** A token whose second factor was presented just now (step-up RPCs). */
  mfa(claims: TestClaims): Promise<string>;
  /** Creates a tenant through tenancy and waits until authorization knows its owner. */
  tenant(prefix?: string): Promise<TestTenant>;
  /** Adds a member to a tenant through tenancy and waits until authorization knows it. */
  member(tenantId: string, userId?: string): Promise<TestUser>;
  /** A new member of the tenant bound to a system role (`auditor`, `admin`…) at tenant scope, once effective. */
  withRole(t: TestTenant, slug: string): Promise<TestUser>;
  /** Waits until the tenant's (or "platform") log holds at least `n` entries; returns its size. */
  waitForEntries(logId: string, n: number, timeoutMs?: number): Promise<number>;
  /** The current size of a log (0 when it has none). */
  logSize(logId: string): Promise<number>;
  /** Audit's dependencies on the runtime role, as module.ts builds them (for purge and other domain calls). */
  deps(): AuditDeps;
  /** A superuser Kysely on the test database (search_path audit), bypassing RLS. */
  readonly adminDb: Kysely<AuditDatabase>;
  close(): Promise<void>;
}

let counter = 0;

/** The fixed id of a system role (as services/authorization/src/engine/system-roles.ts makes it). */
export function systemRole(slug: string): string {
  return `role_${slug.replace(/-/g, "").padStart(26, "0")}`;
}

/**
 * A Connect-protocol HTTP client on the runtime's fetch: the request body is buffered (every
 * AuditService request is unary), the response body streamed (exports are server streams).
 */
const fetchClient: UniversalClientFn = async (req) => {
  let body: Uint8Array | undefined;
  if (req.body) {
    const chunks: Uint8Array[] = [];
    for await (const c of req.body) chunks.push(c);
    body = Buffer.concat(chunks);
  }
  const res = await fetch(req.url, { method: req.method, headers: req.header, body, signal: req.signal });
  const stream = res.body;
  return {
    status: res.status,
    header: res.headers,
    body: (async function* () {
      if (stream) for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) yield chunk;
    })(),
    trailer: new Headers(),
  };
};

function connectClient<S extends Parameters<typeof createClient>[0]>(
  baseUrl: string,
  service: S,
  interceptors: Interceptor[],
): Client<S> {
  return createClient(
    service,
    createTransport({
      httpClient: fetchClient,
      baseUrl,
      useBinaryFormat: true,
      interceptors,
      acceptCompression: [],
      sendCompression: null,
      compressMinBytes: 1024,
      readMaxBytes: 64 * 1024 * 1024,
      writeMaxBytes: 4 * 1024 * 1024,
    }),
  );
}

/** Starts the harness; pass `{ bus }` to use another bus (JetStream), `env` to change settings. */
export async function startHarness(options: { bus?: EventBus; env?: Record<string, string> } = {}): Promise<Harness> {
  const logger = createLogger({ service: "audit-test", level: process.env.UAB_TEST_LOG_LEVEL ?? "silent" });
  const database = await createTestDatabase();
  await migrateService({ url: database.url, service: "audit", migrations: auditMigrations });
  await migrateService({ url: database.url, service: "authorization", migrations: authorizationMigrations });
  await migrateService({ url: database.url, service: "tenancy", migrations: tenancyMigrations });
  const bus = options.bus ?? new InProcessBus({ logger });
  const events: DeliveredEvent[] = [];
  await bus.subscribe(
    { name: `harness-${newId("request").slice(4, 14)}`, filterSubjects: ["uab.events.audit.>"] },
    async (e) => {
      events.push(e);
    },
  );
  const certificate = await testCertificate();
  const caFile = join(tmpdir(), `uab-audit-test-ca-${newId("request").slice(-12)}.pem`);
  writeFileSync(caFile, certificate.cert);
  const adminId = newId("user");
  const keys = SecretBox.generate();
  const env: Record<string, string> = {
    UAB_BOOTSTRAP_ADMIN_IDS: adminId,
    UAB_AUTHORIZATION_SWEEP_INTERVAL_SECONDS: "3600",
    UAB_TENANCY_PURGE_INTERVAL_SECONDS: "3600",
    UAB_TENANCY_TENANT_CACHE_TTL_MS: "0",
    UAB_ENCRYPTION_KEYS: keys,
    UAB_AUDIT_ORIGIN: ORIGIN,
    UAB_AUDIT_STREAM_ALLOW_PRIVATE_NETWORKS: "true",
    UAB_AUDIT_STREAM_POLL_MS: "100",
    UAB_AUDIT_STREAM_TIMEOUT_MS: "5000",
    UAB_AUDIT_STREAM_FAILING_AFTER: String(FAILING_AFTER),
    UAB_AUDIT_STREAM_CA_FILE: caFile,
    UAB_AUDIT_CHECKPOINT_INTERVAL_SECONDS: "3600",
    UAB_AUDIT_RETENTION_INTERVAL_SECONDS: "3600",
    ...options.env,
  };
  const started: StartedModule[] = [];
  for (const [m, role] of [
    [authorizationModule, "uab_authorization"],
    [tenancyModule, "uab_tenancy"],
    [auditModule, "uab_audit"],
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
    routes: [
      ...started.flatMap((s) => s.routes ?? []),
      restGateway([AuditService, AuthorizationService, TenancyService], () => self, 256 * 1024),
    ],
  });
  self = server.url;
  const token: Harness["token"] = (claims) => issuer.token(claims);
  const mfa: Harness["mfa"] = (claims) => issuer.token({ ...claims, mfa_time: Math.floor(Date.now() / 1000) });
  const adminToken = await token({ sub: adminId });
  const admin = createDatabase<AuditDatabase>({ url: database.url, schema: "audit", max: 3 });
  const runtime: Database<AuditDatabase> = createDatabase<AuditDatabase>({
    url: database.url,
    schema: "audit",
    role: "uab_audit",
    max: 3,
  });
  const box = SecretBox.parse(keys);
  const make =
    <S extends Parameters<typeof createClient>[0]>(service: S) =>
    (t?: string, headers?: Record<string, string>) =>
      connectClient(server.url, service, [bearer(t, headers)]);
  const audit = make(AuditService);
  const tenancy = make(TenancyService);
  const authz = make(AuthorizationService);
  // Authorization learns members from tenancy's events: wait for the membership binding.
  const known = async (tenantId: string, userId: string) => {
    await eventually(async () => {
      const res = await sql<{ id: string }>`
        SELECT id FROM "authorization".bindings
        WHERE tenant_id = ${tenantId} AND principal_id = ${userId} AND source = 'membership'`.execute(admin.db);
      return res.rows.length > 0;
    });
  };
  const logSize = async (logId: string) => {
    const row = await admin.db.selectFrom("logs").select("size").where("id", "=", logId).executeTakeFirst();
    return Number(row?.size ?? 0);
  };
  const member: Harness["member"] = async (tenantId, userId = newId("user")) => {
    await tenancy(adminToken).createMembership({ tenantId, userId });
    await known(tenantId, userId);
    return { userId, token: await token({ sub: userId, tid: tenantId }) };
  };
  return {
    url: server.url,
    database,
    server,
    bus,
    events,
    box,
    certificate,
    adminId,
    adminToken,
    audit,
    tenancy,
    authz,
    token,
    mfa,
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
    member,
    async withRole(t, slug) {
      const u = await member(t.tenantId);
      await authz(t.ownerToken).createBinding({
        tenantId: t.tenantId,
        principal: { type: PrincipalType.USER, id: u.userId },
        roleId: systemRole(slug),
        scope: { type: Scope.TENANT, tenantId: t.tenantId },
      });
      // Effective once the in-process authorizer sees it: a read every role with audit reads holds.
      await eventually(() =>
        audit(u.token)
          .getRetentionPolicy({ tenantId: t.tenantId })
          .then(() => true),
      );
      return u;
    },
    async waitForEntries(logId, n, timeoutMs = 10_000) {
      return eventually(
        async () => {
          const size = await logSize(logId);
          return size >= n ? size : undefined;
        },
        timeoutMs,
        20,
      );
    },
    logSize,
    deps() {
      return {
        db: runtime.db,
        keys: new KeyRing(undefined, ORIGIN),
        box,
        logger,
        settings: {
          installation: ORIGIN,
          defaultRetainDays: 365,
          allowPrivateNetworks: true,
          deliveryTimeoutMs: 5000,
          failingAfter: FAILING_AFTER,
          exportTtlMs: 168 * 3_600_000,
          publicUrl: "",
          streamCa: certificate.cert,
        },
      };
    },
    adminDb: admin.db,
    async close() {
      await server.close(1000);
      for (const s of started.reverse()) await s.close();
      await admin.close();
      await runtime.close();
      if (!options.bus) await bus.close();
      await database.drop();
      rmSync(caFile, { force: true });
    },
  };
}

/** A fresh user id. */
export function userId(): string {
  return newId("user");
}

/** Every message of a server stream. */
export async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const m of stream) out.push(m);
  return out;
}
