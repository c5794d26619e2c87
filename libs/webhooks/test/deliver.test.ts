// deliver() against a real HTTPS receiver on 127.0.0.1: every delivery's signature is checked
// with the reference implementation (standardwebhooks), and each outcome (2xx, 5xx with
// Retry-After, 429, 410, 4xx, redirect, timeout, refused connection, huge body) is classified
// as the delivery worker needs it.
import type { ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { eventually } from "@uab/testing";
import { type DeliveryOptions, type DeliveryRequest, deliver, generateSecret, verifySignature } from "@uab/webhooks";
import { Webhook } from "standardwebhooks";
import { closedPort, type Received, startServer, type TestServer, testCertificate } from "./server.js";

let server: TestServer;
let options: DeliveryOptions;
// Set by the /huge route: whether the endless body was ever finished (it must not be), and
// whether the receiver saw the connection closed.
const huge = { closed: false, finished: false };

function route(received: Received, res: ServerResponse): void {
  const url = new URL(received.path, "https://x");
  const status = Number(url.searchParams.get("status") ?? 200);
  const retryAfter = url.searchParams.get("retry-after");
  switch (url.pathname) {
    case "/hang":
      return; // never answers
    case "/redirect":
      res.writeHead(302, { location: "/elsewhere" }).end();
      return;
    case "/huge": {
      // An endless body: the client must stop reading after its excerpt.
      res.writeHead(200, { "content-type": "text/plain" });
      const chunk = Buffer.alloc(64 * 1024, "x");
      res.on("close", () => {
        huge.closed = true;
        huge.finished = res.writableFinished;
      });
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk)) {
          // keep writing until the socket pushes back
        }
        if (!res.destroyed) res.once("drain", pump);
      };
      pump();
      return;
    }
    case "/utf8":
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" }).end("é".repeat(100));
      return;
    default:
      res
        .writeHead(status, retryAfter === null ? {} : { "retry-after": retryAfter })
        .end(status === 200 ? "thanks" : `status ${status}`);
  }
}

beforeAll(async () => {
  server = await startServer(route, "127.0.0.1");
  options = { ca: (await testCertificate()).cert, allowPrivateNetworks: true, timeoutMs: 5000 };
});

afterAll(async () => {
  await server.close();
});

const secret = generateSecret();

function request(path: string, extra: Partial<DeliveryRequest> = {}): DeliveryRequest {
  return {
    url: `${server.url}${path}`,
    id: `msg_${Math.random().toString(36).slice(2)}`,
    body: JSON.stringify({ type: "audit.entry", path }),
    contentType: "application/json",
    secrets: [secret],
    ...extra,
  };
}

/** The request the receiver got for a delivery id. */
function receivedFor(id: string): Received {
  const found = server.requests.find((r) => r.headers["webhook-id"] === id);
  if (found === undefined) throw new Error(`the receiver got no request ${id}`);
  return found;
}

/** Whether the reference implementation accepts what the receiver got. */
function referenceAccepts(received: Received, withSecret: string): boolean {
  try {
    new Webhook(withSecret).verify(received.body, received.headers);
    return true;
  } catch {
    return false;
  }
}

describe("successful delivery", () => {
  it("2xx is ok; the POST is signed so that standardwebhooks and verifySignature accept it", async () => {
    const req = request("/ok");
    const result = await deliver(req, options);
    expect(result).toMatchObject({
      ok: true,
      outcome: "delivered",
      statusCode: 200,
      responseExcerpt: "thanks",
      retryable: false,
      gone: false,
    });
    expect(result.error).toBeUndefined();
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
    const got = receivedFor(req.id);
    expect(got.method).toBe("POST");
    expect(got.path).toBe("/ok");
    expect(got.body).toBe(req.body);
    expect(got.headers["content-type"]).toBe("application/json");
    expect(got.headers["content-length"]).toBe(String(Buffer.byteLength(req.body as string)));
    expect(got.headers["user-agent"]).toBe("UAB-Webhooks/1");
    expect(referenceAccepts(got, secret)).toBe(true);
    expect(verifySignature(got.headers, got.body, [secret]).valid).toBe(true);
  });

  it("sends a Uint8Array body byte for byte, with the given timestamp and user agent", async () => {
    const timestamp = new Date(Date.now() - 60_000);
    const bytes = new TextEncoder().encode('{"unicode":"żółw 🐢"}');
    const req = request("/ok?q=1", { body: bytes.subarray(0), timestamp });
    const result = await deliver(req, { ...options, userAgent: "Audit-Stream/2" });
    expect(result.ok).toBe(true);
    const got = receivedFor(req.id);
    expect(got.path).toBe("/ok?q=1");
    expect(got.body).toBe('{"unicode":"żółw 🐢"}');
    expect(got.headers["webhook-timestamp"]).toBe(String(Math.floor(timestamp.getTime() / 1000)));
    expect(got.headers["user-agent"]).toBe("Audit-Stream/2");
    expect(referenceAccepts(got, secret)).toBe(true);
  });

  it("signs with both secrets during a rotation: a receiver holding either one accepts", async () => {
    const [oldSecret, newSecret] = [generateSecret(), generateSecret()];
    const req = request("/ok", { secrets: [oldSecret, newSecret] });
    expect((await deliver(req, options)).ok).toBe(true);
    const got = receivedFor(req.id);
    expect(got.headers["webhook-signature"]?.split(" ")).toHaveLength(2);
    expect(referenceAccepts(got, oldSecret)).toBe(true);
    expect(referenceAccepts(got, newSecret)).toBe(true);
    expect(referenceAccepts(got, generateSecret())).toBe(false);
    expect(verifySignature(got.headers, got.body, [newSecret]).valid).toBe(true);
  });

  it("a tampered body or timestamp is rejected by standardwebhooks and by verifySignature alike", async () => {
    const req = request("/ok");
    await deliver(req, options);
    const got = receivedFor(req.id);
    const tampered: Received[] = [
      { ...got, body: got.body.replace("audit.entry", "audit.entrx") },
      {
        ...got,
        headers: { ...got.headers, "webhook-timestamp": String(Number(got.headers["webhook-timestamp"]) - 1) },
      },
      { ...got, headers: { ...got.headers, "webhook-id": `${got.headers["webhook-id"]}0` } },
    ];
    expect(referenceAccepts(got, secret)).toBe(true);
    for (const t of tampered) {
      expect(referenceAccepts(t, secret)).toBe(false);
      expect(verifySignature(t.headers, t.body, [secret]).valid).toBe(false);
    }
  });

  it("sends extra headers, but they cannot replace the webhook-*, content-type, user-agent or host headers", async () => {
    const req = request("/ok", {
      headers: {
        Authorization: "Splunk 1234",
        "X-Tenant": "t_1",
        "Webhook-Id": "forged",
        "webhook-signature": "v1,forged",
        "WEBHOOK-TIMESTAMP": "1",
        "Content-Type": "text/plain",
        "user-agent": "forged",
        host: "forged.example",
      },
    });
    const result = await deliver(req, options);
    expect(result.ok).toBe(true);
    const got = receivedFor(req.id);
    expect(got.headers.authorization).toBe("Splunk 1234");
    expect(got.headers["x-tenant"]).toBe("t_1");
    expect(got.headers["webhook-id"]).toBe(req.id);
    expect(got.headers["webhook-signature"]).not.toContain("forged");
    expect(got.headers["webhook-timestamp"]).not.toBe("1");
    expect(got.headers["content-type"]).toBe("application/json");
    expect(got.headers["user-agent"]).toBe("UAB-Webhooks/1");
    expect(got.headers.host).toBe(new URL(server.url).host);
    expect(referenceAccepts(got, secret)).toBe(true);
  });
});

describe("HTTP failures", () => {
  it.each([500, 502, 503, 504])("HTTP %i is a retryable failure", async (status) => {
    const result = await deliver(request(`/fail?status=${status}`), options);
    expect(result).toMatchObject({
      ok: false,
      outcome: "http-error",
      statusCode: status,
      error: `HTTP ${status}`,
      retryable: true,
      gone: false,
      responseExcerpt: `status ${status}`,
    });
    expect(result.retryAfterMs).toBeUndefined();
  });

  it.each([408, 425, 429])("HTTP %i is retryable too", async (status) => {
    const result = await deliver(request(`/fail?status=${status}`), options);
    expect(result).toMatchObject({ ok: false, statusCode: status, retryable: true, gone: false });
  });

  it("503 with Retry-After in seconds gives retryAfterMs", async () => {
    const result = await deliver(request("/fail?status=503&retry-after=120"), options);
    expect(result).toMatchObject({ statusCode: 503, retryable: true, retryAfterMs: 120_000 });
  });

  it("503 with Retry-After as an HTTP-date gives the time until then", async () => {
    const date = new Date(Date.now() + 90_000).toUTCString();
    const before = Date.now();
    const result = await deliver(request(`/fail?status=503&retry-after=${encodeURIComponent(date)}`), options);
    // toUTCString drops the milliseconds, so up to 1 s early; and time passes during the call.
    expect(result.retryAfterMs).toBeGreaterThan(88_000 - (Date.now() - before));
    expect(result.retryAfterMs).toBeLessThanOrEqual(90_000);
  });

  it("429 with Retry-After; a Retry-After beyond an hour is capped at an hour", async () => {
    expect(await deliver(request("/fail?status=429&retry-after=7"), options)).toMatchObject({
      statusCode: 429,
      retryable: true,
      retryAfterMs: 7000,
    });
    expect((await deliver(request("/fail?status=503&retry-after=86400"), options)).retryAfterMs).toBe(3_600_000);
    const far = encodeURIComponent(new Date(Date.now() + 86_400_000).toUTCString());
    expect((await deliver(request(`/fail?status=429&retry-after=${far}`), options)).retryAfterMs).toBe(3_600_000);
  });

  it("Retry-After is ignored on other statuses and when unreadable", async () => {
    expect((await deliver(request("/fail?status=500&retry-after=30"), options)).retryAfterMs).toBeUndefined();
    expect((await deliver(request("/fail?status=503&retry-after=soon"), options)).retryAfterMs).toBeUndefined();
  });

  it("410 Gone: not retryable, and the receiver asks us to stop", async () => {
    const result = await deliver(request("/fail?status=410"), options);
    expect(result).toMatchObject({ ok: false, statusCode: 410, error: "HTTP 410", retryable: false, gone: true });
  });

  it.each([400, 401, 403, 404, 413, 422])("HTTP %i is a permanent failure", async (status) => {
    const result = await deliver(request(`/fail?status=${status}`), options);
    expect(result).toMatchObject({ ok: false, statusCode: status, retryable: false, gone: false });
  });

  it("302 is not followed: a permanent failure naming the Location", async () => {
    const before = server.requests.length;
    const result = await deliver(request("/redirect"), options);
    expect(result).toMatchObject({
      ok: false,
      outcome: "redirect",
      statusCode: 302,
      error: `redirect to ${server.url}/elsewhere`,
      retryable: false,
      gone: false,
    });
    expect(server.requests.slice(before).map((r) => r.path)).toEqual(["/redirect"]);
  });
});

describe("network failures and limits", () => {
  it("a receiver that never answers times out after timeoutMs, retryably", async () => {
    const result = await deliver(request("/hang"), { ...options, timeoutMs: 200 });
    expect(result).toMatchObject({
      ok: false,
      outcome: "timeout",
      error: "timeout after 200 ms",
      retryable: true,
      gone: false,
    });
    expect(result.statusCode).toBeUndefined();
    expect(result.durationMs).toBeGreaterThanOrEqual(190);
  });

  it("a closed port is a refused connection, retryable", async () => {
    const port = await closedPort();
    const result = await deliver(request("/ok", { url: `https://127.0.0.1:${port}/ok` }), options);
    expect(result).toMatchObject({
      ok: false,
      outcome: "network-error",
      error: "connection refused",
      retryable: true,
      gone: false,
    });
  });

  it("an endless response body: the excerpt is capped and the rest is never read", async () => {
    const timeoutMs = 20_000;
    const result = await deliver(request("/huge"), { ...options, maxResponseBytes: 1000, timeoutMs });
    expect(result).toMatchObject({ ok: true, statusCode: 200, outcome: "delivered" });
    // Settled by the full excerpt, not by the deadline (which would also keep the status).
    expect(result.durationMs).toBeLessThan(timeoutMs);
    expect(result.responseExcerpt).toBe("x".repeat(1000));
    // The receiver sees the connection dropped with its body unfinished.
    await eventually(() => huge.closed, 5000);
    expect(huge.finished).toBe(false);
  });

  it("the excerpt is cut at a character boundary, and maxResponseBytes 0 keeps none", async () => {
    const cut = await deliver(request("/utf8"), { ...options, maxResponseBytes: 11 });
    expect(cut.responseExcerpt).toBe("é".repeat(5)); // 10 bytes; the 11th is half a character
    expect(cut.responseExcerpt).not.toContain("\uFFFD");
    const whole = await deliver(request("/utf8"), options);
    expect(whole.responseExcerpt).toBe("é".repeat(100));
    const none = await deliver(request("/ok"), { ...options, maxResponseBytes: 0 });
    expect(none).toMatchObject({ ok: true, statusCode: 200, responseExcerpt: "" });
  });

  it("a certificate that is not trusted is a retryable TLS failure; `ca` adds the trust", async () => {
    const req = request("/ok");
    const untrusted = await deliver(req, { allowPrivateNetworks: true, timeoutMs: 5000 });
    expect(untrusted).toMatchObject({ ok: false, outcome: "network-error", retryable: true });
    expect(untrusted.error).toMatch(/^TLS error: /);
    expect(server.requests.some((r) => r.headers["webhook-id"] === req.id)).toBe(false);
    expect((await deliver(req, options)).ok).toBe(true);
  });

  it("an aborted delivery stops at once and is retryable", async () => {
    const controller = new AbortController();
    const pending = deliver(request("/hang"), { ...options, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    expect(await pending).toMatchObject({ ok: false, outcome: "aborted", error: "aborted", retryable: true });
    const already = await deliver(request("/ok"), { ...options, signal: AbortSignal.abort() });
    expect(already).toMatchObject({ ok: false, outcome: "aborted", retryable: true });
  });
});

describe("invalid requests", () => {
  it("a malformed secret, no secret, a bad header or a bad URL is a permanent failure, not an exception", async () => {
    const before = server.connections();
    const cases: [DeliveryRequest, RegExp][] = [
      [request("/ok", { secrets: ["whsec_short"] }), /malformed webhook secret/],
      [request("/ok", { secrets: [] }), /at least one secret/],
      [request("/ok", { id: "has space" }), /message id/],
      [request("/ok", { headers: { "x-bad": "line\r\nbreak" } }), /^invalid request: /],
      [request("/ok", { headers: { "bad header": "x" } }), /^invalid request: /],
      [request("/ok", { url: "not a url" }), /^invalid URL$/],
      [request("/ok", { url: "ftp://127.0.0.1/x" }), /unsupported URL scheme ftp:/],
      [request("/ok", { url: `https://user:pass@127.0.0.1:${server.port}/ok` }), /credentials in the URL/],
    ];
    for (const [req, message] of cases) {
      const result = await deliver(req, options);
      expect(result).toMatchObject({ ok: false, outcome: "invalid-request", retryable: false, gone: false });
      expect(result.error).toMatch(message);
      expect(result.error).not.toContain("pass");
    }
    expect(server.connections()).toBe(before);
  });

  it("out-of-range options are a programming error and reject", async () => {
    await expect(deliver(request("/ok"), { ...options, timeoutMs: 0 })).rejects.toThrow(RangeError);
    await expect(deliver(request("/ok"), { ...options, maxResponseBytes: -1 })).rejects.toThrow(/maxResponseBytes/);
  });
});
