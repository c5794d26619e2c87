/**
 * The authorization benchmark.
 *
 * In process: 100 tenants × 10 chained custom roles (each includes the previous one of its
 * tenant) × 100 users bound to 1–3 roles at tenant scope, built as snapshots for the engine
 * (`Evaluator.decide`) and loaded into casbin's RBAC-with-domains model (role inclusion and
 * user→role as `g` rules, `svc.res.action` as obj `svc.res`, act `action`). Both answer the
 * same seeded query sequence (about half allowed); a warm-up sample must agree with each
 * other and with the answers the data implies.
 *
 * Over gRPC: the authorization and tenancy services stood up like
 * services/authorization/test/harness.ts (fresh database, migrations, modules, the real server
 * stack with authorization's in-process authorizer), one tenant seeded through the API (20
 * chained roles, 500 users with 1–3 bindings each), then Check and BatchCheck from a Node
 * gRPC client in a child process.
 */
import { performance } from "node:perf_hooks";
import { createClient } from "@connectrpc/connect";
import {
  authorizationModule,
  authorizationRoles,
  type BindingDef,
  buildSystemRoles,
  bySubject,
  Catalogue,
  type DecisionRequest,
  Evaluator,
  type PlatformSnapshot,
  type RoleDef,
  type TenantSnapshot,
} from "@uab/authorization";
import { createLogger, newId } from "@uab/core";
import { Scope } from "@uab/proto";
import { AuthorizationService } from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import { PrincipalType } from "@uab/proto/gen/uab/authorization/v1/principal_pb.js";
import { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import type { StartedModule } from "@uab/server";
import { tenancyModule, tenancyRoles } from "@uab/tenancy";
import { newEnforcer, newModelFromString } from "casbin";
import type { AuthzClientOptions, AuthzClientResult } from "./authz-client.js";
import { buildDataset, buildQueries, type SynthTenant } from "./authz-data.js";
import { runLoadClient } from "./child.js";
import { startBenchServer, startModule, withBenchBase } from "./stack.js";
import { type LatencySummary, summariseMicros } from "./stats.js";

/** The RBAC-with-domains model from casbin's documentation. */
const CASBIN_MODEL = `
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act
`;

/** In-process decisions: throughput over a timed loop, latency from a separately timed pass. */
export interface InProcessResult {
  readonly perS: number;
  readonly latency: LatencySummary;
  readonly allowedShare: number;
}

export interface AuthzInProcess {
  readonly engine: InProcessResult;
  readonly casbin: InProcessResult;
  readonly agreed: number;
  readonly tenants: number;
  readonly roles: number;
  readonly users: number;
  readonly bindings: number;
  readonly casbinRules: { p: number; g: number };
  readonly loadMs: { engine: number; casbin: number };
}

function splitPermission(p: string): [string, string] {
  const i = p.lastIndexOf(".");
  return [p.slice(0, i), p.slice(i + 1)];
}

/** Runs `call(i)` over the query indexes for `seconds`, reading the clock every `chunk` calls; decisions/s and the share allowed. */
function timedLoop(
  n: number,
  seconds: number,
  chunk: number,
  call: (i: number) => boolean,
): { perS: number; allowed: number } {
  let done = 0;
  let allowed = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  let now = start;
  while (now < end) {
    for (let k = 0; k < chunk; k++) {
      if (call(done % n)) allowed++;
      done++;
    }
    now = performance.now();
  }
  return { perS: done / ((now - start) / 1000), allowed: allowed / done };
}

/** Per-call latency (µs samples) over at most `max` calls or `seconds`. */
function latencyPass(n: number, seconds: number, max: number, call: (i: number) => boolean): LatencySummary {
  const samples = new Float64Array(max);
  let count = 0;
  const end = performance.now() + seconds * 1000;
  while (count < max) {
    const t0 = performance.now();
    call(count % n);
    const t1 = performance.now();
    samples[count++] = (t1 - t0) * 1000;
    if (t1 > end) break;
  }
  return summariseMicros(samples.subarray(0, count));
}

/** The in-process comparison: engine vs casbin on the same data and queries. */
export async function benchAuthzInProcess(
  options: { seconds: number; log: (m: string) => void } = { seconds: 5, log: () => undefined },
): Promise<AuthzInProcess> {
  const catalogue = new Catalogue();
  const permissions = catalogue.permissions.map((p) => p.name);
  const shape = { tenants: 100, rolesPerTenant: 10, chain: 10, usersPerTenant: 100, permissionsPerRole: 5 };
  const data = buildDataset(shape, permissions, (k) => newId(k));
  const queries = buildQueries(data, permissions, 200_000);

  // The engine: one snapshot per tenant, an empty platform snapshot.
  let t0 = performance.now();
  const evaluator = new Evaluator(catalogue, buildSystemRoles(catalogue));
  const platform: PlatformSnapshot = { revision: 1n, bindings: [], bySubject: new Map() };
  let bindingCount = 0;
  const snapshots: TenantSnapshot[] = data.map((t) => {
    const roles = new Map<string, RoleDef>(
      t.roles.map((r) => [
        r.id,
        {
          id: r.id,
          tenantId: t.id,
          system: false,
          slug: r.slug,
          displayName: r.slug,
          description: "",
          permissions: r.permissions,
          includedRoleIds: r.includes ? [r.includes] : [],
          assignableScopes: ["tenant", "project", "team"],
          sensitive: false,
        },
      ]),
    );
    const bindings: BindingDef[] = t.users.flatMap((u) =>
      u.roleIds.map((roleId) => ({
        id: newId("binding"),
        tenantId: t.id,
        principalType: "user" as const,
        principalId: u.id,
        principalTenantId: t.id,
        roleId,
        scope: { type: "tenant" as const, tenantId: t.id },
        start: 0,
        expire: Number.POSITIVE_INFINITY,
        condition: null,
        delegated: false,
      })),
    );
    bindingCount += bindings.length;
    return {
      tenantId: t.id,
      revision: 1n,
      status: "active",
      roles,
      bindings,
      bySubject: bySubject(bindings),
      teamsOf: new Map(),
      membersOf: new Map(),
      memberAttributes: new Map(),
    };
  });
  const requests: { tenant: TenantSnapshot; req: DecisionRequest }[] = queries.map((q) => {
    const t = data[q.tenant]!;
    const scope = { type: "tenant" as const, tenantId: t.id };
    return {
      tenant: snapshots[q.tenant]!,
      req: { principal: { id: t.users[q.user]!.id, type: "user", tenantId: t.id }, permission: q.permission, scope },
    };
  });
  const engineMs = performance.now() - t0;

  // casbin: p rules for every role's own permissions, g rules for inclusion and bindings.
  t0 = performance.now();
  const p: string[][] = [];
  const g: string[][] = [];
  for (const t of data) {
    for (const r of t.roles) {
      for (const perm of r.permissions) p.push([r.id, t.id, ...splitPermission(perm)]);
      if (r.includes) g.push([r.id, r.includes, t.id]);
    }
    for (const u of t.users) for (const roleId of u.roleIds) g.push([u.id, roleId, t.id]);
  }
  const enforcer = await newEnforcer(newModelFromString(CASBIN_MODEL));
  await enforcer.addPolicies(p);
  await enforcer.addGroupingPolicies(g);
  const casbinArgs = queries.map((q) => {
    const t = data[q.tenant]!;
    return [t.users[q.user]!.id, t.id, ...splitPermission(q.permission)] as const;
  });
  const casbinMs = performance.now() - t0;
  options.log(
    `authz: ${data.length} tenants, ${data.length * shape.rolesPerTenant} roles, ${data.length * shape.usersPerTenant} users, ${bindingCount} bindings; casbin ${p.length} p + ${g.length} g rules`,
  );

  const engineCall = (i: number) => {
    const r = requests[i]!;
    return evaluator.decide(platform, r.tenant, r.req).allowed;
  };
  const casbinCall = (i: number) => {
    const a = casbinArgs[i]!;
    return enforcer.enforceSync(a[0], a[1], a[2], a[3]);
  };

  // Warm-up and correctness: both must give the answer the data implies.
  // casbin scans every p rule per enforce (milliseconds a call here): a sample, not all.
  const agreeN = 2_000;
  for (let i = 0; i < agreeN; i++) {
    const e = engineCall(i);
    const c = casbinCall(i);
    const q = queries[i]!;
    if (e !== c || e !== q.expected) {
      throw new Error(
        `query ${i} (${requests[i]!.req.principal.id} ${q.permission} in ${data[q.tenant]!.id}): engine ${e}, casbin ${c}, expected ${q.expected}`,
      );
    }
  }

  options.log(`authz: engine in-process, ${options.seconds} s`);
  const et = timedLoop(queries.length, options.seconds, 1000, engineCall);
  const el = latencyPass(queries.length, 1, 200_000, engineCall);
  options.log(`authz: casbin in-process, ${options.seconds} s`);
  const ct = timedLoop(queries.length, options.seconds, 1, casbinCall);
  const cl = latencyPass(queries.length, 1, 200_000, casbinCall);
  return {
    engine: { perS: et.perS, latency: el, allowedShare: et.allowed },
    casbin: { perS: ct.perS, latency: cl, allowedShare: ct.allowed },
    agreed: agreeN,
    tenants: data.length,
    roles: data.length * shape.rolesPerTenant,
    users: data.length * shape.usersPerTenant,
    bindings: bindingCount,
    casbinRules: { p: p.length, g: g.length },
    loadMs: { engine: engineMs, casbin: casbinMs },
  };
}

/** The authorization and tenancy services on a fresh database, one tenant seeded through the API. */
export interface AuthzServer {
  readonly url: string;
  readonly databaseName: string;
  readonly adminToken: string;
  readonly tenantId: string;
  readonly roles: number;
  readonly users: number;
  readonly bindings: number;
  /** [user id, permission, expected allowed], about half allowed. */
  readonly queries: readonly (readonly [string, string, boolean])[];
  readonly seedMs: number;
  close(): Promise<void>;
}

/** Starts the services as the authorization test harness does, and seeds one tenant. */
export function startAuthzServer(options: { roles: number; users: number }): Promise<AuthzServer> {
  const logger = createLogger({ service: "authorization-bench", level: "silent" });
  return withBenchBase(logger, async (base) => {
    const { adminId } = base;
    const env = {
      UAB_BOOTSTRAP_ADMIN_IDS: adminId,
      UAB_AUTHORIZATION_SWEEP_INTERVAL_SECONDS: "3600",
      UAB_TENANCY_PURGE_INTERVAL_SECONDS: "3600",
    };
    const started: StartedModule[] = [];
    for (const [m, role] of [
      [authorizationModule, authorizationRoles.runtime],
      [tenancyModule, tenancyRoles.runtime],
    ] as const) {
      started.push(await startModule(base, m, { role, poolSize: 8, env }));
    }
    const { url, adminToken, transport } = await startBenchServer(base, {
      services: started.flatMap((s) => s.services),
      authorizer: started[0]!.authorizer!,
      readMaxBytes: 1024 * 1024,
    });
    const tenancy = createClient(TenancyService, transport);
    const authz = createClient(AuthorizationService, transport);

    const t0 = performance.now();
    const { tenant } = await tenancy.createTenant({
      slug: "authz-bench",
      displayName: "Authorization bench",
      ownerUserId: adminId,
    });
    const tenantId = tenant!.id;
    // Sensitive permissions would make the roles sensitive (step-up to grant): leave them out.
    const permissions = new Catalogue().permissions.filter((p) => !p.sensitive).map((p) => p.name);
    const [synth] = buildDataset(
      { tenants: 1, rolesPerTenant: options.roles, chain: 10, usersPerTenant: options.users, permissionsPerRole: 5 },
      permissions,
      (k) => newId(k),
      3,
    ) as [SynthTenant];
    // Roles in order (each includes the previous); the server assigns ids.
    const realId = new Map<string, string>();
    for (const r of synth.roles) {
      const { role } = await authz.createRole({
        tenantId,
        slug: r.slug,
        displayName: r.slug,
        permissions: [...r.permissions],
        includedRoleIds: r.includes ? [realId.get(r.includes)!] : [],
        assignableScopes: [Scope.TENANT],
      });
      realId.set(r.id, role!.id);
    }
    const work = synth.users.flatMap((u) => u.roleIds.map((roleId) => ({ userId: u.id, roleId: realId.get(roleId)! })));
    let maxRevision = 0n;
    let revision = "";
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < work.length) {
          const w = work[next++]!;
          const res = await authz.createBinding({
            tenantId,
            principal: { type: PrincipalType.USER, id: w.userId, tenantId },
            roleId: w.roleId,
            scope: { type: Scope.TENANT, tenantId },
          });
          const n = BigInt(res.revision.split("@")[1] ?? "0");
          if (n > maxRevision) {
            maxRevision = n;
            revision = res.revision;
          }
        }
      }),
    );
    // Wait until decisions see every binding.
    const u0 = synth.users[0]!;
    const probe = await authz.check({
      tenantId,
      principal: { type: PrincipalType.USER, id: u0.id, tenantId },
      permission: [...u0.granted][0]!,
      scope: { type: Scope.TENANT, tenantId },
      minRevision: revision,
    });
    if (!probe.result?.allowed) throw new Error(`seeded grant not visible: ${probe.result?.message}`);
    const seedMs = performance.now() - t0;
    const queries = buildQueries([synth], permissions, 50_000, 4).map(
      (q) => [synth.users[q.user]!.id, q.permission, q.expected] as const,
    );
    return {
      url,
      databaseName: base.database.name,
      adminToken,
      tenantId,
      roles: synth.roles.length,
      users: synth.users.length,
      bindings: work.length,
      queries,
      seedMs,
    };
  });
}

/** Runs the gRPC load client (authz-client.ts) in a child process. */
export function runAuthzClient(o: AuthzClientOptions): Promise<AuthzClientResult> {
  return runLoadClient("authz-client.js", o);
}
