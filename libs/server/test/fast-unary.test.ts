/**
 * The lean unary path must behave like Connect-node: deadlines, cancellation, headers and
 * trailers, HTTP/1.1 Connect calls, and falling back to Connect-node for what it does not
 * serve (compressed requests). The service here is a transport-level test implementation of
 * TenancyService's GetTenant (no storage involved).
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type HandlerContext } from "@connectrpc/connect";
import { compressionGzip, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createSigningKey, issueAccessToken, TokenVerifier } from "@uab/auth";
import { createLogger, newId } from "@uab/core";
import { contractRegistry } from "@uab/proto";
import { type GetTenantRequest, TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { TenantSchema } from "@uab/proto/gen/uab/tenancy/v1/tenant_pb.js";
import { type RunningServer, startServer } from "@uab/server";
import { AllowListAuthorizer } from "@uab/testing";

let server: RunningServer;
let token: string;
const aborted: string[] = [];

async function getTenant(req: GetTenantRequest, ctx: HandlerContext) {
  ctx.responseHeader.set("x-test-header", "h");
  ctx.responseTrailer.set("x-test-trailer", "t");
  if (req.tenantId.endsWith("0000000000000000000000slow")) {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 2000);
      ctx.signal.addEventListener("abort", () => {
        aborted.push(req.tenantId);
        clearTimeout(t);
        resolve();
      });
    });
  }
  return { tenant: create(TenantSchema, { id: req.tenantId, slug: "t", displayName: "T" }) };
}

beforeAll(async () => {
  const key = await createSigningKey("k");
  const adminId = newId("user");
  token = await issueAccessToken(key, { sub: adminId }, { issuer: "i", audience: "a", ttlSeconds: 600 });
  server = await startServer({
    logger: createLogger({ service: "fast-test", level: "silent" }),
    port: 0,
    services: [{ service: TenancyService, impl: { getTenant } as never }],
    verifier: new TokenVerifier({ keys: { jwks: { keys: [key.publicJwk] } }, issuer: "i", audience: "a" }),
    authorizer: new AllowListAuthorizer([adminId]),
    registry: contractRegistry,
  });
});
afterAll(async () => {
  await server.close(100);
});

const auth = { authorization: "" };
const tenantId = `ten_${"0".repeat(26)}`;
const slowId = `ten_${"0".repeat(22)}slow`;

describe("lean unary path", () => {
  it.each([
    ["gRPC", () => createGrpcTransport({ baseUrl: server.url })],
    ["Connect binary", () => createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: true })],
    ["Connect JSON over HTTP/1.1", () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })],
    [
      "gzip-compressed gRPC (served by Connect-node)",
      () => createGrpcTransport({ baseUrl: server.url, sendCompression: compressionGzip }),
    ],
  ])("serves %s with response headers and trailers", async (_name, transport) => {
    auth.authorization = `Bearer ${token}`;
    const client = createClient(TenancyService, transport());
    const headers: Headers[] = [];
    const trailers: Headers[] = [];
    const res = await client.getTenant(
      { tenantId },
      { headers: auth, onHeader: (h) => headers.push(h), onTrailer: (t) => trailers.push(t) },
    );
    expect(res.tenant?.id).toBe(tenantId);
    expect(headers[0]?.get("x-test-header")).toBe("h");
    expect(headers[0]?.get("x-request-id")).toMatch(/^req_/);
    expect(trailers[0]?.get("x-test-trailer")).toBe("t");
  });

  it.each([
    ["gRPC", () => createGrpcTransport({ baseUrl: server.url })],
    ["Connect", () => createConnectTransport({ baseUrl: server.url, httpVersion: "2" })],
  ])("enforces the client's deadline over %s and aborts the handler", async (_name, transport) => {
    const client = createClient(TenancyService, transport());
    const started = Date.now();
    const err = await client
      .getTenant({ tenantId: slowId }, { headers: { authorization: `Bearer ${token}` }, timeoutMs: 100 })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect(Date.now() - started).toBeLessThan(1500);
    // The client's own timer and the server's may fire in either order.
    for (let i = 0; i < 50 && !aborted.includes(slowId); i++) await new Promise((r) => setTimeout(r, 20));
    expect(aborted).toContain(slowId);
    aborted.length = 0;
  });

  it("aborts the handler when the client cancels", async () => {
    const client = createClient(TenancyService, createGrpcTransport({ baseUrl: server.url }));
    const controller = new AbortController();
    const call = client.getTenant(
      { tenantId: slowId },
      { headers: { authorization: `Bearer ${token}` }, signal: controller.signal },
    );
    setTimeout(() => controller.abort(), 100);
    await expect(call).rejects.toMatchObject({ code: Code.Canceled });
    for (let i = 0; i < 50 && !aborted.includes(slowId); i++) await new Promise((r) => setTimeout(r, 20));
    expect(aborted).toContain(slowId);
  });

  it("answers errors in each protocol's format (trailers-only gRPC, Connect JSON with HTTP status)", async () => {
    const grpc = createClient(TenancyService, createGrpcTransport({ baseUrl: server.url }));
    await expect(grpc.getTenant({ tenantId })).rejects.toMatchObject({ code: Code.Unauthenticated });
    const res = await fetch(`${server.url}/uab.tenancy.v1.TenancyService/GetTenant`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ tenantId: "nope" }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toContain("tenant_id");
  });
});
