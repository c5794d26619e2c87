import { AsyncLocalStorage } from "node:async_hooks";

/** The kinds of principal that can call UAB. */
export type PrincipalType = "user" | "service_account" | "api_key" | "system";

/**
 * The authenticated caller of an RPC, taken from a verified access token. A platform
 * principal has no `tenantId`; a tenant principal belongs to exactly one tenant.
 */
export interface Principal {
  /** `usr_…`, `sa_…`, `key_…` or `system`. */
  readonly id: string;
  /** What kind of identity this is. */
  readonly type: PrincipalType;
  /** The tenant the principal belongs to; undefined for platform principals. */
  readonly tenantId?: string | undefined;
  /** The session the token was issued in, if any. */
  readonly sessionId?: string | undefined;
  /** The real actor when this principal is being impersonated (RFC 8693 `act.sub`). */
  readonly impersonatorId?: string | undefined;
  /** Authentication methods used (`pwd`, `otp`, `mfa`…), from the token's `amr`. */
  readonly amr: readonly string[];
  /** When the user authenticated (seconds since epoch), from `auth_time`. */
  readonly authTime?: number | undefined;
  /** When a second factor was last presented (seconds since epoch), from `mfa_time`. */
  readonly mfaTime?: number | undefined;
  /** Revision of the principal's role bindings the token was issued at, if any. */
  readonly rolesRevision?: string | undefined;
}

/** The system itself, for background work (purges, relays, consumers). */
export const SYSTEM_PRINCIPAL: Principal = Object.freeze({ id: "system", type: "system", amr: [] });

/** What every log line and event of one request should know about it. */
export interface RequestContext {
  /** `req_…`, or the client's `X-Request-Id` when it sent a sane one. */
  readonly requestId: string;
  /** The tenant the request acts in, once known. */
  tenantId?: string | undefined;
  /** The authenticated caller, once known. */
  principal?: Principal | undefined;
  /** Client address as seen by UAB. */
  readonly ip?: string | undefined;
  /** Client user agent. */
  readonly userAgent?: string | undefined;
}

const storage = new AsyncLocalStorage<RequestContext>();

/** Runs `fn` with `ctx` as the current request context (seen by the logger and the outbox). */
export function runWithRequestContext<T>(ctx: RequestContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

/** The current request context, or undefined outside a request (background jobs). */
export function currentRequestContext(): RequestContext | undefined {
  return storage.getStore();
}
