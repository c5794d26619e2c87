/**
 * Roles and the catalogue over RPC: CreateRole, GetRole, ListRoles, UpdateRole, DeleteRole,
 * ListPermissions and ListSystemRoles — success, invalid input, missing token, missing
 * permission, unknown ids and another tenant's resources.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { newId } from "@uab/core";
import { Scope } from "@uab/proto";
import { expectCode, expectInvalid } from "@uab/testing";
import { SYSTEM_ROLE } from "../src/engine/system-roles.js";
import { type Harness, startHarness, type TestTenant, userId } from "./harness.js";

let h: Harness;
let a: TestTenant;
let b: TestTenant;
/** A member of tenant A (tenant-member role only). */
let memberToken: string;
/** A user of tenant A with no binding at all. */
let strangerToken: string;

beforeAll(async () => {
  h = await startHarness();
  [a, b] = await Promise.all([h.tenant("roles-a"), h.tenant("roles-b")]);
  memberToken = (await h.member(a.tenantId)).token;
  strangerToken = await h.token({ sub: userId(), tid: a.tenantId });
});
afterAll(async () => {
  await h?.close();
});

let slugs = 0;
function roleInput(tenantId: string, extra: Record<string, unknown> = {}) {
  slugs++;
  return {
    tenantId,
    slug: `role-${slugs}`,
    displayName: `Role ${slugs}`,
    permissions: ["tenancy.projects.get"],
    assignableScopes: [Scope.TENANT, Scope.PROJECT],
    ...extra,
  };
}

async function makeRole(t: TestTenant, extra: Record<string, unknown> = {}) {
  const { role } = await h.client(t.ownerToken).createRole(roleInput(t.tenantId, extra));
  return role!;
}

describe("CreateRole", () => {
  it("creates a custom role", async () => {
    const res = await h
      .client(a.ownerToken)
      .createRole(roleInput(a.tenantId, { permissions: ["tenancy.projects.*", "tenancy.teams.get"] }));
    expect(res.role).toMatchObject({
      tenantId: a.tenantId,
      permissions: ["tenancy.projects.*", "tenancy.teams.get"],
      assignableScopes: [Scope.TENANT, Scope.PROJECT],
    });
    expect(res.role!.id).toMatch(/^role_/);
    expect(res.revision).toContain(a.tenantId);
  });

  it("rejects invalid input naming the field", async () => {
    const owner = h.client(a.ownerToken);
    await expectInvalid(
      owner.createRole(roleInput(a.tenantId, { permissions: ["tenancy.nope.get"] })),
      "permissions[0]",
    );
    await expectInvalid(
      owner.createRole(roleInput(a.tenantId, { permissions: ["tenancy.projects.get", "nope.*"] })),
      "permissions[1]",
    );
    await expectInvalid(owner.createRole(roleInput(a.tenantId, { slug: "Bad Slug" })), "slug");
    await expectInvalid(
      owner.createRole(roleInput(a.tenantId, { permissions: [], includedRoleIds: [newId("role")] })),
      "included_role_ids[0]",
    );
  });

  it("rejects a duplicate slug", async () => {
    const r = await makeRole(a);
    await expectCode(h.client(a.ownerToken).createRole(roleInput(a.tenantId, { slug: r.slug })), Code.AlreadyExists);
  });

  it("requires a token", async () => {
    await expectCode(h.client().createRole(roleInput(a.tenantId)), Code.Unauthenticated);
  });

  it("requires authorization.roles.create", async () => {
    await expectCode(h.client(memberToken).createRole(roleInput(a.tenantId)), Code.PermissionDenied);
  });

  it("hides another tenant", async () => {
    await expectCode(h.client(a.ownerToken).createRole(roleInput(b.tenantId)), Code.NotFound);
  });
});

describe("GetRole", () => {
  it("returns a custom role with its effective permissions, and system roles", async () => {
    const inner = await makeRole(a, { permissions: ["tenancy.teams.get"] });
    const outer = await makeRole(a, { permissions: ["tenancy.projects.get"], includedRoleIds: [inner.id] });
    const res = await h.client(a.ownerToken).getRole({ tenantId: a.tenantId, roleId: outer.id });
    expect(res.role?.id).toBe(outer.id);
    expect(res.effectivePermissions).toEqual(expect.arrayContaining(["tenancy.projects.get", "tenancy.teams.get"]));
    const sys = await h.client(memberToken).getRole({ tenantId: a.tenantId, roleId: SYSTEM_ROLE.member });
    expect(sys.role?.slug).toBe("member");
  });

  it("rejects a malformed id", async () => {
    await expectInvalid(h.client(a.ownerToken).getRole({ tenantId: a.tenantId, roleId: "nope" }), "role_id");
  });

  it("requires a token", async () => {
    await expectCode(h.client().getRole({ tenantId: a.tenantId, roleId: SYSTEM_ROLE.member }), Code.Unauthenticated);
  });

  it("requires authorization.roles.get", async () => {
    await expectCode(
      h.client(strangerToken).getRole({ tenantId: a.tenantId, roleId: SYSTEM_ROLE.member }),
      Code.PermissionDenied,
    );
  });

  it("reports an unknown role", async () => {
    await expectCode(h.client(a.ownerToken).getRole({ tenantId: a.tenantId, roleId: newId("role") }), Code.NotFound);
  });

  it("hides another tenant and its roles", async () => {
    const rb = await makeRole(b);
    await expectCode(h.client(a.ownerToken).getRole({ tenantId: b.tenantId, roleId: rb.id }), Code.NotFound);
    await expectCode(h.client(a.ownerToken).getRole({ tenantId: a.tenantId, roleId: rb.id }), Code.NotFound);
  });
});

describe("ListRoles", () => {
  it("lists system and custom roles of the tenant only", async () => {
    const ra = await makeRole(a);
    const rb = await makeRole(b);
    const res = await h.client(a.ownerToken).listRoles({ tenantId: a.tenantId, pageSize: 1000 });
    const ids = res.roles.map((r) => r.id);
    expect(ids).toContain(ra.id);
    expect(ids).toContain(SYSTEM_ROLE.tenantOwner);
    expect(ids).not.toContain(rb.id);
  });

  it("rejects invalid input", async () => {
    await expectInvalid(h.client(a.ownerToken).listRoles({ tenantId: a.tenantId, pageSize: 5000 }), "page_size");
  });

  it("requires a token", async () => {
    await expectCode(h.client().listRoles({ tenantId: a.tenantId }), Code.Unauthenticated);
  });

  it("requires authorization.roles.list", async () => {
    await expectCode(h.client(strangerToken).listRoles({ tenantId: a.tenantId }), Code.PermissionDenied);
  });

  it("hides another tenant", async () => {
    await expectCode(h.client(a.ownerToken).listRoles({ tenantId: b.tenantId }), Code.NotFound);
  });
});

describe("UpdateRole", () => {
  it("updates the fields in the mask", async () => {
    const r = await makeRole(a);
    const res = await h.client(a.ownerToken).updateRole({
      tenantId: a.tenantId,
      roleId: r.id,
      displayName: "Renamed",
      permissions: ["tenancy.teams.*"],
      updateMask: { paths: ["display_name", "permissions"] },
    });
    expect(res.role).toMatchObject({ id: r.id, displayName: "Renamed", permissions: ["tenancy.teams.*"] });
  });

  it("rejects unknown permissions and missing masks", async () => {
    const r = await makeRole(a);
    const owner = h.client(a.ownerToken);
    await expectInvalid(
      owner.updateRole({
        tenantId: a.tenantId,
        roleId: r.id,
        permissions: ["tenancy.nope.get"],
        updateMask: { paths: ["permissions"] },
      }),
      "permissions[0]",
    );
    await expectInvalid(owner.updateRole({ tenantId: a.tenantId, roleId: r.id, displayName: "x" }), "update_mask");
  });

  it("rejects an include cycle", async () => {
    const roleB = await makeRole(a);
    const roleA = await makeRole(a, { includedRoleIds: [roleB.id] });
    const owner = h.client(a.ownerToken);
    await expectInvalid(
      owner.updateRole({
        tenantId: a.tenantId,
        roleId: roleB.id,
        includedRoleIds: [roleA.id],
        updateMask: { paths: ["included_role_ids"] },
      }),
      "included_role_ids",
    );
    await expectInvalid(
      owner.updateRole({
        tenantId: a.tenantId,
        roleId: roleB.id,
        includedRoleIds: [roleB.id],
        updateMask: { paths: ["included_role_ids"] },
      }),
      "included_role_ids[0]",
    );
  });

  it("refuses to change a system role", async () => {
    await expectCode(
      h.client(a.ownerToken).updateRole({
        tenantId: a.tenantId,
        roleId: SYSTEM_ROLE.member,
        displayName: "x",
        updateMask: { paths: ["display_name"] },
      }),
      Code.FailedPrecondition,
    );
  });

  it("requires a token", async () => {
    await expectCode(
      h.client().updateRole({
        tenantId: a.tenantId,
        roleId: newId("role"),
        displayName: "x",
        updateMask: { paths: ["display_name"] },
      }),
      Code.Unauthenticated,
    );
  });

  it("requires authorization.roles.update", async () => {
    const r = await makeRole(a);
    await expectCode(
      h.client(memberToken).updateRole({
        tenantId: a.tenantId,
        roleId: r.id,
        displayName: "x",
        updateMask: { paths: ["display_name"] },
      }),
      Code.PermissionDenied,
    );
  });

  it("reports an unknown role and hides other tenants' roles", async () => {
    const owner = h.client(a.ownerToken);
    const upd = (tenantId: string, roleId: string) =>
      owner.updateRole({ tenantId, roleId, displayName: "x", updateMask: { paths: ["display_name"] } });
    await expectCode(upd(a.tenantId, newId("role")), Code.NotFound);
    const rb = await makeRole(b);
    await expectCode(upd(b.tenantId, rb.id), Code.NotFound);
    await expectCode(upd(a.tenantId, rb.id), Code.NotFound);
  });
});

describe("DeleteRole", () => {
  it("deletes a role", async () => {
    const r = await makeRole(a);
    const owner = h.client(a.ownerToken);
    const res = await owner.deleteRole({ tenantId: a.tenantId, roleId: r.id });
    expect(res.revision).toContain(a.tenantId);
    await expectCode(owner.getRole({ tenantId: a.tenantId, roleId: r.id }), Code.NotFound);
  });

  it("rejects a malformed id", async () => {
    await expectInvalid(h.client(a.ownerToken).deleteRole({ tenantId: a.tenantId, roleId: "role_x" }), "role_id");
  });

  it("requires a token", async () => {
    await expectCode(h.client().deleteRole({ tenantId: a.tenantId, roleId: newId("role") }), Code.Unauthenticated);
  });

  it("requires authorization.roles.delete", async () => {
    const r = await makeRole(a);
    await expectCode(h.client(memberToken).deleteRole({ tenantId: a.tenantId, roleId: r.id }), Code.PermissionDenied);
  });

  it("reports an unknown role and hides other tenants' roles", async () => {
    const owner = h.client(a.ownerToken);
    await expectCode(owner.deleteRole({ tenantId: a.tenantId, roleId: newId("role") }), Code.NotFound);
    const rb = await makeRole(b);
    await expectCode(owner.deleteRole({ tenantId: b.tenantId, roleId: rb.id }), Code.NotFound);
    await expectCode(owner.deleteRole({ tenantId: a.tenantId, roleId: rb.id }), Code.NotFound);
  });
});

describe("ListPermissions", () => {
  it("lists the catalogue to any authenticated caller", async () => {
    const res = await h.client(memberToken).listPermissions({ pageSize: 1000 });
    const names = res.permissions.map((p) => p.name);
    expect(names).toContain("authorization.roles.create");
    expect(names).toContain("tenancy.projects.create");
    const only = await h.client(memberToken).listPermissions({ service: "tenancy", pageSize: 1000 });
    expect(only.permissions.length).toBeGreaterThan(0);
    expect(only.permissions.every((p) => p.name.startsWith("tenancy."))).toBe(true);
  });

  it("rejects invalid input", async () => {
    await expectInvalid(h.client(memberToken).listPermissions({ service: "Bad!" }), "service");
  });

  it("requires a token", async () => {
    await expectCode(h.client().listPermissions({}), Code.Unauthenticated);
  });
});

describe("ListSystemRoles", () => {
  it("lists the system roles", async () => {
    const res = await h.client(memberToken).listSystemRoles({ pageSize: 1000 });
    const ids = res.roles.map((r) => r.id);
    expect(ids).toEqual(
      expect.arrayContaining([SYSTEM_ROLE.platformAdmin, SYSTEM_ROLE.tenantOwner, SYSTEM_ROLE.member]),
    );
  });

  it("rejects invalid input", async () => {
    await expectInvalid(h.client(memberToken).listSystemRoles({ pageSize: -1 }), "page_size");
  });

  it("requires a token", async () => {
    await expectCode(h.client().listSystemRoles({}), Code.Unauthenticated);
  });
});
