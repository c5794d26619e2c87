/**
 * The tenancy service as the harness stands it up (services/tenancy/test/harness.ts): a fresh
 * database on the real PostgreSQL, migrations, the module with its outbox relay on an
 * in-process bus, and the real server stack (every interceptor) on a free loopback port, with
 * a bootstrap-admin token. Adds what a benchmark needs: counters of handler outcomes, a count
 * of problem log lines, and a count of relayed ProjectUpdated events.
 */
import { Writable } from "node:stream";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createSigningKey, issueAccessToken, TokenVerifier } from "@uab/auth";
import { authorizationMigrations, authorizationModule } from "@uab/authorization";
import { createLogger, newId } from "@uab/core";
import { migrateService } from "@uab/db";
import { InProcessBus } from "@uab/events";
import { contractRegistry } from "@uab/proto";
import { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { HealthState, type ServiceRegistration, startServer } from "@uab/server";
import { tenancyMigrations, tenancyModule, tenancyRoles } from "@uab/tenancy";
import { createTestDatabase } from "@uab/testing";

const ISSUER = "uab-bench";
const AUDIENCE = "uab";

/** Outcomes of one handler, counted inside the server. */
export interface Outcomes {
  ok: number;
  failed: number;
}

/** A running tenancy service with one tenant and a few projects. */
export interface TenancyBench {
  readonly url: string;
  /** The fresh database's name (its backends show it in their command line). */
  readonly databaseName: string;
  readonly adminToken: string;
  readonly tenantId: string;
  readonly projectIds: readonly string[];
  /** Handler outcomes by method (`getTenant`, `updateProject`). */
  readonly outcomes: Readonly<Record<string, Outcomes>>;
  /** Log lines at warn or above, or "rpc rejected" (client errors are logged at info). */
  readonly problems: { count: number; first: string[] };
  /** ProjectUpdated events delivered to the bench's bus subscriber. */
  readonly events: { projectUpdated: number };
  /** Zeroes the outcome and problem counters. */
  reset(): void;
  close(): Promise<void>;
}

const COUNTED = ["getTenant", "updateProject"] as const;

/** Starts tenancy on a fresh database and creates one tenant with `projects` projects. */
export async function startTenancyBench(options: { projects: number; poolSize: number }): Promise<TenancyBench> {
  const problems = { count: 0, first: [] as string[] };
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) {
        if (!line) continue;
        if (/"level":"(warn|error|fatal)"/.test(line) || line.includes('"rpc rejected"')) {
          problems.count++;
          if (problems.first.length < 3) problems.first.push(line.slice(0, 300));
        }
      }
      done();
    },
  });
  const logger = createLogger({ service: "tenancy-bench", level: "info", destination: sink });
  const database = await createTestDatabase("uab_bench");
  const cleanups: (() => Promise<unknown>)[] = [() => database.drop()];
  const close = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  try {
    await migrateService({ url: database.url, service: "tenancy", migrations: tenancyMigrations });
    await migrateService({ url: database.url, service: "authorization", migrations: authorizationMigrations });
    const bus = new InProcessBus({ logger });
    cleanups.push(() => bus.close());
    const events = { projectUpdated: 0 };
    await bus.subscribe(
      { name: `bench-${newId("request").slice(4, 14)}`, filterSubjects: ["uab.events.tenancy.>"] },
      async (e) => {
        if (e.event.type === "uab.tenancy.v1.ProjectUpdated") events.projectUpdated++;
      },
    );
    // Enforcement as in the all-in-one server: the authorization module's in-process
    // decisions, the admin a bootstrap (platform-admin) binding.
    const adminId = newId("user");
    const authorization = await authorizationModule.start({
      databaseUrl: database.url,
      databaseRole: "uab_authorization",
      poolSize: 2,
      bus,
      logger,
      env: { UAB_BOOTSTRAP_ADMIN_IDS: adminId },
    });
    cleanups.push(() => authorization.close());
    const module = await tenancyModule.start({
      databaseUrl: database.url,
      databaseRole: tenancyRoles.runtime,
      poolSize: options.poolSize,
      bus,
      logger,
      env: { UAB_TENANCY_PURGE_INTERVAL_SECONDS: "3600" },
    });
    cleanups.push(() => module.close());

    // Count handler outcomes inside the server: h2load counts HTTP 2xx, and a gRPC error is
    // HTTP 200 too.
    const outcomes: Record<string, Outcomes> = Object.fromEntries(COUNTED.map((m) => [m, { ok: 0, failed: 0 }]));
    const services = module.services.map((s) => {
      if (s.service.typeName !== TenancyService.typeName) return s;
      const impl = { ...(s.impl as Record<string, unknown>) };
      for (const name of COUNTED) {
        const original = impl[name] as (...args: unknown[]) => Promise<unknown>;
        const counter = outcomes[name]!;
        impl[name] = async (...args: unknown[]) => {
          try {
            const res = await original.apply(s.impl, args);
            counter.ok++;
            return res;
          } catch (e) {
            counter.failed++;
            throw e;
          }
        };
      }
      return { ...s, impl } as ServiceRegistration;
    });

    const key = await createSigningKey("bench-key");
    const server = await startServer({
      logger,
      port: 0,
      services,
      verifier: new TokenVerifier({ keys: { jwks: { keys: [key.publicJwk] } }, issuer: ISSUER, audience: AUDIENCE }),
      authorizer: authorization.authorizer!,
      registry: contractRegistry,
      health: new HealthState(),
      readMaxBytes: 64 * 1024,
    });
    cleanups.push(() => server.close(1000));
    const adminToken = await issueAccessToken(
      key,
      { sub: adminId, typ: "user" },
      { issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 3600 },
    );

    const auth: Interceptor = (next) => (req) => {
      req.header.set("authorization", `Bearer ${adminToken}`);
      return next(req);
    };
    const client = createClient(TenancyService, createGrpcTransport({ baseUrl: server.url, interceptors: [auth] }));
    const { tenant } = await client.createTenant({ slug: "bench", displayName: "Bench", ownerUserId: adminId });
    const projectIds: string[] = [];
    for (let i = 0; i < options.projects; i++) {
      const { project } = await client.createProject({
        tenantId: tenant!.id,
        slug: `p${i}`,
        displayName: `Project ${i}`,
      });
      projectIds.push(project!.id);
    }
    return {
      url: server.url,
      databaseName: database.name,
      adminToken,
      tenantId: tenant!.id,
      projectIds,
      outcomes,
      problems,
      events,
      reset() {
        for (const o of Object.values(outcomes)) {
          o.ok = 0;
          o.failed = 0;
        }
        problems.count = 0;
        problems.first.length = 0;
      },
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}
