import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import {
  create,
  type DescMessage,
  type DescService,
  type JsonReadOptions,
  type JsonWriteOptions,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createServiceImplSpec,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type ServiceImpl,
} from "@connectrpc/connect";
import {
  createMethodSerializationLookup,
  encodeEnvelope,
  invokeUnaryImplementation,
  type MethodSerializationLookup,
} from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  errorToJsonBytes,
  parseTimeout as parseConnectTimeout,
} from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { Logger } from "@uab/core";

type Request = IncomingMessage | Http2ServerRequest;
type Response = ServerResponse | Http2ServerResponse;

/** A registered unary method with everything needed to serve it without re-deriving it per call. */
interface Entry {
  spec: MethodImplSpec & { kind: "unary" };
  serialization: MethodSerializationLookup<DescMessage, DescMessage>;
}

/** Options for {@link createFastUnary}. */
export interface FastUnaryOptions {
  /** The services and their implementations (as registered with the Connect router). */
  readonly services: readonly { service: DescService; impl: ServiceImpl<DescService> }[];
  /** The same interceptors the Connect adapter runs, in the same order. */
  readonly interceptors: readonly Interceptor[];
  /** Largest request message. */
  readonly readMaxBytes: number;
  /** Largest response message. */
  readonly writeMaxBytes: number;
  /** JSON options (the registry for `Any`). */
  readonly jsonOptions: Partial<JsonReadOptions & JsonWriteOptions>;
  /** Context values for a request (remote address). */
  readonly contextValues: (req: Request) => ContextValues;
  /** Logs failures that happen outside the interceptors (they log everything else). */
  readonly logger: Logger;
  /** Flags a request whose body did not decode; an interceptor turns the flag into INVALID_ARGUMENT. */
  readonly flagUndecodable: (values: ContextValues, problem: string) => void;
}

/**
 * Request headers over Node's header object, without copying them into a WHATWG `Headers`
 * (whose per-entry validation is a measurable part of a unary call). Supports what
 * interceptors and handlers use; writes go to a private copy.
 */
class NodeRequestHeaders {
  private readonly own: Record<string, string>;
  constructor(raw: Request["headers"]) {
    this.own = {};
    for (const [k, v] of Object.entries(raw)) {
      if (k.startsWith(":") || v === undefined) continue;
      this.own[k] = Array.isArray(v) ? v.join(", ") : v;
    }
  }
  get(name: string): string | null {
    return this.own[name.toLowerCase()] ?? null;
  }
  has(name: string): boolean {
    return name.toLowerCase() in this.own;
  }
  set(name: string, value: string): void {
    this.own[name.toLowerCase()] = value;
  }
  append(name: string, value: string): void {
    const k = name.toLowerCase();
    this.own[k] = this.own[k] === undefined ? value : `${this.own[k]}, ${value}`;
  }
  delete(name: string): void {
    delete this.own[name.toLowerCase()];
  }
  getSetCookie(): string[] {
    return [];
  }
  forEach(fn: (value: string, key: string, parent: Headers) => void): void {
    for (const [k, v] of Object.entries(this.own)) fn(v, k, this as unknown as Headers);
  }
  *entries(): IterableIterator<[string, string]> {
    yield* Object.entries(this.own);
  }
  *keys(): IterableIterator<string> {
    yield* Object.keys(this.own);
  }
  *values(): IterableIterator<string> {
    yield* Object.values(this.own);
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}

type Protocol = "grpc" | "connect";

/** Which fast protocol serves this request, or undefined to leave it to Connect-node. */
function protocolOf(req: Request): { protocol: Protocol; binary: boolean } | undefined {
  if (req.method !== "POST") return undefined;
  const raw = req.headers["content-type"];
  if (typeof raw !== "string") return undefined;
  const semi = raw.indexOf(";");
  const type = (semi < 0 ? raw : raw.slice(0, semi)).trim().toLowerCase();
  if (type === "application/grpc" || type === "application/grpc+proto") {
    // gRPC needs HTTP/2 trailers; compressed messages are left to the framework.
    if (req.httpVersionMajor !== 2) return undefined;
    const enc = req.headers["grpc-encoding"];
    if (enc !== undefined && enc !== "identity") return undefined;
    return { protocol: "grpc", binary: true };
  }
  if (type === "application/proto" || type === "application/json") {
    if (semi >= 0 && !/^\s*charset\s*=\s*"?utf-8"?\s*$/i.test(raw.slice(semi + 1))) return undefined;
    const enc = req.headers["content-encoding"];
    if (enc !== undefined && enc !== "identity") return undefined;
    const version = req.headers["connect-protocol-version"];
    if (version !== undefined && version !== "1") return undefined;
    return { protocol: "connect", binary: type === "application/proto" };
  }
  return undefined;
}

function readBody(req: Request, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > limit) {
        over = true;
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    const gone = () => reject(new ConnectError("the client went away before sending the whole request", Code.Canceled));
    // A stream reset before the request ended is a cancelled call, not one to wait for.
    req.once("aborted", gone);
    req.once("end", () => {
      if (req.aborted) gone();
      else if (!over) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    });
    req.once("error", reject);
  });
}

function headersToObject(h: Headers, into: Record<string, string> = {}, prefix = ""): Record<string, string> {
  h.forEach((v, k) => {
    into[prefix + k] = v;
  });
  return into;
}

/**
 * A lean server path for the calls that dominate a control plane's traffic: unary RPCs over
 * gRPC and the Connect protocol (binary or JSON), uncompressed, POST. Connect-node's
 * universal handler builds async-iterable pipelines, three `Headers` objects and linked
 * abort controllers per call and aborts each context when the call ends (Node builds a
 * `DOMException` for that); on the 2-core machines that is most of a unary call's CPU.
 *
 * This path reuses Connect's own pieces — the same interceptors through
 * `invokeUnaryImplementation`, Connect's serialization (limits included), envelope
 * encoding, timeout parsing, gRPC trailer status and Connect JSON errors — so behaviour is
 * the same; everything else (streaming, gRPC-Web, compression, GET, HTTP/1.1 gRPC) goes to
 * Connect-node unchanged. Returns a handler that answers true when it took the request.
 */
export function createFastUnary(options: FastUnaryOptions): (req: Request, res: Response) => boolean {
  const entries = new Map<string, Entry>();
  for (const { service, impl } of options.services) {
    const spec = createServiceImplSpec(service, impl);
    for (const method of service.methods) {
      if (method.methodKind !== "unary") continue;
      const m = spec.methods[method.localName] as MethodImplSpec;
      if (m?.kind !== "unary") continue;
      entries.set(`/${service.typeName}/${method.name}`, {
        spec: m as Entry["spec"],
        serialization: createMethodSerializationLookup(method, undefined, options.jsonOptions, {
          readMaxBytes: options.readMaxBytes,
          writeMaxBytes: options.writeMaxBytes,
        }),
      });
    }
  }

  const serve = async (req: Request, res: Response, entry: Entry, protocol: Protocol, binary: boolean) => {
    const method = entry.spec.method;
    const grpc = protocol === "grpc";
    const responseHeader = new Headers();
    const responseTrailer = new Headers();
    const requestHeader = new NodeRequestHeaders(req.headers) as unknown as Headers;
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableEnded) abort.abort(new ConnectError("the client went away", Code.Canceled));
    };
    res.once("close", onClose);
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = grpc
        ? parseGrpcTimeout((req.headers["grpc-timeout"] as string | null | undefined) ?? null, Number.MAX_SAFE_INTEGER)
        : parseConnectTimeout(
            (req.headers["connect-timeout-ms"] as string | null | undefined) ?? null,
            Number.MAX_SAFE_INTEGER,
          );
      if (timeout.error) throw timeout.error;
      const body = await readBody(req, options.readMaxBytes + (grpc ? 5 : 0));
      if (body === undefined) {
        throw new ConnectError(
          `message is larger than the configured readMaxBytes ${options.readMaxBytes}`,
          Code.ResourceExhausted,
        );
      }
      const values = options.contextValues(req);
      let input: unknown;
      let problem: string | undefined;
      let payload: Uint8Array = body;
      if (grpc) {
        if (body.length < 5 || body.readUInt32BE(1) !== body.length - 5) {
          problem = "the body is not exactly one gRPC message envelope";
        } else if (body[0] !== 0) {
          problem = `invalid envelope flags 0x${body[0]!.toString(16)}`;
        } else {
          payload = body.subarray(5);
        }
      }
      if (problem === undefined) {
        try {
          input = entry.serialization.getI(binary).parse(payload);
        } catch (e) {
          problem = e instanceof Error ? e.message : String(e);
        }
      }
      if (problem !== undefined) {
        options.flagUndecodable(values, problem);
        input = create(method.input as DescMessage);
      }
      const deadline = Date.now() + (timeout.timeoutMs ?? 0);
      const context: HandlerContext = {
        method,
        service: method.parent,
        requestMethod: "POST",
        protocolName: grpc ? "grpc" : "connect",
        url: `http://${req.headers[":authority"] ?? req.headers.host ?? "localhost"}${req.url ?? ""}`,
        signal: abort.signal,
        timeoutMs: () => (timeout.timeoutMs === undefined ? undefined : deadline - Date.now()),
        requestHeader,
        responseHeader,
        responseTrailer,
        values,
      } as HandlerContext;
      const call = invokeUnaryImplementation(entry.spec, context, input as never, [...options.interceptors]);
      const message =
        timeout.timeoutMs === undefined
          ? await call
          : await Promise.race([
              call,
              new Promise<never>((_, reject) => {
                timer = setTimeout(() => {
                  const e = new ConnectError("the operation timed out", Code.DeadlineExceeded);
                  abort.abort(e);
                  reject(e);
                }, timeout.timeoutMs);
              }),
            ]);
      const bytes = entry.serialization.getO(binary).serialize(message);
      if (grpc) {
        const headers = headersToObject(responseHeader, {
          "content-type": binary ? "application/grpc+proto" : "application/grpc",
        });
        const trailers = headersToObject(responseTrailer, { "grpc-status": "0" });
        res.writeHead(200, headers);
        (res as Http2ServerResponse).addTrailers(trailers);
        res.end(encodeEnvelope(0, bytes));
      } else {
        const headers = headersToObject(responseHeader, {
          "content-type": binary ? "application/proto" : "application/json",
        });
        headersToObject(responseTrailer, headers, "trailer-");
        headers["content-length"] = String(bytes.byteLength);
        res.writeHead(200, headers);
        res.end(bytes);
      }
    } catch (e) {
      if (!(e instanceof ConnectError))
        options.logger.error({ err: e, path: req.url }, "unary call failed outside the interceptors");
      const error =
        e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
      if (res.headersSent || res.writableEnded) return;
      if (grpc) {
        // Trailers-only response: status, message and details in the one HEADERS frame.
        const headers = headersToObject(responseHeader, { "content-type": "application/grpc+proto" });
        headersToObject(error.metadata, headers);
        const status = new Headers();
        setTrailerStatus(status, error);
        headersToObject(status, headers);
        res.writeHead(200, headers);
        res.end();
      } else {
        const json = errorToJsonBytes(error, options.jsonOptions);
        const headers = headersToObject(responseHeader, { "content-type": "application/json" });
        headersToObject(error.metadata, headers);
        headers["content-length"] = String(json.byteLength);
        res.writeHead(codeToHttpStatus(error.code), headers);
        res.end(json);
      }
    } finally {
      if (timer) clearTimeout(timer);
      res.off("close", onClose);
    }
  };

  return (req, res) => {
    const path = req.url ?? "";
    const entry = entries.get(path);
    if (!entry) return false;
    const p = protocolOf(req);
    if (!p) return false;
    void serve(req, res, entry, p.protocol, p.binary);
    return true;
  };
}
