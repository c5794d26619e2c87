// A real HTTPS receiver for the webhook tests: a certificate from selfsigned (generated once
// per test file, valid for localhost, 127.0.0.1, ::1 and ::ffff:127.0.0.1), a server on port 0 that records
// every request it gets, and a handler per test.
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import { type AddressInfo, createServer as createNetServer, type Socket } from "node:net";
import { generate } from "selfsigned";

/** A request as the receiver saw it. */
export interface Received {
  readonly method: string;
  readonly path: string;
  /** Single-valued headers, lower-case names. */
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Answers a recorded request. */
export type Handler = (received: Received, res: ServerResponse, req: IncomingMessage) => void;

/** A running receiver. */
export interface TestServer {
  /** `https://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Every request received so far, in order. */
  readonly requests: Received[];
  /** How many TCP connections were accepted so far. */
  connections(): number;
  /** Stops the server, dropping open connections. */
  close(): Promise<void>;
}

let certificate: Promise<{ cert: string; key: string }> | undefined;

/** The test certificate (PEM), generated on first use. */
export function testCertificate(): Promise<{ cert: string; key: string }> {
  certificate ??= generate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec",
    algorithm: "sha256",
    extensions: [
      { name: "basicConstraints", cA: false },
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 7, ip: "127.0.0.1" },
          { type: 7, ip: "::1" },
          { type: 7, ip: "::ffff:7f00:1" }, // ::ffff:127.0.0.1 (selfsigned misreads the dotted form)
        ],
      },
    ],
  }).then((pems) => ({ cert: pems.cert, key: pems.private }));
  return certificate;
}

/**
 * Starts a receiver on `host` (default `::`, so that both 127.0.0.1 and ::1 reach it) and
 * port 0. The handler runs once the whole request body has arrived.
 */
export async function startServer(handler: Handler, host = "::"): Promise<TestServer> {
  const { cert, key } = await testCertificate();
  const requests: Received[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const server: Server = createServer({ cert, key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) if (typeof value === "string") headers[name] = value;
      const received = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      requests.push(received);
      handler(received, res, req);
    });
  });
  server.on("connection", (s: Socket) => {
    connections++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    requests,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on: bound once, then released. */
export async function closedPort(): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
