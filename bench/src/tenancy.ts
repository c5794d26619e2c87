/**
 * The tenancy service as the harness stands it up (services/tenancy/test/harness.ts): a fresh
 * database on the real PostgreSQL, migrations, the module with its outbox relay on an
 * in-process bus, and the real server stack (every interceptor) on a free loopback port, with
 * a bootstrap-admin token. Adds what a benchmark needs: counters of handler outcomes, a count
 * of problem log lines, and a count of relayed ProjectUpdated events.
 */
import { Writable } from "node:stream";
import { createClient } from "@connectrpc/connect";
import { authorizationModule, authorizationRoles } from "@uab/authorization";
import { createLogger, newId } from "@uab/core";
import { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import type { ServiceRegistration } from "@uab/server";
import { tenancyModule, tenancyRoles } from "@uab/tenancy";
import { startBenchServer, startModule, withBenchBase } from "./stack.js";

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
export function startTenancyBench(options: { projects: number; poolSize: number }): Promise<TenancyBench> {
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
  return withBenchBase(logger, async (base) => {
    const events = { projectUpdated: 0 };
    await base.bus.subscribe(
      { name: `bench-${newId("request").slice(4, 14)}`, filterSubjects: ["uab.events.tenancy.>"] },
      async (e) => {
        if (e.event.type === "uab.tenancy.v1.ProjectUpdated") events.projectUpdated++;
      },
    );
    // Enforcement as in the all-in-one server: the authorization module's in-process
    // decisions, the admin a bootstrap (platform-admin) binding.
    const authorization = await startModule(base, authorizationModule, {
      role: authorizationRoles.runtime,
      poolSize: 2,
      env: { UAB_BOOTSTRAP_ADMIN_IDS: base.adminId },
    });
    const module = await startModule(base, tenancyModule, {
      role: tenancyRoles.runtime,
      poolSize: options.poolSize,
      env: { UAB_TENANCY_PURGE_INTERVAL_SECONDS: "3600" },
    });

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

    const { url, adminToken, transport } = await startBenchServer(base, {
      services,
      authorizer: authorization.authorizer!,
      readMaxBytes: 64 * 1024,
    });
    const client = createClient(TenancyService, transport);
    const { tenant } = await client.createTenant({ slug: "bench", displayName: "Bench", ownerUserId: base.adminId });
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
      url,
      databaseName: base.database.name,
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
    };
  });
}
