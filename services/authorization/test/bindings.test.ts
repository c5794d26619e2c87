/**
 * Bindings, platform bindings, delegated grants and decisions over RPC: success, invalid
 * input, missing token, missing permission, unknown ids and another tenant's resources;
 * plus delegation across tenants, time-bound bindings and team grants through tenancy.
 */
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { newId } from "@uab/core";
import { Scope } from "@uab/proto";
import { DelegationDirection } from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import { DecisionReason } from "@uab/proto/gen/uab/authorization/v1/decision_pb.js";
import { PrincipalType } from "@uab/proto/gen/uab/authorization/v1/principal_pb.js";
import { eventually, expectCode, expectInvalid } from "@uab/testing";
import { SYSTEM_ROLE, systemRoleId } from "../src/engine/system-roles.js";
import { type Harness, startHarness, type TestTenant, userId } from "./harness.js";

let h: Harness;
let a: TestTenant;
let b: TestTenant;
let member: { userId: string; token: string };
/** The platform admin with a fresh second factor (platform bindings need step-up). */
let adminToken: string;

beforeAll(async () => {
  h = await startHarness();
  [a, b] = await Promise.all([h.tenant("bind-a"), h.tenant("bind-b")]);
  member = await h.member(a.tenantId);
  adminToken = await h.token({ sub: h.adminId, mfa_time: Math.floor(Date.now() / 1000), amr: ["pwd", "otp"] });
});
afterAll(async () => {
  await h?.close();
});

const VIEWER = systemRoleId("viewer");
const tenantScope = (tenantId: string) => ({ type: Scope.TENANT, tenantId });
const userP = (id: string, tenantId?: string) => ({ type: PrincipalType.USER, id, ...(tenantId ? { tenantId } : {}) });

async function bindUser(t: TestTenant, id: string, extra: Record<string, unknown> = {}) {
  return h.client(t.ownerToken).createBinding({
    tenantId: t.tenantId,
    principal: userP(id),
    roleId: VIEWER,
    scope: tenantScope(t.tenantId),
    ...extra,
  });
}

function checkReq(t: TestTenant, principalId: string, permission = "tenancy.projects.list", principalTenant?: string) {
  return {
    tenantId: t.tenantId,
    principal: userP(principalId, principalTenant ?? t.tenantId),
    permission,
    scope: tenantScope(t.tenantId),
  };
}

/** A BatchCheck item (a check without the tenant). */
function item(t: TestTenant, principalId: string, permission = "tenancy.projects.list") {
  const { tenantId: _t, ...rest } = checkReq(t, principalId, permission);
  return rest;
}

describe("CreateBinding", () => {
  it("binds a member of the tenant", async () => {
    const u = await h.member(a.tenantId);
    const res = await bindUser(a, u.userId, { description: "viewer" });
    expect(res.binding).toMatchObject({ tenantId: a.tenantId, roleId: VIEWER, delegated: false });
    expect(res.binding?.principal).toMatchObject({ id: u.userId, tenantId: a.tenantId });
  });

  it("rejects invalid input naming the field", async () => {
    const owner = h.client(a.ownerToken);
    const base = {
      tenantId: a.tenantId,
      principal: userP(member.userId),
      roleId: VIEWER,
      scope: tenantScope(a.tenantId),
    };
    await expectInvalid(owner.createBinding({ ...base, condition: "principal.mfa &&" }), "condition");
    await expectInvalid(owner.createBinding({ ...base, condition: "user.id == 'x'" }), "condition");
    await expectInvalid(owner.createBinding({ ...base, roleId: newId("role") }), "role_id");
    await expectInvalid(owner.createBinding({ ...base, roleId: "nope" }), "role_id");
    await expectInvalid(
      owner.createBinding({ ...base, principal: { type: PrincipalType.USER, id: "usr_bad" } }),
      "principal.id",
    );
    // Platform-only roles cannot be bound in a tenant.
    await expectInvalid(owner.createBinding({ ...base, roleId: SYSTEM_ROLE.platformAdmin }), "scope");
  });

  it("requires a token", async () => {
    await expectCode(
      h.client().createBinding({
        tenantId: a.tenantId,
        principal: userP(member.userId),
        roleId: VIEWER,
        scope: tenantScope(a.tenantId),
      }),
      Code.Unauthenticated,
    );
  });

  it("requires authorization.bindings.create", async () => {
    await expectCode(
      h.client(member.token).createBinding({
        tenantId: a.tenantId,
        principal: userP(member.userId),
        roleId: VIEWER,
        scope: tenantScope(a.tenantId),
      }),
      Code.PermissionDenied,
    );
  });

  it("hides another tenant", async () => {
    await expectCode(
      h.client(a.ownerToken).createBinding({
        tenantId: b.tenantId,
        principal: userP(member.userId),
        roleId: VIEWER,
        scope: tenantScope(b.tenantId),
      }),
      Code.NotFound,
    );
  });

  it("refuses another tenant's custom role", async () => {
    const { role } = await h.client(b.ownerToken).createRole({
      tenantId: b.tenantId,
      slug: "b-only",
      displayName: "B only",
      permissions: ["tenancy.projects.get"],
      assignableScopes: [Scope.TENANT],
    });
    await expectInvalid(
      h.client(a.ownerToken).createBinding({
        tenantId: a.tenantId,
        principal: userP(member.userId),
        roleId: role!.id,
        scope: tenantScope(a.tenantId),
      }),
      "role_id",
    );
  });
});

describe("GetBinding", () => {
  it("returns a binding", async () => {
    const { binding } = await bindUser(a, (await h.member(a.tenantId)).userId);
    const res = await h.client(a.ownerToken).getBinding({ tenantId: a.tenantId, bindingId: binding!.id });
    expect(res.binding?.id).toBe(binding!.id);
  });

  it("rejects a malformed id", async () => {
    await expectInvalid(h.client(a.ownerToken).getBinding({ tenantId: a.tenantId, bindingId: "bind_1" }), "binding_id");
  });

  it("requires a token", async () => {
    await expectCode(
      h.client().getBinding({ tenantId: a.tenantId, bindingId: newId("binding") }),
      Code.Unauthenticated,
    );
  });

  it("requires authorization.bindings.get", async () => {
    await expectCode(
      h.client(member.token).getBinding({ tenantId: a.tenantId, bindingId: newId("binding") }),
      Code.PermissionDenied,
    );
  });

  it("reports an unknown binding and hides other tenants' bindings", async () => {
    const owner = h.client(a.ownerToken);
    await expectCode(owner.getBinding({ tenantId: a.tenantId, bindingId: newId("binding") }), Code.NotFound);
    const { binding } = await bindUser(b, (await h.member(b.tenantId)).userId);
    await expectCode(owner.getBinding({ tenantId: b.tenantId, bindingId: binding!.id }), Code.NotFound);
    await expectCode(owner.getBinding({ tenantId: a.tenantId, bindingId: binding!.id }), Code.NotFound);
  });
});

describe("ListBindings", () => {
  it("lists the tenant's bindings with filters", async () => {
    const u = await h.member(a.tenantId);
    const { binding } = await bindUser(a, u.userId);
    const res = await h.client(a.ownerToken).listBindings({ tenantId: a.tenantId, principalId: u.userId });
    expect(res.bindings.map((x) => x.id)).toContain(binding!.id);
    expect(res.bindings.every((x) => x.principal?.id === u.userId)).toBe(true);
    const other = await h.client(b.ownerToken).listBindings({ tenantId: b.tenantId, pageSize: 1000 });
    expect(other.bindings.map((x) => x.id)).not.toContain(binding!.id);
  });

  it("rejects invalid input", async () => {
    await expectInvalid(
      h.client(a.ownerToken).listBindings({ tenantId: a.tenantId, principalId: "bob" }),
      "principal_id",
    );
  });

  it("requires a token", async () => {
    await expectCode(h.client().listBindings({ tenantId: a.tenantId }), Code.Unauthenticated);
  });

  it("requires authorization.bindings.list", async () => {
    await expectCode(h.client(member.token).listBindings({ tenantId: a.tenantId }), Code.PermissionDenied);
  });

  it("hides another tenant", async () => {
    await expectCode(h.client(a.ownerToken).listBindings({ tenantId: b.tenantId }), Code.NotFound);
  });
});

describe("DeleteBinding", () => {
  it("deletes a binding", async () => {
    const { binding } = await bindUser(a, (await h.member(a.tenantId)).userId);
    const owner = h.client(a.ownerToken);
    const res = await owner.deleteBinding({ tenantId: a.tenantId, bindingId: binding!.id, reason: "test" });
    expect(res.revision).toContain(a.tenantId);
    await expectCode(owner.getBinding({ tenantId: a.tenantId, bindingId: binding!.id }), Code.NotFound);
  });

  it("rejects a malformed id", async () => {
    await expectInvalid(h.client(a.ownerToken).deleteBinding({ tenantId: a.tenantId, bindingId: "x" }), "binding_id");
  });

  it("requires a token", async () => {
    await expectCode(
      h.client().deleteBinding({ tenantId: a.tenantId, bindingId: newId("binding") }),
      Code.Unauthenticated,
    );
  });

  it("requires authorization.bindings.delete", async () => {
    await expectCode(
      h.client(member.token).deleteBinding({ tenantId: a.tenantId, bindingId: newId("binding") }),
      Code.PermissionDenied,
    );
  });

  it("reports an unknown binding and hides other tenants' bindings", async () => {
    const owner = h.client(a.ownerToken);
    await expectCode(owner.deleteBinding({ tenantId: a.tenantId, bindingId: newId("binding") }), Code.NotFound);
    const { binding } = await bindUser(b, (await h.member(b.tenantId)).userId);
    await expectCode(owner.deleteBinding({ tenantId: b.tenantId, bindingId: binding!.id }), Code.NotFound);
    await expectCode(owner.deleteBinding({ tenantId: a.tenantId, bindingId: binding!.id }), Code.NotFound);
  });
});

describe("delegated grants", () => {
  it("a user of tenant A bound in tenant B is a delegated grant visible to both", async () => {
    const u = await h.member(a.tenantId);
    const { binding, revision } = await h.client(b.ownerToken).createBinding({
      tenantId: b.tenantId,
      principal: userP(u.userId, a.tenantId),
      roleId: VIEWER,
      scope: tenantScope(b.tenantId),
    });
    expect(binding).toMatchObject({ delegated: true, tenantId: b.tenantId });
    expect(binding?.principal?.tenantId).toBe(a.tenantId);

    const outbound = await h.client(a.ownerToken).listDelegatedGrants({
      tenantId: a.tenantId,
      direction: DelegationDirection.OUTBOUND,
    });
    expect(outbound.grants.map((g) => g.id)).toContain(binding!.id);
    const inbound = await h.client(b.ownerToken).listDelegatedGrants({
      tenantId: b.tenantId,
      direction: DelegationDirection.INBOUND,
    });
    expect(inbound.grants.map((g) => g.id)).toContain(binding!.id);
    const both = await h
      .client(b.ownerToken)
      .listDelegatedGrants({ tenantId: b.tenantId, counterpartTenantId: a.tenantId });
    expect(both.grants.map((g) => g.id)).toContain(binding!.id);
    // Not inbound to A, not outbound from B.
    const wrongWay = await h.client(a.ownerToken).listDelegatedGrants({
      tenantId: a.tenantId,
      direction: DelegationDirection.INBOUND,
    });
    expect(wrongWay.grants.map((g) => g.id)).not.toContain(binding!.id);

    const owner = h.client(b.ownerToken);
    const fromA = await owner.check({
      ...checkReq(b, u.userId, "tenancy.projects.list", a.tenantId),
      minRevision: revision,
    });
    expect(fromA.result).toMatchObject({ allowed: true, bindingId: binding!.id });
    const fromB = await owner.check({
      ...checkReq(b, u.userId, "tenancy.projects.list", b.tenantId),
      minRevision: revision,
    });
    expect(fromB.result).toMatchObject({ allowed: false, reason: DecisionReason.DELEGATION_INACTIVE });
    // And the user's own calls from tenant A are allowed in tenant B.
    const res = await h.tenancy(u.token, { "uab-min-revision": revision }).listProjects({ tenantId: b.tenantId });
    expect(res.projects).toBeDefined();
  });

  it("rejects invalid input", async () => {
    await expectInvalid(
      h.client(a.ownerToken).listDelegatedGrants({ tenantId: a.tenantId, counterpartTenantId: "ten_x" }),
      "counterpart_tenant_id",
    );
  });

  it("requires a token", async () => {
    await expectCode(h.client().listDelegatedGrants({ tenantId: a.tenantId }), Code.Unauthenticated);
  });

  it("requires authorization.delegated_grants.list", async () => {
    await expectCode(h.client(member.token).listDelegatedGrants({ tenantId: a.tenantId }), Code.PermissionDenied);
  });

  it("hides another tenant", async () => {
    await expectCode(h.client(a.ownerToken).listDelegatedGrants({ tenantId: b.tenantId }), Code.NotFound);
  });
});

describe("platform bindings", () => {
  it("creates, lists and deletes a platform binding", async () => {
    const admin = h.client(adminToken);
    const u = userId();
    const created = await admin.createPlatformBinding({
      principal: userP(u),
      roleId: systemRoleId("platform-auditor"),
      description: "auditor",
    });
    expect(created.binding).toMatchObject({ tenantId: "", roleId: systemRoleId("platform-auditor") });
    const list = await admin.listPlatformBindings({ principalId: u });
    expect(list.bindings.map((x) => x.id)).toEqual([created.binding!.id]);
    const got = await admin.getPlatformBinding({ bindingId: created.binding!.id });
    expect(got.binding?.id).toBe(created.binding!.id);
    await admin.deletePlatformBinding({ bindingId: created.binding!.id });
    expect((await admin.listPlatformBindings({ principalId: u })).bindings).toEqual([]);
  });

  it("rejects invalid input naming the field", async () => {
    const admin = h.client(adminToken);
    await expectInvalid(
      admin.createPlatformBinding({ principal: userP(userId()), roleId: SYSTEM_ROLE.platformAdmin, condition: "(" }),
      "condition",
    );
    await expectInvalid(admin.createPlatformBinding({ principal: userP(userId()), roleId: newId("role") }), "role_id");
    await expectInvalid(admin.listPlatformBindings({ principalId: "team_x" }), "principal_id");
    await expectInvalid(admin.deletePlatformBinding({ bindingId: "nope" }), "binding_id");
  });

  it("requires a token", async () => {
    const anon = h.client();
    await expectCode(
      anon.createPlatformBinding({ principal: userP(userId()), roleId: SYSTEM_ROLE.platformAdmin }),
      Code.Unauthenticated,
    );
    await expectCode(anon.listPlatformBindings({}), Code.Unauthenticated);
    await expectCode(anon.deletePlatformBinding({ bindingId: newId("binding") }), Code.Unauthenticated);
  });

  it("requires step-up for CreatePlatformBinding", async () => {
    await expectCode(
      h.client(h.adminToken).createPlatformBinding({ principal: userP(userId()), roleId: SYSTEM_ROLE.platformAdmin }),
      Code.Unauthenticated,
      { reason: "STEP_UP_REQUIRED" },
    );
  });

  it("requires platform permissions", async () => {
    const ownerMfa = await h.token({ sub: a.ownerId, tid: a.tenantId, mfa_time: Math.floor(Date.now() / 1000) });
    const owner = h.client(ownerMfa);
    await expectCode(
      owner.createPlatformBinding({ principal: userP(a.ownerId), roleId: SYSTEM_ROLE.platformAdmin }),
      Code.PermissionDenied,
    );
    await expectCode(owner.listPlatformBindings({}), Code.PermissionDenied);
    await expectCode(owner.deletePlatformBinding({ bindingId: newId("binding") }), Code.PermissionDenied);
  });

  it("reports an unknown platform binding, and a tenant binding is not one", async () => {
    const admin = h.client(adminToken);
    await expectCode(admin.deletePlatformBinding({ bindingId: newId("binding") }), Code.NotFound);
    const { binding } = await bindUser(a, (await h.member(a.tenantId)).userId);
    await expectCode(admin.deletePlatformBinding({ bindingId: binding!.id }), Code.NotFound);
    await expectCode(admin.getPlatformBinding({ bindingId: binding!.id }), Code.NotFound);
  });
});

describe("Check and BatchCheck", () => {
  it("decides for members of the tenant", async () => {
    const owner = h.client(a.ownerToken);
    const yes = await owner.check(checkReq(a, member.userId, "tenancy.projects.list"));
    expect(yes.result).toMatchObject({ allowed: true, reason: DecisionReason.GRANTED, roleId: SYSTEM_ROLE.member });
    const no = await owner.check(checkReq(a, member.userId, "tenancy.projects.create"));
    expect(no.result).toMatchObject({ allowed: false, reason: DecisionReason.NO_BINDING });
    const unknown = await owner.check(checkReq(a, member.userId, "tenancy.nope.get"));
    expect(unknown.result).toMatchObject({ allowed: false, reason: DecisionReason.UNKNOWN_PERMISSION });
    const batch = await owner.batchCheck({
      tenantId: a.tenantId,
      checks: [
        { correlationId: "1", ...item(a, member.userId, "tenancy.projects.list") },
        { correlationId: "2", ...item(a, member.userId, "tenancy.projects.create") },
      ],
    });
    expect(batch.results.map((r) => [r.correlationId, r.result?.allowed])).toEqual([
      ["1", true],
      ["2", false],
    ]);
  });

  it("rejects invalid input", async () => {
    const owner = h.client(a.ownerToken);
    await expectInvalid(owner.check({ ...checkReq(a, member.userId), permission: "Nope" }), "permission");
    await expectInvalid(owner.batchCheck({ tenantId: a.tenantId, checks: [] }), "checks");
  });

  it("requires a token", async () => {
    await expectCode(h.client().check(checkReq(a, member.userId)), Code.Unauthenticated);
    await expectCode(
      h.client().batchCheck({ tenantId: a.tenantId, checks: [item(a, member.userId)] }),
      Code.Unauthenticated,
    );
  });

  it("requires authorization.decisions.check", async () => {
    await expectCode(h.client(member.token).check(checkReq(a, member.userId)), Code.PermissionDenied);
    await expectCode(
      h.client(member.token).batchCheck({ tenantId: a.tenantId, checks: [item(a, member.userId)] }),
      Code.PermissionDenied,
    );
  });

  it("hides another tenant", async () => {
    await expectCode(h.client(a.ownerToken).check(checkReq(b, b.ownerId)), Code.NotFound);
    await expectCode(
      h.client(a.ownerToken).batchCheck({ tenantId: b.tenantId, checks: [item(b, b.ownerId)] }),
      Code.NotFound,
    );
  });
});

describe("Explain", () => {
  it("explains a grant with its path", async () => {
    const res = await h.client(a.ownerToken).explain(checkReq(a, member.userId, "tenancy.projects.list"));
    expect(res.result?.allowed).toBe(true);
    expect(res.trace.length).toBeGreaterThan(0);
    expect(res.grantPaths.map((p) => p.roleId)).toContain(SYSTEM_ROLE.member);
  });

  it("rejects invalid input", async () => {
    await expectInvalid(
      h
        .client(a.ownerToken)
        .explain({ ...checkReq(a, member.userId), principal: { type: PrincipalType.TEAM, id: member.userId } }),
      "principal",
    );
  });

  it("requires a token", async () => {
    await expectCode(h.client().explain(checkReq(a, member.userId)), Code.Unauthenticated);
  });

  it("requires authorization.decisions.explain", async () => {
    await expectCode(h.client(member.token).explain(checkReq(a, member.userId)), Code.PermissionDenied);
  });

  it("hides another tenant", async () => {
    await expectCode(h.client(a.ownerToken).explain(checkReq(b, b.ownerId)), Code.NotFound);
  });
});

describe("ListEffectivePermissions", () => {
  const req = (t: TestTenant, principalId: string) => ({
    tenantId: t.tenantId,
    principal: userP(principalId, t.tenantId),
    scope: tenantScope(t.tenantId),
    pageSize: 1000,
  });

  it("lists what a principal holds", async () => {
    const res = await h.client(a.ownerToken).listEffectivePermissions(req(a, member.userId));
    const names = res.permissions.map((p) => p.permission);
    expect(names).toContain("tenancy.projects.list");
    expect(names).not.toContain("tenancy.projects.create");
  });

  it("rejects invalid input", async () => {
    await expectInvalid(
      h.client(a.ownerToken).listEffectivePermissions({ ...req(a, member.userId), service: "Bad" }),
      "service",
    );
  });

  it("requires a token", async () => {
    await expectCode(h.client().listEffectivePermissions(req(a, member.userId)), Code.Unauthenticated);
  });

  it("requires authorization.effective_permissions.list", async () => {
    await expectCode(h.client(member.token).listEffectivePermissions(req(a, member.userId)), Code.PermissionDenied);
  });

  it("hides another tenant", async () => {
    await expectCode(h.client(a.ownerToken).listEffectivePermissions(req(b, b.ownerId)), Code.NotFound);
  });
});

describe("ListPrincipals", () => {
  const req = (t: TestTenant, permission = "tenancy.projects.create") => ({
    tenantId: t.tenantId,
    permission,
    scope: tenantScope(t.tenantId),
    pageSize: 1000,
  });

  it("lists who holds a permission", async () => {
    const res = await h.client(a.ownerToken).listPrincipals(req(a));
    const ids = res.principals.map((p) => p.principal?.id);
    expect(ids).toContain(a.ownerId);
    expect(ids).not.toContain(member.userId);
    const all = await h.client(a.ownerToken).listPrincipals(req(a, "tenancy.projects.list"));
    expect(all.principals.map((p) => p.principal?.id)).toEqual(expect.arrayContaining([a.ownerId, member.userId]));
  });

  it("rejects invalid input", async () => {
    await expectInvalid(h.client(a.ownerToken).listPrincipals(req(a, "nope")), "permission");
  });

  it("requires a token", async () => {
    await expectCode(h.client().listPrincipals(req(a)), Code.Unauthenticated);
  });

  it("requires authorization.principals.list", async () => {
    await expectCode(h.client(member.token).listPrincipals(req(a)), Code.PermissionDenied);
  });

  it("hides another tenant", async () => {
    await expectCode(h.client(a.ownerToken).listPrincipals(req(b)), Code.NotFound);
  });
});

describe("time-bound and team grants", () => {
  it("a binding expiring in 2 s allows, then denies after expiry", async () => {
    const u = await h.member(a.tenantId);
    const owner = h.client(a.ownerToken);
    const { binding, revision } = await owner.createBinding({
      tenantId: a.tenantId,
      principal: userP(u.userId),
      roleId: systemRoleId("admin"),
      scope: tenantScope(a.tenantId),
      expireTime: timestampFromDate(new Date(Date.now() + 2000)),
    });
    const before = await owner.check({ ...checkReq(a, u.userId, "tenancy.projects.create"), minRevision: revision });
    expect(before.result).toMatchObject({ allowed: true, bindingId: binding!.id });
    await new Promise((r) => setTimeout(r, 2300));
    const after = await owner.check(checkReq(a, u.userId, "tenancy.projects.create"));
    expect(after.result).toMatchObject({ allowed: false, reason: DecisionReason.BINDING_EXPIRED });
  });

  it("a team's binding grants its members", async () => {
    const u = await h.member(a.tenantId);
    const tenancy = h.tenancy(a.ownerToken);
    const { team } = await tenancy.createTeam({ tenantId: a.tenantId, slug: "builders", displayName: "Builders" });
    await tenancy.addTeamMember({ tenantId: a.tenantId, teamId: team!.id, userId: u.userId });
    const owner = h.client(a.ownerToken);
    const { binding } = await owner.createBinding({
      tenantId: a.tenantId,
      principal: { type: PrincipalType.TEAM, id: team!.id },
      roleId: systemRoleId("admin"),
      scope: tenantScope(a.tenantId),
    });
    const result = await eventually(async () => {
      const r = (await owner.check(checkReq(a, u.userId, "tenancy.projects.create"))).result;
      return r?.allowed ? r : undefined;
    });
    expect(result).toMatchObject({ bindingId: binding!.id, teamId: team!.id });
    const p = await h
      .tenancy(u.token)
      .createProject({ tenantId: a.tenantId, slug: "from-team", displayName: "From team" });
    expect(p.project?.tenantId).toBe(a.tenantId);
    const principals = await owner.listPrincipals({
      tenantId: a.tenantId,
      permission: "tenancy.projects.create",
      scope: tenantScope(a.tenantId),
    });
    expect(principals.principals.map((x) => x.principal?.id)).toEqual(expect.arrayContaining([team!.id, u.userId]));
  });
});
