/**
 * Test harness: identity, tenancy and authorization hosted the way `uab dev` and `uab serve`
 * host them (`hostModules`: migrations, modules, one server with the REST gateway), on a fresh
 * database of the real PostgreSQL and an in-process bus (or JetStream). Access tokens are
 * verified against identity's own key set; the bootstrap administrator's token is issued by
 * identity. Clients speak the Connect protocol with connect-node.
 */
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
// Not dependencies of @uab/identity: jest maps them to their sources (see jest.config.js).
import { authorizationModule } from "@uab/authorization";
import { type Host, hostModules } from "@uab/cli";
import { createLogger, newId, SecretBox } from "@uab/core";
import { type DeliveredEvent, type EventBus, InProcessBus } from "@uab/events";
import { AuthorizationService } from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import { AuthenticationService } from "@uab/proto/gen/uab/identity/v1/authentication_service_pb.js";
import { IdentityService } from "@uab/proto/gen/uab/identity/v1/identity_service_pb.js";
import { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { tenancyModule } from "@uab/tenancy";
import { createTestDatabase, eventually, type TestDatabase } from "@uab/testing";
import pg from "pg";
import { IDENTITY_PRINCIPAL_ID, identityModule } from "../src/index.js";

export type AuthClient = Client<typeof AuthenticationService>;
export type IdentityClient = Client<typeof IdentityService>;
export type TenancyClient = Client<typeof TenancyService>;
export type AuthorizationClient = Client<typeof AuthorizationService>;

/** The fixed id of a system role (as services/authorization/src/engine/system-roles.ts makes it). */
export function systemRole(slug: string): string {
  return `role_${slug.replace(/-/g, "").padStart(26, "0")}`;
}

export interface Harness {
  readonly url: string;
  readonly host: Host;
  readonly database: TestDatabase;
  readonly bus: EventBus;
  /** Every identity event published so far. */
  readonly events: DeliveredEvent[];
  readonly adminId: string;
  readonly adminToken: string;
  readonly box: SecretBox;
  auth(token?: string, headers?: Record<string, string>): AuthClient;
  identity(token?: string, headers?: Record<string, string>): IdentityClient;
  tenancy(token?: string): TenancyClient;
  authz(token?: string): AuthorizationClient;
  /** Runs SQL as the superuser on the test database (search_path identity). */
  sql<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<T[]>;
  /** Signs up a new tenant with its owner (password `correct horse battery`), waiting until the owner holds tenant-owner. */
  signUpTenant(
    prefix?: string,
  ): Promise<{ tenantId: string; userId: string; email: string; accessToken: string; refreshToken: string }>;
  close(): Promise<void>;
}

export const PASSWORD = "correct horse battery";
let counter = 0;

/** Starts the harness. */
export async function startHarness(options: { bus?: EventBus; env?: Record<string, string> } = {}): Promise<Harness> {
  const logger = createLogger({ service: "identity-test", level: process.env.UAB_TEST_LOG_LEVEL ?? "silent" });
  const database = await createTestDatabase();
  const bus = options.bus ?? new InProcessBus({ logger });
  const events: DeliveredEvent[] = [];
  await bus.subscribe(
    { name: `harness-${newId("request").slice(4, 14)}`, filterSubjects: ["uab.events.identity.>"] },
    async (e) => {
      events.push(e);
    },
  );
  const adminId = newId("user");
  const keys = SecretBox.generate();
  const host = await hostModules({
    modules: [authorizationModule, tenancyModule, identityModule],
    adminDatabaseUrl: database.url,
    migrate: true,
    bus,
    logger,
    port: 0,
    host: "127.0.0.1",
    env: {
      UAB_BOOTSTRAP_ADMIN_IDS: adminId,
      UAB_TENANT_PROVISIONER_IDS: IDENTITY_PRINCIPAL_ID,
      UAB_ENCRYPTION_KEYS: keys,
      UAB_IDENTITY_ALLOW_TENANT_SIGN_UP: "true",
      UAB_IDENTITY_SSO_ALLOW_HTTP: "true",
      UAB_IDENTITY_IP_ATTEMPTS_PER_MINUTE: "100000",
      UAB_IDENTITY_IDENTIFIER_ATTEMPTS: "10000",
      UAB_IDENTITY_HASH_CONCURRENCY: "4",
      UAB_TENANCY_TENANT_CACHE_TTL_MS: "0",
      UAB_AUTHORIZATION_SWEEP_INTERVAL_SECONDS: "3600",
      UAB_TENANCY_PURGE_INTERVAL_SECONDS: "3600",
      UAB_IDENTITY_SWEEP_INTERVAL_SECONDS: "3600",
      UAB_PUBLIC_URL: "http://127.0.0.1:1",
      ...options.env,
    },
  });
  const url = host.server.url;
  const adminToken = await host.tokens!.issuePlatformToken(adminId, 3600);
  const transport = (token?: string, headers: Record<string, string> = {}) => {
    const interceptors: Interceptor[] = [
      (next) => async (req) => {
        if (token) req.header.set("authorization", `Bearer ${token}`);
        for (const [k, v] of Object.entries(headers)) req.header.set(k, v);
        return next(req);
      },
    ];
    return createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors });
  };
  const pool = new pg.Pool({ connectionString: database.url, max: 2, options: "-c search_path=identity" });
  const h: Harness = {
    url,
    host,
    database,
    bus,
    events,
    adminId,
    adminToken,
    box: SecretBox.parse(keys),
    auth: (token, headers) => createClient(AuthenticationService, transport(token, headers)),
    identity: (token, headers) => createClient(IdentityService, transport(token, headers)),
    tenancy: (token) => createClient(TenancyService, transport(token)),
    authz: (token) => createClient(AuthorizationService, transport(token)),
    async sql(text, params) {
      return (await pool.query(text, params as unknown[])).rows;
    },
    async signUpTenant(prefix = "acme") {
      const n = ++counter;
      const slug = `${prefix}-${n}-${newId("request").slice(-6)}`;
      const email = `owner${n}@${slug}.example.com`;
      const res = await h.auth().signUp({
        email,
        password: PASSWORD,
        newTenant: undefined,
        tenant: { case: "newTenant", value: { slug, displayName: `${prefix} ${n}` } },
      });
      const tenantId = res.tenantId;
      const userId = res.user!.id;
      // The owner's tenant-owner binding arrives through tenancy's events.
      const token = res.tokens!.accessToken;
      await eventually(async () => {
        try {
          await h.identity(token).listUsers({ tenantId });
          return true;
        } catch {
          return false;
        }
      });
      return { tenantId, userId, email, accessToken: res.tokens!.accessToken, refreshToken: res.tokens!.refreshToken };
    },
    async close() {
      await host.close();
      await pool.end();
      await bus.close();
      await database.drop();
    },
  };
  return h;
}
