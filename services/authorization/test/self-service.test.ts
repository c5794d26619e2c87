/**
 * CheckPlatform and TestMyPermissions over RPC: success, invalid input, missing token and
 * missing permission. CheckPlatform decides at platform scope, where only platform bindings
 * apply, and only to a principal acting as a platform principal (no tenant). TestMyPermissions
 * tells the authenticated caller which of the given permissions it holds itself at a scope.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { Scope } from "@uab/proto";
import { DecisionReason } from "@uab/proto/gen/uab/authorization/v1/decision_pb.js";
import { PrincipalType } from "@uab/proto/gen/uab/authorization/v1/principal_pb.js";
import { expectCode, expectInvalid } from "@uab/testing";
import { SYSTEM_ROLE } from "../src/engine/system-roles.js";
import { type Harness, startHarness, type TestTenant, userId } from "./harness.js";

let h: Harness;
let a: TestTenant;
let b: TestTenant;
/** A member of tenant A (tenant-member role only). */
let member: { userId: string; token: string };

beforeAll(async () => {
  h = await startHarness();
  [a, b] = await Promise.all([h.tenant("self-a"), h.tenant("self-b")]);
  member = await h.member(a.tenantId);
});
afterAll(async () => {
  await h?.close();
});

const userP = (id: string, tenantId?: string) => ({ type: PrincipalType.USER, id, ...(tenantId ? { tenantId } : {}) });
const tenantScope = (tenantId: string) => ({ type: Scope.TENANT, tenantId });
const PROJECTS = ["tenancy.projects.get", "tenancy.projects.create"];

describe("CheckPlatform", () => {
  it("the platform admin is allowed a platform permission", async () => {
    const res = await h
      .client(h.adminToken)
      .checkPlatform({ principal: userP(h.adminId), permission: "tenancy.tenants.list" });
    // Through its bootstrap binding (platform-admin at the platform).
    const bootstrap = await h.adminDb
      .selectFrom("bindings")
      .select("id")
      .where("principal_id", "=", h.adminId)
      .where("source", "=", "bootstrap")
      .executeTakeFirstOrThrow();
    expect(res.result).toMatchObject({
      allowed: true,
      reason: DecisionReason.GRANTED,
      bindingId: bootstrap.id,
      roleId: SYSTEM_ROLE.platformAdmin,
    });
    expect(res.revision).not.toBe("");
  });

  it("a user with no platform binding gets NO_BINDING", async () => {
    const res = await h
      .client(h.adminToken)
      .checkPlatform({ principal: userP(userId()), permission: "tenancy.tenants.list" });
    expect(res.result).toMatchObject({ allowed: false, reason: DecisionReason.NO_BINDING });
  });

  it("a tenant's owner holds nothing at the platform", async () => {
    const res = await h
      .client(h.adminToken)
      .checkPlatform({ principal: userP(a.ownerId, a.tenantId), permission: "tenancy.tenants.get" });
    expect(res.result?.allowed).toBe(false);
  });

  it("platform bindings do not apply to the platform admin acting from a tenant", async () => {
    const res = await h
      .client(h.adminToken)
      .checkPlatform({ principal: userP(h.adminId, a.tenantId), permission: "tenancy.tenants.list" });
    expect(res.result).toMatchObject({ allowed: false, reason: DecisionReason.DELEGATION_INACTIVE });
  });

  it("an unknown permission is denied with UNKNOWN_PERMISSION", async () => {
    const res = await h
      .client(h.adminToken)
      .checkPlatform({ principal: userP(h.adminId), permission: "tenancy.nothings.frobnicate" });
    expect(res.result).toMatchObject({ allowed: false, reason: DecisionReason.UNKNOWN_PERMISSION });
  });

  it("rejects an invalid principal id, a missing principal and a malformed permission", async () => {
    const c = h.client(h.adminToken);
    await expectInvalid(
      c.checkPlatform({ principal: userP("not-a-user"), permission: "tenancy.tenants.list" }),
      "principal.id",
    );
    await expectInvalid(c.checkPlatform({ permission: "tenancy.tenants.list" }), "principal");
    await expectInvalid(c.checkPlatform({ principal: userP(h.adminId), permission: "tenancy.*" }), "permission");
  });

  it("needs a token", async () => {
    await expectCode(
      h.client().checkPlatform({ principal: userP(h.adminId), permission: "tenancy.tenants.list" }),
      Code.Unauthenticated,
    );
  });

  it("needs authorization.platform_decisions.check at the platform: a tenant owner does not have it", async () => {
    await expectCode(
      h.client(a.ownerToken).checkPlatform({ principal: userP(a.ownerId), permission: "tenancy.tenants.list" }),
      Code.PermissionDenied,
    );
    await expectCode(
      h.client(member.token).checkPlatform({ principal: userP(member.userId), permission: "tenancy.tenants.get" }),
      Code.PermissionDenied,
    );
    // Nor does the platform admin signed in to a tenant: its platform binding does not apply there.
    const inTenant = await h.token({ sub: h.adminId, tid: a.tenantId });
    await expectCode(
      h.client(inTenant).checkPlatform({ principal: userP(h.adminId), permission: "tenancy.tenants.list" }),
      Code.PermissionDenied,
    );
  });
});

describe("TestMyPermissions", () => {
  it("a member holds only what the member role grants in its tenant", async () => {
    const res = await h
      .client(member.token)
      .testMyPermissions({ scope: tenantScope(a.tenantId), permissions: PROJECTS });
    expect(res.permissions).toEqual(["tenancy.projects.get"]);
    expect(res.revision).not.toBe("");
  });

  it("the owner holds both, in request order", async () => {
    const c = h.client(a.ownerToken);
    expect((await c.testMyPermissions({ scope: tenantScope(a.tenantId), permissions: PROJECTS })).permissions).toEqual(
      PROJECTS,
    );
    const reversed = [...PROJECTS].reverse();
    expect((await c.testMyPermissions({ scope: tenantScope(a.tenantId), permissions: reversed })).permissions).toEqual(
      reversed,
    );
  });

  it("a member of tenant A holds nothing at tenant B's scope", async () => {
    const res = await h
      .client(member.token)
      .testMyPermissions({ scope: tenantScope(b.tenantId), permissions: PROJECTS });
    expect(res.permissions).toEqual([]);
    // B's owner, asking about B, does.
    const own = await h
      .client(b.ownerToken)
      .testMyPermissions({ scope: tenantScope(b.tenantId), permissions: PROJECTS });
    expect(own.permissions).toEqual(PROJECTS);
  });

  it("unknown permissions are simply not held", async () => {
    const res = await h.client(a.ownerToken).testMyPermissions({
      scope: tenantScope(a.tenantId),
      permissions: ["tenancy.projects.get", "tenancy.nothings.frobnicate"],
    });
    expect(res.permissions).toEqual(["tenancy.projects.get"]);
  });

  it("at platform scope: the platform admin holds platform permissions, a tenant's owner none", async () => {
    const permissions = ["tenancy.tenants.list", "tenancy.tenants.create"];
    const admin = await h.client(h.adminToken).testMyPermissions({ scope: { type: Scope.PLATFORM }, permissions });
    expect(admin.permissions).toEqual(permissions);
    const owner = await h.client(a.ownerToken).testMyPermissions({ scope: { type: Scope.PLATFORM }, permissions });
    expect(owner.permissions).toEqual([]);
  });

  it("needs a token", async () => {
    await expectCode(
      h.client().testMyPermissions({ scope: tenantScope(a.tenantId), permissions: PROJECTS }),
      Code.Unauthenticated,
    );
  });

  it("rejects an invalid scope, a missing scope and an empty or malformed permission list", async () => {
    const c = h.client(member.token);
    await expectInvalid(
      c.testMyPermissions({ scope: tenantScope("ten_nope"), permissions: PROJECTS }),
      "scope.tenant_id",
    );
    await expectInvalid(c.testMyPermissions({ scope: { type: Scope.TENANT }, permissions: PROJECTS }), "scope");
    await expectInvalid(c.testMyPermissions({ permissions: PROJECTS }), "scope");
    await expectInvalid(c.testMyPermissions({ scope: tenantScope(a.tenantId), permissions: [] }), "permissions");
    await expectInvalid(
      c.testMyPermissions({ scope: tenantScope(a.tenantId), permissions: ["tenancy.projects.*"] }),
      "permissions[0]",
    );
  });
});
