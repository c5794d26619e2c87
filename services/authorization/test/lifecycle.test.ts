/**
 * What happens to grants over time and as tenancy changes: sensitive grants and expiries
 * are events; leaving a tenant removes the user's bindings there; a suspended tenant
 * grants nothing but platform bindings until resumed; a deleted team's grants stop.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { newId } from "@uab/core";
import { unpackPayload } from "@uab/events";
import { Scope } from "@uab/proto";
import { DecisionReason } from "@uab/proto/gen/uab/authorization/v1/decision_pb.js";
import {
  BindingDeletedSchema,
  BindingExpiredSchema,
  SensitiveRoleGrantedSchema,
} from "@uab/proto/gen/uab/authorization/v1/events_pb.js";
import { PrincipalType } from "@uab/proto/gen/uab/authorization/v1/principal_pb.js";
import { eventually, expectCode } from "@uab/testing";
import { systemRoleId } from "../src/index.js";
import { type Harness, startHarness, type TestTenant } from "./harness.js";

let h: Harness;
let mfaAdmin: string;
beforeAll(async () => {
  // Sweeps every second here, so an expired binding is swept while the test waits.
  h = await startHarness({ env: { UAB_AUTHORIZATION_SWEEP_INTERVAL_SECONDS: "1" } });
  mfaAdmin = await h.token({ sub: h.adminId, mfa_time: Math.floor(Date.now() / 1000) });
});
afterAll(async () => {
  await h?.close();
});

const event = (type: string, match: (e: (typeof h.events)[number]) => boolean) =>
  eventually(() => h.events.find((e) => e.event.type === `uab.authorization.v1.${type}` && match(e)), 5000);

async function check(t: TestTenant, userId: string, permission: string, minRevision = "") {
  const res = await h.client(h.adminToken).check({
    tenantId: t.tenantId,
    principal: { type: PrincipalType.USER, id: userId, tenantId: t.tenantId },
    permission,
    scope: { type: Scope.TENANT, tenantId: t.tenantId },
    minRevision,
  });
  return res.result!;
}

describe("grant lifecycle", () => {
  it("granting a sensitive role is a SensitiveRoleGranted event naming its sensitive permissions; viewer is not", async () => {
    const t = await h.tenant("sens");
    const m = await h.member(t.tenantId);
    const owner = h.client(t.ownerToken);
    const admin = await owner.createBinding({
      tenantId: t.tenantId,
      principal: { type: PrincipalType.USER, id: m.userId },
      roleId: systemRoleId("admin"),
      scope: { type: Scope.TENANT, tenantId: t.tenantId },
    });
    const e = await event("SensitiveRoleGranted", (d) => d.event.resource?.id === admin.binding!.id);
    const payload = unpackPayload(e.event, SensitiveRoleGrantedSchema)!;
    expect(payload.role?.slug).toBe("admin");
    expect(payload.sensitivePermissions).toContain("authorization.bindings.create");
    expect(payload.sensitivePermissions.every((p) => !p.endsWith(".get") && !p.endsWith(".list"))).toBe(true);

    const viewer = await owner.createBinding({
      tenantId: t.tenantId,
      principal: { type: PrincipalType.USER, id: m.userId },
      roleId: systemRoleId("viewer"),
      scope: { type: Scope.TENANT, tenantId: t.tenantId },
    });
    await event("BindingCreated", (d) => d.event.resource?.id === viewer.binding!.id);
    expect(
      h.events.some(
        (d) =>
          d.event.type === "uab.authorization.v1.SensitiveRoleGranted" && d.event.resource?.id === viewer.binding!.id,
      ),
    ).toBe(false);
  });

  it("an expired binding stops granting, is swept and becomes a BindingExpired event", async () => {
    const t = await h.tenant("exp");
    const m = await h.member(t.tenantId);
    const { binding, revision } = await h.client(t.ownerToken).createBinding({
      tenantId: t.tenantId,
      principal: { type: PrincipalType.USER, id: m.userId },
      roleId: systemRoleId("project-admin"),
      scope: { type: Scope.TENANT, tenantId: t.tenantId },
      expireTime: { seconds: BigInt(Math.floor(Date.now() / 1000) + 2) },
    });
    expect((await check(t, m.userId, "tenancy.projects.update", revision)).allowed).toBe(true);
    const e = await event("BindingExpired", (d) => d.event.resource?.id === binding!.id);
    expect(unpackPayload(e.event, BindingExpiredSchema)?.binding?.id).toBe(binding!.id);
    const after = await check(t, m.userId, "tenancy.projects.update");
    expect(after).toMatchObject({ allowed: false, reason: DecisionReason.NO_BINDING });
    const rows = await h.adminDb.selectFrom("bindings").select("id").where("id", "=", binding!.id).execute();
    expect(rows).toEqual([]);
  });

  it("leaving the tenant removes every binding the user held there", async () => {
    const t = await h.tenant("leave");
    const userId = newId("user");
    const { membership } = await h.tenancy(h.adminToken).createMembership({ tenantId: t.tenantId, userId });
    const granted = await eventually(async () => {
      const r = await check(t, userId, "tenancy.tenants.get");
      return r.allowed ? r : undefined;
    });
    expect(granted.roleId).toBe(systemRoleId("member"));
    const extra = await h.client(t.ownerToken).createBinding({
      tenantId: t.tenantId,
      principal: { type: PrincipalType.USER, id: userId },
      roleId: systemRoleId("project-admin"),
      scope: { type: Scope.TENANT, tenantId: t.tenantId },
    });
    await h.tenancy(h.adminToken).deleteMembership({ tenantId: t.tenantId, membershipId: membership!.id });
    const e = await event("BindingDeleted", (d) => d.event.resource?.id === extra.binding!.id);
    expect(unpackPayload(e.event, BindingDeletedSchema)?.reason).toBe("membership ended");
    await eventually(async () => ((await check(t, userId, "tenancy.tenants.get")).allowed ? undefined : true));
    expect((await check(t, userId, "tenancy.projects.update")).allowed).toBe(false);
  });

  it("a suspended tenant grants only through platform bindings until it is resumed", async () => {
    const t = await h.tenant("susp");
    await h.tenancy(mfaAdmin).suspendTenant({ tenantId: t.tenantId, reason: "unpaid invoices" });
    await eventually(async () => {
      const r = await check(t, t.ownerId, "tenancy.projects.list");
      return r.reason === DecisionReason.TENANT_SUSPENDED ? r : undefined;
    });
    await expectCode(h.tenancy(t.ownerToken).listProjects({ tenantId: t.tenantId }), Code.PermissionDenied);
    // The platform admin (a platform binding) still reaches the tenant, to resume it.
    await h.tenancy(mfaAdmin).resumeTenant({ tenantId: t.tenantId });
    await eventually(async () => ((await check(t, t.ownerId, "tenancy.projects.list")).allowed ? true : undefined));
    await h.tenancy(t.ownerToken).listProjects({ tenantId: t.tenantId });
  });

  it("a deleted team's grants stop for its members", async () => {
    const t = await h.tenant("team");
    const m = await h.member(t.tenantId);
    const tenancy = h.tenancy(t.ownerToken);
    const { team } = await tenancy.createTeam({ tenantId: t.tenantId, slug: "ops", displayName: "Ops" });
    await tenancy.addTeamMember({ tenantId: t.tenantId, teamId: team!.id, userId: m.userId });
    await h.client(t.ownerToken).createBinding({
      tenantId: t.tenantId,
      principal: { type: PrincipalType.TEAM, id: team!.id },
      roleId: systemRoleId("project-admin"),
      scope: { type: Scope.TENANT, tenantId: t.tenantId },
    });
    const via = await eventually(async () => {
      const r = await check(t, m.userId, "tenancy.projects.update");
      return r.allowed ? r : undefined;
    });
    expect(via.teamId).toBe(team!.id);
    await tenancy.deleteTeam({ tenantId: t.tenantId, teamId: team!.id });
    await eventually(async () => ((await check(t, m.userId, "tenancy.projects.update")).allowed ? undefined : true));
  });
});
