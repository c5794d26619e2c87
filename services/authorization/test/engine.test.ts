/**
 * Unit tests of the decision engine over hand-built snapshots (no database): role
 * inclusion, wildcards, scope coverage, team grants, validity windows, conditions,
 * delegation, tenant status and condition compilation.
 */
import { describe, expect, it } from "@jest/globals";
import { DecisionReason } from "@uab/proto/gen/uab/authorization/v1/decision_pb.js";
import { Catalogue } from "../src/engine/catalogue.js";
import { compileCondition } from "../src/engine/conditions.js";
import { type DecisionRequest, Evaluator, type SubjectPrincipal } from "../src/engine/evaluator.js";
import {
  type BindingDef,
  bySubject,
  type PlatformSnapshot,
  type RoleDef,
  type ScopeRef,
  type TenantSnapshot,
} from "../src/engine/model.js";
import { storedCondition } from "../src/engine/store.js";
import { buildSystemRoles, SYSTEM_ROLE } from "../src/engine/system-roles.js";

const catalogue = new Catalogue();
const evaluator = new Evaluator(catalogue, buildSystemRoles(catalogue));

const T = "ten_a";
const T2 = "ten_b";
const NOW = Date.UTC(2030, 0, 1, 12, 0, 0);

function role(id: string, permissions: string[], includedRoleIds: string[] = [], tenantId = T): RoleDef {
  return {
    id,
    tenantId,
    system: false,
    slug: id,
    displayName: id,
    description: "",
    permissions,
    includedRoleIds,
    assignableScopes: ["tenant", "project", "team"],
    sensitive: false,
  };
}

let seq = 0;
function binding(principalId: string, roleId: string, extra: Partial<BindingDef> = {}): BindingDef {
  seq++;
  const tenantId = extra.tenantId === undefined ? T : extra.tenantId;
  return {
    id: `bind_${String(seq).padStart(4, "0")}`,
    tenantId,
    principalType: principalId.startsWith("team_") ? "team" : "user",
    principalId,
    principalTenantId: tenantId,
    roleId,
    scope: tenantId === null ? { type: "platform" } : { type: "tenant", tenantId },
    start: 0,
    expire: Number.POSITIVE_INFINITY,
    condition: null,
    delegated: false,
    ...extra,
  };
}

function tenantSnap(
  opts: {
    tenantId?: string;
    roles?: RoleDef[];
    bindings?: BindingDef[];
    teams?: Record<string, string[]>;
    status?: TenantSnapshot["status"];
    memberAttributes?: Record<string, Record<string, unknown>>;
  } = {},
): TenantSnapshot {
  const teamsOf = new Map<string, string[]>();
  const membersOf = new Map<string, string[]>();
  for (const [team, members] of Object.entries(opts.teams ?? {})) {
    membersOf.set(team, members);
    for (const m of members) teamsOf.set(m, [...(teamsOf.get(m) ?? []), team]);
  }
  const bindings = opts.bindings ?? [];
  return {
    tenantId: opts.tenantId ?? T,
    revision: 1n,
    status: opts.status ?? "active",
    roles: new Map((opts.roles ?? []).map((r) => [r.id, r])),
    bindings,
    bySubject: bySubject(bindings),
    teamsOf,
    membersOf,
    memberAttributes: new Map(Object.entries(opts.memberAttributes ?? {})),
  };
}

function platformSnap(bindings: BindingDef[] = []): PlatformSnapshot {
  return { revision: 1n, bindings, bySubject: bySubject(bindings) };
}

const user = (id: string, extra: Partial<SubjectPrincipal> = {}): SubjectPrincipal => ({
  id,
  type: "user",
  tenantId: T,
  ...extra,
});
const tenantScope: ScopeRef = { type: "tenant", tenantId: T };
const project = (id: string): ScopeRef => ({ type: "project", tenantId: T, projectId: id });
const team = (id: string): ScopeRef => ({ type: "team", tenantId: T, teamId: id });

function decide(
  tenant: TenantSnapshot | undefined,
  req: Partial<DecisionRequest> & { permission: string },
  platform: PlatformSnapshot = platformSnap(),
) {
  return evaluator.decide(platform, tenant, { principal: user("usr_1"), scope: tenantScope, now: NOW, ...req });
}

describe("role inheritance", () => {
  it("grants the permissions of included roles and reports the chain", () => {
    const roles = [
      role("role_a", ["tenancy.tenants.get"], ["role_b"]),
      role("role_b", [], ["role_c"]),
      role("role_c", ["tenancy.projects.create"]),
    ];
    const b = binding("usr_1", "role_a");
    const t = tenantSnap({ roles, bindings: [b] });
    const d = decide(t, { permission: "tenancy.projects.create" });
    expect(d).toMatchObject({ allowed: true, reason: DecisionReason.GRANTED, bindingId: b.id, roleId: "role_a" });
    expect(evaluator.findGrant("role_a", "tenancy.projects.create", t)).toEqual({
      chain: ["role_a", "role_b", "role_c"],
      pattern: "tenancy.projects.create",
    });
    expect(evaluator.findGrant("role_a", "tenancy.tenants.get", t)?.chain).toEqual(["role_a"]);
    // An included role does not grant what it does not hold.
    expect(decide(t, { permission: "tenancy.projects.delete" }).allowed).toBe(false);
  });

  it("includes system roles and is safe on cycles", () => {
    const roles = [role("role_x", [], [SYSTEM_ROLE.member, "role_y"]), role("role_y", [], ["role_x"])];
    const t = tenantSnap({ roles, bindings: [binding("usr_1", "role_x")] });
    expect(decide(t, { permission: "tenancy.projects.list" }).allowed).toBe(true);
    expect(decide(t, { permission: "tenancy.projects.create" }).reason).toBe(DecisionReason.NO_BINDING);
    expect(evaluator.findGrant("role_x", "tenancy.projects.list", t)?.chain).toEqual(["role_x", SYSTEM_ROLE.member]);
  });
});

describe("wildcards", () => {
  it.each([
    ["tenancy.projects.*", "tenancy.projects.create", true],
    ["tenancy.projects.*", "tenancy.teams.create", false],
    ["tenancy.*", "tenancy.teams.create", true],
    ["tenancy.*", "authorization.roles.get", false],
    ["*", "authorization.roles.get", true],
  ])("%s grants %s: %s", (pattern, permission, allowed) => {
    const t = tenantSnap({ roles: [role("role_w", [pattern])], bindings: [binding("usr_1", "role_w")] });
    const d = decide(t, { permission });
    expect(d.allowed).toBe(allowed);
    if (allowed) expect(evaluator.findGrant("role_w", permission, t)?.pattern).toBe(pattern);
  });
});

describe("scope coverage", () => {
  const roles = [role("role_r", ["tenancy.projects.get", "tenancy.teams.get"])];

  it("a tenant binding covers the tenant and its projects and teams", () => {
    const t = tenantSnap({ roles, bindings: [binding("usr_1", "role_r")] });
    expect(decide(t, { permission: "tenancy.projects.get", scope: tenantScope }).allowed).toBe(true);
    expect(decide(t, { permission: "tenancy.projects.get", scope: project("prj_1") }).allowed).toBe(true);
    expect(decide(t, { permission: "tenancy.teams.get", scope: team("team_1") }).allowed).toBe(true);
  });

  it("a project binding covers its project only", () => {
    const t = tenantSnap({ roles, bindings: [binding("usr_1", "role_r", { scope: project("prj_1") })] });
    expect(decide(t, { permission: "tenancy.projects.get", scope: project("prj_1") }).allowed).toBe(true);
    expect(decide(t, { permission: "tenancy.projects.get", scope: project("prj_2") }).allowed).toBe(false);
    expect(decide(t, { permission: "tenancy.projects.get", scope: tenantScope }).allowed).toBe(false);
    expect(decide(t, { permission: "tenancy.teams.get", scope: team("team_1") }).allowed).toBe(false);
  });

  it("a team binding covers its team only", () => {
    const t = tenantSnap({ roles, bindings: [binding("usr_1", "role_r", { scope: team("team_1") })] });
    expect(decide(t, { permission: "tenancy.teams.get", scope: team("team_1") }).allowed).toBe(true);
    expect(decide(t, { permission: "tenancy.teams.get", scope: team("team_2") }).allowed).toBe(false);
    expect(decide(t, { permission: "tenancy.teams.get", scope: tenantScope }).allowed).toBe(false);
    expect(decide(t, { permission: "tenancy.projects.get", scope: project("prj_1") }).allowed).toBe(false);
  });
});

describe("team grants", () => {
  it("a member holds the team's bindings, reported with the team", () => {
    const b = binding("team_1", "role_r");
    const t = tenantSnap({
      roles: [role("role_r", ["tenancy.projects.create"])],
      bindings: [b],
      teams: { team_1: ["usr_1"] },
    });
    expect(decide(t, { permission: "tenancy.projects.create" })).toMatchObject({
      allowed: true,
      bindingId: b.id,
      teamId: "team_1",
    });
    expect(decide(t, { permission: "tenancy.projects.create", principal: user("usr_2") }).allowed).toBe(false);
  });

  it("a deleted team (absent from the membership maps) grants nothing", () => {
    const t = tenantSnap({
      roles: [role("role_r", ["tenancy.projects.create"])],
      bindings: [binding("team_gone", "role_r")],
      teams: {},
    });
    expect(decide(t, { permission: "tenancy.projects.create" }).reason).toBe(DecisionReason.NO_BINDING);
  });
});

describe("validity window", () => {
  const roles = [role("role_r", ["tenancy.projects.create"])];

  it("denies before start and after expiry", () => {
    const notStarted = tenantSnap({ roles, bindings: [binding("usr_1", "role_r", { start: NOW + 1000 })] });
    expect(decide(notStarted, { permission: "tenancy.projects.create" })).toMatchObject({
      allowed: false,
      reason: DecisionReason.BINDING_NOT_STARTED,
    });
    const expired = tenantSnap({ roles, bindings: [binding("usr_1", "role_r", { expire: NOW })] });
    expect(decide(expired, { permission: "tenancy.projects.create" })).toMatchObject({
      allowed: false,
      reason: DecisionReason.BINDING_EXPIRED,
    });
    const inWindow = tenantSnap({ roles, bindings: [binding("usr_1", "role_r", { start: NOW, expire: NOW + 1 })] });
    expect(decide(inWindow, { permission: "tenancy.projects.create" }).allowed).toBe(true);
  });
});

describe("conditions", () => {
  const roles = [role("role_r", ["tenancy.projects.create"])];
  const withCondition = (source: string) =>
    tenantSnap({ roles, bindings: [binding("usr_1", "role_r", { condition: compileCondition(source) })] });

  it("grants when true and denies with CONDITION_NOT_MET when false", () => {
    expect(decide(withCondition("true"), { permission: "tenancy.projects.create" }).allowed).toBe(true);
    expect(decide(withCondition("1 == 2"), { permission: "tenancy.projects.create" })).toMatchObject({
      allowed: false,
      reason: DecisionReason.CONDITION_NOT_MET,
    });
  });

  it("denies with CONDITION_ERROR when the expression fails or is not a bool", () => {
    const missing = withCondition("request.attributes.missing == 'x'");
    expect(decide(missing, { permission: "tenancy.projects.create" })).toMatchObject({
      allowed: false,
      reason: DecisionReason.CONDITION_ERROR,
    });
    expect(decide(withCondition("'text'"), { permission: "tenancy.projects.create" }).reason).toBe(
      DecisionReason.CONDITION_ERROR,
    );
    // A stored condition that no longer compiles denies rather than throwing.
    const broken = tenantSnap({
      roles,
      bindings: [binding("usr_1", "role_r", { condition: storedCondition("nope ==") })],
    });
    expect(decide(broken, { permission: "tenancy.projects.create" }).reason).toBe(DecisionReason.CONDITION_ERROR);
  });

  it("evaluates ipInRange on the request ip", () => {
    const t = withCondition("ipInRange(request.ip, '10.0.0.0/8')");
    expect(decide(t, { permission: "tenancy.projects.create", attributes: { ip: "10.1.2.3" } }).allowed).toBe(true);
    expect(decide(t, { permission: "tenancy.projects.create", attributes: { ip: "192.168.1.1" } }).reason).toBe(
      DecisionReason.CONDITION_NOT_MET,
    );
    expect(decide(t, { permission: "tenancy.projects.create" }).reason).toBe(DecisionReason.CONDITION_NOT_MET);
    const v6 = withCondition("ipInRange(request.ip, '2001:db8::/32')");
    expect(decide(v6, { permission: "tenancy.projects.create", attributes: { ip: "2001:db8::1" } }).allowed).toBe(true);
  });

  it("evaluates request.time", () => {
    const t = withCondition("request.time < timestamp('2031-01-01T00:00:00Z')");
    expect(decide(t, { permission: "tenancy.projects.create" }).allowed).toBe(true);
    expect(decide(t, { permission: "tenancy.projects.create", now: Date.UTC(2032, 0, 1) }).reason).toBe(
      DecisionReason.CONDITION_NOT_MET,
    );
  });

  it("evaluates principal.mfa", () => {
    const t = withCondition("principal.mfa");
    expect(decide(t, { permission: "tenancy.projects.create" }).reason).toBe(DecisionReason.CONDITION_NOT_MET);
    expect(
      decide(t, { permission: "tenancy.projects.create", principal: user("usr_1", { amr: ["pwd", "otp"] }) }).allowed,
    ).toBe(true);
    expect(
      decide(t, { permission: "tenancy.projects.create", principal: user("usr_1", { mfaTime: NOW / 1000 - 60 }) })
        .allowed,
    ).toBe(true);
    const fresh = withCondition("principal.mfa_age_seconds < 300.0");
    expect(
      decide(fresh, { permission: "tenancy.projects.create", principal: user("usr_1", { mfaTime: NOW / 1000 - 60 }) })
        .allowed,
    ).toBe(true);
    expect(
      decide(fresh, {
        permission: "tenancy.projects.create",
        principal: user("usr_1", { mfaTime: NOW / 1000 - 3600 }),
      }).allowed,
    ).toBe(false);
  });

  it("a later unconditional binding still grants after a false condition", () => {
    const t = tenantSnap({
      roles,
      bindings: [binding("usr_1", "role_r", { condition: compileCondition("false") }), binding("usr_1", "role_r")],
    });
    expect(decide(t, { permission: "tenancy.projects.create" }).allowed).toBe(true);
  });
});

describe("tenants", () => {
  const roles = [role("role_r", ["tenancy.projects.create"])];

  it("a binding in tenant A never grants in tenant B", () => {
    const a = tenantSnap({ roles, bindings: [binding("usr_1", "role_r")] });
    const b = tenantSnap({ tenantId: T2, roles: [] });
    const scopeB: ScopeRef = { type: "tenant", tenantId: T2 };
    expect(decide(a, { permission: "tenancy.projects.create" }).allowed).toBe(true);
    expect(decide(b, { permission: "tenancy.projects.create", scope: scopeB }).allowed).toBe(false);
    expect(
      decide(b, {
        permission: "tenancy.projects.create",
        scope: { type: "project", tenantId: T2, projectId: "prj_1" },
      }).allowed,
    ).toBe(false);
  });

  it("a delegated binding grants only while the principal acts from its home tenant", () => {
    const d = binding("usr_9", SYSTEM_ROLE.tenantOwner, {
      tenantId: T2,
      principalTenantId: T,
      scope: { type: "tenant", tenantId: T2 },
      delegated: true,
    });
    const b = tenantSnap({ tenantId: T2, bindings: [d] });
    const scope: ScopeRef = { type: "tenant", tenantId: T2 };
    expect(
      decide(b, { permission: "tenancy.projects.create", scope, principal: user("usr_9", { tenantId: T }) }).allowed,
    ).toBe(true);
    expect(
      decide(b, { permission: "tenancy.projects.create", scope, principal: user("usr_9", { tenantId: T2 }) }),
    ).toMatchObject({ allowed: false, reason: DecisionReason.DELEGATION_INACTIVE });
    expect(
      decide(b, { permission: "tenancy.projects.create", scope, principal: user("usr_9", { tenantId: undefined }) })
        .reason,
    ).toBe(DecisionReason.DELEGATION_INACTIVE);
    // The reverse lookups follow the same rule.
    const eff = (tenantId: string | undefined) =>
      evaluator.effectivePermissions(platformSnap(), b, user("usr_9", { tenantId }), scope, NOW);
    expect(eff(T).has("tenancy.projects.create")).toBe(true);
    expect(eff(T2).size).toBe(0);
  });

  it("a suspended tenant denies tenant bindings while platform bindings still grant", () => {
    const t = tenantSnap({ roles, bindings: [binding("usr_1", "role_r")], status: "suspended" });
    expect(decide(t, { permission: "tenancy.projects.create" })).toMatchObject({
      allowed: false,
      reason: DecisionReason.TENANT_SUSPENDED,
    });
    const p = binding("usr_1", SYSTEM_ROLE.platformAdmin, {
      tenantId: null,
      principalTenantId: null,
      scope: { type: "platform" },
    });
    const platform = platformSnap([p]);
    const operator = user("usr_1", { tenantId: undefined });
    expect(decide(t, { permission: "tenancy.projects.create", principal: operator }, platform)).toMatchObject({
      allowed: true,
      bindingId: p.id,
    });
    expect(
      decide(
        tenantSnap({ status: "terminated" }),
        { permission: "tenancy.projects.create", principal: operator },
        platform,
      ).allowed,
    ).toBe(true);
    expect(evaluator.authorizedPrincipals(platform, t, "tenancy.projects.create", tenantScope, false, NOW).size).toBe(
      0,
    );
  });

  it("a platform binding grants in every tenant, to the platform principal acting as itself", () => {
    const p = binding("usr_1", SYSTEM_ROLE.platformAdmin, {
      tenantId: null,
      principalTenantId: null,
      scope: { type: "platform" },
    });
    const platform = platformSnap([p]);
    const operator = user("usr_1", { tenantId: undefined });
    const ask = (principal: SubjectPrincipal, tenant?: TenantSnapshot) =>
      decide(
        tenant,
        {
          principal,
          permission: "authorization.roles.create",
          scope: tenant ? { type: "tenant", tenantId: tenant.tenantId } : { type: "platform" },
        },
        platform,
      );
    expect(ask(operator, tenantSnap({ tenantId: T2 })).allowed).toBe(true);
    expect(ask(operator).allowed).toBe(true);
    // The same id signed in to a tenant, or impersonated, carries no platform power.
    expect(ask(user("usr_1", { tenantId: T2 }), tenantSnap({ tenantId: T2 }))).toMatchObject({
      allowed: false,
      reason: DecisionReason.DELEGATION_INACTIVE,
    });
    expect(ask(user("usr_1", { tenantId: undefined, impersonatorId: "usr_2" }))).toMatchObject({
      allowed: false,
      reason: DecisionReason.DELEGATION_INACTIVE,
    });
    expect(evaluator.effectivePermissions(platform, undefined, user("usr_1"), { type: "platform" }, NOW).size).toBe(0);
  });
});

describe("catalogue", () => {
  it("denies an unknown permission with UNKNOWN_PERMISSION", () => {
    const t = tenantSnap({ roles: [role("role_all", ["*"])], bindings: [binding("usr_1", "role_all")] });
    expect(decide(t, { permission: "tenancy.nope.get" })).toMatchObject({
      allowed: false,
      reason: DecisionReason.UNKNOWN_PERMISSION,
    });
  });
});

describe("compileCondition", () => {
  it("accepts conditions over principal, resource and request", () => {
    expect(compileCondition("principal.mfa && resource.type == 'x' && request.ip != ''").source).toContain("mfa");
    expect(() => compileCondition("[1, 2].all(x, x > 0)")).not.toThrow();
  });

  it.each([
    ["syntax errors", "principal.mfa &&", /not valid CEL/],
    ["unknown variables", "user.id == 'x'", /unknown variable "user"/],
    ["bad CIDR literals", "ipInRange(request.ip, '10.0.0.0/33')", /not an IP range/],
    ["non-IP CIDR literals", "ipInRange(request.ip, 'nope')", /not an IP range/],
  ])("rejects %s", (_what, source, message) => {
    expect(() => compileCondition(source)).toThrow(message);
  });
});
