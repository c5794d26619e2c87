import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import {
  type DescField,
  type DescMethod,
  type DescService,
  getOption,
  hasOption,
  ScalarType,
} from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { codeFromString, codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import { http } from "@uab/proto/gen/google/api/annotations_pb.js";
import type { HttpRoute } from "./server.js";

interface Route {
  verb: string;
  segments: (string | { field: string })[];
  verbSuffix: string | undefined;
  body: string;
  method: DescMethod;
}

/** Parses `/v1/tenants/{tenant_id}/projects/{project_id}:restore` into segments and custom verb. */
function parseTemplate(template: string): Pick<Route, "segments" | "verbSuffix"> {
  let path = template;
  let verbSuffix: string | undefined;
  const colon = path.lastIndexOf(":");
  if (colon > path.lastIndexOf("}")) {
    verbSuffix = path.slice(colon + 1);
    path = path.slice(0, colon);
  }
  const segments = path
    .split("/")
    .filter(Boolean)
    .map((s) => {
      const m = /^\{([a-z0-9_.]+)(=[^}]*)?\}$/.exec(s);
      return m ? { field: m[1]! } : s;
    });
  return { segments, verbSuffix };
}

function routesOf(services: readonly DescService[]): Route[] {
  const routes: Route[] = [];
  for (const service of services) {
    for (const method of service.methods) {
      if ((method.methodKind !== "unary" && method.methodKind !== "server_streaming") || !hasOption(method, http))
        continue;
      const rule = getOption(method, http);
      const add = (verb: string, template: string, body: string) =>
        routes.push({ verb, ...parseTemplate(template), body, method });
      const { pattern } = rule;
      if (pattern.case === "custom") add(pattern.value.kind.toUpperCase(), pattern.value.path, rule.body);
      else if (pattern.case) add(pattern.case.toUpperCase(), pattern.value, rule.body);
      for (const extra of rule.additionalBindings) {
        if (extra.pattern.case && extra.pattern.case !== "custom")
          add(extra.pattern.case.toUpperCase(), extra.pattern.value, extra.body);
      }
    }
  }
  return routes;
}

function match(route: Route, verb: string, path: string): Record<string, string> | undefined {
  if (route.verb !== verb) return undefined;
  let rest = path;
  if (route.verbSuffix !== undefined) {
    if (!rest.endsWith(`:${route.verbSuffix}`)) return undefined;
    rest = rest.slice(0, -(route.verbSuffix.length + 1));
  } else if (rest.slice(rest.lastIndexOf("/")).includes(":")) {
    return undefined;
  }
  const parts = rest.split("/").filter(Boolean);
  if (parts.length !== route.segments.length) return undefined;
  const vars: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const seg = route.segments[i]!;
    const part = decodeURIComponent(parts[i]!);
    if (typeof seg === "string") {
      if (seg !== part) return undefined;
    } else {
      vars[seg.field] = part;
    }
  }
  return vars;
}

/** Converts a query-string or path value to the JSON the field's type needs. */
function jsonValue(field: DescField | undefined, raw: string): unknown {
  if (field?.fieldKind !== "scalar") return raw;
  switch (field.scalar) {
    case ScalarType.BOOL:
      return raw === "true" || raw === "1";
    case ScalarType.INT32:
    case ScalarType.UINT32:
    case ScalarType.SINT32:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return Number.isNaN(Number(raw)) ? raw : Number(raw);
    default:
      return raw;
  }
}

function setPath(target: Record<string, unknown>, method: DescMethod, path: string, raw: string): void {
  const names = path.split(".");
  let obj = target;
  let desc = method.input;
  for (let i = 0; i < names.length - 1; i++) {
    const f = desc.fields.find((x) => x.name === names[i]);
    const key = names[i]!;
    if (obj[key] === undefined) obj[key] = {};
    obj = obj[key] as Record<string, unknown>;
    if (f?.fieldKind === "message") desc = f.message;
  }
  const last = names[names.length - 1]!;
  const field = desc.fields.find((x) => x.name === last);
  if (field?.fieldKind === "list") {
    if (obj[last] === undefined) obj[last] = [];
    (obj[last] as unknown[]).push(raw);
  } else {
    obj[last] = jsonValue(field, raw);
  }
}

async function readBody(req: IncomingMessage | Http2ServerRequest, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new Error("too large");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * A Connect error body as the `google.rpc.Status` JSON Envoy's transcoder returns
 * (`{code: 5, message, details: [{"@type": …}]}`), so REST clients see one error shape in
 * development and production.
 */
function toStatusJson(body: string, httpStatus: number): string {
  try {
    const e = JSON.parse(body) as {
      code?: string;
      message?: string;
      details?: { type: string; debug?: Record<string, unknown> }[];
    };
    return JSON.stringify({
      code: (e.code && codeFromString(e.code)) ?? Code.Unknown,
      message: e.message ?? "",
      details: (e.details ?? []).map((d) => ({ "@type": `type.googleapis.com/${d.type}`, ...(d.debug ?? {}) })),
    });
  } catch {
    return JSON.stringify({ code: 2, message: `upstream answered HTTP ${httpStatus}` });
  }
}

const FORWARDED = [
  "authorization",
  "idempotency-key",
  "uab-min-revision",
  "x-request-id",
  "traceparent",
  "tracestate",
  "user-agent",
];

/**
 * An embedded REST gateway for the all-in-one server, transcoding the `google.api.http`
 * routes of the contracts like Envoy's grpc_json_transcoder does in production: path
 * variables, query parameters and the body become the request message, which is sent to the
 * same server over the Connect protocol (so every interceptor applies). Answers are returned
 * as JSON; errors keep their HTTP status and take Envoy's `google.rpc.Status` shape.
 */
export function restGateway(
  services: readonly DescService[],
  target: () => string,
  readMaxBytes = 4 * 1024 * 1024,
): HttpRoute {
  const routes = routesOf(services);
  return async (req, res) => {
    const url = new URL(req.url ?? "/", "http://gateway");
    if (!url.pathname.startsWith("/v1/")) return false;
    const verb = (req.method ?? "GET").toUpperCase();
    let route: Route | undefined;
    let vars: Record<string, string> | undefined;
    for (const r of routes) {
      vars = match(r, verb, url.pathname);
      if (vars) {
        route = r;
        break;
      }
    }
    const reply = (status: number, body: unknown) => {
      (res as ServerResponse).writeHead(status, { "content-type": "application/json" });
      (res as ServerResponse).end(JSON.stringify(body));
    };
    if (!route || !vars) {
      reply(404, { code: 5, message: `no REST route for ${verb} ${url.pathname}` });
      return true;
    }
    let message: Record<string, unknown> = {};
    if (route.body) {
      let text: string;
      try {
        text = await readBody(req, readMaxBytes);
      } catch {
        reply(413, { code: 8, message: `request body exceeds ${readMaxBytes} bytes` });
        return true;
      }
      let parsed: unknown = {};
      try {
        parsed = text.trim() ? JSON.parse(text) : {};
      } catch {
        reply(400, { code: 3, message: "request body is not valid JSON" });
        return true;
      }
      if (route.body === "*") message = (parsed ?? {}) as Record<string, unknown>;
      else message[route.body] = parsed;
    } else {
      for (const [k, v] of url.searchParams) setPath(message, route.method, k, v);
    }
    for (const [k, v] of Object.entries(vars)) setPath(message, route.method, k, v);
    const headers: Record<string, string> = { "content-type": "application/json", "connect-protocol-version": "1" };
    for (const h of FORWARDED) {
      const v = req.headers[h];
      if (typeof v === "string") headers[h] = v;
    }
    if (route.method.methodKind === "server_streaming") {
      await relayStream(`${target()}/${route.method.parent.typeName}/${route.method.name}`, headers, message, res);
      return true;
    }
    const upstream = await fetch(`${target()}/${route.method.parent.typeName}/${route.method.name}`, {
      method: "POST",
      headers,
      body: JSON.stringify(message),
    });
    let out = await upstream.text();
    if (!upstream.ok) out = toStatusJson(out, upstream.status);
    const responseHeaders: Record<string, string> = { "content-type": "application/json" };
    for (const h of ["x-request-id", "idempotent-replayed"]) {
      const v = upstream.headers.get(h);
      if (v) responseHeaders[h] = v;
    }
    (res as Http2ServerResponse).writeHead(upstream.status, responseHeaders);
    (res as Http2ServerResponse).end(out);
    return true;
  };
}

/**
 * One Connect envelope: flags byte, big-endian length, payload. (connect-es has envelope
 * helpers, but marks them internal and outside semantic versioning; the format is five bytes.)
 */
function envelope(json: unknown): Uint8Array {
  const payload = Buffer.from(JSON.stringify(json), "utf8");
  const out = Buffer.alloc(5 + payload.length);
  out.writeUInt32BE(payload.length, 1);
  payload.copy(out, 5);
  return out;
}

/**
 * A server-streaming RPC over REST, as Envoy's transcoder does it: the messages as one JSON
 * array, written as they arrive. An error before the first message is an ordinary JSON error
 * with its HTTP status; an error after it cannot change the status any more, so the array is
 * left unterminated and the connection reset (a client sees a truncated, invalid body).
 */
async function relayStream(
  url: string,
  baseHeaders: Record<string, string>,
  message: unknown,
  res: ServerResponse | Http2ServerResponse,
): Promise<void> {
  const out = res as ServerResponse;
  const headers = { ...baseHeaders, "content-type": "application/connect+json" };
  const upstream = await fetch(url, { method: "POST", headers, body: envelope(message) });
  if (!upstream.ok || !upstream.body) {
    out.writeHead(upstream.status, { "content-type": "application/json" });
    out.end(toStatusJson(await upstream.text(), upstream.status));
    return;
  }
  let buffered = Buffer.alloc(0);
  let started = false;
  const begin = () => {
    if (started) return;
    started = true;
    out.writeHead(200, { "content-type": "application/json" });
    out.write("[");
  };
  const reader = upstream.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (value) buffered = Buffer.concat([buffered, value]);
    while (buffered.length >= 5) {
      const flags = buffered[0]!;
      const length = buffered.readUInt32BE(1);
      if (buffered.length < 5 + length) break;
      const payload = buffered.subarray(5, 5 + length).toString("utf8");
      buffered = buffered.subarray(5 + length);
      if ((flags & 0x02) === 0) {
        if (started) out.write(",");
        else begin();
        out.write(payload);
        continue;
      }
      // End of stream: an error, or success.
      const end = JSON.parse(payload || "{}") as { error?: { code?: string; message?: string } };
      if (end.error) {
        const code = (end.error.code ? codeFromString(end.error.code) : undefined) ?? Code.Unknown;
        if (!started) {
          out.writeHead(codeToHttpStatus(code), { "content-type": "application/json" });
          out.end(JSON.stringify({ code, message: end.error.message ?? "", details: [] }));
        } else {
          out.destroy();
        }
        return;
      }
      begin();
      out.end("]");
      return;
    }
    if (done) break;
  }
  if (started) out.destroy();
  else {
    out.writeHead(502, { "content-type": "application/json" });
    out.end(JSON.stringify({ code: Code.Unavailable, message: "the stream ended without its end message" }));
  }
}
