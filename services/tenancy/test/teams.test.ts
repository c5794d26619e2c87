/**
 * Team RPCs: CreateTeam, GetTeam, ListTeams, UpdateTeam, DeleteTeam, RestoreTeam,
 * AddTeamMember, RemoveTeamMember, ListTeamMembers, one test per outcome, then soft
 * delete/purge, slug uniqueness, member counts and the member filters and pagination.
 */

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import {
  TeamCreatedSchema,
  TeamDeletedSchema,
  TeamMemberAddedSchema,
  TeamMemberRemovedSchema,
  TeamPurgedSchema,
  TeamRestoredSchema,
  TeamUpdatedSchema,
} from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import type { Team } from "@uab/proto/gen/uab/tenancy/v1/team_pb.js";
import { type Harness, startHarness, userId } from "./harness.js";
import {
  afterRestoreWindow,
  createTenant,
  describeAccess,
  expectCode,
  expectEvent,
  expectInvalid,
  sweepAt,
  type TenancyClient,
  unknown,
} from "./support.js";

const DAY = 86_400_000;
const TEAM = "tenancy.team";

let h: Harness;
let admin: TenancyClient;
let a: string;
let b: string;
/** Tenant A's owner, a member of team `ta`. */
let ownerA: string;
/** Tenant B's owner, a member of team `tb`. */
let ownerB: string;
/** A team of tenant A the access matrix targets (left unchanged by it). */
let ta: Team;
/** A team of tenant B, invisible from tenant A. */
let tb: Team;

beforeAll(async () => {
  h = await startHarness();
  admin = h.client(h.adminToken);
  const ta0 = await createTenant(h, "a");
  const tb0 = await createTenant(h, "b");
  a = ta0.tenant.id;
  b = tb0.tenant.id;
  ownerA = ta0.owner;
  ownerB = tb0.owner;
  ta = (await admin.createTeam({ tenantId: a, slug: "alpha", displayName: "Alpha" })).team!;
  tb = (await admin.createTeam({ tenantId: b, slug: "bravo", displayName: "Bravo" })).team!;
  await admin.addTeamMember({ tenantId: a, teamId: ta.id, userId: ownerA });
  await admin.addTeamMember({ tenantId: b, teamId: tb.id, userId: ownerB });
});
afterAll(async () => {
  await h.close();
});

async function team(slug: string, tenantId = a): Promise<Team> {
  return (await admin.createTeam({ tenantId, slug, displayName: `Team ${slug}` })).team!;
}

/** A new member of tenant `tenantId` (default A). */
async function member(tenantId = a): Promise<string> {
  const user = userId();
  await admin.createMembership({ tenantId, userId: user });
  return user;
}

async function memberIds(tenantId: string, teamId: string): Promise<string[]> {
  return (await admin.listTeamMembers({ tenantId, teamId, pageSize: 1000 })).members.map((m) => m.userId);
}

/** Tenant B's team as stored, to prove a call through tenant A did not touch it. */
async function tbUnchanged(): Promise<void> {
  const row = await h.adminDb.selectFrom("teams").selectAll().where("id", "=", tb.id).executeTakeFirstOrThrow();
  expect(row).toMatchObject({ tenant_id: b, display_name: "Bravo", deleted_at: null, revision: "1", member_count: 1 });
  expect(await memberIds(b, tb.id)).toEqual([ownerB]);
}

describe("CreateTeam", () => {
  it("creates the team with no members and emits TeamCreated", async () => {
    const res = await admin.createTeam({ tenantId: a, slug: "sre", displayName: "SRE", description: "On call" });
    const t = res.team!;
    expect(t.id).toMatch(/^team_[0-9a-z]{26}$/);
    expect(t).toMatchObject({
      tenantId: a,
      slug: "sre",
      displayName: "SRE",
      description: "On call",
      memberCount: 0,
      etag: "1",
    });
    expect(t.createTime).toBeDefined();
    const payload = await expectEvent(h, TeamCreatedSchema, { type: TEAM, id: t.id, tenantId: a });
    expect(payload.team?.slug).toBe("sre");
  });

  it.each([
    ["slug", { slug: "" }],
    ["slug", { slug: "with space" }],
    ["display_name", { displayName: "" }],
    ["display_name", { displayName: "n".repeat(201) }],
    ["description", { description: "d".repeat(2001) }],
    ["tenant_id", { tenantId: "ten_ABC" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    await expectInvalid(admin.createTeam({ tenantId: a, slug: "valid", displayName: "Valid", ...patch }), field);
    const rows = await h.adminDb.selectFrom("teams").select("id").where("slug", "=", "valid").execute();
    expect(rows).toEqual([]);
  });

  it("rejects attributes without a schema, naming attributes.<key>", async () => {
    await expectInvalid(
      admin.createTeam({ tenantId: a, slug: "attrs", displayName: "A", attributes: { channel: "#ops" } }),
      "attributes.channel",
      "ATTRIBUTE_NOT_DECLARED",
    );
  });

  it("answers NOT_FOUND for an unknown tenant", async () => {
    await expectCode(admin.createTeam({ tenantId: unknown.tenant(), slug: "x", displayName: "X" }), Code.NotFound, {
      reason: "TENANT_NOT_FOUND",
    });
  });

  it("rejects a slug a live team of the tenant holds (ALREADY_EXISTS naming slug); another tenant's is fine", async () => {
    await expectCode(admin.createTeam({ tenantId: a, slug: ta.slug, displayName: "Dup" }), Code.AlreadyExists, {
      reason: "TEAM_SLUG_TAKEN",
      field: "slug",
    });
    const same = await admin.createTeam({ tenantId: a, slug: tb.slug, displayName: "B's slug" });
    expect(same.team).toMatchObject({ tenantId: a, slug: tb.slug });
    await tbUnchanged();
  });
});

describe("GetTeam", () => {
  it("returns the team with its member count", async () => {
    const res = await admin.getTeam({ tenantId: a, teamId: ta.id });
    expect(res.team).toMatchObject({ id: ta.id, tenantId: a, slug: "alpha", displayName: "Alpha", memberCount: 1 });
  });

  it.each([
    ["team_id", { teamId: "team_" }],
    ["team_id", { teamId: "prj_00000000000000000000000000" }],
    ["tenant_id", { tenantId: "x" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    await expectInvalid(admin.getTeam({ tenantId: a, teamId: ta.id, ...patch }), field);
  });

  it("answers NOT_FOUND for an unknown team", async () => {
    await expectCode(admin.getTeam({ tenantId: a, teamId: unknown.team() }), Code.NotFound, {
      reason: "TEAM_NOT_FOUND",
    });
  });

  it("answers NOT_FOUND for another tenant's team", async () => {
    await expectCode(admin.getTeam({ tenantId: a, teamId: tb.id }), Code.NotFound, { reason: "TEAM_NOT_FOUND" });
  });
});

describe("ListTeams", () => {
  it("lists the tenant's teams, not another tenant's", async () => {
    const ids = (await admin.listTeams({ tenantId: a })).teams.map((t) => t.id);
    expect(ids).toContain(ta.id);
    expect(ids).not.toContain(tb.id);
    expect((await admin.listTeams({ tenantId: b })).teams.map((t) => t.id)).toEqual([tb.id]);
  });

  it.each([
    ["member_user_id", { memberUserId: "someone" }],
    ["page_size", { pageSize: -5 }],
    ["query", { query: "q".repeat(201) }],
    ["page_token", { pageToken: "bm90IGEgdG9rZW4" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    await expectInvalid(admin.listTeams({ tenantId: a, ...patch }), field);
  });

  it("answers NOT_FOUND for an unknown tenant", async () => {
    await expectCode(admin.listTeams({ tenantId: unknown.tenant() }), Code.NotFound, { reason: "TENANT_NOT_FOUND" });
  });

  it("filters by member_user_id (a member of another tenant's team matches nothing here)", async () => {
    const tenantId = (await createTenant(h, "mf")).tenant.id;
    const t1 = await team("one", tenantId);
    const t2 = await team("two", tenantId);
    await team("three", tenantId);
    const u = await member(tenantId);
    await admin.addTeamMember({ tenantId, teamId: t1.id, userId: u });
    await admin.addTeamMember({ tenantId, teamId: t2.id, userId: u });
    const mine = await admin.listTeams({ tenantId, memberUserId: u });
    expect(mine.teams.map((t) => t.id)).toEqual([t1.id, t2.id]);
    expect((await admin.listTeams({ tenantId, memberUserId: ownerB })).teams).toEqual([]);
    expect((await admin.listTeams({ tenantId, memberUserId: userId() })).teams).toEqual([]);
    // A token of a filtered list does not continue an unfiltered one.
    const first = await admin.listTeams({ tenantId, memberUserId: u, pageSize: 1 });
    await expectInvalid(admin.listTeams({ tenantId, pageSize: 1, pageToken: first.nextPageToken }), "page_token");
    const second = await admin.listTeams({ tenantId, memberUserId: u, pageSize: 1, pageToken: first.nextPageToken });
    expect(second.teams.map((t) => t.id)).toEqual([t2.id]);
  });
});

describe("UpdateTeam", () => {
  it("changes the masked fields, bumps the etag and emits TeamUpdated", async () => {
    const t = await team("upd");
    const res = await admin.updateTeam({
      tenantId: a,
      teamId: t.id,
      displayName: "Updated",
      description: "described",
      updateMask: { paths: ["display_name", "description"] },
      etag: t.etag,
    });
    expect(res.team).toMatchObject({
      id: t.id,
      slug: "upd",
      displayName: "Updated",
      description: "described",
      etag: "2",
    });
    const payload = await expectEvent(h, TeamUpdatedSchema, { type: TEAM, id: t.id, tenantId: a });
    expect([...payload.changedFields].sort()).toEqual(["description", "display_name"]);
  });

  it("changes only the fields named in update_mask", async () => {
    const t = (await admin.createTeam({ tenantId: a, slug: "maskt", displayName: "Keep", description: "old" })).team!;
    const res = await admin.updateTeam({
      tenantId: a,
      teamId: t.id,
      displayName: "Drop",
      description: "new",
      updateMask: { paths: ["description"] },
    });
    expect(res.team).toMatchObject({ displayName: "Keep", description: "new" });
    const row = await h.adminDb.selectFrom("teams").selectAll().where("id", "=", t.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ display_name: "Keep", description: "new" });
  });

  it("fails with ABORTED on a stale etag and changes nothing", async () => {
    const t = await team("stale");
    await admin.updateTeam({ tenantId: a, teamId: t.id, description: "v2", updateMask: { paths: ["description"] } });
    await expectCode(
      admin.updateTeam({
        tenantId: a,
        teamId: t.id,
        description: "lost",
        updateMask: { paths: ["description"] },
        etag: "1",
      }),
      Code.Aborted,
      { reason: "ETAG_MISMATCH" },
    );
    expect((await admin.getTeam({ tenantId: a, teamId: t.id })).team).toMatchObject({ description: "v2", etag: "2" });
  });

  it.each([
    ["update_mask", { updateMask: { paths: ["member_count"] } }],
    ["update_mask", { updateMask: { paths: [] } }],
    ["team_id", { teamId: "alpha" }],
    ["etag", { etag: "e".repeat(65) }],
  ])("rejects an invalid %s (INVALID_ARGUMENT) and changes nothing", async (field, patch) => {
    await expectInvalid(
      admin.updateTeam({
        tenantId: a,
        teamId: ta.id,
        description: "nope",
        updateMask: { paths: ["description"] },
        ...patch,
      }),
      field,
    );
    expect((await admin.getTeam({ tenantId: a, teamId: ta.id })).team?.etag).toBe("1");
  });

  it("answers NOT_FOUND for an unknown team", async () => {
    await expectCode(
      admin.updateTeam({
        tenantId: a,
        teamId: unknown.team(),
        description: "x",
        updateMask: { paths: ["description"] },
      }),
      Code.NotFound,
      { reason: "TEAM_NOT_FOUND" },
    );
  });

  it("answers NOT_FOUND for another tenant's team and leaves it unchanged", async () => {
    await expectCode(
      admin.updateTeam({ tenantId: a, teamId: tb.id, displayName: "Mine", updateMask: { paths: ["display_name"] } }),
      Code.NotFound,
      { reason: "TEAM_NOT_FOUND" },
    );
    await tbUnchanged();
  });

  it("refuses to change a deleted team (FAILED_PRECONDITION)", async () => {
    const t = await team("upd-del");
    await admin.deleteTeam({ tenantId: a, teamId: t.id });
    await expectCode(
      admin.updateTeam({ tenantId: a, teamId: t.id, description: "x", updateMask: { paths: ["description"] } }),
      Code.FailedPrecondition,
      { reason: "TEAM_DELETED" },
    );
  });
});

describe("DeleteTeam", () => {
  it("soft-deletes with delete and purge times and emits TeamDeleted", async () => {
    const t = await team("del");
    const res = await admin.deleteTeam({ tenantId: a, teamId: t.id, etag: t.etag });
    const d = res.team!;
    expect(d).toMatchObject({ id: t.id, etag: "2" });
    const deleted = timestampDate(d.deleteTime!).getTime();
    expect(Math.abs(deleted - Date.now())).toBeLessThan(60_000);
    expect(timestampDate(d.purgeTime!).getTime() - deleted).toBe(30 * DAY);
    const payload = await expectEvent(h, TeamDeletedSchema, { type: TEAM, id: t.id, tenantId: a });
    expect(payload.team?.deleteTime).toBeDefined();
  });

  it("rejects a malformed id (INVALID_ARGUMENT naming team_id)", async () => {
    await expectInvalid(admin.deleteTeam({ tenantId: a, teamId: "team_x" }), "team_id");
  });

  it("fails with ABORTED on a stale etag and keeps the team", async () => {
    await expectCode(admin.deleteTeam({ tenantId: a, teamId: ta.id, etag: "2" }), Code.Aborted, {
      reason: "ETAG_MISMATCH",
    });
    expect((await admin.getTeam({ tenantId: a, teamId: ta.id })).team?.deleteTime).toBeUndefined();
  });

  it("answers NOT_FOUND for an unknown team", async () => {
    await expectCode(admin.deleteTeam({ tenantId: a, teamId: unknown.team() }), Code.NotFound, {
      reason: "TEAM_NOT_FOUND",
    });
  });

  it("answers NOT_FOUND for another tenant's team and leaves it live", async () => {
    await expectCode(admin.deleteTeam({ tenantId: a, teamId: tb.id }), Code.NotFound, { reason: "TEAM_NOT_FOUND" });
    await tbUnchanged();
  });

  it("refuses to delete a deleted team again (FAILED_PRECONDITION)", async () => {
    const t = await team("twice");
    await admin.deleteTeam({ tenantId: a, teamId: t.id });
    await expectCode(admin.deleteTeam({ tenantId: a, teamId: t.id }), Code.FailedPrecondition, {
      reason: "TEAM_DELETED",
    });
  });
});

describe("RestoreTeam", () => {
  it("brings a deleted team back, with its members, and emits TeamRestored", async () => {
    const t = await team("rst");
    const u = await member();
    await admin.addTeamMember({ tenantId: a, teamId: t.id, userId: u });
    await admin.deleteTeam({ tenantId: a, teamId: t.id });
    const res = await admin.restoreTeam({ tenantId: a, teamId: t.id });
    expect(res.team).toMatchObject({ id: t.id, memberCount: 1 });
    expect(res.team?.deleteTime).toBeUndefined();
    expect(res.team?.purgeTime).toBeUndefined();
    await expectEvent(h, TeamRestoredSchema, { type: TEAM, id: t.id, tenantId: a });
    expect(await memberIds(a, t.id)).toEqual([u]);
  });

  it("rejects a malformed id (INVALID_ARGUMENT naming team_id)", async () => {
    await expectInvalid(admin.restoreTeam({ tenantId: a, teamId: "" }), "team_id");
  });

  it("answers NOT_FOUND for an unknown team", async () => {
    await expectCode(admin.restoreTeam({ tenantId: a, teamId: unknown.team() }), Code.NotFound, {
      reason: "TEAM_NOT_FOUND",
    });
  });

  it("answers NOT_FOUND for another tenant's team", async () => {
    const gone = await team("b-gone", b);
    await admin.deleteTeam({ tenantId: b, teamId: gone.id });
    await expectCode(admin.restoreTeam({ tenantId: a, teamId: gone.id }), Code.NotFound, { reason: "TEAM_NOT_FOUND" });
    expect((await admin.getTeam({ tenantId: b, teamId: gone.id })).team?.deleteTime).toBeDefined();
  });

  it("refuses to restore a team past its purge time, even before the sweep removed it (FAILED_PRECONDITION)", async () => {
    const x = await team("late");
    await admin.deleteTeam({ tenantId: a, teamId: x.id });
    const past = new Date(Date.now() - 1000);
    await h.adminDb.updateTable("teams").set({ purge_at: past }).where("id", "=", x.id).execute();
    await expectCode(admin.restoreTeam({ tenantId: a, teamId: x.id }), Code.FailedPrecondition, {
      reason: "RESTORE_WINDOW_EXPIRED",
    });
    expect((await admin.getTeam({ tenantId: a, teamId: x.id })).team?.deleteTime).toBeDefined();
  });

  it("refuses to restore a live team (FAILED_PRECONDITION)", async () => {
    await expectCode(admin.restoreTeam({ tenantId: a, teamId: ta.id }), Code.FailedPrecondition, {
      reason: "TEAM_NOT_DELETED",
    });
  });

  it("refuses to restore when a live team took the slug meanwhile (ALREADY_EXISTS naming slug)", async () => {
    const old = await team("reused");
    await admin.deleteTeam({ tenantId: a, teamId: old.id });
    await team("reused");
    await expectCode(admin.restoreTeam({ tenantId: a, teamId: old.id }), Code.AlreadyExists, {
      reason: "TEAM_SLUG_TAKEN",
      field: "slug",
    });
  });
});

describe("AddTeamMember", () => {
  it("adds a tenant member, counts them, and emits TeamMemberAdded", async () => {
    const t = await team("add");
    const u = await member();
    const res = await admin.addTeamMember({ tenantId: a, teamId: t.id, userId: u });
    expect(res.member).toMatchObject({ tenantId: a, teamId: t.id, userId: u });
    expect(res.member?.createTime).toBeDefined();
    expect((await admin.getTeam({ tenantId: a, teamId: t.id })).team?.memberCount).toBe(1);
    const payload = await expectEvent(
      h,
      TeamMemberAddedSchema,
      { type: TEAM, id: t.id, tenantId: a },
      (p) => p.member?.userId === u,
    );
    expect(payload.member?.teamId).toBe(t.id);
  });

  it.each([
    ["user_id", { userId: "usr_" }],
    ["team_id", { teamId: "team_UPPER000000000000000000000" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    await expectInvalid(admin.addTeamMember({ tenantId: a, teamId: ta.id, userId: userId(), ...patch }), field);
  });

  it("answers NOT_FOUND for an unknown team", async () => {
    await expectCode(admin.addTeamMember({ tenantId: a, teamId: unknown.team(), userId: ownerA }), Code.NotFound, {
      reason: "TEAM_NOT_FOUND",
    });
  });

  it("answers NOT_FOUND for another tenant's team and leaves its members alone", async () => {
    await expectCode(admin.addTeamMember({ tenantId: a, teamId: tb.id, userId: ownerA }), Code.NotFound, {
      reason: "TEAM_NOT_FOUND",
    });
    await tbUnchanged();
  });

  it("requires the user to be a member of the tenant (FAILED_PRECONDITION naming user_id)", async () => {
    const t = await team("strangers");
    await expectCode(admin.addTeamMember({ tenantId: a, teamId: t.id, userId: userId() }), Code.FailedPrecondition, {
      reason: "NOT_A_TENANT_MEMBER",
      field: "user_id",
    });
    // Being a member of another tenant does not count.
    await expectCode(admin.addTeamMember({ tenantId: a, teamId: t.id, userId: ownerB }), Code.FailedPrecondition, {
      reason: "NOT_A_TENANT_MEMBER",
    });
    expect((await admin.getTeam({ tenantId: a, teamId: t.id })).team?.memberCount).toBe(0);
  });

  it("rejects a user already in the team (ALREADY_EXISTS naming user_id) without counting twice", async () => {
    await expectCode(admin.addTeamMember({ tenantId: a, teamId: ta.id, userId: ownerA }), Code.AlreadyExists, {
      reason: "TEAM_MEMBER_EXISTS",
      field: "user_id",
    });
    expect((await admin.getTeam({ tenantId: a, teamId: ta.id })).team?.memberCount).toBe(1);
  });

  it("refuses a deleted team (FAILED_PRECONDITION)", async () => {
    const t = await team("add-del");
    await admin.deleteTeam({ tenantId: a, teamId: t.id });
    await expectCode(admin.addTeamMember({ tenantId: a, teamId: t.id, userId: ownerA }), Code.FailedPrecondition, {
      reason: "TEAM_DELETED",
    });
  });
});

describe("RemoveTeamMember", () => {
  it("removes the user, decrements the count, and emits TeamMemberRemoved", async () => {
    const t = await team("rm");
    const u1 = await member();
    const u2 = await member();
    await admin.addTeamMember({ tenantId: a, teamId: t.id, userId: u1 });
    await admin.addTeamMember({ tenantId: a, teamId: t.id, userId: u2 });
    const res = await admin.removeTeamMember({ tenantId: a, teamId: t.id, userId: u1 });
    expect(res).toBeDefined();
    expect(await memberIds(a, t.id)).toEqual([u2]);
    expect((await admin.getTeam({ tenantId: a, teamId: t.id })).team?.memberCount).toBe(1);
    const payload = await expectEvent(
      h,
      TeamMemberRemovedSchema,
      { type: TEAM, id: t.id, tenantId: a },
      (p) => p.member?.userId === u1,
    );
    expect(payload.member?.teamId).toBe(t.id);
    // Leaving a team keeps the tenant membership.
    expect((await admin.listMemberships({ tenantId: a, userId: u1 })).memberships).toHaveLength(1);
  });

  it("rejects a malformed user id (INVALID_ARGUMENT naming user_id)", async () => {
    await expectInvalid(admin.removeTeamMember({ tenantId: a, teamId: ta.id, userId: "me" }), "user_id");
    expect(await memberIds(a, ta.id)).toEqual([ownerA]);
  });

  it("answers NOT_FOUND for an unknown team or a user not in the team", async () => {
    await expectCode(admin.removeTeamMember({ tenantId: a, teamId: unknown.team(), userId: ownerA }), Code.NotFound, {
      reason: "TEAM_NOT_FOUND",
    });
    const t = await team("rm-none");
    await expectCode(admin.removeTeamMember({ tenantId: a, teamId: t.id, userId: ownerA }), Code.NotFound, {
      reason: "TEAM_MEMBER_NOT_FOUND",
    });
    expect((await admin.getTeam({ tenantId: a, teamId: t.id })).team?.memberCount).toBe(0);
  });

  it("answers NOT_FOUND for another tenant's team and keeps its member", async () => {
    await expectCode(admin.removeTeamMember({ tenantId: a, teamId: tb.id, userId: ownerB }), Code.NotFound, {
      reason: "TEAM_NOT_FOUND",
    });
    await tbUnchanged();
  });
});

describe("ListTeamMembers", () => {
  it("lists the team's members ordered by user id", async () => {
    const t = await team("lm");
    const users = [await member(), await member(), await member()];
    for (const u of [...users].reverse()) await admin.addTeamMember({ tenantId: a, teamId: t.id, userId: u });
    const res = await admin.listTeamMembers({ tenantId: a, teamId: t.id });
    expect(res.members.map((m) => m.userId)).toEqual([...users].sort());
    expect(res.members.every((m) => m.teamId === t.id && m.tenantId === a)).toBe(true);
    expect(res.nextPageToken).toBe("");
  });

  it.each([
    ["page_size", { pageSize: 1001 }],
    ["team_id", { teamId: "team" }],
    ["page_token", { pageToken: "nope" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    await expectInvalid(admin.listTeamMembers({ tenantId: a, teamId: ta.id, ...patch }), field);
  });

  it("answers NOT_FOUND for an unknown team", async () => {
    await expectCode(admin.listTeamMembers({ tenantId: a, teamId: unknown.team() }), Code.NotFound, {
      reason: "TEAM_NOT_FOUND",
    });
  });

  it("answers NOT_FOUND for another tenant's team", async () => {
    await expectCode(admin.listTeamMembers({ tenantId: a, teamId: tb.id }), Code.NotFound, {
      reason: "TEAM_NOT_FOUND",
    });
  });

  it("pages 7 members 3 at a time (3, 3, 1); a token of one team does not page another", async () => {
    const t = await team("pages");
    const users: string[] = [];
    for (let i = 0; i < 7; i++) {
      const u = await member();
      users.push(u);
      await admin.addTeamMember({ tenantId: a, teamId: t.id, userId: u });
    }
    const pages: string[][] = [];
    let token = "";
    do {
      const res = await admin.listTeamMembers({ tenantId: a, teamId: t.id, pageSize: 3, pageToken: token });
      pages.push(res.members.map((m) => m.userId));
      token = res.nextPageToken;
    } while (token);
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat()).toEqual([...users].sort());
    const first = await admin.listTeamMembers({ tenantId: a, teamId: t.id, pageSize: 3 });
    await expectInvalid(
      admin.listTeamMembers({ tenantId: a, teamId: ta.id, pageToken: first.nextPageToken }),
      "page_token",
    );
  });
});

describe("access", () => {
  describeAccess(
    () => ({ h, tenantId: a, otherTenantId: b }),
    [
      { rpc: "CreateTeam", call: (c) => c.createTeam({ tenantId: a, slug: "intruder", displayName: "I" }) },
      { rpc: "GetTeam", call: (c) => c.getTeam({ tenantId: a, teamId: ta.id }) },
      { rpc: "ListTeams", call: (c) => c.listTeams({ tenantId: a }) },
      {
        rpc: "UpdateTeam",
        call: (c) =>
          c.updateTeam({ tenantId: a, teamId: ta.id, displayName: "X", updateMask: { paths: ["display_name"] } }),
      },
      { rpc: "DeleteTeam", call: (c) => c.deleteTeam({ tenantId: a, teamId: ta.id }) },
      { rpc: "RestoreTeam", call: (c) => c.restoreTeam({ tenantId: a, teamId: ta.id }) },
      { rpc: "AddTeamMember", call: (c) => c.addTeamMember({ tenantId: a, teamId: ta.id, userId: ownerA }) },
      { rpc: "RemoveTeamMember", call: (c) => c.removeTeamMember({ tenantId: a, teamId: ta.id, userId: ownerA }) },
      { rpc: "ListTeamMembers", call: (c) => c.listTeamMembers({ tenantId: a, teamId: ta.id }) },
    ],
  );

  it("left the tenant's team and its members untouched", async () => {
    const t = (await admin.getTeam({ tenantId: a, teamId: ta.id })).team!;
    expect(t).toMatchObject({ displayName: "Alpha", etag: "1", memberCount: 1 });
    expect(t.deleteTime).toBeUndefined();
    expect(await memberIds(a, ta.id)).toEqual([ownerA]);
    expect(await h.adminDb.selectFrom("teams").select("id").where("slug", "=", "intruder").execute()).toEqual([]);
  });
});

describe("soft delete and purge", () => {
  it("hides deleted teams from lists unless show_deleted, and frees their slug", async () => {
    const tenantId = (await createTenant(h, "soft")).tenant.id;
    const keep = await team("keep", tenantId);
    const drop = await team("drop", tenantId);
    await admin.deleteTeam({ tenantId, teamId: drop.id });
    expect((await admin.listTeams({ tenantId })).teams.map((t) => t.id)).toEqual([keep.id]);
    expect((await admin.listTeams({ tenantId, showDeleted: true })).teams.map((t) => t.id)).toEqual([keep.id, drop.id]);
    const reused = await team("drop", tenantId);
    expect((await admin.listTeams({ tenantId })).teams.map((t) => t.id)).toEqual([keep.id, reused.id]);
  });

  it("purges deleted teams (and their memberships) past the restore window and emits TeamPurged", async () => {
    const tenantId = (await createTenant(h, "purge")).tenant.id;
    const live = await team("live", tenantId);
    const doomed = await team("doomed", tenantId);
    const u = await member(tenantId);
    await admin.addTeamMember({ tenantId, teamId: doomed.id, userId: u });
    await admin.deleteTeam({ tenantId, teamId: doomed.id });

    await sweepAt(h, new Date(Date.now() + 29 * DAY));
    expect((await admin.getTeam({ tenantId, teamId: doomed.id })).team?.id).toBe(doomed.id);

    await sweepAt(h, afterRestoreWindow());
    const payload = await expectEvent(h, TeamPurgedSchema, { type: TEAM, id: doomed.id, tenantId });
    expect(payload.teamId).toBe(doomed.id);
    await expectCode(admin.getTeam({ tenantId, teamId: doomed.id }), Code.NotFound);
    expect((await admin.listTeams({ tenantId, showDeleted: true })).teams.map((t) => t.id)).toEqual([live.id]);
    const rows = await h.adminDb
      .selectFrom("team_members")
      .select("user_id")
      .where("team_id", "=", doomed.id)
      .execute();
    expect(rows).toEqual([]);
    // The user stays a member of the tenant.
    expect((await admin.listMemberships({ tenantId, userId: u })).memberships).toHaveLength(1);
  });
});
