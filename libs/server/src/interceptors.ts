import { create, type DescMessage, type DescMethod, type Message } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator } from "@bufbuild/protovalidate";
import { RE2JS } from "@bufbuild/re2";
import { Code, ConnectError, type ContextValues, createContextKey, type Interceptor } from "@connectrpc/connect";
import type { AuthorizationScope, Authorizer, TokenVerifier } from "@uab/auth";
import {
  extractTraceContext,
  InvalidArgumentError,
  NotFoundError,
  newId,
  PermissionDeniedError,
  type RequestContext,
  runWithRequestContext,
  SpanKind,
  UnauthenticatedError,
  withSpan,
} from "@uab/core";
import { type Access, accessOf, Scope } from "@uab/proto";
import { AccessSchema } from "@uab/proto/gen/uab/options/v1/options_pb.js";
import { kPrincipal, kRemoteAddress, kRequestContext } from "./context-values.js";
import { fastAcceptFor } from "./fast-validation.js";

const kSingleMessage = createContextKey<Message | undefined>(undefined, {
  description: "uab server-streaming request message",
});

/** The single message of a unary or server-streaming request; undefined for client streams. */
async function firstMessage(req: {
  stream: boolean;
  message: unknown;
  contextValues: ContextValues;
}): Promise<Message | undefined> {
  if (!req.stream) return req.message as Message;
  return req.contextValues.get(kSingleMessage);
}

/**
 * Reads the one request message of a server-streaming RPC before the other interceptors run,
 * so validation and authorization see it as they do a unary request's, and hands the handler
 * a stream that yields it again.
 */
export function singleMessageInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (!req.stream || req.method.methodKind !== "server_streaming") return next(req);
    let message: Message | undefined;
    for await (const m of req.message) message = m as Message;
    req.contextValues.set(kSingleMessage, message);
    const replay = (async function* () {
      if (message) yield message;
    })();
    return next({ ...req, message: replay } as typeof req);
  };
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Standard infrastructure services served beside UAB's own: they declare no UAB access
 * option and are public, as their protocols expect (Kubernetes probes and schema tools call
 * them without credentials). Everything else must declare its access.
 */
export const INFRASTRUCTURE_SERVICES: ReadonlySet<string> = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);

const PUBLIC_ACCESS = create(AccessSchema, { public: true, readOnly: true });

const accessCache = new WeakMap<DescMethod, Access>();

/**
 * The access rule of an RPC: its declared option, or public for infrastructure services.
 * Decoded once per method (reading an option from the descriptor builds an extension
 * container each time, measurable on every call).
 */
export function accessFor(method: DescMethod): Access {
  let access = accessCache.get(method);
  if (!access) {
    access = INFRASTRUCTURE_SERVICES.has(method.parent.typeName) ? PUBLIC_ACCESS : accessOf(method);
    accessCache.set(method, access);
  }
  return access;
}

/**
 * Outermost interceptor: gives the RPC a request id (the client's `X-Request-Id` when it is
 * sane), a server span continuing the caller's W3C trace context, and the request context
 * that log lines and outbox events read. Echoes the request id in the response headers.
 */
export function observeInterceptor(): Interceptor {
  return (next) => async (req) => {
    const supplied = req.header.get("x-request-id");
    const ctx: RequestContext = {
      requestId: supplied && REQUEST_ID.test(supplied) ? supplied : newId("request"),
      ip: req.contextValues.get(kRemoteAddress),
      userAgent: req.header.get("user-agent") ?? undefined,
    };
    req.contextValues.set(kRequestContext, ctx);
    const traceHeaders: Record<string, string> = {};
    const tp = req.header.get("traceparent");
    if (tp) traceHeaders.traceparent = tp;
    const ts = req.header.get("tracestate");
    if (ts) traceHeaders.tracestate = ts;
    return runWithRequestContext(ctx, () =>
      withSpan(
        `${req.service.typeName}/${req.method.name}`,
        {
          kind: SpanKind.SERVER,
          parent: extractTraceContext(traceHeaders),
          attributes: {
            "rpc.system": "connect_rpc",
            "rpc.service": req.service.typeName,
            "rpc.method": req.method.name,
          },
        },
        async (span) => {
          try {
            const res = await next(req);
            res.header.set("x-request-id", ctx.requestId);
            return res;
          } catch (e) {
            if (e instanceof ConnectError) {
              e.metadata.set("x-request-id", ctx.requestId);
              span.setAttribute("rpc.connect_rpc.error_code", Code[e.code] ?? String(e.code));
            }
            throw e;
          }
        },
      ),
    );
  };
}

/**
 * The field a violation is about. Message-level CEL rules (cross-field checks) have no field
 * path; by UAB convention their id starts with the field they constrain
 * (`display_name.required`), so that field is named.
 */
function fieldOf(input: DescMessage, v: { field: Parameters<typeof pathToString>[0]; ruleId: string }): string {
  const path = pathToString(v.field);
  if (path) return path;
  const first = v.ruleId.split(".")[0] ?? "";
  return input.fields.some((f) => f.name === first) ? first : "";
}

/**
 * Validates every request message against the protovalidate rules declared in the proto.
 * A violation becomes INVALID_ARGUMENT whose message names the field(s) and which carries a
 * `google.rpc.BadRequest` with one field violation each. Handlers never re-check shape.
 */
export function validationInterceptor(): Interceptor {
  const validator = createValidator({ regexMatch: schemaRegexMatch });
  return (next) => async (req) => {
    const msg = await firstMessage(req);
    if (msg && fastAcceptFor((req.method.input as DescMessage).typeName)?.(msg) !== true) {
      const result = validator.validate(req.method.input as DescMessage, msg);
      if (result.kind === "invalid") {
        const input = req.method.input as DescMessage;
        const violations = result.violations.map((v) => ({ field: fieldOf(input, v), description: v.message }));
        throw new InvalidArgumentError(
          "INVALID_REQUEST",
          violations.map((v) => `${v.field}: ${v.description}`).join("; "),
          { violations },
        );
      }
      if (result.kind === "error") throw result.error;
    }
    return next(req);
  };
}

function readScope(scope: Scope, msg: Message | undefined): AuthorizationScope {
  const m = (msg ?? {}) as unknown as Record<string, unknown>;
  const s = (k: string) => (typeof m[k] === "string" && m[k] !== "" ? (m[k] as string) : undefined);
  switch (scope) {
    case Scope.PLATFORM:
      return { type: "platform" };
    case Scope.TENANT:
      return { type: "tenant", tenantId: s("tenantId") };
    case Scope.PROJECT:
      return { type: "project", tenantId: s("tenantId"), projectId: s("projectId") };
    case Scope.TEAM:
      return { type: "team", tenantId: s("tenantId"), teamId: s("teamId") };
    default:
      throw new Error("RPC declares a permission without a scope");
  }
}

const NATIVE_INPUT_LIMIT = 1024;
const nativePatterns = new Map<string, RegExp | null>();
const re2Patterns = new Map<string, ReturnType<typeof RE2JS.compile>>();

/**
 * Matches the `pattern` rules of UAB's own protos. They are simple, anchored patterns whose
 * RE2 and ECMAScript meanings agree, so inputs up to 1 KiB are matched with the platform's
 * RegExp (an order of magnitude faster than the RE2 engine written in JS, and most of the
 * validation cost of a hot RPC); a longer input, or a pattern the platform cannot compile
 * as it is, goes to RE2, which keeps matching linear in the input however it is crafted.
 */
export function schemaRegexMatch(pattern: string, against: string): boolean {
  if (against.length <= NATIVE_INPUT_LIMIT) {
    let native = nativePatterns.get(pattern);
    if (native === undefined) {
      try {
        native = new RegExp(pattern, "u");
      } catch {
        native = null;
      }
      if (nativePatterns.size > 1024) nativePatterns.clear();
      nativePatterns.set(pattern, native);
    }
    if (native) return native.test(against);
  }
  let re2 = re2Patterns.get(pattern);
  if (!re2) {
    re2 = RE2JS.compile(pattern);
    if (re2Patterns.size > 1024) re2Patterns.clear();
    re2Patterns.set(pattern, re2);
  }
  return re2.test(against);
}

/**
 * Authenticates every RPC that is not declared public: it needs a valid bearer access
 * token, whose principal goes into the context values and the request context. Step-up
 * RPCs also need a second factor no older than they declare.
 */
export function authenticationInterceptor(verifier: TokenVerifier): Interceptor {
  return (next) => async (req) => {
    const access = accessFor(req.method);
    if (access.public) return next(req);
    const header = req.header.get("authorization");
    const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!match)
      throw new UnauthenticatedError(
        "TOKEN_MISSING",
        "missing bearer token: send `Authorization: Bearer <access token>`",
      );
    const verified = await verifier.verify(match[1]!);
    const principal = verified.principal;
    req.contextValues.set(kPrincipal, principal);
    const ctx = req.contextValues.get(kRequestContext);
    if (ctx) ctx.principal = principal;
    if (access.stepUpMaxAgeSeconds > 0) {
      const age = verified.mfaTime === undefined ? Number.POSITIVE_INFINITY : Date.now() / 1000 - verified.mfaTime;
      if (age > access.stepUpMaxAgeSeconds) {
        throw new UnauthenticatedError(
          "STEP_UP_REQUIRED",
          `this operation needs a second factor presented within ${access.stepUpMaxAgeSeconds} s`,
          {
            metadata: { max_age: String(access.stepUpMaxAgeSeconds) },
          },
        );
      }
    }
    return next(req);
  };
}

/**
 * The header a client sends to have its RPC authorized on data at least as fresh as a
 * revision an authorization write returned (read-your-writes across services).
 */
export const MIN_REVISION_HEADER = "uab-min-revision";

/**
 * The one enforcement point for permissions. Reads the RPC's `(uab.options.v1.access)`
 * option and asks the {@link Authorizer} whether the principal holds the permission at the
 * scope named by the request's `tenant_id`/`project_id`/`team_id`. A principal of one
 * tenant asking about another tenant is told NOT_FOUND, never PERMISSION_DENIED, so tenants
 * cannot probe for each other.
 */
export function authorizationInterceptor(authorizer: Authorizer): Interceptor {
  return (next) => async (req) => {
    const access = accessFor(req.method);
    if (access.public || access.authenticated) return next(req);
    if (!access.permission) throw new Error(`${req.method.name} declares neither permission, public nor authenticated`);
    const principal = req.contextValues.get(kPrincipal);
    if (!principal) throw new UnauthenticatedError("TOKEN_MISSING", "missing bearer token");
    const scope = readScope(access.scope, await firstMessage(req));
    const ctx = req.contextValues.get(kRequestContext);
    if (ctx && scope.tenantId) ctx.tenantId = scope.tenantId;
    const decision = await authorizer.authorize({
      principal,
      permission: access.permission,
      scope,
      minRevision: req.header.get(MIN_REVISION_HEADER) ?? undefined,
      attributes: { ip: ctx?.ip, userAgent: ctx?.userAgent },
    });
    if (!decision.allowed) {
      if (principal.tenantId !== undefined && scope.tenantId !== undefined && scope.tenantId !== principal.tenantId) {
        throw new NotFoundError("TENANT_NOT_FOUND", `tenant ${scope.tenantId} not found`);
      }
      throw new PermissionDeniedError("PERMISSION_DENIED", `permission ${access.permission} denied`, {
        metadata: { permission: access.permission },
      });
    }
    return next(req);
  };
}
