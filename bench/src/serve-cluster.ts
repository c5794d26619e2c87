/**
 * GetTenant or an authorization Check against the production entry point, `uab serve`,
 * with several worker processes sharing the port (UAB_WORKERS): a Node process serves on
 * one core, so this is how a pod uses the rest. The process hosts authorization and
 * tenancy (enforcement in process), logging in as a role granted both runtime roles. Its
 * own database, NATS JetStream, a JWKS served from here.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createSigningKey, issueAccessToken } from "@uab/auth";
import { authorizationMigrations } from "@uab/authorization";
import { newId } from "@uab/core";
import { migrateService } from "@uab/db";
import {
  BatchCheckRequestSchema,
  BatchCheckResponseSchema,
  CheckRequestSchema,
  CheckResponseSchema,
  CreateBindingRequestSchema,
  CreateRoleRequestSchema,
} from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import { CreateTenantRequestSchema, GetTenantRequestSchema } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { tenancyMigrations } from "@uab/tenancy";
import { createTestDatabase, uniqueSuffix } from "@uab/testing";
import pg from "pg";
import { expectGrpcOk, grpcFrame, grpcHeaders, rawGrpcCall } from "./grpc.js";
import { type H2loadResult, runH2load } from "./h2load.js";
import { cpuTicks, descendants } from "./proc.js";

/** What the run measured. */
export interface ServeClusterResult {
  readonly result: H2loadResult;
  /** CPU of the serve process tree, in cores, during the measured run. */
  readonly serverCores: number;
  /** Log lines at info or above that report a rejected or failed call (must be 0). */
  readonly rejected: number;
  /** The first such log line, to say why. */
  readonly firstRejection?: string | undefined;
}

async function freePort(): Promise<number> {
  return new Promise((r, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => r(port));
    });
  });
}

function treeTicks(pid: number): number {
  return cpuTicks(pid) + descendants(pid).reduce((n, p) => n + cpuTicks(p.pid), 0);
}

/** Runs GetTenant or Check with h2load against `uab serve` with `workers` processes. */
export async function benchServeCluster(o: {
  root: string;
  call: "GetTenant" | "Check" | "BatchCheck";
  workers: number;
  connections: number;
  streams: number;
  warmupS: number;
  durationS: number;
}): Promise<ServeClusterResult> {
  const database = await createTestDatabase("uab_bench_serve");
  const key = await createSigningKey("bench-serve");
  const jwks = createHttpServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ keys: [key.publicJwk] }));
  });
  let child: ChildProcess | undefined;
  let dropRole = async () => {};
  try {
    for (const [service, migrations] of [
      ["authorization", authorizationMigrations],
      ["tenancy", tenancyMigrations],
    ] as const) {
      await migrateService({ url: database.url, service, migrations, runtimePassword: "bench" });
    }
    // One login for a process hosting two services: a role granted both runtime roles
    // (never an owner or superuser, so row-level security applies).
    const login = `uab_bench_${uniqueSuffix()}`;
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    await admin.query(`CREATE ROLE ${login} LOGIN PASSWORD 'bench' IN ROLE uab_tenancy, uab_authorization`);
    await admin.end();
    dropRole = async () => {
      const c = new pg.Client({ connectionString: database.url });
      await c.connect();
      await c.query(`DROP ROLE IF EXISTS ${login}`).catch(() => undefined);
      await c.end();
    };
    await new Promise<void>((r) => jwks.listen(0, "127.0.0.1", r));
    const adminId = newId("user");
    const token = await issueAccessToken(key, { sub: adminId }, { issuer: "uab", audience: "uab", ttlSeconds: 3600 });
    const runtimeUrl = new URL(database.url);
    runtimeUrl.username = login;
    runtimeUrl.password = "bench";
    const port = await freePort();
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "",
      PORT: String(port),
      UAB_HOST: "127.0.0.1",
      UAB_SERVICES: "authorization,tenancy",
      UAB_WORKERS: String(o.workers),
      DATABASE_URL: runtimeUrl.toString(),
      NATS_URL: process.env.UAB_TEST_NATS_URL ?? "nats://127.0.0.1:4222",
      UAB_JWKS_URL: `http://127.0.0.1:${(jwks.address() as { port: number }).port}/jwks`,
      UAB_BOOTSTRAP_ADMIN_IDS: adminId,
      UAB_LOG_LEVEL: "info",
    };
    child = spawn(process.execPath, [join(o.root, "libs/cli/dist/bin.js"), "serve"], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr!.on("data", (c: Buffer) => {
      out += c.toString();
    });
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; (out.match(/"msg":"serving"/g) ?? []).length < o.workers; i++) {
      if (i > 300 || child.exitCode !== null) throw new Error(`uab serve did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const headers = grpcHeaders(token);
    // A tenant to read, created through the API.
    const created = await rawGrpcCall(
      `${url}/uab.tenancy.v1.TenancyService/CreateTenant`,
      grpcFrame(
        toBinary(
          CreateTenantRequestSchema,
          create(CreateTenantRequestSchema, { slug: "bench-serve", displayName: "Bench", ownerUserId: adminId }),
        ),
      ),
      headers,
    );
    if (created.grpcStatus !== "0")
      throw new Error(`CreateTenant failed: ${created.grpcStatus} ${created.grpcMessage}`);
    const tenantId = /ten_[0-9a-z]{26}/.exec(created.message.toString("latin1"))?.[0];
    if (!tenantId) throw new Error("CreateTenant returned no tenant id");
    const call = async (method: string, body: Uint8Array) => {
      const r = await rawGrpcCall(method, grpcFrame(body), headers);
      if (r.grpcStatus !== "0") throw new Error(`${method} failed: ${r.grpcStatus} ${r.grpcMessage}`);
      return r.message.toString("latin1");
    };
    const userId = newId("user");
    let callUrl = `${url}/uab.tenancy.v1.TenancyService/GetTenant`;
    let body = grpcFrame(toBinary(GetTenantRequestSchema, create(GetTenantRequestSchema, { tenantId })));
    if (o.call !== "GetTenant") {
      // A user of the tenant bound to a custom role; the check walks the engine in full.
      const authz = `${url}/uab.authorization.v1.AuthorizationService`;
      const roleReply = await call(
        `${authz}/CreateRole`,
        toBinary(
          CreateRoleRequestSchema,
          create(CreateRoleRequestSchema, {
            tenantId,
            slug: "bench-reader",
            displayName: "Bench reader",
            permissions: ["tenancy.projects.get", "tenancy.teams.*"],
            assignableScopes: [2],
          }),
        ),
      );
      const roleId = /role_[0-9a-z]{26}/.exec(roleReply)?.[0];
      if (!roleId) throw new Error("CreateRole returned no role id");
      await call(
        `${authz}/CreateBinding`,
        toBinary(
          CreateBindingRequestSchema,
          create(CreateBindingRequestSchema, {
            tenantId,
            principal: { type: 1, id: userId, tenantId },
            roleId,
            scope: { type: 2, tenantId },
          }),
        ),
      );
      // Another worker may hold an older snapshot of the tenant: within the refresh bound
      // (UAB_AUTHORIZATION_REFRESH_MS, 500 ms) every worker sees the binding.
      await new Promise((r) => setTimeout(r, 1200));
      if (o.call === "BatchCheck") {
        // 500 checks of the bound user: half allowed (the role's permissions), half not.
        const permissions = [
          "tenancy.projects.get",
          "tenancy.teams.get",
          "tenancy.projects.delete",
          "billing.plans.get",
        ];
        callUrl = `${authz}/BatchCheck`;
        body = grpcFrame(
          toBinary(
            BatchCheckRequestSchema,
            create(BatchCheckRequestSchema, {
              tenantId,
              checks: Array.from({ length: 500 }, (_, i) => ({
                correlationId: String(i),
                principal: { type: 1, id: userId, tenantId },
                permission: permissions[i % permissions.length]!,
                scope: { type: 2, tenantId },
              })),
            }),
          ),
        );
        const reply = fromBinary(BatchCheckResponseSchema, await expectGrpcOk(callUrl, body, headers));
        const allowed = reply.results.filter((r) => r.result?.allowed).length;
        if (reply.results.length !== 500 || allowed !== 250)
          throw new Error(`the bench batch allowed ${allowed} of 500`);
      }
    }
    if (o.call === "Check") {
      const authz = `${url}/uab.authorization.v1.AuthorizationService`;
      callUrl = `${authz}/Check`;
      body = grpcFrame(
        toBinary(
          CheckRequestSchema,
          create(CheckRequestSchema, {
            tenantId,
            principal: { type: 1, id: userId, tenantId },
            permission: "tenancy.projects.get",
            scope: { type: 3, tenantId, projectId: `prj_${"0".repeat(26)}` },
          }),
        ),
      );
      const reply = fromBinary(CheckResponseSchema, await expectGrpcOk(callUrl, body, headers));
      if (!reply.result?.allowed) throw new Error(`the bench check was not allowed: ${reply.result?.message}`);
    }
    await expectGrpcOk(callUrl, body, headers);
    const common = { url: callUrl, connections: o.connections, streams: o.streams, headers, body };
    await runH2load({ ...common, durationS: o.warmupS });
    const rejectedBefore = (out.match(/"msg":"rpc (rejected|failed)"/g) ?? []).length;
    const logBefore = out.length;
    const t0 = treeTicks(child.pid!);
    const started = Date.now();
    const result = await runH2load({ ...common, durationS: o.durationS });
    const serverCores = (treeTicks(child.pid!) - t0) / 100 / ((Date.now() - started) / 1000);
    await expectGrpcOk(callUrl, body, headers);
    const rejected = (out.match(/"msg":"rpc (rejected|failed)"/g) ?? []).length - rejectedBefore;
    const firstRejection = out
      .slice(logBefore)
      .split("\n")
      .find((l) => /"msg":"rpc (rejected|failed)"/.test(l));
    return { result, serverCores, rejected, firstRejection };
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    await new Promise<void>((r) => jwks.close(() => r()));
    await dropRole().catch(() => undefined);
    await database.drop();
  }
}
