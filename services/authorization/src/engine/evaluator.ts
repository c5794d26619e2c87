/**
 * The decision engine: pure, synchronous functions over snapshots. `decide` answers one
 * question (and, given a trace array, records every step for Explain); `effectivePermissions`
 * and `authorizedPrincipals` answer the two reverse questions exhaustively, never truncated.
 *
 * Semantics:
 * - A platform binding grants its role everywhere (every tenant, every scope).
 * - A tenant binding grants in its tenant only: at tenant scope it covers the tenant and
 *   every project and team in it; at project (team) scope, that project (team) only.
 * - A user also holds the bindings of the teams it is a member of (team grants).
 * - A binding grants from `start` until `expire`, and only when its condition is true.
 * - A delegated binding (principal from another tenant or the platform) grants only while
 *   the principal acts from its home tenant.
 * - In a suspended or terminated tenant only platform bindings grant.
 * - A role grants its permissions (exact or wildcard) and those of the roles it includes.
 */
import {
  DecisionReason,
  ExplainStepKind,
  ExplainStepOutcome,
} from "@uab/proto/gen/uab/authorization/v1/decision_pb.js";
import { type Catalogue, patternCovers } from "./catalogue.js";
import { type ConditionInput, celTimestamp, toCel } from "./conditions.js";
import type { BindingDef, PlatformSnapshot, PrincipalKind, RoleDef, ScopeRef, TenantSnapshot } from "./model.js";

/** The principal a decision is about. */
export interface SubjectPrincipal {
  readonly id: string;
  readonly type: PrincipalKind | "system";
  /** Home tenant (the token's tenant); undefined for platform principals. */
  readonly tenantId?: string | undefined;
  /** Authentication methods (`pwd`, `otp`, `mfa`…). */
  readonly amr?: readonly string[] | undefined;
  /** When the principal authenticated (s since epoch). */
  readonly authTime?: number | undefined;
  /** When a second factor was last presented (s since epoch). */
  readonly mfaTime?: number | undefined;
  /** The real actor when the principal is being impersonated. */
  readonly impersonatorId?: string | undefined;
}

/** One question. */
export interface DecisionRequest {
  readonly principal: SubjectPrincipal;
  readonly permission: string;
  readonly scope: ScopeRef;
  /** The resource acted on, for conditions. */
  readonly resource?:
    | { readonly type: string; readonly id: string; readonly attributes?: Record<string, unknown> }
    | undefined;
  /** Request attributes for conditions (`ip`, `user_agent`, anything else). */
  readonly attributes?: Record<string, unknown> | undefined;
  /** Decision time in ms (default now). */
  readonly now?: number | undefined;
}

/** One answer. */
export interface EngineDecision {
  readonly allowed: boolean;
  readonly reason: DecisionReason;
  readonly message: string;
  readonly bindingId?: string | undefined;
  readonly roleId?: string | undefined;
  readonly teamId?: string | undefined;
  readonly permission: string;
}

/** One Explain step (the shape of `uab.authorization.v1.ExplainStep`). */
export interface TraceStep {
  kind: ExplainStepKind;
  outcome: ExplainStepOutcome;
  message: string;
  bindingId?: string;
  roleId?: string;
  teamId?: string;
  scope?: ScopeRef;
  permission?: string;
  condition?: string;
  conditionResult?: string;
  depth?: number;
}

/** Where a tenant's custom roles come from: a snapshot, or the roles read in a transaction. */
export type RoleSource = Pick<TenantSnapshot, "roles">;

/** How a binding grants a permission. */
export interface GrantPathDef {
  readonly binding: BindingDef;
  readonly teamId?: string | undefined;
  /** Role ids from the bound role to the one holding the matching pattern. */
  readonly chain: readonly string[];
  /** The pattern that matched (exact name or wildcard). */
  readonly pattern: string;
}

const EMPTY: readonly BindingDef[] = [];
const EMPTY_IDS: readonly string[] = [];

// Deny reasons, from least to most informative: the decision reports the best one seen.
const RANK: Partial<Record<DecisionReason, number>> = {
  [DecisionReason.NO_BINDING]: 0,
  [DecisionReason.BINDING_NOT_STARTED]: 1,
  [DecisionReason.BINDING_EXPIRED]: 2,
  [DecisionReason.DELEGATION_INACTIVE]: 3,
  [DecisionReason.CONDITION_NOT_MET]: 4,
  [DecisionReason.CONDITION_ERROR]: 5,
};

/** A role with its inclusions flattened, answering "does it grant p?" from a memo. */
export class RoleMatcher {
  private readonly exact = new Set<string>();
  private readonly prefixes: string[] = [];
  private all = false;
  private readonly memo = new Map<string, boolean>();

  constructor(patterns: Iterable<string>) {
    for (const p of patterns) {
      if (p === "*") this.all = true;
      else if (p.endsWith(".*")) this.prefixes.push(p.slice(0, -1));
      else this.exact.add(p);
    }
  }

  /** True when the role (with its inclusions) grants `permission`. */
  grants(permission: string): boolean {
    if (this.all) return true;
    if (this.exact.has(permission)) return true;
    if (this.prefixes.length === 0) return false;
    let v = this.memo.get(permission);
    if (v === undefined) {
      v = this.prefixes.some((p) => permission.startsWith(p));
      if (this.memo.size < 4096) this.memo.set(permission, v);
    }
    return v;
  }
}

function scopeCovers(b: BindingDef, scope: ScopeRef): boolean {
  switch (b.scope.type) {
    case "platform":
    case "tenant":
      return true;
    case "project":
      return scope.type === "project" && scope.projectId === b.scope.projectId;
    case "team":
      return scope.type === "team" && scope.teamId === b.scope.teamId;
  }
}

function describeScope(s: ScopeRef): string {
  switch (s.type) {
    case "platform":
      return "the platform";
    case "tenant":
      return `tenant ${s.tenantId}`;
    case "project":
      return `project ${s.projectId} of tenant ${s.tenantId}`;
    case "team":
      return `team ${s.teamId} of tenant ${s.tenantId}`;
  }
}

/** Decides and explains over snapshots; holds the catalogue and the system roles. */
export class Evaluator {
  private readonly systemRoles: ReadonlyMap<string, RoleDef>;
  private readonly systemMatchers = new Map<string, RoleMatcher>();
  private readonly tenantMatchers = new WeakMap<RoleSource, Map<string, RoleMatcher>>();

  constructor(
    readonly catalogue: Catalogue,
    systemRoles: readonly RoleDef[],
  ) {
    this.systemRoles = new Map(systemRoles.map((r) => [r.id, r]));
  }

  /** The system roles, in definition order. */
  listSystemRoles(): RoleDef[] {
    return [...this.systemRoles.values()];
  }

  /** A role visible in `tenant` (system, or the tenant's custom role). */
  role(roleId: string, tenant?: RoleSource): RoleDef | undefined {
    return this.systemRoles.get(roleId) ?? tenant?.roles.get(roleId);
  }

  /** The matcher of a role in the context of a tenant snapshot (or system roles only). */
  matcher(roleId: string, tenant?: RoleSource): RoleMatcher | undefined {
    const sys = this.systemMatchers.get(roleId);
    if (sys) return sys;
    if (this.systemRoles.has(roleId)) {
      const m = new RoleMatcher(this.flatten(roleId, undefined));
      this.systemMatchers.set(roleId, m);
      return m;
    }
    if (!tenant?.roles.has(roleId)) return undefined;
    let cache = this.tenantMatchers.get(tenant);
    if (!cache) {
      cache = new Map();
      this.tenantMatchers.set(tenant, cache);
    }
    let m = cache.get(roleId);
    if (!m) {
      m = new RoleMatcher(this.flatten(roleId, tenant));
      cache.set(roleId, m);
    }
    return m;
  }

  /** Every pattern a role grants, through its inclusions (cycle-safe). */
  flatten(roleId: string, tenant: RoleSource | undefined): Set<string> {
    const out = new Set<string>();
    const seen = new Set<string>();
    const visit = (id: string) => {
      if (seen.has(id)) return;
      seen.add(id);
      const r = this.role(id, tenant);
      if (!r) return;
      for (const p of r.permissions) out.add(p);
      for (const inc of r.includedRoleIds) visit(inc);
    };
    visit(roleId);
    return out;
  }

  /** How a role grants `permission`: the inclusion chain and the matching pattern. */
  findGrant(
    roleId: string,
    permission: string,
    tenant: RoleSource | undefined,
  ): { chain: string[]; pattern: string } | undefined {
    const seen = new Set<string>();
    const visit = (id: string, chain: string[]): { chain: string[]; pattern: string } | undefined => {
      if (seen.has(id)) return undefined;
      seen.add(id);
      const r = this.role(id, tenant);
      if (!r) return undefined;
      const here = [...chain, id];
      const pattern = r.permissions.find((p) => patternCovers(p, permission));
      if (pattern) return { chain: here, pattern };
      for (const inc of r.includedRoleIds) {
        const found = visit(inc, here);
        if (found) return found;
      }
      return undefined;
    };
    return visit(roleId, []);
  }

  /**
   * Decides one request. `platform` is required; `tenant` is the snapshot of the scope's
   * tenant (undefined at platform scope). Pass `trace` to record the steps (Explain).
   */
  decide(
    platform: PlatformSnapshot,
    tenant: TenantSnapshot | undefined,
    req: DecisionRequest,
    trace?: TraceStep[],
  ): EngineDecision {
    const permission = req.permission;
    if (!this.catalogue.has(permission)) {
      return this.finish(trace, {
        allowed: false,
        reason: DecisionReason.UNKNOWN_PERMISSION,
        message: `${permission} is not a permission in the catalogue`,
        permission,
      });
    }
    const now = req.now ?? Date.now();
    const state: DenyState = { reason: DecisionReason.NO_BINDING, message: "", input: undefined };
    const pid = req.principal.id;
    if (trace) {
      trace.push({
        kind: ExplainStepKind.PRINCIPAL_RESOLVED,
        outcome: ExplainStepOutcome.INFO,
        message: `${req.principal.type} ${pid}${req.principal.tenantId ? ` of tenant ${req.principal.tenantId}` : " (platform principal)"}`,
      });
      trace.push({
        kind: ExplainStepKind.SCOPE_ANCESTRY,
        outcome: ExplainStepOutcome.INFO,
        message:
          req.scope.type === "platform"
            ? "platform scope: only platform bindings apply"
            : `${describeScope(req.scope)}: bindings on it, on its tenant and on the platform apply`,
        scope: req.scope,
      });
    }
    for (const b of platform.bySubject.get(pid) ?? EMPTY) {
      const why = platformBlocked(b, req.principal);
      if (why) {
        if ((RANK[DecisionReason.DELEGATION_INACTIVE] ?? 0) >= (RANK[state.reason] ?? 0)) {
          state.reason = DecisionReason.DELEGATION_INACTIVE;
          state.message = `platform binding ${b.id} does not apply: ${why}`;
        }
        if (trace) {
          trace.push({
            kind: ExplainStepKind.BINDING_CONSIDERED,
            outcome: ExplainStepOutcome.SKIPPED,
            message: `platform binding ${b.id} does not apply: ${why}`,
            bindingId: b.id,
            roleId: b.roleId,
            scope: b.scope,
          });
        }
        continue;
      }
      const d = this.tryBinding(b, undefined, undefined, req, now, state, trace);
      if (d) return this.finish(trace, d);
    }
    if (req.scope.type !== "platform" && tenant) {
      if (tenant.status !== "active") {
        return this.finish(trace, {
          allowed: false,
          reason: DecisionReason.TENANT_SUSPENDED,
          message: `tenant ${tenant.tenantId} is ${tenant.status}: only platform grants apply`,
          permission,
        });
      }
      for (const b of tenant.bySubject.get(pid) ?? EMPTY) {
        if (!scopeCovers(b, req.scope)) {
          if (trace) this.skipScope(trace, b);
          continue;
        }
        const d = this.tryBinding(b, undefined, tenant, req, now, state, trace);
        if (d) return this.finish(trace, d);
      }
      const teams = tenant.teamsOf.get(pid) ?? EMPTY_IDS;
      if (trace && req.principal.type === "user") {
        trace.push({
          kind: ExplainStepKind.TEAMS_EXPANDED,
          outcome: ExplainStepOutcome.INFO,
          message: teams.length ? `member of teams ${teams.join(", ")}` : "member of no team",
        });
      }
      for (const teamId of teams) {
        for (const b of tenant.bySubject.get(teamId) ?? EMPTY) {
          if (!scopeCovers(b, req.scope)) {
            if (trace) this.skipScope(trace, b, teamId);
            continue;
          }
          const d = this.tryBinding(b, teamId, tenant, req, now, state, trace);
          if (d) return this.finish(trace, d);
        }
      }
    }
    return this.finish(trace, {
      allowed: false,
      reason: state.reason,
      message:
        state.reason === DecisionReason.NO_BINDING
          ? `no binding grants ${pid} ${permission} on ${describeScope(req.scope)}`
          : state.message,
      permission,
    });
  }

  private skipScope(trace: TraceStep[], b: BindingDef, teamId?: string): void {
    trace.push({
      kind: ExplainStepKind.BINDING_CONSIDERED,
      outcome: ExplainStepOutcome.SKIPPED,
      message: `binding ${b.id} is on ${describeScope(b.scope)}, which does not contain the scope`,
      bindingId: b.id,
      roleId: b.roleId,
      ...(teamId ? { teamId } : {}),
      scope: b.scope,
    });
  }

  private tryBinding(
    b: BindingDef,
    teamId: string | undefined,
    tenant: TenantSnapshot | undefined,
    req: DecisionRequest,
    now: number,
    state: DenyState,
    trace: TraceStep[] | undefined,
  ): EngineDecision | undefined {
    const permission = req.permission;
    const m = this.matcher(b.roleId, tenant);
    if (!m?.grants(permission)) {
      if (trace) {
        trace.push({
          kind: ExplainStepKind.BINDING_CONSIDERED,
          outcome: ExplainStepOutcome.NOT_MATCHED,
          message: `binding ${b.id}: role ${b.roleId} does not grant ${permission}`,
          bindingId: b.id,
          roleId: b.roleId,
          ...(teamId ? { teamId } : {}),
          scope: b.scope,
        });
      }
      return undefined;
    }
    if (trace) {
      const g = this.findGrant(b.roleId, permission, tenant);
      trace.push({
        kind: ExplainStepKind.ROLE_EXPANDED,
        outcome: ExplainStepOutcome.MATCHED,
        message: `role ${g?.chain.join(" → ") ?? b.roleId} grants ${permission} through "${g?.pattern ?? permission}"`,
        bindingId: b.id,
        roleId: b.roleId,
        permission: g?.pattern ?? permission,
        depth: (g?.chain.length ?? 1) - 1,
      });
    }
    const deny = (reason: DecisionReason, message: string, extra: Partial<TraceStep> = {}) => {
      if ((RANK[reason] ?? 0) >= (RANK[state.reason] ?? 0)) {
        state.reason = reason;
        state.message = message;
      }
      if (trace) {
        trace.push({
          kind: ExplainStepKind.BINDING_CONSIDERED,
          outcome:
            reason === DecisionReason.CONDITION_ERROR ? ExplainStepOutcome.ERROR : ExplainStepOutcome.NOT_MATCHED,
          message,
          bindingId: b.id,
          roleId: b.roleId,
          ...(teamId ? { teamId } : {}),
          scope: b.scope,
          ...extra,
        });
      }
      return undefined;
    };
    if (b.start > now) {
      return deny(
        DecisionReason.BINDING_NOT_STARTED,
        `binding ${b.id} would grant ${permission} but starts at ${new Date(b.start).toISOString()}`,
      );
    }
    if (b.expire <= now) {
      return deny(
        DecisionReason.BINDING_EXPIRED,
        `binding ${b.id} would grant ${permission} but expired at ${new Date(b.expire).toISOString()}`,
      );
    }
    if (b.delegated && (req.principal.tenantId ?? null) !== b.principalTenantId) {
      return deny(
        DecisionReason.DELEGATION_INACTIVE,
        `delegated binding ${b.id} grants ${b.principalId} acting from ${b.principalTenantId ?? "the platform"}, not from ${req.principal.tenantId ?? "the platform"}`,
      );
    }
    if (b.condition) {
      state.input ??= conditionInput(req, tenant, now);
      const outcome = b.condition.evaluate(state.input);
      if (!outcome.ok) {
        return deny(
          DecisionReason.CONDITION_ERROR,
          `condition of binding ${b.id} failed to evaluate (${outcome.error}); errors deny`,
          {
            kind: ExplainStepKind.CONDITION_EVALUATED,
            condition: b.condition.source,
            conditionResult: `error: ${outcome.error}`,
          },
        );
      }
      if (!outcome.value) {
        return deny(DecisionReason.CONDITION_NOT_MET, `condition of binding ${b.id} is false: ${b.condition.source}`, {
          kind: ExplainStepKind.CONDITION_EVALUATED,
          condition: b.condition.source,
          conditionResult: "false",
        });
      }
      if (trace) {
        trace.push({
          kind: ExplainStepKind.CONDITION_EVALUATED,
          outcome: ExplainStepOutcome.MATCHED,
          message: `condition of binding ${b.id} is true`,
          bindingId: b.id,
          condition: b.condition.source,
          conditionResult: "true",
        });
      }
    }
    return {
      allowed: true,
      reason: DecisionReason.GRANTED,
      message: `granted by binding ${b.id} (role ${b.roleId} on ${describeScope(b.scope)}${teamId ? `, through team ${teamId}` : ""})`,
      bindingId: b.id,
      roleId: b.roleId,
      teamId,
      permission,
    };
  }

  private finish(trace: TraceStep[] | undefined, d: EngineDecision): EngineDecision {
    if (trace) {
      trace.push({
        kind: ExplainStepKind.DECISION,
        outcome: d.allowed ? ExplainStepOutcome.MATCHED : ExplainStepOutcome.NOT_MATCHED,
        message: `${d.allowed ? "allow" : "deny"}: ${d.message}`,
        ...(d.bindingId ? { bindingId: d.bindingId } : {}),
        ...(d.roleId ? { roleId: d.roleId } : {}),
        ...(d.teamId ? { teamId: d.teamId } : {}),
        permission: d.permission,
      });
    }
    return d;
  }

  /**
   * Every grant path of every catalogue permission `principal` holds at `scope` now, by
   * permission name. Conditions are not evaluated (there is no request): such paths are
   * marked conditional by their binding. Delegated bindings count only for the principal's
   * home tenant, as in decisions.
   */
  effectivePermissions(
    platform: PlatformSnapshot,
    tenant: TenantSnapshot | undefined,
    principal: SubjectPrincipal,
    scope: ScopeRef,
    now = Date.now(),
  ): Map<string, GrantPathDef[]> {
    const out = new Map<string, GrantPathDef[]>();
    const consider = (b: BindingDef, teamId: string | undefined, t: TenantSnapshot | undefined) => {
      if (b.start > now || b.expire <= now) return;
      if (b.delegated && (principal.tenantId ?? null) !== b.principalTenantId) return;
      const patterns = this.flatten(b.roleId, t);
      const granted = new Set<string>();
      for (const p of patterns) for (const info of this.catalogue.expand(p)) granted.add(info.name);
      for (const name of granted) {
        const g = this.findGrant(b.roleId, name, t);
        if (!g) continue;
        const list = out.get(name) ?? [];
        list.push({ binding: b, teamId, chain: g.chain, pattern: g.pattern });
        out.set(name, list);
      }
    };
    for (const b of platform.bySubject.get(principal.id) ?? EMPTY) {
      if (!platformBlocked(b, principal)) consider(b, undefined, undefined);
    }
    if (scope.type !== "platform" && tenant && tenant.status === "active") {
      for (const b of tenant.bySubject.get(principal.id) ?? EMPTY)
        if (scopeCovers(b, scope)) consider(b, undefined, tenant);
      for (const teamId of tenant.teamsOf.get(principal.id) ?? EMPTY_IDS) {
        for (const b of tenant.bySubject.get(teamId) ?? EMPTY) if (scopeCovers(b, scope)) consider(b, teamId, tenant);
      }
    }
    return out;
  }

  /**
   * Every principal that holds `permission` at `scope` now, with how: direct bindings,
   * team bindings expanded to the team's members (the team itself is listed too), and
   * platform bindings when `includePlatform`. Exhaustive; the caller paginates.
   */
  authorizedPrincipals(
    platform: PlatformSnapshot,
    tenant: TenantSnapshot,
    permission: string,
    scope: ScopeRef,
    includePlatform: boolean,
    now = Date.now(),
  ): Map<string, { type: PrincipalKind; tenantId: string | null; paths: GrantPathDef[] }> {
    const out = new Map<string, { type: PrincipalKind; tenantId: string | null; paths: GrantPathDef[] }>();
    const add = (id: string, type: PrincipalKind, tenantId: string | null, path: GrantPathDef) => {
      const entry = out.get(id);
      if (entry) entry.paths.push(path);
      else out.set(id, { type, tenantId, paths: [path] });
    };
    const consider = (b: BindingDef, t: TenantSnapshot | undefined) => {
      if (b.start > now || b.expire <= now) return;
      const m = this.matcher(b.roleId, t);
      if (!m?.grants(permission)) return;
      const g = this.findGrant(b.roleId, permission, t);
      if (!g) return;
      add(b.principalId, b.principalType, b.principalTenantId, { binding: b, chain: g.chain, pattern: g.pattern });
      if (b.principalType === "team" && t) {
        for (const member of t.membersOf.get(b.principalId) ?? EMPTY_IDS) {
          add(member, "user", t.tenantId, { binding: b, teamId: b.principalId, chain: g.chain, pattern: g.pattern });
        }
      }
    };
    if (includePlatform) for (const b of platform.bindings) consider(b, undefined);
    if (tenant.status === "active") for (const b of tenant.bindings) if (scopeCovers(b, scope)) consider(b, tenant);
    return out;
  }
}

/**
 * Why a platform binding does not apply to this principal, if it does not: platform grants
 * are for platform principals acting as themselves, so a token acting from a tenant (the
 * same id signed in to a tenant) or an impersonation never carries platform power. A
 * platform binding of a tenant's principal (delegated) follows the delegation rule instead.
 */
function platformBlocked(b: BindingDef, p: SubjectPrincipal): string | undefined {
  if (p.impersonatorId !== undefined) return `the principal is being impersonated by ${p.impersonatorId}`;
  if (b.principalTenantId === null && p.tenantId !== undefined) return `the principal acts from tenant ${p.tenantId}`;
  return undefined;
}

interface DenyState {
  reason: DecisionReason;
  message: string;
  input: ConditionInput | undefined;
}

function conditionInput(req: DecisionRequest, tenant: TenantSnapshot | undefined, now: number): ConditionInput {
  const p = req.principal;
  const amr = p.amr ?? [];
  const mfaAge = p.mfaTime !== undefined ? now / 1000 - p.mfaTime : undefined;
  const attrs = tenant?.memberAttributes.get(p.id) ?? {};
  const principal = new Map<string, unknown>([
    ["id", p.id],
    ["type", p.type],
    ["tenant_id", p.tenantId ?? ""],
    ["amr", [...amr]],
    ["mfa", mfaAge !== undefined || amr.includes("mfa") || amr.includes("otp")],
    ["mfa_age_seconds", mfaAge ?? Number.POSITIVE_INFINITY],
    ["auth_time", p.authTime !== undefined ? celTimestamp(p.authTime * 1000) : null],
    ["attributes", toCel(attrs)],
  ]);
  const r = req.resource;
  const resource = new Map<string, unknown>([
    ["type", r?.type ?? ""],
    ["id", r?.id ?? ""],
    ["tenant_id", req.scope.tenantId ?? ""],
    ["project_id", req.scope.projectId ?? ""],
    ["team_id", req.scope.teamId ?? ""],
    ["attributes", toCel(r?.attributes ?? {})],
  ]);
  const a = req.attributes ?? {};
  const request = new Map<string, unknown>([
    ["time", celTimestamp(now)],
    ["ip", typeof a.ip === "string" ? a.ip : ""],
    ["user_agent", typeof a.user_agent === "string" ? a.user_agent : ""],
    ["permission", req.permission],
    ["attributes", toCel(a)],
  ]);
  return { principal, resource, request };
}
