/**
 * Load for the authorization benchmark: AuthorizationService Check (one question per call)
 * or BatchCheck (`batch` questions per call) from @connectrpc/connect-node's gRPC transport,
 * `connections` transports (one HTTP/2 session each) × `streams` concurrent call loops. Runs
 * in its own process (started by authz.ts) so it does not share the server's event loop.
 * Reads its options as JSON on stdin; every answer is compared with the expected one (a
 * mismatch counts as an error); prints one JSON line with the result.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Scope } from "@uab/proto";
import { AuthorizationService } from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import { PrincipalType } from "@uab/proto/gen/uab/authorization/v1/principal_pb.js";
import { bearer } from "@uab/testing";
import { type LoadResult, type LoadShape, loadClientMain, measureCalls } from "./load.js";

/** What authz.ts passes on stdin. */
export interface AuthzClientOptions extends LoadShape {
  readonly url: string;
  readonly token: string;
  readonly tenantId: string;
  /** [user id, permission, expected allowed]. */
  readonly queries: readonly (readonly [string, string, boolean])[];
  /** 0: Check; n > 0: BatchCheck with n checks per call. */
  readonly batch: number;
}

/** What it prints. */
export interface AuthzClientResult extends LoadResult {
  /** Checks per second (= rps for Check). */
  readonly checksPerS: number;
}

async function main(o: AuthzClientOptions): Promise<AuthzClientResult> {
  const scope = { type: Scope.TENANT, tenantId: o.tenantId };
  const item = (q: readonly [string, string, boolean]) => ({
    principal: { type: PrincipalType.USER, id: q[0], tenantId: o.tenantId },
    permission: q[1],
    scope,
  });
  let next = 0;
  const r = await measureCalls(
    o,
    () => createClient(AuthorizationService, createGrpcTransport({ baseUrl: o.url, interceptors: [bearer(o.token)] })),
    async (client) => {
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
    },
  );
  return { ...r, checksPerS: r.rps * Math.max(1, o.batch) };
}

loadClientMain(main);
