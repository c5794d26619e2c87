import { createServer as createHttp1Server, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttp2Server, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import { createServer as createNetServer, type Socket } from "node:net";
import { createRegistry, type DescService, type Registry } from "@bufbuild/protobuf";
import { createContextValues, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Authorizer, TokenVerifier } from "@uab/auth";
import type { Logger } from "@uab/core";
import { ServerReflection as ServerReflectionV1 } from "@uab/proto/gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "@uab/proto/gen/grpc/reflection/v1alpha/reflection_pb.js";
import { Health } from "@uab/proto/gen/health/v1/health_pb.js";
import type { Kysely } from "kysely";
import { kRemoteAddress, kRequestContext } from "./context-values.js";
import { errorInterceptor } from "./errors.js";
import { HealthState, healthService } from "./health.js";
import { idempotencyInterceptor } from "./idempotency.js";
import {
  authenticationInterceptor,
  authorizationInterceptor,
  observeInterceptor,
  validationInterceptor,
} from "./interceptors.js";
import { reflectionServices } from "./reflection.js";

/** One service to serve. */
export interface ServiceRegistration<S extends DescService = DescService> {
  /** The service descriptor (`TenancyService`). */
  readonly service: S;
  /** Its implementation. */
  readonly impl: ServiceImpl<S>;
  /** The service's database, where its idempotency keys live. */
  readonly db?: Kysely<unknown>;
}

/** Serves plain HTTP routes beside the RPCs; returns true when it answered the request. */
export type HttpRoute = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => boolean | Promise<boolean>;

/** Options for {@link startServer}. */
export interface ServerOptions {
  /** Logs RPC failures and lifecycle. */
  readonly logger: Logger;
  /** TCP port (0 picks a free one). */
  readonly port: number;
  /** Interface to bind; defaults to 127.0.0.1. */
  readonly host?: string;
  /** The services to serve. */
  readonly services: readonly ServiceRegistration[];
  /** Verifies bearer tokens. */
  readonly verifier: TokenVerifier;
  /** Decides permissions. */
  readonly authorizer: Authorizer;
  /** Registry for reflection and JSON `Any` (all contract files). */
  readonly registry: Registry;
  /** Largest request message accepted, in bytes (default 4 MiB). */
  readonly readMaxBytes?: number;
  /** Largest response message sent, in bytes (default 16 MiB). */
  readonly writeMaxBytes?: number;
  /** Extra HTTP routes (JWKS, REST gateway) tried before answering 404. */
  readonly routes?: readonly HttpRoute[];
  /** Health state to use; one is created when not given. */
  readonly health?: HealthState;
}

/** A running server. */
export interface RunningServer {
  /** The bound port. */
  readonly port: number;
  /** `http://host:port`. */
  readonly url: string;
  /** Serving state (grpc.health.v1, /healthz, /readyz). */
  readonly health: HealthState;
  /** Stops accepting, marks not serving, waits up to `graceMs` for in-flight calls, then closes. */
  close(graceMs?: number): Promise<void>;
}

const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * Serves UAB services on one port with Connect-node: gRPC, gRPC-Web and Connect over
 * HTTP/2 (cleartext, prior knowledge) and Connect/gRPC-Web over HTTP/1.1, told apart by the
 * connection preface. Every RPC passes the same interceptors, in order: observe (request
 * id, span, context) → errors (one mapping) → authentication → validation (protovalidate) →
 * authorization (the access option) → idempotency. Also serves grpc.health.v1, server
 * reflection, `/healthz` and `/readyz`.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const health = options.health ?? new HealthState();
  const stores = new Map<string, Kysely<unknown>>();
  for (const s of options.services) {
    if (s.db) stores.set(s.service.typeName, s.db);
    health.set(s.service.typeName, false);
  }
  const served = [...options.services.map((s) => s.service.typeName), Health.typeName];
  const registry = createRegistry(options.registry, Health.file, ...reflectionFiles());
  const reflection = reflectionServices(registry, [...served, ...reflectionNames()]);

  const handler = connectNodeAdapter({
    readMaxBytes: options.readMaxBytes ?? 4 * 1024 * 1024,
    writeMaxBytes: options.writeMaxBytes ?? 16 * 1024 * 1024,
    jsonOptions: { registry: options.registry },
    contextValues(req) {
      const values = createContextValues();
      values.set(kRemoteAddress, req.socket?.remoteAddress);
      return values;
    },
    interceptors: [
      observeInterceptor(),
      errorInterceptor({
        logger: options.logger,
        requestId: (r) => r.contextValues.get(kRequestContext)?.requestId ?? "unknown",
      }),
      authenticationInterceptor(options.verifier),
      validationInterceptor(),
      authorizationInterceptor(options.authorizer),
      idempotencyInterceptor({ stores, logger: options.logger }),
    ],
    routes(router) {
      for (const s of options.services) router.service(s.service, s.impl);
      router.service(Health, healthService(health));
      for (const r of reflection) router.service(r.service, r.impl);
    },
    async fallback(req, res) {
      for (const route of options.routes ?? []) {
        if (await route(req as never, res as never)) return;
      }
      const path = (req.url ?? "").split("?")[0];
      if (path === "/healthz") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("ok\n");
        return;
      }
      if (path === "/readyz") {
        const problem = await health.unready();
        res.writeHead(problem ? 503 : 200, { "content-type": "text/plain" });
        res.end(problem ? `not ready: ${problem}\n` : "ready\n");
        return;
      }
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ code: "not_found", message: `no route for ${req.method} ${path}` }));
    },
  });

  // Lifecycle of in-flight requests, for a graceful close.
  let inflight = 0;
  let drained: (() => void) | undefined;
  const tracked = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => {
    inflight++;
    res.on("close", () => {
      inflight--;
      if (inflight === 0) drained?.();
    });
    handler(req as never, res as never);
  };

  const h2 = createHttp2Server({ maxSessionMemory: 64 }, tracked);
  const h1 = createHttp1Server({ keepAliveTimeout: 65_000 }, tracked);
  const sockets = new Set<Socket>();
  const net = createNetServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.once("readable", () => {
      const head: Buffer | null = socket.read(HTTP2_PREFACE.length) ?? socket.read();
      if (head === null) {
        socket.once("readable", () => socket.destroy());
        return;
      }
      socket.unshift(head);
      const isH2 =
        head.length >= 3 &&
        HTTP2_PREFACE.subarray(0, Math.min(head.length, HTTP2_PREFACE.length)).equals(
          head.subarray(0, Math.min(head.length, HTTP2_PREFACE.length)),
        );
      (isH2 ? h2 : h1).emit("connection", socket);
    });
  });
  h2.on("sessionError", (err) => options.logger.debug({ err }, "http2 session error"));
  h1.on("clientError", (_err, socket) => socket.destroy());

  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    net.once("error", reject);
    net.listen(options.port, host, () => resolve());
  });
  const address = net.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  health.setAll(true);

  return {
    port,
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    health,
    async close(graceMs = 10_000) {
      health.setAll(false);
      net.close();
      if (inflight > 0) {
        await Promise.race([new Promise<void>((r) => (drained = r)), new Promise((r) => setTimeout(r, graceMs))]);
      }
      h2.close();
      h1.close();
      for (const s of sockets) s.destroy();
    },
  };
}

function reflectionFiles() {
  return [ServerReflectionV1.file, ServerReflectionV1Alpha.file];
}

function reflectionNames(): string[] {
  return ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];
}

export type { DescService };
