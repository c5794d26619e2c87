// EndpointBreakers against two real receivers (two origins): consecutive retryable failures
// open one origin's circuit, which then answers without sending (the receiver sees nothing);
// the other origin is unaffected; after resetTimeoutMs one trial closes or reopens it; 4xx
// never trips it. Each test uses breakers of its own.
import type { ServerResponse } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import { eventually } from "@uab/testing";
import {
  type CircuitState,
  type DeliveryOptions,
  EndpointBreakers,
  type EndpointBreakersOptions,
  generateSecret,
} from "@uab/webhooks";
import { closedPort, type Received, startServer, type TestServer, testCertificate } from "./server.js";

let a: TestServer;
let b: TestServer;
let options: DeliveryOptions;
const secret = generateSecret();
// The reset timeout of the tests that wait for half-open; the others use a long one, so that a
// slow machine cannot half-open a circuit in the middle of a test.
const RESET_MS = 150;
const LONG_RESET_MS = 30_000;

function route(received: Received, res: ServerResponse): void {
  if (received.path === "/fail") res.writeHead(503).end();
  else if (received.path === "/bad") res.writeHead(400).end();
  else res.writeHead(200).end("ok");
}

beforeAll(async () => {
  [a, b] = await Promise.all([startServer(route, "127.0.0.1"), startServer(route, "127.0.0.1")]);
  options = { ca: (await testCertificate()).cert, allowPrivateNetworks: true, timeoutMs: 5000 };
});

afterAll(async () => {
  await Promise.all([a.close(), b.close()]);
});

const made: EndpointBreakers[] = [];
function breakers(opts: EndpointBreakersOptions = {}): EndpointBreakers {
  const created = new EndpointBreakers({ failureThreshold: 3, resetTimeoutMs: LONG_RESET_MS, ...opts });
  made.push(created);
  return created;
}

afterEach(() => {
  for (const m of made.splice(0)) m.close();
});

let n = 0;
const message = (url: string) => ({
  url,
  id: `msg_${++n}`,
  body: "{}",
  contentType: "application/json",
  secrets: [secret],
});

/** Requests a receiver has seen on a path. */
const seen = (server: TestServer, path: string) => server.requests.filter((r) => r.path === path).length;

describe("EndpointBreakers", () => {
  it("after N retryable failures to one origin it short-circuits: the receiver sees no more requests", async () => {
    const br = breakers();
    const before = seen(a, "/fail");
    for (let i = 0; i < 3; i++) {
      expect(br.state(a.url)).toBe("closed");
      expect(await br.deliver(message(`${a.url}/fail`), options)).toMatchObject({ statusCode: 503, retryable: true });
    }
    expect(br.state(a.url)).toBe("open");
    expect(seen(a, "/fail") - before).toBe(3);
    const okBefore = seen(a, "/ok");
    for (const path of ["/fail", "/ok", "/bad"]) {
      const result = await br.deliver(message(`${a.url}${path}`), options);
      expect(result).toMatchObject({
        ok: false,
        outcome: "circuit-open",
        error: `circuit open for ${a.url}`,
        retryable: true,
        gone: false,
        durationMs: 0,
        responseExcerpt: "",
      });
      expect(result.statusCode).toBeUndefined();
      expect(result.retryAfterMs).toBeGreaterThan(0);
      expect(result.retryAfterMs).toBeLessThanOrEqual(LONG_RESET_MS);
    }
    expect(seen(a, "/fail") - before).toBe(3);
    expect(seen(a, "/ok")).toBe(okBefore);
  });

  it("another origin is unaffected", async () => {
    const br = breakers();
    for (let i = 0; i < 3; i++) await br.deliver(message(`${a.url}/fail`), options);
    expect(br.state(a.url)).toBe("open");
    const before = seen(b, "/ok");
    expect(await br.deliver(message(`${b.url}/ok`), options)).toMatchObject({ ok: true, statusCode: 200 });
    expect(seen(b, "/ok") - before).toBe(1);
    expect(br.state(b.url)).toBe("closed");
    expect(br.size).toBe(2);
  });

  it("after resetTimeoutMs one successful trial closes it again", async () => {
    const changes: [string, CircuitState][] = [];
    const br = breakers({ resetTimeoutMs: RESET_MS, onStateChange: (origin, state) => changes.push([origin, state]) });
    for (let i = 0; i < 3; i++) await br.deliver(message(`${a.url}/fail`), options);
    expect(br.state(a.url)).toBe("open");
    await eventually(() => br.state(a.url) === "half-open", 5000, 10);
    const before = seen(a, "/ok");
    expect(await br.deliver(message(`${a.url}/ok`), options)).toMatchObject({ ok: true, statusCode: 200 });
    expect(br.state(a.url)).toBe("closed");
    expect(await br.deliver(message(`${a.url}/ok`), options)).toMatchObject({ ok: true });
    expect(seen(a, "/ok") - before).toBe(2);
    expect(changes).toEqual([
      [a.url, "open"],
      [a.url, "half-open"],
      [a.url, "closed"],
    ]);
    // Closed means counting from zero again: two more failures do not open it.
    for (let i = 0; i < 2; i++) await br.deliver(message(`${a.url}/fail`), options);
    expect(br.state(a.url)).toBe("closed");
  });

  it("a failed trial reopens it at once", async () => {
    const br = breakers({ resetTimeoutMs: RESET_MS });
    for (let i = 0; i < 3; i++) await br.deliver(message(`${a.url}/fail`), options);
    await eventually(() => br.state(a.url) === "half-open", 5000, 10);
    const before = seen(a, "/fail");
    expect(await br.deliver(message(`${a.url}/fail`), options)).toMatchObject({ statusCode: 503 });
    expect(seen(a, "/fail") - before).toBe(1);
    expect(br.state(a.url)).toBe("open");
    expect(await br.deliver(message(`${a.url}/ok`), options)).toMatchObject({ outcome: "circuit-open" });
  });

  it("4xx does not trip it, and breaks a run of failures", async () => {
    const br = breakers();
    const before = seen(a, "/bad");
    for (let i = 0; i < 10; i++) {
      expect(await br.deliver(message(`${a.url}/bad`), options)).toMatchObject({ statusCode: 400, retryable: false });
    }
    expect(seen(a, "/bad") - before).toBe(10);
    expect(br.state(a.url)).toBe("closed");
    // fail, fail, 400, fail, fail: never 3 retryable failures in a row.
    for (const path of ["/fail", "/fail", "/bad", "/fail", "/fail"])
      await br.deliver(message(`${a.url}${path}`), options);
    expect(br.state(a.url)).toBe("closed");
    await br.deliver(message(`${a.url}/fail`), options);
    expect(br.state(a.url)).toBe("open");
  });

  it("refused connections trip it like 5xx", async () => {
    const br = breakers({ failureThreshold: 2 });
    const url = `https://127.0.0.1:${await closedPort()}/hook`;
    expect(await br.deliver(message(url), options)).toMatchObject({ error: "connection refused" });
    expect(await br.deliver(message(url), options)).toMatchObject({ error: "connection refused" });
    expect(await br.deliver(message(url), options)).toMatchObject({ outcome: "circuit-open" });
  });

  it("tracks at most maxOrigins origins, forgetting the least recently used", async () => {
    const br = breakers({ failureThreshold: 1, maxOrigins: 2 });
    const ports = [await closedPort(), await closedPort(), await closedPort()];
    const url = (p: number) => `https://127.0.0.1:${p}/hook`;
    for (const p of ports.slice(0, 2)) await br.deliver(message(url(p)), options);
    expect(br.state(url(ports[0] as number))).toBe("open");
    await br.deliver(message(url(ports[2] as number)), options);
    expect(br.size).toBe(2);
    expect(br.state(url(ports[0] as number))).toBe("closed"); // forgotten
    expect(br.state(url(ports[1] as number))).toBe("open");
    expect(br.state(url(ports[2] as number))).toBe("open");
  });

  it("passes an invalid URL through to deliver's own refusal, and refuses to work after close()", async () => {
    const br = breakers();
    expect(await br.deliver(message("not a url"), options)).toMatchObject({
      outcome: "invalid-request",
      error: "invalid URL",
    });
    expect(br.size).toBe(0);
    br.close();
    await expect(br.deliver(message(`${a.url}/ok`), options)).rejects.toThrow(/after close/);
    expect(() => new EndpointBreakers({ failureThreshold: 0 })).toThrow(RangeError);
  });
});
