/**
 * Hostile and broken input against the real server: oversized messages, undecodable bytes in
 * every protocol, invalid JSON, unknown routes. Every answer is a proper protocol error (never
 * INTERNAL, never a stack trace), and the server keeps serving afterwards.
 */
import { connect, constants, type IncomingHttpHeaders } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { type Harness, startHarness, userId } from "./harness.js";

const CREATE = "/uab.tenancy.v1.TenancyService/CreateTenant";
const HUNDRED_KIB = "x".repeat(100 * 1024);

let h: Harness;
let tenantId: string;

beforeAll(async () => {
  h = await startHarness();
  const res = await h.client(h.adminToken).createTenant({ slug: "bad-input", displayName: "B", ownerUserId: userId() });
  tenantId = res.tenant!.id;
});
afterAll(async () => {
  await h?.close();
});

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders;
  body: string;
}

/** One raw HTTP/2 (prior knowledge) request, as a client no code of ours wrote would send it. */
function h2Request(path: string, headers: Record<string, string>, body: Buffer | string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const session = connect(h.url);
    session.on("error", reject);
    const req = session.request({
      [constants.HTTP2_HEADER_METHOD]: "POST",
      [constants.HTTP2_HEADER_PATH]: path,
      authorization: `Bearer ${h.adminToken}`,
      ...headers,
    });
    let status = 0;
    let responseHeaders: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on("response", (hd) => {
      status = Number(hd[constants.HTTP2_HEADER_STATUS]);
      responseHeaders = hd;
    });
    req.on("trailers", (t) => {
      trailers = t;
    });
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      session.close();
      resolve({ status, headers: responseHeaders, trailers, body: Buffer.concat(chunks).toString("utf8") });
    });
    req.on("error", (e) => {
      session.close();
      reject(e);
    });
    req.end(body);
  });
}

/** A gRPC length-prefixed frame around `payload`; `declared` lies about the length when given. */
function grpcFrame(payload: Buffer, declared = payload.length): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(0, 0);
  head.writeUInt32BE(declared, 1);
  return Buffer.concat([head, payload]);
}

/** Bytes that are not a CreateTenantRequest: field 1 with wire type 7 (no such wire type). */
const GARBAGE = Buffer.from([0x0f, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03]);

function expectNoInternals(text: string): void {
  expect(text).not.toMatch(/\bat .+:\d+:\d+/); // a stack frame
  expect(text).not.toMatch(/node_modules|\.ts:\d+|\.js:\d+/);
  expect(text.toLowerCase()).not.toContain("internal error");
}

/** The gRPC status of a raw response (trailers, or headers for a trailers-only answer). */
function grpcStatus(r: RawResponse): { code: number; message: string } {
  const src = r.trailers["grpc-status"] !== undefined ? r.trailers : r.headers;
  return { code: Number(src["grpc-status"]), message: decodeURIComponent(String(src["grpc-message"] ?? "")) };
}

describe("oversized messages", () => {
  it("a 100 KiB display_name over gRPC is RESOURCE_EXHAUSTED naming the limit", async () => {
    const err = await h
      .grpcClient(h.adminToken)
      .createTenant({ slug: "too-big", displayName: HUNDRED_KIB, ownerUserId: userId() })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((err as ConnectError).rawMessage).toMatch(/65536/);
    expectNoInternals((err as ConnectError).rawMessage);
  });

  it("a 100 KiB display_name over Connect is RESOURCE_EXHAUSTED naming the limit", async () => {
    const err = await h
      .client(h.adminToken)
      .createTenant({ slug: "too-big", displayName: HUNDRED_KIB, ownerUserId: userId() })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((err as ConnectError).rawMessage).toMatch(/65536/);
    expectNoInternals((err as ConnectError).rawMessage);
  });

  it("a raw oversized Connect JSON body is refused with HTTP 429 resource_exhausted", async () => {
    const body = JSON.stringify({ slug: "too-big", displayName: HUNDRED_KIB, ownerUserId: userId() });
    const r = await h2Request(CREATE, { "content-type": "application/json" }, body);
    expect(r.status).toBe(429);
    const json = JSON.parse(r.body) as { code: string; message: string };
    expect(json.code).toBe("resource_exhausted");
    expect(json.message).toMatch(/65536/);
    expectNoInternals(r.body);
  });

  it("nothing was created by the oversized calls", async () => {
    const rows = await h.adminDb.selectFrom("tenants").select("id").where("slug", "=", "too-big").execute();
    expect(rows).toEqual([]);
  });
});

describe("malformed bytes", () => {
  it("gRPC: a frame of garbage protobuf is INVALID_ARGUMENT", async () => {
    for (const contentType of ["application/grpc", "application/grpc+proto", "application/grpc-web+proto"]) {
      const r = await h2Request(CREATE, { "content-type": contentType, te: "trailers" }, grpcFrame(GARBAGE));
      expect(r.status).toBe(200);
      if (contentType.startsWith("application/grpc-web")) {
        // gRPC-Web carries its status in a trailer frame at the end of the body.
        expect(r.body).toMatch(/grpc-status: ?3\r\n/);
        expect(r.body).toMatch(/not%20a%20valid%20uab\.tenancy\.v1\.CreateTenantRequest/);
        expectNoInternals(r.body);
        continue;
      }
      const s = grpcStatus(r);
      expect({ contentType, code: s.code }).toEqual({ contentType, code: Code.InvalidArgument });
      expect(s.message).toMatch(/^the request body is not a valid uab\.tenancy\.v1\.CreateTenantRequest: /);
      expectNoInternals(s.message);
      // It went through the normal error path: it carries the request id.
      expect(r.trailers["x-request-id"] ?? r.headers["x-request-id"]).toBeDefined();
    }
  });

  it("gRPC: garbage is INVALID_ARGUMENT even without credentials (decoding comes first)", async () => {
    const r = await h2Request(
      CREATE,
      { "content-type": "application/grpc", te: "trailers", authorization: "" },
      grpcFrame(GARBAGE),
    );
    expect(grpcStatus(r).code).toBe(Code.InvalidArgument);
  });

  it("gRPC: a truncated frame (declares more bytes than sent) is not INTERNAL", async () => {
    const r = await h2Request(
      CREATE,
      { "content-type": "application/grpc", te: "trailers" },
      grpcFrame(Buffer.from([0x0a, 0x02]), 1000),
    );
    expect(r.status).toBe(200);
    const s = grpcStatus(r);
    expect(s.code).toBe(Code.InvalidArgument);
    expectNoInternals(s.message);
  });

  it("gRPC: a bogus envelope (unknown flags, body shorter than a header) is not INTERNAL", async () => {
    for (const body of [Buffer.from([0x7f, 0, 0, 0, 1, 0]), Buffer.from([0x00, 0x00])]) {
      const r = await h2Request(CREATE, { "content-type": "application/grpc", te: "trailers" }, body);
      expect(r.status).toBe(200);
      const s = grpcStatus(r);
      expect({ body: [...body], code: s.code }).toEqual({ body: [...body], code: Code.InvalidArgument });
      expectNoInternals(s.message);
    }
  });

  it("Connect: application/proto garbage is HTTP 400 invalid_argument JSON", async () => {
    const r = await h2Request(CREATE, { "content-type": "application/proto" }, GARBAGE);
    expect(r.status).toBe(400);
    expect(String(r.headers["content-type"])).toMatch(/^application\/json/);
    const json = JSON.parse(r.body) as { code: string; message: string };
    expect(json.code).toBe("invalid_argument");
    expect(json.message).toMatch(/not a valid uab\.tenancy\.v1\.CreateTenantRequest/);
    expect(r.headers["x-request-id"]).toBeDefined();
    expectNoInternals(r.body);
  });

  it("Connect: invalid JSON is INVALID_ARGUMENT", async () => {
    for (const body of ["{not json", '{"slug": 12', '{"displayName": {"nested": true}}', '{"unknownField": 1}', "[]"]) {
      const r = await h2Request(CREATE, { "content-type": "application/json" }, body);
      expect({ body, status: r.status }).toEqual({ body, status: 400 });
      const json = JSON.parse(r.body) as { code: string; message: string };
      expect({ body, code: json.code }).toEqual({ body, code: "invalid_argument" });
      expectNoInternals(r.body);
    }
  });

  it("Connect over HTTP/1.1: invalid JSON is HTTP 400 invalid_argument", async () => {
    const res = await fetch(`${h.url}${CREATE}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${h.adminToken}` },
      body: "\u0000\u0001 definitely not json",
    });
    expect(res.status).toBe(400);
    const json = (await res.json()) as { code: string };
    expect(json.code).toBe("invalid_argument");
  });

  it("an unsupported content type is refused without reaching the handler", async () => {
    const r = await h2Request(CREATE, { "content-type": "text/plain" }, "hello");
    expect(r.status).toBe(415);
    expectNoInternals(r.body);
  });

  it("the server still answers afterwards", async () => {
    const res = await h.client(h.adminToken).getTenant({ tenantId });
    expect(res.tenant?.id).toBe(tenantId);
    const grpc = await h.grpcClient(h.adminToken).getTenant({ tenantId });
    expect(grpc.tenant?.id).toBe(tenantId);
  });
});

describe("plain HTTP routes", () => {
  it("an unknown route is 404 JSON", async () => {
    const res = await fetch(`${h.url}/no/such/route?x=1`);
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ code: "not_found", message: "no route for GET /no/such/route" });
  });

  it("an unknown RPC is 404 as well (over HTTP/2)", async () => {
    const r = await h2Request(
      "/uab.tenancy.v1.TenancyService/NoSuchMethod",
      { "content-type": "application/json" },
      "{}",
    );
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body)).toMatchObject({ code: "not_found" });
  });

  it("/healthz and /readyz are 200", async () => {
    const healthz = await fetch(`${h.url}/healthz`);
    expect(healthz.status).toBe(200);
    expect(await healthz.text()).toBe("ok\n");
    const readyz = await fetch(`${h.url}/readyz`);
    expect(readyz.status).toBe(200);
    expect(await readyz.text()).toBe("ready\n");
  });
});
