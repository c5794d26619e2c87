/**
 * Load for the authorization benchmark: AuthorizationService Check (one question per call)
 * or BatchCheck (`batch` questions per call) from @connectrpc/connect-node's gRPC transport,
 * `connections` transports (one HTTP/2 session each) × `streams` concurrent call loops. Runs
 * in its own process (started by authz.ts) so it does not share the server's event loop.
 * Reads its options as JSON on stdin; every answer is compared with the expected one (a
 * mismatch counts as an error); prints one JSON line with the result.
 */
import { performance } from "node:perf_hooks";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Scope } from "@uab/proto";
import { AuthorizationService } from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import { PrincipalType } from "@uab/proto/gen/uab/authorization/v1/principal_pb.js";
import { type LatencySummary, summariseMicros } from "./stats.js";

/** What authz.ts passes on stdin. */
export interface AuthzClientOptions {
  readonly url: string;
  readonly token: string;
  readonly tenantId: string;
  /** [user id, permission, expected allowed]. */
  readonly queries: readonly (readonly [string, string, boolean])[];
  /** 0: Check; n > 0: BatchCheck with n checks per call. */
  readonly batch: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly connections: number;
  readonly streams: number;
}

/** What it prints. */
export interface AuthzClientResult {
  /** Calls per second. */
  readonly rps: number;
  /** Checks per second (= rps for Check). */
  readonly checksPerS: number;
  readonly errors: number;
  readonly firstError?: string;
  /** Per call. */
  readonly latency: LatencySummary;
}

async function main(o: AuthzClientOptions): Promise<AuthzClientResult> {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${o.token}`);
    return next(req);
  };
  const clients = Array.from({ length: o.connections }, () =>
    createClient(AuthorizationService, createGrpcTransport({ baseUrl: o.url, interceptors: [auth] })),
  );
  const scope = { type: Scope.TENANT, tenantId: o.tenantId };
  const item = (q: readonly [string, string, boolean]) => ({
    principal: { type: PrincipalType.USER, id: q[0], tenantId: o.tenantId },
    permission: q[1],
    scope,
  });
  let phase: "warmup" | "measure" | "done" = "warmup";
  const samples: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let next = 0;
  const fail = (e: unknown) => {
    if (phase === "measure") errors++;
    firstError ??= String(e);
  };
  const loop = async (client: (typeof clients)[number]) => {
    while (phase !== "done") {
      const start = performance.now();
      try {
        if (o.batch === 0) {
          const q = o.queries[next++ % o.queries.length]!;
          const res = await client.check({ tenantId: o.tenantId, ...item(q) });
          if (res.result?.allowed !== q[2]) throw new Error(`Check ${q[0]} ${q[1]}: expected ${q[2]}`);
        } else {
          const qs = Array.from({ length: o.batch }, () => o.queries[next++ % o.queries.length]!);
          const res = await client.batchCheck({ tenantId: o.tenantId, checks: qs.map(item) });
          if (res.results.length !== qs.length) throw new Error(`BatchCheck: ${res.results.length} results`);
          res.results.forEach((r, i) => {
            if (r.result?.allowed !== qs[i]![2]) throw new Error(`BatchCheck ${qs[i]![0]} ${qs[i]![1]}: wrong answer`);
          });
        }
        if (phase === "measure") samples.push((performance.now() - start) * 1000);
      } catch (e) {
        fail(e);
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
  const rps = count / elapsedS;
  return {
    rps,
    checksPerS: rps * Math.max(1, o.batch),
    errors,
    ...(firstError ? { firstError } : {}),
    latency: summariseMicros(samples),
  };
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d) => {
  input += d;
});
process.stdin.on("end", () => {
  main(JSON.parse(input) as AuthzClientOptions).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      process.exit(0);
    },
    (e) => {
      process.stderr.write(`${String(e)}\n`);
      process.exit(1);
    },
  );
});
