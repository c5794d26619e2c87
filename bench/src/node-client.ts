/**
 * Load from a Node client: @connectrpc/connect-node's gRPC transport, `connections`
 * transports (one HTTP/2 session each) × `streams` concurrent call loops, GetTenant over and
 * over. Runs in its own process (started by run.ts) so it does not share the server's event
 * loop; prints one JSON line with the result.
 */
import { performance } from "node:perf_hooks";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { summariseMicros } from "./stats.js";

/** What run.ts passes (as JSON in argv[2]). */
export interface NodeClientOptions {
  readonly url: string;
  readonly token: string;
  readonly tenantId: string;
  readonly durationS: number;
  readonly warmupS: number;
  readonly connections: number;
  readonly streams: number;
}

async function main(o: NodeClientOptions) {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${o.token}`);
    return next(req);
  };
  const clients = Array.from({ length: o.connections }, () =>
    createClient(TenancyService, createGrpcTransport({ baseUrl: o.url, interceptors: [auth] })),
  );
  const request = { tenantId: o.tenantId };
  let phase: "warmup" | "measure" | "done" = "warmup";
  const samples: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const loop = async (client: (typeof clients)[number]) => {
    while (phase !== "done") {
      const start = performance.now();
      try {
        const res = await client.getTenant(request);
        if (res.tenant?.id !== o.tenantId) throw new Error("wrong tenant");
        if (phase === "measure") samples.push((performance.now() - start) * 1000);
      } catch (e) {
        if (phase === "measure") errors++;
        firstError ??= String(e);
      }
    }
  };
  const loops = clients.flatMap((c) => Array.from({ length: o.streams }, () => loop(c)));
  await new Promise((r) => setTimeout(r, o.warmupS * 1000));
  phase = "measure";
  const start = performance.now();
  await new Promise((r) => setTimeout(r, o.durationS * 1000));
  const elapsedS = (performance.now() - start) / 1000;
  const count = samples.length;
  phase = "done";
  await Promise.all(loops);
  process.stdout.write(
    `${JSON.stringify({ rps: count / elapsedS, errors, firstError, latency: summariseMicros(samples) })}\n`,
  );
}

main(JSON.parse(process.argv[2] ?? "{}") as NodeClientOptions).then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${String(e)}\n`);
    process.exit(1);
  },
);
