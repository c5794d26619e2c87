import { createServer as createHttp1Server, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttp2Server, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import { createServer as createNetServer, type Socket } from "node:net";
import { createRegistry, type DescService, fromBinary, type Registry } from "@bufbuild/protobuf";
import { createContextKey, createContextValues, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Authorizer, TokenVerifier } from "@uab/auth";
import { InvalidArgumentError, type Logger } from "@uab/core";
import { ServerReflection as ServerReflectionV1 } from "@uab/proto/gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "@uab/proto/gen/grpc/reflection/v1alpha/reflection_pb.js";
import { Health } from "@uab/proto/gen/health/v1/health_pb.js";
import type { Kysely } from "kysely";
import { kRemoteAddress, kRequestContext } from "./context-values.js";
import { errorInterceptor } from "./errors.js";
import { createFastUnary } from "./fast-unary.js";
import { HealthState, healthService } from "./health.js";
import { idempotencyInterceptor, replayableImpl } from "./idempotency.js";
import {
  authenticationInterceptor,
  authorizationInterceptor,
  observeInterceptor,
  singleMessageInterceptor,
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
 * id, span, context) → errors (one mapping) → malformed input (binary bodies that do not
 * decode are INVALID_ARGUMENT, not INTERNAL) → authentication → validation (protovalidate) →
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

  const readMaxBytes = options.readMaxBytes ?? 4 * 1024 * 1024;
  const writeMaxBytes = options.writeMaxBytes ?? 16 * 1024 * 1024;
  const jsonOptions = { registry: options.registry };
  const contextValues = (req: { socket?: { remoteAddress?: string | undefined } | null }) => {
    const values = createContextValues();
    values.set(kRemoteAddress, req.socket?.remoteAddress);
    return values;
  };
  const interceptors = [
    observeInterceptor(),
    errorInterceptor({
      logger: options.logger,
      requestId: (r) => r.contextValues.get(kRequestContext)?.requestId ?? "unknown",
    }),
    malformedInputInterceptor(),
    singleMessageInterceptor(),
    authenticationInterceptor(options.verifier),
    validationInterceptor(),
    authorizationInterceptor(options.authorizer),
    idempotencyInterceptor({ stores, logger: options.logger }),
  ];
  // Services with an idempotency store replay stored responses through their implementation.
  const implementations = [
    ...options.services.map((s) => ({ service: s.service, impl: s.db ? replayableImpl(s.service, s.impl) : s.impl })),
    { service: Health as DescService, impl: healthService(health) as unknown as ServiceImpl<DescService> },
  ];
  const fast = createFastUnary({
    services: implementations as { service: DescService; impl: ServiceImpl<DescService> }[],
    interceptors,
    readMaxBytes,
    writeMaxBytes,
    jsonOptions,
    contextValues: (req) => contextValues(req),
    logger: options.logger,
    flagUndecodable: (values, problem) => values.set(kUndecodable, problem),
  });
  const handler = connectNodeAdapter({
    readMaxBytes,
    writeMaxBytes,
    jsonOptions,
    contextValues,
    interceptors,
    routes(router) {
      for (const s of implementations) router.service(s.service, s.impl);
      for (const r of reflection) router.service(r.service, r.impl);
      // Registered handlers are wrapped in place: connectNodeAdapter reads the list afterwards.
      const handlers = router.handlers as UniversalHandler[];
      for (let i = 0; i < handlers.length; i++) handlers[i] = checkBinaryInput(handlers[i]!, readMaxBytes);
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
    if (!fast(req, res)) handler(req as never, res as never);
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

/** Why a binary request body did not decode, set by {@link checkBinaryInput}. */
const kUndecodable = createContextKey<string | undefined>(undefined, { description: "uab undecodable request" });

/** How a binary request body is framed, by content type; undefined for bodies not checked. */
function binaryFraming(req: UniversalServerRequest): "raw" | "enveloped" | undefined {
  if (req.method !== "POST") return undefined;
  const type = (req.header.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "application/proto") {
    // Connect unary; a compressed body is left to the framework.
    const encoding = req.header.get("content-encoding");
    return !encoding || encoding === "identity" ? "raw" : undefined;
  }
  if (
    ["application/grpc", "application/grpc+proto", "application/grpc-web", "application/grpc-web+proto"].includes(type)
  ) {
    return "enveloped";
  }
  return undefined;
}

function isAsyncIterable(v: unknown): v is AsyncIterable<Uint8Array> {
  return typeof v === "object" && v !== null && Symbol.asyncIterator in v;
}

/** Why `bytes` (a whole request body) is not a valid request, or undefined when it is (or cannot be told here). */
function undecodable(
  handler: UniversalHandler,
  req: UniversalServerRequest,
  framing: "raw" | "enveloped",
  bytes: Uint8Array,
) {
  let payload = bytes;
  if (framing === "enveloped") {
    // A body that is not exactly one complete envelope is left to the framework (it answers
    // INVALID_ARGUMENT for truncated frames).
    if (bytes.length < 5) return undefined;
    const flags = bytes[0]!;
    const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(1);
    if (length !== bytes.length - 5) return undefined;
    if ((flags & ~1) !== 0) return `invalid envelope flags 0x${flags.toString(16)}`;
    if (flags === 1) {
      const encoding = req.header.get("grpc-encoding");
      return !encoding || encoding === "identity" ? "compressed message without grpc-encoding" : undefined;
    }
    payload = bytes.subarray(5);
  }
  try {
    fromBinary(handler.method.input, payload);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/**
 * Connect-node answers a binary body that does not decode as the method's input with
 * INTERNAL (HTTP 500), so a client's garbage would look like a server fault. This wraps a
 * unary handler to decode binary bodies first: an undecodable body is replaced by an empty
 * message and flagged, and {@link malformedInputInterceptor} turns the flag into
 * INVALID_ARGUMENT, which travels the normal error path (details, request id, and each
 * protocol's own error format). Bodies over the size limit are passed on untouched for the
 * framework's RESOURCE_EXHAUSTED.
 */
function checkBinaryInput(handler: UniversalHandler, readMaxBytes: number): UniversalHandler {
  if (handler.method.methodKind !== "unary") return handler;
  const checked = async (req: UniversalServerRequest) => {
    const framing = binaryFraming(req);
    if (!framing || !isAsyncIterable(req.body)) return handler(req);
    const iterator = req.body[Symbol.asyncIterator]();
    const chunks: Uint8Array[] = [];
    let size = 0;
    let done = false;
    while (size <= readMaxBytes + 5) {
      const r = await iterator.next();
      if (r.done) {
        done = true;
        break;
      }
      chunks.push(r.value);
      size += r.value.byteLength;
    }
    const bytes = Buffer.concat(chunks);
    if (!done) {
      // Too large: hand the framework everything, read and unread.
      return handler({
        ...req,
        body: (async function* () {
          yield bytes;
          for (let r = await iterator.next(); !r.done; r = await iterator.next()) yield r.value;
        })(),
      });
    }
    const problem = undecodable(handler, req, framing, bytes);
    if (problem !== undefined) req.contextValues?.set(kUndecodable, problem);
    const body = problem === undefined ? bytes : new Uint8Array(framing === "enveloped" ? 5 : 0);
    return handler({
      ...req,
      body: (async function* () {
        yield body;
      })(),
    });
  };
  return Object.assign(checked, {
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    supportedContentType: handler.supportedContentType,
    protocolNames: handler.protocolNames,
    allowedMethods: handler.allowedMethods,
  });
}

/** Fails a call whose binary body did not decode (see {@link checkBinaryInput}) with INVALID_ARGUMENT. */
function malformedInputInterceptor(): Interceptor {
  return (next) => async (req) => {
    const problem = req.contextValues.get(kUndecodable);
    if (problem !== undefined) {
      throw new InvalidArgumentError(
        "MALFORMED_REQUEST",
        `the request body is not a valid ${req.method.input.typeName}: ${problem}`,
      );
    }
    return next(req);
  };
}

function reflectionFiles() {
  return [ServerReflectionV1.file, ServerReflectionV1Alpha.file];
}

function reflectionNames(): string[] {
  return ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];
}
