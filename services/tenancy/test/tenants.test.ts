/**
 * Tenant RPCs: CreateTenant, GetTenant, ListTenants, UpdateTenant, DeleteTenant,
 * RestoreTenant, SuspendTenant, ResumeTenant, one test per outcome, then the lifecycle
 * (suspension, termination, purge), masks and etags, slug/domain uniqueness, pagination.
 */

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import {
  TenantCreatedSchema,
  TenantDeletedSchema,
  TenantPurgedSchema,
  TenantRestoredSchema,
  TenantResumedSchema,
  TenantSuspendedSchema,
  TenantUpdatedSchema,
} from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import { TenantStatus } from "@uab/proto/gen/uab/tenancy/v1/tenant_pb.js";
import { type Harness, startHarness, userId } from "./harness.js";
import {
  afterRestoreWindow,
  createTenant,
  delivered,
  describeAccess,
  expectCode,
  expectEvent,
  expectInvalid,
  slug,
  sweepAt,
  type TenancyClient,
  unknown,
} from "./support.js";

const DAY = 86_400_000;
const TENANT = "tenancy.tenant";

let h: Harness;
let admin: TenancyClient;
/** The tenant the access matrix targets (left unchanged by it). */
let main: Awaited<ReturnType<typeof createTenant>>;
let other: Awaited<ReturnType<typeof createTenant>>;

beforeAll(async () => {
  h = await startHarness();
  admin = h.client(h.adminToken);
  main = await createTenant(h, "main");
  other = await createTenant(h, "other");
});
afterAll(async () => {
  await h.close();
});

describe("CreateTenant", () => {
  it("provisions the tenant and its first owner, and emits TenantCreated", async () => {
    const owner = userId();
    const s = slug("acme");
    const res = await admin.createTenant({
      slug: s,
      displayName: "Acme Inc.",
      ownerUserId: owner,
      planId: "pro",
      branding: { productName: "Acme Admin", primaryColor: "#ff0000" },
      customDomain: `${s}.example.com`,
    });
    const t = res.tenant!;
    expect(t.id).toMatch(/^ten_[0-9a-z]{26}$/);
    expect(t).toMatchObject({
      slug: s,
      displayName: "Acme Inc.",
      status: TenantStatus.ACTIVE,
      planId: "pro",
      customDomain: `${s}.example.com`,
      etag: "1",
      branding: { productName: "Acme Admin", primaryColor: "#ff0000", logoUrl: "" },
    });
    expect(t.createTime).toBeDefined();
    expect(t.deleteTime).toBeUndefined();
    expect(res.ownerMembership).toMatchObject({ tenantId: t.id, userId: owner, owner: true });
    expect(res.ownerMembership!.id).toMatch(/^mem_/);

    const payload = await expectEvent(h, TenantCreatedSchema, { type: TENANT, id: t.id, tenantId: t.id });
    expect(payload.tenant?.slug).toBe(s);
    expect(payload.ownerMembership?.userId).toBe(owner);
    const e = await delivered(h, "TenantCreated", t.id);
    expect(e.event.actor?.principalId).toBe(h.adminId);
    expect(e.event.resource?.displayName).toBe("Acme Inc.");
  });

  it.each([
    ["slug", { slug: "Not_A_Slug" }],
    ["slug", { slug: "a" }],
    ["slug", { slug: "-leading-dash" }],
    ["display_name", { displayName: "" }],
    ["owner_user_id", { ownerUserId: "bob" }],
    ["plan_id", { planId: "p".repeat(65) }],
    ["custom_domain", { customDomain: "not a host name" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    const req = { slug: slug("inv"), displayName: "Invalid", ownerUserId: userId(), ...patch };
    await expectInvalid(admin.createTenant(req), field, "INVALID_REQUEST");
    const rows = await h.adminDb.selectFrom("tenants").select("id").where("slug", "=", req.slug).execute();
    expect(rows).toHaveLength(0);
  });

  it("rejects custom attributes (a new tenant has no attribute schema yet)", async () => {
    const req = { slug: slug("attrs"), displayName: "Attrs", ownerUserId: userId(), attributes: { tier: "gold" } };
    await expectInvalid(admin.createTenant(req), "attributes.tier", "ATTRIBUTE_NOT_DECLARED");
  });

  it("rejects a slug another tenant holds (ALREADY_EXISTS naming slug), across all tenants", async () => {
    const err = await expectCode(
      admin.createTenant({ slug: main.tenant.slug, displayName: "Dup", ownerUserId: userId() }),
      Code.AlreadyExists,
      { reason: "TENANT_SLUG_TAKEN", field: "slug" },
    );
    expect(err.rawMessage).toContain(main.tenant.slug);
  });

  it("rejects a custom domain another tenant uses, case-insensitively (ALREADY_EXISTS naming custom_domain)", async () => {
    const domain = `${slug("dom")}.example.org`;
    await admin.createTenant({ slug: slug("dom"), displayName: "D1", ownerUserId: userId(), customDomain: domain });
    await expectCode(
      admin.createTenant({
        slug: slug("dom"),
        displayName: "D2",
        ownerUserId: userId(),
        customDomain: domain.toUpperCase(),
      }),
      Code.AlreadyExists,
      { reason: "CUSTOM_DOMAIN_TAKEN", field: "custom_domain" },
    );
  });
});

describe("GetTenant", () => {
  it("returns the tenant", async () => {
    const res = await admin.getTenant({ tenantId: main.tenant.id });
    expect(res.tenant).toMatchObject({
      id: main.tenant.id,
      slug: main.tenant.slug,
      displayName: main.tenant.displayName,
      status: TenantStatus.ACTIVE,
    });
  });

  it.each([["ten_123"], [""], ["prj_00000000000000000000000000"]])(
    "rejects the malformed id %j (INVALID_ARGUMENT naming tenant_id)",
    async (tenantId) => {
      await expectInvalid(admin.getTenant({ tenantId }), "tenant_id");
    },
  );

  it("answers NOT_FOUND for an unknown tenant", async () => {
    await expectCode(admin.getTenant({ tenantId: unknown.tenant() }), Code.NotFound, { reason: "TENANT_NOT_FOUND" });
  });
});

describe("ListTenants", () => {
  it("lists tenants in creation order", async () => {
    const res = await admin.listTenants({ pageSize: 1000 });
    const ids = res.tenants.map((t) => t.id);
    expect(ids).toEqual(expect.arrayContaining([main.tenant.id, other.tenant.id]));
    expect(ids.indexOf(main.tenant.id)).toBeLessThan(ids.indexOf(other.tenant.id));
    expect([...ids].sort()).toEqual(ids);
    expect(res.nextPageToken).toBe("");
  });

  it.each([
    ["page_size", { pageSize: 1001 }],
    ["page_size", { pageSize: -1 }],
    ["status", { status: 42 as TenantStatus }],
    ["query", { query: "q".repeat(201) }],
    ["plan_id", { planId: "p".repeat(65) }],
    ["page_token", { pageToken: "t".repeat(513) }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, req) => {
    await expectInvalid(admin.listTenants(req), field);
  });

  it("rejects a page token it did not issue (INVALID_ARGUMENT naming page_token)", async () => {
    await expectInvalid(admin.listTenants({ pageToken: "not-a-token" }), "page_token");
  });

  it("finds nothing for filters no tenant matches (an empty page, not an error)", async () => {
    const res = await admin.listTenants({ planId: "no-such-plan" });
    expect(res.tenants).toEqual([]);
    expect(res.nextPageToken).toBe("");
  });
});

describe("UpdateTenant", () => {
  it("changes the masked fields, bumps the etag and emits TenantUpdated", async () => {
    const { tenant } = await createTenant(h, "upd");
    const res = await admin.updateTenant({
      tenantId: tenant.id,
      displayName: "Renamed",
      planId: "enterprise",
      branding: { logoUrl: "https://cdn.example.com/logo.png" },
      updateMask: { paths: ["display_name", "plan_id", "branding"] },
      etag: tenant.etag,
    });
    expect(res.tenant).toMatchObject({
      id: tenant.id,
      slug: tenant.slug,
      displayName: "Renamed",
      planId: "enterprise",
      branding: { logoUrl: "https://cdn.example.com/logo.png" },
      etag: "2",
    });
    const payload = await expectEvent(h, TenantUpdatedSchema, { type: TENANT, id: tenant.id, tenantId: tenant.id });
    expect([...payload.changedFields].sort()).toEqual(["branding", "display_name", "plan_id"]);
    expect(payload.tenant?.displayName).toBe("Renamed");
  });

  it("changes only the fields named in update_mask", async () => {
    const { tenant } = await createTenant(h, "mask");
    const res = await admin.updateTenant({
      tenantId: tenant.id,
      displayName: "Ignored",
      planId: "team",
      customDomain: "ignored.example.com",
      branding: { productName: "Ignored" },
      updateMask: { paths: ["plan_id"] },
    });
    expect(res.tenant).toMatchObject({ displayName: tenant.displayName, planId: "team", customDomain: "" });
    const row = await h.adminDb.selectFrom("tenants").selectAll().where("id", "=", tenant.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ display_name: tenant.displayName, plan_id: "team", custom_domain: null, branding: {} });
  });

  it("clears the custom domain when it is masked and empty", async () => {
    const s = slug("clr");
    const res = await admin.createTenant({
      slug: s,
      displayName: "Clear",
      ownerUserId: userId(),
      customDomain: `${s}.example.net`,
    });
    const updated = await admin.updateTenant({ tenantId: res.tenant!.id, updateMask: { paths: ["custom_domain"] } });
    expect(updated.tenant?.customDomain).toBe("");
  });

  it("fails with ABORTED on a stale etag and changes nothing", async () => {
    const { tenant } = await createTenant(h, "etag");
    await admin.updateTenant({ tenantId: tenant.id, planId: "a", updateMask: { paths: ["plan_id"] } });
    await expectCode(
      admin.updateTenant({
        tenantId: tenant.id,
        displayName: "Lost update",
        updateMask: { paths: ["display_name"] },
        etag: tenant.etag,
      }),
      Code.Aborted,
      { reason: "ETAG_MISMATCH" },
    );
    const now = await admin.getTenant({ tenantId: tenant.id });
    expect(now.tenant).toMatchObject({ displayName: tenant.displayName, planId: "a", etag: "2" });
  });

  it.each([
    ["update_mask", { updateMask: { paths: ["slug"] } }],
    ["update_mask", { updateMask: { paths: ["display_name", "no_such_field"] } }],
    ["update_mask", { updateMask: { paths: [] } }],
    ["update_mask", { updateMask: undefined }],
    ["tenant_id", { tenantId: "ten_x" }],
    ["custom_domain", { customDomain: "bad domain", updateMask: { paths: ["custom_domain"] } }],
    ["etag", { etag: "e".repeat(65) }],
  ])("rejects an invalid %s (INVALID_ARGUMENT) and changes nothing", async (field, patch) => {
    await expectInvalid(
      admin.updateTenant({
        tenantId: main.tenant.id,
        displayName: "Nope",
        updateMask: { paths: ["display_name"] },
        ...patch,
      }),
      field,
    );
    expect((await admin.getTenant({ tenantId: main.tenant.id })).tenant?.displayName).toBe(main.tenant.displayName);
  });

  it("rejects an empty display_name when it is masked (INVALID_ARGUMENT naming display_name)", async () => {
    // A message-level (cross-field) rule: its id names the field it constrains.
    await expectInvalid(
      admin.updateTenant({ tenantId: main.tenant.id, displayName: "", updateMask: { paths: ["display_name"] } }),
      "display_name",
    );
  });

  it("rejects a custom domain another tenant uses (ALREADY_EXISTS naming custom_domain)", async () => {
    const s = slug("taken");
    await admin.createTenant({
      slug: s,
      displayName: "Owner",
      ownerUserId: userId(),
      customDomain: `${s}.example.com`,
    });
    await expectCode(
      admin.updateTenant({
        tenantId: main.tenant.id,
        customDomain: `${s}.example.com`,
        updateMask: { paths: ["custom_domain"] },
      }),
      Code.AlreadyExists,
      { reason: "CUSTOM_DOMAIN_TAKEN", field: "custom_domain" },
    );
    expect((await admin.getTenant({ tenantId: main.tenant.id })).tenant).toMatchObject({ customDomain: "", etag: "1" });
  });

  it("rejects attributes its schema does not declare, naming attributes.<key>", async () => {
    await expectInvalid(
      admin.updateTenant({
        tenantId: main.tenant.id,
        attributes: { undeclared: 1 },
        updateMask: { paths: ["attributes"] },
      }),
      "attributes.undeclared",
      "ATTRIBUTE_NOT_DECLARED",
    );
  });

  it("answers NOT_FOUND for an unknown tenant", async () => {
    await expectCode(
      admin.updateTenant({ tenantId: unknown.tenant(), planId: "x", updateMask: { paths: ["plan_id"] } }),
      Code.NotFound,
      { reason: "TENANT_NOT_FOUND" },
    );
  });
});

describe("DeleteTenant", () => {
  it("terminates the tenant with delete and purge times and emits TenantDeleted", async () => {
    const { tenant } = await createTenant(h, "del");
    const res = await admin.deleteTenant({ tenantId: tenant.id, reason: "contract ended", etag: tenant.etag });
    const t = res.tenant!;
    expect(t).toMatchObject({ id: tenant.id, status: TenantStatus.TERMINATED, statusReason: "contract ended" });
    const deleted = timestampDate(t.deleteTime!).getTime();
    expect(Math.abs(deleted - Date.now())).toBeLessThan(60_000);
    expect(timestampDate(t.purgeTime!).getTime() - deleted).toBe(30 * DAY);
    const payload = await expectEvent(h, TenantDeletedSchema, { type: TENANT, id: tenant.id, tenantId: tenant.id });
    expect(payload.reason).toBe("contract ended");
  });

  it("rejects a reason over 500 characters (INVALID_ARGUMENT naming reason)", async () => {
    await expectInvalid(admin.deleteTenant({ tenantId: main.tenant.id, reason: "r".repeat(501) }), "reason");
    expect((await admin.getTenant({ tenantId: main.tenant.id })).tenant?.status).toBe(TenantStatus.ACTIVE);
  });

  it("fails with ABORTED on a stale etag and leaves the tenant active", async () => {
    await expectCode(admin.deleteTenant({ tenantId: main.tenant.id, etag: "999" }), Code.Aborted, {
      reason: "ETAG_MISMATCH",
    });
    expect((await admin.getTenant({ tenantId: main.tenant.id })).tenant?.status).toBe(TenantStatus.ACTIVE);
  });

  it("answers NOT_FOUND for an unknown tenant", async () => {
    await expectCode(admin.deleteTenant({ tenantId: unknown.tenant() }), Code.NotFound, { reason: "TENANT_NOT_FOUND" });
  });

  it("refuses to terminate a terminated tenant again (FAILED_PRECONDITION)", async () => {
    const { tenant } = await createTenant(h, "del2");
    await admin.deleteTenant({ tenantId: tenant.id });
    await expectCode(admin.deleteTenant({ tenantId: tenant.id }), Code.FailedPrecondition, {
      reason: "TENANT_TERMINATED",
    });
  });
});

describe("RestoreTenant", () => {
  it("brings a terminated tenant back and emits TenantRestored", async () => {
    const { tenant } = await createTenant(h, "rst");
    await admin.deleteTenant({ tenantId: tenant.id, reason: "oops" });
    const res = await admin.restoreTenant({ tenantId: tenant.id });
    expect(res.tenant).toMatchObject({ id: tenant.id, status: TenantStatus.ACTIVE, statusReason: "" });
    expect(res.tenant?.deleteTime).toBeUndefined();
    expect(res.tenant?.purgeTime).toBeUndefined();
    const payload = await expectEvent(h, TenantRestoredSchema, { type: TENANT, id: tenant.id, tenantId: tenant.id });
    expect(payload.tenant?.status).toBe(TenantStatus.ACTIVE);
  });

  it("rejects a malformed id (INVALID_ARGUMENT naming tenant_id)", async () => {
    await expectInvalid(admin.restoreTenant({ tenantId: "tenant-1" }), "tenant_id");
  });

  it("answers NOT_FOUND for an unknown tenant", async () => {
    await expectCode(admin.restoreTenant({ tenantId: unknown.tenant() }), Code.NotFound, {
      reason: "TENANT_NOT_FOUND",
    });
  });

  it("refuses to restore a tenant past its purge time, even before the sweep removed it (FAILED_PRECONDITION)", async () => {
    const { tenant } = await createTenant(h, "late");
    await admin.deleteTenant({ tenantId: tenant.id });
    const past = new Date(Date.now() - 1000);
    await h.adminDb.updateTable("tenants").set({ purge_at: past }).where("id", "=", tenant.id).execute();
    await expectCode(admin.restoreTenant({ tenantId: tenant.id }), Code.FailedPrecondition, {
      reason: "RESTORE_WINDOW_EXPIRED",
    });
    expect((await admin.getTenant({ tenantId: tenant.id })).tenant?.status).toBe(TenantStatus.TERMINATED);
  });

  it("refuses to restore a tenant that is not terminated (FAILED_PRECONDITION)", async () => {
    await expectCode(admin.restoreTenant({ tenantId: main.tenant.id }), Code.FailedPrecondition, {
      reason: "TENANT_ACTIVE",
    });
  });
});

describe("SuspendTenant", () => {
  it("suspends an active tenant with a reason and emits TenantSuspended", async () => {
    const { tenant } = await createTenant(h, "sus");
    const res = await admin.suspendTenant({ tenantId: tenant.id, reason: "unpaid invoice" });
    expect(res.tenant).toMatchObject({
      id: tenant.id,
      status: TenantStatus.SUSPENDED,
      statusReason: "unpaid invoice",
      etag: "2",
    });
    const payload = await expectEvent(h, TenantSuspendedSchema, { type: TENANT, id: tenant.id, tenantId: tenant.id });
    expect(payload.reason).toBe("unpaid invoice");
  });

  it.each([
    ["reason", { reason: "" }],
    ["reason", { reason: "r".repeat(501) }],
    ["tenant_id", { tenantId: "ten_" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    await expectInvalid(admin.suspendTenant({ tenantId: main.tenant.id, reason: "x", ...patch }), field);
    expect((await admin.getTenant({ tenantId: main.tenant.id })).tenant?.status).toBe(TenantStatus.ACTIVE);
  });

  it("answers NOT_FOUND for an unknown tenant", async () => {
    await expectCode(admin.suspendTenant({ tenantId: unknown.tenant(), reason: "x" }), Code.NotFound, {
      reason: "TENANT_NOT_FOUND",
    });
  });
});

describe("ResumeTenant", () => {
  it("lifts a suspension and emits TenantResumed", async () => {
    const { tenant } = await createTenant(h, "res");
    await admin.suspendTenant({ tenantId: tenant.id, reason: "audit" });
    const res = await admin.resumeTenant({ tenantId: tenant.id });
    expect(res.tenant).toMatchObject({ id: tenant.id, status: TenantStatus.ACTIVE, statusReason: "", etag: "3" });
    const payload = await expectEvent(h, TenantResumedSchema, { type: TENANT, id: tenant.id, tenantId: tenant.id });
    expect(payload.tenant?.status).toBe(TenantStatus.ACTIVE);
  });

  it("rejects a malformed id (INVALID_ARGUMENT naming tenant_id)", async () => {
    await expectInvalid(admin.resumeTenant({ tenantId: "TEN_01" }), "tenant_id");
  });

  it("answers NOT_FOUND for an unknown tenant", async () => {
    await expectCode(admin.resumeTenant({ tenantId: unknown.tenant() }), Code.NotFound, {
      reason: "TENANT_NOT_FOUND",
    });
  });

  it("refuses to resume a tenant that is not suspended (FAILED_PRECONDITION)", async () => {
    await expectCode(admin.resumeTenant({ tenantId: main.tenant.id }), Code.FailedPrecondition, {
      reason: "TENANT_ACTIVE",
    });
  });
});

describe("access", () => {
  const ctx = () => ({ h, tenantId: main.tenant.id, otherTenantId: other.tenant.id });
  describeAccess(ctx, [
    {
      rpc: "CreateTenant",
      platform: true,
      call: (c) => c.createTenant({ slug: slug("acc"), displayName: "Access", ownerUserId: userId() }),
    },
    { rpc: "GetTenant", call: (c) => c.getTenant({ tenantId: main.tenant.id }) },
    { rpc: "ListTenants", platform: true, call: (c) => c.listTenants({}) },
    {
      rpc: "UpdateTenant",
      call: (c) =>
        c.updateTenant({ tenantId: main.tenant.id, displayName: "Hijacked", updateMask: { paths: ["display_name"] } }),
    },
    { rpc: "DeleteTenant", call: (c) => c.deleteTenant({ tenantId: main.tenant.id }) },
    { rpc: "RestoreTenant", platform: true, call: (c) => c.restoreTenant({ tenantId: main.tenant.id }) },
    { rpc: "SuspendTenant", platform: true, call: (c) => c.suspendTenant({ tenantId: main.tenant.id, reason: "x" }) },
    { rpc: "ResumeTenant", platform: true, call: (c) => c.resumeTenant({ tenantId: main.tenant.id }) },
  ]);

  it("left the tenant and the tenant list untouched", async () => {
    const t = (await admin.getTenant({ tenantId: main.tenant.id })).tenant!;
    expect(t).toMatchObject({ status: TenantStatus.ACTIVE, displayName: main.tenant.displayName, etag: "1" });
    const created = await h.adminDb.selectFrom("tenants").select("id").where("slug", "like", "acc-%").execute();
    expect(created).toEqual([]);
  });
});

describe("suspended tenant", () => {
  it("stays readable, rejects writes with TENANT_SUSPENDED, and accepts them again once resumed", async () => {
    const { tenant, owner, ownerMembership } = await createTenant(h, "frozen");
    const tenantId = tenant.id;
    const project = (await admin.createProject({ tenantId, slug: "p", displayName: "P" })).project!;
    const team = (await admin.createTeam({ tenantId, slug: "t", displayName: "T" })).team!;
    const member = (await admin.createMembership({ tenantId, userId: userId() })).membership!;
    await admin.suspendTenant({ tenantId, reason: "payment overdue" });

    // Reads keep working.
    expect((await admin.getTenant({ tenantId })).tenant?.status).toBe(TenantStatus.SUSPENDED);
    expect((await admin.getProject({ tenantId, projectId: project.id })).project?.id).toBe(project.id);
    expect((await admin.listTeams({ tenantId })).teams.map((t) => t.id)).toEqual([team.id]);
    expect((await admin.listMemberships({ tenantId })).memberships).toHaveLength(2);

    const writes: [string, () => Promise<unknown>][] = [
      ["UpdateTenant", () => admin.updateTenant({ tenantId, planId: "x", updateMask: { paths: ["plan_id"] } })],
      ["CreateProject", () => admin.createProject({ tenantId, slug: "p2", displayName: "P2" })],
      [
        "UpdateProject",
        () =>
          admin.updateProject({
            tenantId,
            projectId: project.id,
            description: "d",
            updateMask: { paths: ["description"] },
          }),
      ],
      ["DeleteProject", () => admin.deleteProject({ tenantId, projectId: project.id })],
      ["CreateTeam", () => admin.createTeam({ tenantId, slug: "t2", displayName: "T2" })],
      ["DeleteTeam", () => admin.deleteTeam({ tenantId, teamId: team.id })],
      ["AddTeamMember", () => admin.addTeamMember({ tenantId, teamId: team.id, userId: owner })],
      ["CreateMembership", () => admin.createMembership({ tenantId, userId: userId() })],
      [
        "UpdateMembership",
        () =>
          admin.updateMembership({ tenantId, membershipId: member.id, owner: true, updateMask: { paths: ["owner"] } }),
      ],
      ["DeleteMembership", () => admin.deleteMembership({ tenantId, membershipId: member.id })],
      ["UpdateAttributeSchema", () => admin.updateAttributeSchema({ tenantId, resourceType: 2, attributes: [] })],
    ];
    for (const [rpc, write] of writes) {
      const err = await expectCode(write(), Code.FailedPrecondition, { reason: "TENANT_SUSPENDED" });
      expect([rpc, err.rawMessage]).toEqual([rpc, expect.stringContaining("suspended")]);
    }
    // Nothing was written.
    expect((await admin.getProject({ tenantId, projectId: project.id })).project?.etag).toBe("1");
    expect((await admin.getMembership({ tenantId, membershipId: ownerMembership.id })).membership?.owner).toBe(true);
    expect((await admin.listMemberships({ tenantId })).memberships).toHaveLength(2);
    await expectCode(admin.suspendTenant({ tenantId, reason: "again" }), Code.FailedPrecondition, {
      reason: "TENANT_SUSPENDED",
    });

    await admin.resumeTenant({ tenantId });
    const p2 = await admin.createProject({ tenantId, slug: "p2", displayName: "P2" });
    expect(p2.project?.tenantId).toBe(tenantId);
    const added = await admin.addTeamMember({ tenantId, teamId: team.id, userId: owner });
    expect(added.member?.userId).toBe(owner);
  });
});

describe("terminated tenant", () => {
  it("is read-only, hidden from lists unless asked for, keeps its slug, and can be restored", async () => {
    const { tenant } = await createTenant(h, "gone", { planId: "plan-gone" });
    const tenantId = tenant.id;
    await admin.deleteTenant({ tenantId, reason: "closed" });

    expect((await admin.getTenant({ tenantId })).tenant?.status).toBe(TenantStatus.TERMINATED);
    expect((await admin.listTenants({ planId: "plan-gone" })).tenants).toEqual([]);
    const shown = await admin.listTenants({ planId: "plan-gone", showDeleted: true });
    expect(shown.tenants.map((t) => t.id)).toEqual([tenantId]);
    const byStatus = await admin.listTenants({ planId: "plan-gone", status: TenantStatus.TERMINATED });
    expect(byStatus.tenants.map((t) => t.id)).toEqual([tenantId]);

    await expectCode(admin.createProject({ tenantId, slug: "p", displayName: "P" }), Code.FailedPrecondition, {
      reason: "TENANT_TERMINATED",
    });
    await expectCode(
      admin.updateTenant({ tenantId, planId: "x", updateMask: { paths: ["plan_id"] } }),
      Code.FailedPrecondition,
      { reason: "TENANT_TERMINATED" },
    );
    await expectCode(admin.suspendTenant({ tenantId, reason: "x" }), Code.FailedPrecondition, {
      reason: "TENANT_TERMINATED",
    });
    // The slug stays reserved while the tenant can be restored.
    await expectCode(
      admin.createTenant({ slug: tenant.slug, displayName: "Squatter", ownerUserId: userId() }),
      Code.AlreadyExists,
      { field: "slug" },
    );

    await admin.restoreTenant({ tenantId });
    expect((await admin.listTenants({ planId: "plan-gone" })).tenants.map((t) => t.id)).toEqual([tenantId]);
    const p = await admin.createProject({ tenantId, slug: "p", displayName: "P" });
    expect(p.project?.tenantId).toBe(tenantId);
  });
});

describe("ListTenants pagination and filters", () => {
  const plan = `plan-${slug("pg")}`;
  let ids: string[];

  beforeAll(async () => {
    ids = [];
    for (let i = 0; i < 7; i++) {
      const res = await admin.createTenant({
        slug: slug(`page${i}`),
        displayName: i === 4 ? "Needle In Haystack" : `Page ${i}`,
        ownerUserId: userId(),
        planId: plan,
      });
      ids.push(res.tenant!.id);
    }
  });

  it("pages 7 tenants 3 at a time (3, 3, 1) with chained tokens, no duplicates and no gaps", async () => {
    const sizes: number[] = [];
    const seen: string[] = [];
    let token = "";
    do {
      const res = await admin.listTenants({ planId: plan, pageSize: 3, pageToken: token });
      sizes.push(res.tenants.length);
      seen.push(...res.tenants.map((t) => t.id));
      token = res.nextPageToken;
    } while (token);
    expect(sizes).toEqual([3, 3, 1]);
    expect(seen).toEqual(ids);
  });

  it("rejects a token replayed with other filters (INVALID_ARGUMENT naming page_token)", async () => {
    const first = await admin.listTenants({ planId: plan, pageSize: 3 });
    expect(first.nextPageToken).not.toBe("");
    await expectInvalid(
      admin.listTenants({ planId: "another-plan", pageSize: 3, pageToken: first.nextPageToken }),
      "page_token",
    );
    await expectInvalid(
      admin.listTenants({ planId: plan, query: "page", pageSize: 3, pageToken: first.nextPageToken }),
      "page_token",
    );
    // The page size may change between pages.
    const rest = await admin.listTenants({ planId: plan, pageSize: 10, pageToken: first.nextPageToken });
    expect(rest.tenants.map((t) => t.id)).toEqual(ids.slice(3));
  });

  it("filters by query on slug or display name, case-insensitively, with LIKE wildcards taken literally", async () => {
    expect((await admin.listTenants({ planId: plan, query: "nEEdle" })).tenants.map((t) => t.id)).toEqual([ids[4]]);
    expect((await admin.listTenants({ planId: plan, query: "page3" })).tenants.map((t) => t.id)).toEqual([ids[3]]);
    expect((await admin.listTenants({ planId: plan, query: "%" })).tenants).toEqual([]);
    expect((await admin.listTenants({ planId: plan, query: "_" })).tenants).toEqual([]);
  });

  it("filters by status and plan", async () => {
    await admin.suspendTenant({ tenantId: ids[1]!, reason: "test" });
    const suspended = await admin.listTenants({ planId: plan, status: TenantStatus.SUSPENDED });
    expect(suspended.tenants.map((t) => t.id)).toEqual([ids[1]]);
    const active = await admin.listTenants({ planId: plan, status: TenantStatus.ACTIVE });
    expect(active.tenants.map((t) => t.id)).toEqual(ids.filter((id) => id !== ids[1]));
    // Unspecified status means active and suspended.
    expect((await admin.listTenants({ planId: plan })).tenants).toHaveLength(7);
  });
});

describe("purge", () => {
  it("removes terminated tenants past their restore window with what they own, emits TenantPurged, frees the slug", async () => {
    const { tenant } = await createTenant(h, "purge");
    const tenantId = tenant.id;
    const project = (await admin.createProject({ tenantId, slug: "p", displayName: "P" })).project!;
    const kept = await createTenant(h, "kept");
    await admin.deleteTenant({ tenantId });

    // Inside the window nothing goes.
    await sweepAt(h, new Date(Date.now() + 29 * DAY));
    expect((await admin.getTenant({ tenantId })).tenant?.status).toBe(TenantStatus.TERMINATED);

    await sweepAt(h, afterRestoreWindow());
    const payload = await expectEvent(h, TenantPurgedSchema, { type: TENANT, id: tenantId, tenantId });
    expect(payload).toMatchObject({ tenantId, slug: tenant.slug });
    await expectCode(admin.getTenant({ tenantId }), Code.NotFound, { reason: "TENANT_NOT_FOUND" });
    await expectCode(admin.restoreTenant({ tenantId }), Code.NotFound);
    const orphans = await h.adminDb.selectFrom("projects").select("id").where("id", "=", project.id).execute();
    expect(orphans).toEqual([]);
    const members = await h.adminDb.selectFrom("memberships").select("id").where("tenant_id", "=", tenantId).execute();
    expect(members).toEqual([]);
    // Live tenants are untouched; the slug is free again.
    expect((await admin.getTenant({ tenantId: kept.tenant.id })).tenant?.status).toBe(TenantStatus.ACTIVE);
    const again = await admin.createTenant({ slug: tenant.slug, displayName: "Reborn", ownerUserId: userId() });
    expect(again.tenant?.id).not.toBe(tenantId);
  });
});
