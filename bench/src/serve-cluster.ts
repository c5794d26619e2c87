/**
 * GetTenant against the production entry point, `uab serve`, with several worker
 * processes sharing the port (UAB_WORKERS): a Node process serves on one core, so this is
 * how a pod uses the rest. Its own database (migrated with a runtime login), NATS
 * JetStream, a JWKS served from here.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { createSigningKey, issueAccessToken } from "@uab/auth";
import { newId } from "@uab/core";
import { migrateService } from "@uab/db";
import { CreateTenantRequestSchema, GetTenantRequestSchema } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { tenancyMigrations } from "@uab/tenancy";
import { createTestDatabase } from "@uab/testing";
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

/** Runs GetTenant with h2load against `uab serve` with `workers` processes. */
export async function benchServeCluster(o: {
  root: string;
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
  try {
    await migrateService({
      url: database.url,
      service: "tenancy",
      migrations: tenancyMigrations,
      runtimePassword: "bench",
    });
    await new Promise<void>((r) => jwks.listen(0, "127.0.0.1", r));
    const adminId = newId("user");
    const token = await issueAccessToken(key, { sub: adminId }, { issuer: "uab", audience: "uab", ttlSeconds: 3600 });
    const runtimeUrl = new URL(database.url);
    runtimeUrl.username = "uab_tenancy";
    runtimeUrl.password = "bench";
    const port = await freePort();
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "",
      PORT: String(port),
      UAB_HOST: "127.0.0.1",
      UAB_SERVICES: "tenancy",
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
    const getUrl = `${url}/uab.tenancy.v1.TenancyService/GetTenant`;
    const body = grpcFrame(toBinary(GetTenantRequestSchema, create(GetTenantRequestSchema, { tenantId })));
    await expectGrpcOk(getUrl, body, headers);
    const common = { url: getUrl, connections: o.connections, streams: o.streams, headers, body };
    await runH2load({ ...common, durationS: o.warmupS });
    const rejectedBefore = (out.match(/"msg":"rpc (rejected|failed)"/g) ?? []).length;
    const t0 = treeTicks(child.pid!);
    const started = Date.now();
    const result = await runH2load({ ...common, durationS: o.durationS });
    const serverCores = (treeTicks(child.pid!) - t0) / 100 / ((Date.now() - started) / 1000);
    await expectGrpcOk(getUrl, body, headers);
    const rejected = (out.match(/"msg":"rpc (rejected|failed)"/g) ?? []).length - rejectedBefore;
    return { result, serverCores, rejected };
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    await new Promise<void>((r) => jwks.close(() => r()));
    await database.drop();
  }
}
