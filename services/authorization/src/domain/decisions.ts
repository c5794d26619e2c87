/**
 * Decisions over fresh-enough snapshots: Check, BatchCheck, Explain, the reverse lookups,
 * and the in-process {@link LocalAuthorizer} the enforcement interceptor of every service
 * hosted with this one asks. Denials at enforcement are recorded as `AccessDenied` events.
 */
import type { AuthorizationRequest, Authorizer, Decision } from "@uab/auth";
import {
  currentRequestContext,
  type Logger,
  type Principal,
  type RequestContext,
  runWithRequestContext,
} from "@uab/core";
import { withPlatform } from "@uab/db";
import { DecisionReason } from "@uab/proto/gen/uab/authorization/v1/decision_pb.js";
import { AccessDeniedSchema } from "@uab/proto/gen/uab/authorization/v1/events_pb.js";
import { principalToProto, scopeRefToProto } from "../convert.js";
import type { DecisionRequest, EngineDecision, SubjectPrincipal, TraceStep } from "../engine/evaluator.js";
import {
  type PlatformSnapshot,
  parseRevisionToken,
  revisionKey,
  revisionToken,
  type ScopeRef,
  type TenantSnapshot,
} from "../engine/model.js";
import { type AuthorizationDeps, emit, invalid } from "./common.js";

/** The snapshots a decision is made on, and the revision token naming them. */
export interface DecisionBasis {
  readonly platform: PlatformSnapshot;
  readonly tenant: TenantSnapshot | undefined;
  readonly revision: string;
}

/** Parses `min_revision` (comma-separated `key@n` tokens); throws naming `field`. */
export function parseMinRevision(
  token: string | undefined,
  tenantId: string | undefined,
  field = "min_revision",
): { platform?: bigint; tenant?: bigint } {
  const out: { platform?: bigint; tenant?: bigint } = {};
  if (!token) return out;
  for (const part of token.split(",")) {
    const parsed = parseRevisionToken(part.trim());
    if (!parsed) throw invalid(field, "is not a revision this service returned");
    if (parsed.key === "platform") out.platform = parsed.revision;
    else if (parsed.key === tenantId) out.tenant = parsed.revision;
    else throw invalid(field, `is a revision of tenant ${parsed.key}, not of ${tenantId ?? "the platform"}`);
  }
  return out;
}

/** Loads the snapshots for a scope at least as fresh as `minRevision`. */
export async function basis(
  deps: AuthorizationDeps,
  tenantId: string | undefined,
  minRevision?: string,
  field?: string,
): Promise<DecisionBasis> {
  const min = parseMinRevision(minRevision, tenantId, field);
  const platform =
    min.platform === undefined
      ? (deps.store.platformNow() ?? (await deps.store.platform()))
      : await deps.store.platform(min.platform);
  const tenant = tenantId
    ? min.tenant === undefined
      ? (deps.store.tenantNow(tenantId) ?? (await deps.store.tenant(tenantId)))
      : await deps.store.tenant(tenantId, min.tenant)
    : undefined;
  const revision = [
    ...(tenant ? [revisionToken(revisionKey(tenant.tenantId), tenant.revision)] : []),
    revisionToken("platform", platform.revision),
  ].join(",");
  return { platform, tenant, revision };
}

/** Decides one request on a basis. */
export function decideOn(
  deps: AuthorizationDeps,
  b: DecisionBasis,
  req: DecisionRequest,
  trace?: TraceStep[],
): EngineDecision {
  return deps.evaluator.decide(b.platform, b.tenant, req, trace);
}

/** A core principal (from a token) as the engine sees it. */
export function subjectOf(p: Principal): SubjectPrincipal {
  return {
    id: p.id,
    type: p.type,
    tenantId: p.tenantId,
    amr: p.amr,
    authTime: p.authTime,
    mfaTime: p.mfaTime,
    impersonatorId: p.impersonatorId,
  };
}

interface PendingDenial {
  readonly context: RequestContext | undefined;
  readonly principal: SubjectPrincipal;
  readonly scope: ScopeRef;
  readonly decision: EngineDecision;
  readonly checker: string;
}

/**
 * Buffers denials and writes them to the outbox as `AccessDenied` events once a second,
 * at most `maxPerFlush` per flush (a denial flood is summarised in the log, not allowed
 * to flood the database).
 */
export class DenialRecorder {
  private pending: PendingDenial[] = [];
  private dropped = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly deps: AuthorizationDeps,
    private readonly logger: Logger,
    private readonly maxPerFlush = 1000,
    intervalMs = 1000,
  ) {
    this.timer = setInterval(() => {
      void this.flush();
    }, intervalMs);
    this.timer.unref();
  }

  /** Queues one denial. */
  record(principal: SubjectPrincipal, scope: ScopeRef, decision: EngineDecision, checker: string): void {
    if (this.pending.length >= this.maxPerFlush) {
      this.dropped++;
      return;
    }
    this.pending.push({ context: currentRequestContext(), principal, scope, decision, checker });
  }

  /** Writes what is queued. */
  async flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    const batch = this.pending;
    const dropped = this.dropped;
    this.pending = [];
    this.dropped = 0;
    if (dropped > 0)
      this.logger.warn({ dropped }, "access denials beyond the per-second limit were not recorded as events");
    if (batch.length === 0) return;
    this.flushing = withPlatform(this.deps.db, async (tx) => {
      for (const d of batch) {
        const write = () =>
          emit(
            tx,
            AccessDeniedSchema,
            {
              principal: principalToProto(
                d.principal.type === "system" ? "service_account" : d.principal.type,
                d.principal.id,
                d.principal.tenantId ?? null,
              ),
              permission: d.decision.permission,
              scope: scopeRefToProto(d.scope),
              reason: d.decision.reason,
              message: d.decision.message,
              checkerId: d.checker,
            },
            d.scope.tenantId ?? null,
            { type: "authorization.decision", id: d.decision.permission },
          );
        await (d.context ? runWithRequestContext(d.context, write) : write());
      }
    })
      .catch((err) => this.logger.error({ err, count: batch.length }, "recording access denials failed"))
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  /** Stops the timer and writes what is left. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}

/**
 * The enforcement port answered in process from this service's snapshots: no network hop,
 * and when the snapshots are fresh no database round trip either. Denials are recorded.
 */
export class LocalAuthorizer implements Authorizer {
  constructor(
    private readonly deps: AuthorizationDeps,
    private readonly denials: DenialRecorder,
  ) {}

  /** {@inheritDoc Authorizer.authorize} */
  async authorize(r: AuthorizationRequest): Promise<Decision> {
    const scope: ScopeRef = { ...r.scope };
    const principal = subjectOf(r.principal);
    if (scope.type !== "platform" && !scope.tenantId) {
      return { allowed: false, reason: "the request names no tenant", code: "SCOPE_NOT_FOUND" };
    }
    const b = await basis(this.deps, scope.tenantId, r.minRevision, "uab-min-revision header");
    const d = decideOn(this.deps, b, {
      principal,
      permission: r.permission,
      scope,
      attributes: { ip: r.attributes?.ip, user_agent: r.attributes?.userAgent },
    });
    if (!d.allowed) this.denials.record(principal, scope, d, "enforcement");
    return { allowed: d.allowed, reason: d.message, code: DecisionReason[d.reason] };
  }
}
