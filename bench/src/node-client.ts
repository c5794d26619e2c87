/**
 * Load from a Node client: @connectrpc/connect-node's gRPC transport, `connections`
 * transports (one HTTP/2 session each) × `streams` concurrent call loops, GetTenant over and
 * over. Runs in its own process (started by run.ts) so it does not share the server's event
 * loop; reads its options as JSON on stdin and prints one JSON line with the result.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { bearer } from "@uab/testing";
import { type LoadResult, type LoadShape, loadClientMain, measureCalls } from "./load.js";

/** What run.ts passes (as JSON on stdin). */
export interface NodeClientOptions extends LoadShape {
  readonly url: string;
  readonly token: string;
  readonly tenantId: string;
}

/** What it prints. */
export type NodeClientResult = LoadResult;

async function main(o: NodeClientOptions): Promise<NodeClientResult> {
  const request = { tenantId: o.tenantId };
  return measureCalls(
    o,
    () => createClient(TenancyService, createGrpcTransport({ baseUrl: o.url, interceptors: [bearer(o.token)] })),
    async (client) => {
      const res = await client.getTenant(request);
      if (res.tenant?.id !== o.tenantId) throw new Error("wrong tenant");
    },
  );
}

loadClientMain(main);
