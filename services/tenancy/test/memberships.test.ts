/**
 * Membership RPCs: CreateMembership, GetMembership, ListMemberships, UpdateMembership,
 * DeleteMembership, one test per outcome, then the last-owner rule, team memberships going
 * with the tenant membership, filters and pagination.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import {
  MembershipCreatedSchema,
  MembershipDeletedSchema,
  MembershipUpdatedSchema,
} from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import type { Membership } from "@uab/proto/gen/uab/tenancy/v1/membership_pb.js";
import { type Harness, startHarness, userId } from "./harness.js";
import {
  createTenant,
  describeAccess,
  expectCode,
  expectEvent,
  expectInvalid,
  type TenancyClient,
  unknown,
} from "./support.js";

const MEMBERSHIP = "tenancy.membership";

let h: Harness;
let admin: TenancyClient;
let a: string;
let b: string;
/** Tenant A's only owner. */
let ownerA: Membership;
/** A plain member of tenant A the access matrix targets (left unchanged by it). */
let ma: Membership;
/** Tenant B's owner, invisible from tenant A. */
let ownerB: Membership;

beforeAll(async () => {
  h = await startHarness();
  admin = h.client(h.adminToken);
  const ta = await createTenant(h, "a");
  const tb = await createTenant(h, "b");
  a = ta.tenant.id;
  b = tb.tenant.id;
  ownerA = ta.ownerMembership;
  ownerB = tb.ownerMembership;
  ma = (await admin.createMembership({ tenantId: a, userId: userId() })).membership!;
});
afterAll(async () => {
  await h.close();
});

async function membership(tenantId: string, owner = false): Promise<Membership> {
  return (await admin.createMembership({ tenantId, userId: userId(), owner })).membership!;
}

/** Tenant B's owner membership as stored, to prove a call through tenant A did not touch it. */
async function ownerBUnchanged(): Promise<void> {
  const row = await h.adminDb
    .selectFrom("memberships")
    .selectAll()
    .where("id", "=", ownerB.id)
    .executeTakeFirstOrThrow();
  expect(row).toMatchObject({ tenant_id: b, owner: true, revision: "1" });
}

describe("CreateMembership", () => {
  it("makes the user a member and emits MembershipCreated", async () => {
    const user = userId();
    const res = await admin.createMembership({ tenantId: a, userId: user });
    const m = res.membership!;
    expect(m.id).toMatch(/^mem_[0-9a-z]{26}$/);
    expect(m).toMatchObject({ tenantId: a, userId: user, owner: false, etag: "1" });
    expect(m.createTime).toBeDefined();
    const payload = await expectEvent(h, MembershipCreatedSchema, { type: MEMBERSHIP, id: m.id, tenantId: a });
    expect(payload.membership?.userId).toBe(user);
  });

  it("can make the user an owner", async () => {
    const tenantId = (await createTenant(h, "co")).tenant.id;
    const m = await membership(tenantId, true);
    expect(m.owner).toBe(true);
    expect((await admin.listMemberships({ tenantId, ownersOnly: true })).memberships).toHaveLength(2);
  });

  it.each([
    ["user_id", { userId: "" }],
    ["user_id", { userId: "usr_short" }],
    ["tenant_id", { tenantId: "ten_" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    await expectInvalid(admin.createMembership({ tenantId: a, userId: userId(), ...patch }), field);
  });

  it("rejects attributes without a schema, naming attributes.<key>", async () => {
    const user = userId();
    await expectInvalid(
      admin.createMembership({ tenantId: a, userId: user, attributes: { title: "CTO" } }),
      "attributes.title",
      "ATTRIBUTE_NOT_DECLARED",
    );
    expect((await admin.listMemberships({ tenantId: a, userId: user })).memberships).toEqual([]);
  });

  it("answers NOT_FOUND for an unknown tenant", async () => {
    await expectCode(admin.createMembership({ tenantId: unknown.tenant(), userId: userId() }), Code.NotFound, {
      reason: "TENANT_NOT_FOUND",
    });
  });

  it("rejects a user who already is a member (ALREADY_EXISTS naming user_id); other tenants may add them", async () => {
    await expectCode(admin.createMembership({ tenantId: a, userId: ma.userId }), Code.AlreadyExists, {
      reason: "MEMBERSHIP_EXISTS",
      field: "user_id",
    });
    const elsewhere = await admin.createMembership({ tenantId: b, userId: ma.userId });
    expect(elsewhere.membership).toMatchObject({ tenantId: b, userId: ma.userId });
  });
});

describe("GetMembership", () => {
  it("returns the membership", async () => {
    const res = await admin.getMembership({ tenantId: a, membershipId: ma.id });
    expect(res.membership).toMatchObject({ id: ma.id, tenantId: a, userId: ma.userId, owner: false });
  });

  it.each([
    ["membership_id", { membershipId: "mem_" }],
    ["membership_id", { membershipId: userId() }],
    ["tenant_id", { tenantId: "" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    await expectInvalid(admin.getMembership({ tenantId: a, membershipId: ma.id, ...patch }), field);
  });

  it("answers NOT_FOUND for an unknown membership", async () => {
    await expectCode(admin.getMembership({ tenantId: a, membershipId: unknown.membership() }), Code.NotFound, {
      reason: "MEMBERSHIP_NOT_FOUND",
    });
  });

  it("answers NOT_FOUND for another tenant's membership", async () => {
    await expectCode(admin.getMembership({ tenantId: a, membershipId: ownerB.id }), Code.NotFound, {
      reason: "MEMBERSHIP_NOT_FOUND",
    });
  });
});

describe("ListMemberships", () => {
  it("lists the tenant's memberships, not another tenant's", async () => {
    const res = await admin.listMemberships({ tenantId: a });
    const ids = res.memberships.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining([ownerA.id, ma.id]));
    expect(ids).not.toContain(ownerB.id);
    expect(res.memberships.every((m) => m.tenantId === a)).toBe(true);
  });

  it.each([
    ["user_id", { userId: "nobody" }],
    ["page_size", { pageSize: 1001 }],
    ["page_token", { pageToken: "x" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    await expectInvalid(admin.listMemberships({ tenantId: a, ...patch }), field);
  });

  it("answers NOT_FOUND for an unknown tenant", async () => {
    await expectCode(admin.listMemberships({ tenantId: unknown.tenant() }), Code.NotFound, {
      reason: "TENANT_NOT_FOUND",
    });
  });

  it("filters by user_id and owners_only", async () => {
    expect((await admin.listMemberships({ tenantId: a, userId: ma.userId })).memberships.map((m) => m.id)).toEqual([
      ma.id,
    ]);
    expect((await admin.listMemberships({ tenantId: a, userId: ownerB.userId })).memberships).toEqual([]);
    const owners = await admin.listMemberships({ tenantId: a, ownersOnly: true });
    expect(owners.memberships.map((m) => m.id)).toEqual([ownerA.id]);
  });

  it("pages 7 memberships 3 at a time (3, 3, 1); a token replayed with other filters is INVALID_ARGUMENT", async () => {
    const { tenant, ownerMembership } = await createTenant(h, "pages");
    const ids = [ownerMembership.id];
    for (let i = 0; i < 6; i++) ids.push((await membership(tenant.id, i === 2)).id);
    const pages: string[][] = [];
    let token = "";
    do {
      const res = await admin.listMemberships({ tenantId: tenant.id, pageSize: 3, pageToken: token });
      pages.push(res.memberships.map((m) => m.id));
      token = res.nextPageToken;
    } while (token);
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat()).toEqual(ids);

    const first = await admin.listMemberships({ tenantId: tenant.id, pageSize: 3 });
    await expectInvalid(
      admin.listMemberships({ tenantId: tenant.id, ownersOnly: true, pageToken: first.nextPageToken }),
      "page_token",
    );
    await expectInvalid(admin.listMemberships({ tenantId: a, pageToken: first.nextPageToken }), "page_token");
    const owners = await admin.listMemberships({ tenantId: tenant.id, ownersOnly: true, pageSize: 1 });
    const more = await admin.listMemberships({
      tenantId: tenant.id,
      ownersOnly: true,
      pageSize: 1,
      pageToken: owners.nextPageToken,
    });
    expect([...owners.memberships, ...more.memberships].map((m) => m.id)).toEqual([ids[0], ids[3]]);
    expect(more.nextPageToken).toBe("");
  });
});

describe("UpdateMembership", () => {
  it("changes the owner flag, bumps the etag and emits MembershipUpdated", async () => {
    const m = await membership(a);
    const res = await admin.updateMembership({
      tenantId: a,
      membershipId: m.id,
      owner: true,
      updateMask: { paths: ["owner"] },
      etag: m.etag,
    });
    expect(res.membership).toMatchObject({ id: m.id, userId: m.userId, owner: true, etag: "2" });
    const payload = await expectEvent(h, MembershipUpdatedSchema, { type: MEMBERSHIP, id: m.id, tenantId: a });
    expect(payload.changedFields).toEqual(["owner"]);
    expect(payload.membership?.owner).toBe(true);
  });

  it("changes only the fields named in update_mask", async () => {
    const m = await membership(a);
    const res = await admin.updateMembership({
      tenantId: a,
      membershipId: m.id,
      owner: true,
      attributes: {},
      updateMask: { paths: ["attributes"] },
    });
    expect(res.membership).toMatchObject({ owner: false, etag: "2" });
    const row = await h.adminDb.selectFrom("memberships").selectAll().where("id", "=", m.id).executeTakeFirstOrThrow();
    expect(row.owner).toBe(false);
  });

  it("fails with ABORTED on a stale etag and changes nothing", async () => {
    const m = await membership(a);
    await admin.updateMembership({
      tenantId: a,
      membershipId: m.id,
      attributes: {},
      updateMask: { paths: ["attributes"] },
    });
    await expectCode(
      admin.updateMembership({
        tenantId: a,
        membershipId: m.id,
        owner: true,
        updateMask: { paths: ["owner"] },
        etag: m.etag,
      }),
      Code.Aborted,
      { reason: "ETAG_MISMATCH" },
    );
    expect((await admin.getMembership({ tenantId: a, membershipId: m.id })).membership).toMatchObject({
      owner: false,
      etag: "2",
    });
  });

  it.each([
    ["update_mask", { updateMask: { paths: ["user_id"] } }],
    ["update_mask", { updateMask: { paths: ["owner", "tenant_id"] } }],
    ["update_mask", { updateMask: undefined }],
    ["membership_id", { membershipId: "mem_1" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT) and changes nothing", async (field, patch) => {
    await expectInvalid(
      admin.updateMembership({
        tenantId: a,
        membershipId: ma.id,
        owner: true,
        updateMask: { paths: ["owner"] },
        ...patch,
      }),
      field,
    );
    expect((await admin.getMembership({ tenantId: a, membershipId: ma.id })).membership).toMatchObject({
      owner: false,
      etag: "1",
    });
  });

  it("answers NOT_FOUND for an unknown membership", async () => {
    await expectCode(
      admin.updateMembership({
        tenantId: a,
        membershipId: unknown.membership(),
        owner: true,
        updateMask: { paths: ["owner"] },
      }),
      Code.NotFound,
      { reason: "MEMBERSHIP_NOT_FOUND" },
    );
  });

  it("answers NOT_FOUND for another tenant's membership and leaves it unchanged", async () => {
    await expectCode(
      admin.updateMembership({ tenantId: a, membershipId: ownerB.id, owner: false, updateMask: { paths: ["owner"] } }),
      Code.NotFound,
      { reason: "MEMBERSHIP_NOT_FOUND" },
    );
    await ownerBUnchanged();
  });
});

describe("DeleteMembership", () => {
  it("removes the membership and emits MembershipDeleted", async () => {
    const m = await membership(a);
    const res = await admin.deleteMembership({ tenantId: a, membershipId: m.id, etag: m.etag });
    expect(res).toBeDefined();
    await expectCode(admin.getMembership({ tenantId: a, membershipId: m.id }), Code.NotFound);
    const payload = await expectEvent(h, MembershipDeletedSchema, { type: MEMBERSHIP, id: m.id, tenantId: a });
    expect(payload.membership?.userId).toBe(m.userId);
  });

  it.each([
    ["membership_id", { membershipId: "" }],
    ["etag", { etag: "e".repeat(65) }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    await expectInvalid(admin.deleteMembership({ tenantId: a, membershipId: ma.id, ...patch }), field);
    expect((await admin.getMembership({ tenantId: a, membershipId: ma.id })).membership?.id).toBe(ma.id);
  });

  it("fails with ABORTED on a stale etag and keeps the membership", async () => {
    await expectCode(admin.deleteMembership({ tenantId: a, membershipId: ma.id, etag: "5" }), Code.Aborted, {
      reason: "ETAG_MISMATCH",
    });
    expect((await admin.getMembership({ tenantId: a, membershipId: ma.id })).membership?.id).toBe(ma.id);
  });

  it("answers NOT_FOUND for an unknown membership", async () => {
    await expectCode(admin.deleteMembership({ tenantId: a, membershipId: unknown.membership() }), Code.NotFound, {
      reason: "MEMBERSHIP_NOT_FOUND",
    });
  });

  it("answers NOT_FOUND for another tenant's membership and keeps it", async () => {
    await expectCode(admin.deleteMembership({ tenantId: a, membershipId: ownerB.id }), Code.NotFound, {
      reason: "MEMBERSHIP_NOT_FOUND",
    });
    await ownerBUnchanged();
  });
});

describe("access", () => {
  let before: string[];
  beforeAll(async () => {
    before = (await admin.listMemberships({ tenantId: a, pageSize: 1000 })).memberships.map((m) => m.etag + m.id);
  });

  describeAccess(
    () => ({ h, tenantId: a, otherTenantId: b }),
    [
      { rpc: "CreateMembership", call: (c) => c.createMembership({ tenantId: a, userId: userId(), owner: true }) },
      { rpc: "GetMembership", call: (c) => c.getMembership({ tenantId: a, membershipId: ma.id }) },
      { rpc: "ListMemberships", call: (c) => c.listMemberships({ tenantId: a }) },
      {
        rpc: "UpdateMembership",
        call: (c) =>
          c.updateMembership({ tenantId: a, membershipId: ma.id, owner: true, updateMask: { paths: ["owner"] } }),
      },
      { rpc: "DeleteMembership", call: (c) => c.deleteMembership({ tenantId: a, membershipId: ma.id }) },
    ],
  );

  it("left the memberships untouched", async () => {
    const m = (await admin.getMembership({ tenantId: a, membershipId: ma.id })).membership!;
    expect(m).toMatchObject({ owner: false, etag: "1" });
    const after = (await admin.listMemberships({ tenantId: a, pageSize: 1000 })).memberships.map((x) => x.etag + x.id);
    expect(after).toEqual(before);
  });
});

describe("last owner", () => {
  it("cannot be demoted or removed until another member is an owner", async () => {
    const { tenant, ownerMembership } = await createTenant(h, "owners");
    const tenantId = tenant.id;
    const demote = (m: Membership) =>
      admin.updateMembership({ tenantId, membershipId: m.id, owner: false, updateMask: { paths: ["owner"] } });

    await expectCode(demote(ownerMembership), Code.FailedPrecondition, { reason: "LAST_OWNER" });
    await expectCode(admin.deleteMembership({ tenantId, membershipId: ownerMembership.id }), Code.FailedPrecondition, {
      reason: "LAST_OWNER",
    });
    expect((await admin.getMembership({ tenantId, membershipId: ownerMembership.id })).membership).toMatchObject({
      owner: true,
      etag: "1",
    });
    // Re-asserting ownership of the last owner is fine.
    const same = await admin.updateMembership({
      tenantId,
      membershipId: ownerMembership.id,
      owner: true,
      updateMask: { paths: ["owner"] },
    });
    expect(same.membership?.owner).toBe(true);

    const second = await membership(tenantId, true);
    const demoted = await demote(ownerMembership);
    expect(demoted.membership?.owner).toBe(false);
    await expectCode(demote(second), Code.FailedPrecondition, { reason: "LAST_OWNER" });
    await admin.deleteMembership({ tenantId, membershipId: ownerMembership.id });
    await expectCode(admin.deleteMembership({ tenantId, membershipId: second.id }), Code.FailedPrecondition, {
      reason: "LAST_OWNER",
    });
    const owners = await admin.listMemberships({ tenantId, ownersOnly: true });
    expect(owners.memberships.map((m) => m.id)).toEqual([second.id]);
  });

  it("is counted per tenant: another tenant's owners do not count", async () => {
    const shared = userId();
    const t1 = await createTenant(h, "o1");
    await admin.createMembership({ tenantId: t1.tenant.id, userId: shared, owner: true });
    const t2 = (await admin.createTenant({ slug: `o2-${t1.tenant.slug}`, displayName: "O2", ownerUserId: shared }))
      .ownerMembership!;
    await expectCode(admin.deleteMembership({ tenantId: t2.tenantId, membershipId: t2.id }), Code.FailedPrecondition, {
      reason: "LAST_OWNER",
    });
  });
});

describe("team memberships", () => {
  it("go with the tenant membership, and the teams' member counts follow", async () => {
    const { tenant, owner } = await createTenant(h, "teams");
    const tenantId = tenant.id;
    const m = await membership(tenantId);
    const t1 = (await admin.createTeam({ tenantId, slug: "t1", displayName: "T1" })).team!;
    const t2 = (await admin.createTeam({ tenantId, slug: "t2", displayName: "T2" })).team!;
    for (const t of [t1, t2]) {
      await admin.addTeamMember({ tenantId, teamId: t.id, userId: m.userId });
      await admin.addTeamMember({ tenantId, teamId: t.id, userId: owner });
    }
    expect((await admin.listTeams({ tenantId, memberUserId: m.userId })).teams).toHaveLength(2);

    await admin.deleteMembership({ tenantId, membershipId: m.id });

    expect((await admin.listTeams({ tenantId, memberUserId: m.userId })).teams).toEqual([]);
    for (const t of [t1, t2]) {
      const team = (await admin.getTeam({ tenantId, teamId: t.id })).team!;
      expect(team.memberCount).toBe(1);
      const members = await admin.listTeamMembers({ tenantId, teamId: t.id });
      expect(members.members.map((x) => x.userId)).toEqual([owner]);
    }
    // Team membership needs a tenant membership again.
    await expectCode(admin.addTeamMember({ tenantId, teamId: t1.id, userId: m.userId }), Code.FailedPrecondition, {
      reason: "NOT_A_TENANT_MEMBER",
    });
    await admin.createMembership({ tenantId, userId: m.userId });
    await admin.addTeamMember({ tenantId, teamId: t1.id, userId: m.userId });
    expect((await admin.getTeam({ tenantId, teamId: t1.id })).team?.memberCount).toBe(2);
  });
});
