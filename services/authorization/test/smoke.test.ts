/**
 * End to end through both services: a tenant's owner (from tenancy's membership events)
 * makes a custom role, binds a member, the member's tenancy calls are allowed by that
 * binding, and a revoke is effective on the next call for the holder of its revision.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { Scope } from "@uab/proto";
import { DecisionReason } from "@uab/proto/gen/uab/authorization/v1/decision_pb.js";
import { PrincipalType } from "@uab/proto/gen/uab/authorization/v1/principal_pb.js";
import { expectCode } from "@uab/testing";
import { type Harness, startHarness } from "./harness.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

describe("authorization end to end", () => {
  it("grants through a custom role and revokes immediately for the revision holder", async () => {
    const t = await h.tenant("smoke");
    const m = await h.member(t.tenantId);
    const owner = h.client(t.ownerToken);
    // A plain member may read the tenant but not create projects.
    await expectCode(
      h.tenancy(m.token).createProject({ tenantId: t.tenantId, slug: "p1", displayName: "P1" }),
      Code.PermissionDenied,
    );
    const { role } = await owner.createRole({
      tenantId: t.tenantId,
      slug: "project-maker",
      displayName: "Project maker",
      permissions: ["tenancy.projects.*"],
      assignableScopes: [Scope.TENANT],
    });
    const created = await owner.createBinding({
      tenantId: t.tenantId,
      principal: { type: PrincipalType.USER, id: m.userId },
      roleId: role!.id,
      scope: { type: Scope.TENANT, tenantId: t.tenantId },
    });
    expect(created.binding?.delegated).toBe(false);
    const p = await h
      .tenancy(m.token, { "uab-min-revision": created.revision })
      .createProject({ tenantId: t.tenantId, slug: "p1", displayName: "P1" });
    expect(p.project?.tenantId).toBe(t.tenantId);

    const check = await owner.check({
      tenantId: t.tenantId,
      principal: { type: PrincipalType.USER, id: m.userId, tenantId: t.tenantId },
      permission: "tenancy.projects.update",
      scope: { type: Scope.PROJECT, tenantId: t.tenantId, projectId: p.project!.id },
    });
    expect(check.result).toMatchObject({ allowed: true, bindingId: created.binding!.id, roleId: role!.id });

    const revoked = await owner.deleteBinding({ tenantId: t.tenantId, bindingId: created.binding!.id });
    await expectCode(
      h
        .tenancy(m.token, { "uab-min-revision": revoked.revision })
        .createProject({ tenantId: t.tenantId, slug: "p2", displayName: "P2" }),
      Code.PermissionDenied,
    );
    const after = await owner.check({
      tenantId: t.tenantId,
      principal: { type: PrincipalType.USER, id: m.userId, tenantId: t.tenantId },
      permission: "tenancy.projects.update",
      scope: { type: Scope.PROJECT, tenantId: t.tenantId, projectId: p.project!.id },
      minRevision: revoked.revision,
    });
    expect(after.result).toMatchObject({ allowed: false, reason: DecisionReason.NO_BINDING });
  });
});
