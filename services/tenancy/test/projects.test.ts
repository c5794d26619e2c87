/**
 * Project RPCs: CreateProject, GetProject, ListProjects, UpdateProject, DeleteProject,
 * RestoreProject, one test per outcome, then soft delete/restore/purge, slug uniqueness per
 * tenant, masks and etags, pagination and the query filter.
 */

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import {
  ProjectCreatedSchema,
  ProjectDeletedSchema,
  ProjectPurgedSchema,
  ProjectRestoredSchema,
  ProjectUpdatedSchema,
} from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import type { Project } from "@uab/proto/gen/uab/tenancy/v1/project_pb.js";
import { type Harness, startHarness } from "./harness.js";
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
const PROJECT = "tenancy.project";

let h: Harness;
let admin: TenancyClient;
let a: string;
let b: string;
/** A project of tenant A the access matrix targets (left unchanged by it). */
let pa: Project;
/** A project of tenant B, invisible from tenant A. */
let pb: Project;

beforeAll(async () => {
  h = await startHarness();
  admin = h.client(h.adminToken);
  a = (await createTenant(h, "a")).tenant.id;
  b = (await createTenant(h, "b")).tenant.id;
  pa = (await admin.createProject({ tenantId: a, slug: "apollo", displayName: "Apollo" })).project!;
  pb = (await admin.createProject({ tenantId: b, slug: "borealis", displayName: "Borealis" })).project!;
});
afterAll(async () => {
  await h.close();
});

async function project(slug: string, tenantId = a): Promise<Project> {
  return (await admin.createProject({ tenantId, slug, displayName: `Project ${slug}` })).project!;
}

/** Tenant B's project as stored, to prove a call through tenant A did not touch it. */
async function pbUnchanged(): Promise<void> {
  const row = await h.adminDb.selectFrom("projects").selectAll().where("id", "=", pb.id).executeTakeFirstOrThrow();
  expect(row).toMatchObject({ tenant_id: b, display_name: "Borealis", deleted_at: null, revision: "1" });
}

describe("CreateProject", () => {
  it("creates the project and emits ProjectCreated", async () => {
    const res = await admin.createProject({
      tenantId: a,
      slug: "gemini",
      displayName: "Gemini",
      description: "Two-seat capsule",
    });
    const p = res.project!;
    expect(p.id).toMatch(/^prj_[0-9a-z]{26}$/);
    expect(p).toMatchObject({
      tenantId: a,
      slug: "gemini",
      displayName: "Gemini",
      description: "Two-seat capsule",
      etag: "1",
    });
    expect(p.createTime).toBeDefined();
    expect(p.deleteTime).toBeUndefined();
    const payload = await expectEvent(h, ProjectCreatedSchema, { type: PROJECT, id: p.id, tenantId: a });
    expect(payload.project?.slug).toBe("gemini");
  });

  it.each([
    ["slug", { slug: "" }],
    ["slug", { slug: "Upper" }],
    ["slug", { slug: "trailing-" }],
    ["slug", { slug: "x".repeat(64) }],
    ["display_name", { displayName: "" }],
    ["description", { description: "d".repeat(2001) }],
    ["tenant_id", { tenantId: "ten_nope" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    await expectInvalid(admin.createProject({ tenantId: a, slug: "valid", displayName: "Valid", ...patch }), field);
    const rows = await h.adminDb.selectFrom("projects").select("id").where("slug", "=", "valid").execute();
    expect(rows).toEqual([]);
  });

  it("rejects attributes without a schema, naming attributes.<key>", async () => {
    await expectInvalid(
      admin.createProject({ tenantId: a, slug: "attrs", displayName: "A", attributes: { owner: "x" } }),
      "attributes.owner",
      "ATTRIBUTE_NOT_DECLARED",
    );
  });

  it("answers NOT_FOUND for an unknown tenant", async () => {
    await expectCode(admin.createProject({ tenantId: unknown.tenant(), slug: "x", displayName: "X" }), Code.NotFound, {
      reason: "TENANT_NOT_FOUND",
    });
  });

  it("rejects a slug a live project of the tenant holds (ALREADY_EXISTS naming slug)", async () => {
    await expectCode(admin.createProject({ tenantId: a, slug: pa.slug, displayName: "Dup" }), Code.AlreadyExists, {
      reason: "PROJECT_SLUG_TAKEN",
      field: "slug",
    });
  });

  it("accepts a slug another tenant uses (slugs are unique per tenant)", async () => {
    const res = await admin.createProject({ tenantId: a, slug: pb.slug, displayName: "Same slug as B's" });
    expect(res.project).toMatchObject({ tenantId: a, slug: pb.slug });
    await pbUnchanged();
  });
});

describe("GetProject", () => {
  it("returns the project", async () => {
    const res = await admin.getProject({ tenantId: a, projectId: pa.id });
    expect(res.project).toMatchObject({ id: pa.id, tenantId: a, slug: "apollo", displayName: "Apollo" });
  });

  it.each([
    ["project_id", { projectId: "prj_SHOUT00000000000000000000000" }],
    ["project_id", { projectId: "team_00000000000000000000000000" }],
    ["tenant_id", { tenantId: "" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    await expectInvalid(admin.getProject({ tenantId: a, projectId: pa.id, ...patch }), field);
  });

  it("answers NOT_FOUND for an unknown project", async () => {
    await expectCode(admin.getProject({ tenantId: a, projectId: unknown.project() }), Code.NotFound, {
      reason: "PROJECT_NOT_FOUND",
    });
  });

  it("answers NOT_FOUND for another tenant's project", async () => {
    await expectCode(admin.getProject({ tenantId: a, projectId: pb.id }), Code.NotFound, {
      reason: "PROJECT_NOT_FOUND",
    });
  });
});

describe("ListProjects", () => {
  it("lists the tenant's projects, not another tenant's", async () => {
    const res = await admin.listProjects({ tenantId: a });
    const ids = res.projects.map((p) => p.id);
    expect(ids).toContain(pa.id);
    expect(ids).not.toContain(pb.id);
    expect(res.projects.every((p) => p.tenantId === a)).toBe(true);
    const inB = await admin.listProjects({ tenantId: b });
    expect(inB.projects.map((p) => p.id)).toEqual([pb.id]);
  });

  it.each([
    ["page_size", { pageSize: 5000 }],
    ["query", { query: "q".repeat(201) }],
    ["tenant_id", { tenantId: "ten_1" }],
    ["page_token", { pageToken: "garbage" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    await expectInvalid(admin.listProjects({ tenantId: a, ...patch }), field);
  });

  it("answers NOT_FOUND for an unknown tenant", async () => {
    await expectCode(admin.listProjects({ tenantId: unknown.tenant() }), Code.NotFound, {
      reason: "TENANT_NOT_FOUND",
    });
  });
});

describe("UpdateProject", () => {
  it("changes the masked fields, bumps the etag and emits ProjectUpdated", async () => {
    const p = await project("upd");
    const res = await admin.updateProject({
      tenantId: a,
      projectId: p.id,
      displayName: "Updated",
      description: "Now with a description",
      updateMask: { paths: ["display_name", "description"] },
      etag: p.etag,
    });
    expect(res.project).toMatchObject({
      id: p.id,
      slug: "upd",
      displayName: "Updated",
      description: "Now with a description",
      etag: "2",
    });
    const payload = await expectEvent(h, ProjectUpdatedSchema, { type: PROJECT, id: p.id, tenantId: a });
    expect([...payload.changedFields].sort()).toEqual(["description", "display_name"]);
  });

  it("changes only the fields named in update_mask", async () => {
    const p = (await admin.createProject({ tenantId: a, slug: "maskp", displayName: "Keep me", description: "old" }))
      .project!;
    const res = await admin.updateProject({
      tenantId: a,
      projectId: p.id,
      displayName: "Not me",
      description: "new",
      updateMask: { paths: ["description"] },
    });
    expect(res.project).toMatchObject({ displayName: "Keep me", description: "new" });
    const row = await h.adminDb.selectFrom("projects").selectAll().where("id", "=", p.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ display_name: "Keep me", description: "new" });
  });

  it("fails with ABORTED on a stale etag and changes nothing", async () => {
    const p = await project("stale");
    await admin.updateProject({
      tenantId: a,
      projectId: p.id,
      description: "v2",
      updateMask: { paths: ["description"] },
    });
    await expectCode(
      admin.updateProject({
        tenantId: a,
        projectId: p.id,
        description: "lost",
        updateMask: { paths: ["description"] },
        etag: p.etag,
      }),
      Code.Aborted,
      { reason: "ETAG_MISMATCH" },
    );
    const now = (await admin.getProject({ tenantId: a, projectId: p.id })).project!;
    expect(now).toMatchObject({ description: "v2", etag: "2" });
  });

  it.each([
    ["update_mask", { updateMask: { paths: ["slug"] } }],
    ["update_mask", { updateMask: { paths: ["description", "tenant_id"] } }],
    ["update_mask", { updateMask: undefined }],
    ["description", { description: "d".repeat(2001) }],
    ["project_id", { projectId: "prj_" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT) and changes nothing", async (field, patch) => {
    await expectInvalid(
      admin.updateProject({
        tenantId: a,
        projectId: pa.id,
        description: "nope",
        updateMask: { paths: ["description"] },
        ...patch,
      }),
      field,
    );
    expect((await admin.getProject({ tenantId: a, projectId: pa.id })).project?.etag).toBe("1");
  });

  it("answers NOT_FOUND for an unknown project", async () => {
    await expectCode(
      admin.updateProject({
        tenantId: a,
        projectId: unknown.project(),
        description: "x",
        updateMask: { paths: ["description"] },
      }),
      Code.NotFound,
      { reason: "PROJECT_NOT_FOUND" },
    );
  });

  it("answers NOT_FOUND for another tenant's project and leaves it unchanged", async () => {
    await expectCode(
      admin.updateProject({
        tenantId: a,
        projectId: pb.id,
        displayName: "Taken over",
        updateMask: { paths: ["display_name"] },
      }),
      Code.NotFound,
      { reason: "PROJECT_NOT_FOUND" },
    );
    await pbUnchanged();
  });

  it("refuses to change a deleted project (FAILED_PRECONDITION)", async () => {
    const p = await project("upd-del");
    await admin.deleteProject({ tenantId: a, projectId: p.id });
    await expectCode(
      admin.updateProject({ tenantId: a, projectId: p.id, description: "x", updateMask: { paths: ["description"] } }),
      Code.FailedPrecondition,
      { reason: "PROJECT_DELETED" },
    );
  });
});

describe("DeleteProject", () => {
  it("soft-deletes with delete and purge times and emits ProjectDeleted", async () => {
    const p = await project("del");
    const res = await admin.deleteProject({ tenantId: a, projectId: p.id, etag: p.etag });
    const d = res.project!;
    expect(d).toMatchObject({ id: p.id, slug: "del", etag: "2" });
    const deleted = timestampDate(d.deleteTime!).getTime();
    expect(Math.abs(deleted - Date.now())).toBeLessThan(60_000);
    expect(timestampDate(d.purgeTime!).getTime() - deleted).toBe(30 * DAY);
    const payload = await expectEvent(h, ProjectDeletedSchema, { type: PROJECT, id: p.id, tenantId: a });
    expect(payload.project?.deleteTime).toBeDefined();
  });

  it.each([
    ["project_id", { projectId: "" }],
    ["etag", { etag: "e".repeat(65) }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    await expectInvalid(admin.deleteProject({ tenantId: a, projectId: pa.id, ...patch }), field);
    expect((await admin.getProject({ tenantId: a, projectId: pa.id })).project?.deleteTime).toBeUndefined();
  });

  it("fails with ABORTED on a stale etag and keeps the project", async () => {
    await expectCode(admin.deleteProject({ tenantId: a, projectId: pa.id, etag: "7" }), Code.Aborted, {
      reason: "ETAG_MISMATCH",
    });
    expect((await admin.getProject({ tenantId: a, projectId: pa.id })).project?.deleteTime).toBeUndefined();
  });

  it("answers NOT_FOUND for an unknown project", async () => {
    await expectCode(admin.deleteProject({ tenantId: a, projectId: unknown.project() }), Code.NotFound, {
      reason: "PROJECT_NOT_FOUND",
    });
  });

  it("answers NOT_FOUND for another tenant's project and leaves it live", async () => {
    await expectCode(admin.deleteProject({ tenantId: a, projectId: pb.id }), Code.NotFound, {
      reason: "PROJECT_NOT_FOUND",
    });
    await pbUnchanged();
  });

  it("refuses to delete a deleted project again (FAILED_PRECONDITION)", async () => {
    const p = await project("twice");
    await admin.deleteProject({ tenantId: a, projectId: p.id });
    await expectCode(admin.deleteProject({ tenantId: a, projectId: p.id }), Code.FailedPrecondition, {
      reason: "PROJECT_DELETED",
    });
  });
});

describe("RestoreProject", () => {
  it("brings a deleted project back and emits ProjectRestored", async () => {
    const p = await project("rst");
    await admin.deleteProject({ tenantId: a, projectId: p.id });
    const res = await admin.restoreProject({ tenantId: a, projectId: p.id });
    expect(res.project).toMatchObject({ id: p.id, slug: "rst", etag: "3" });
    expect(res.project?.deleteTime).toBeUndefined();
    expect(res.project?.purgeTime).toBeUndefined();
    const payload = await expectEvent(h, ProjectRestoredSchema, { type: PROJECT, id: p.id, tenantId: a });
    expect(payload.project?.id).toBe(p.id);
    expect((await admin.listProjects({ tenantId: a, query: "rst" })).projects.map((x) => x.id)).toEqual([p.id]);
  });

  it("rejects a malformed id (INVALID_ARGUMENT naming project_id)", async () => {
    await expectInvalid(admin.restoreProject({ tenantId: a, projectId: "apollo" }), "project_id");
  });

  it("answers NOT_FOUND for an unknown project", async () => {
    await expectCode(admin.restoreProject({ tenantId: a, projectId: unknown.project() }), Code.NotFound, {
      reason: "PROJECT_NOT_FOUND",
    });
  });

  it("answers NOT_FOUND for another tenant's project", async () => {
    const gone = await project("b-deleted", b);
    await admin.deleteProject({ tenantId: b, projectId: gone.id });
    await expectCode(admin.restoreProject({ tenantId: a, projectId: gone.id }), Code.NotFound, {
      reason: "PROJECT_NOT_FOUND",
    });
    expect((await admin.getProject({ tenantId: b, projectId: gone.id })).project?.deleteTime).toBeDefined();
  });

  it("refuses to restore a project past its purge time, even before the sweep removed it (FAILED_PRECONDITION)", async () => {
    const x = await project("late");
    await admin.deleteProject({ tenantId: a, projectId: x.id });
    const past = new Date(Date.now() - 1000);
    await h.adminDb.updateTable("projects").set({ purge_at: past }).where("id", "=", x.id).execute();
    await expectCode(admin.restoreProject({ tenantId: a, projectId: x.id }), Code.FailedPrecondition, {
      reason: "RESTORE_WINDOW_EXPIRED",
    });
    expect((await admin.getProject({ tenantId: a, projectId: x.id })).project?.deleteTime).toBeDefined();
  });

  it("refuses to restore a live project (FAILED_PRECONDITION)", async () => {
    await expectCode(admin.restoreProject({ tenantId: a, projectId: pa.id }), Code.FailedPrecondition, {
      reason: "PROJECT_NOT_DELETED",
    });
  });

  it("refuses to restore when a live project took the slug meanwhile (ALREADY_EXISTS naming slug)", async () => {
    const old = await project("reused");
    await admin.deleteProject({ tenantId: a, projectId: old.id });
    // Deletion frees the slug.
    const fresh = await project("reused");
    expect(fresh.id).not.toBe(old.id);
    await expectCode(admin.restoreProject({ tenantId: a, projectId: old.id }), Code.AlreadyExists, {
      reason: "PROJECT_SLUG_TAKEN",
      field: "slug",
    });
    expect((await admin.getProject({ tenantId: a, projectId: old.id })).project?.deleteTime).toBeDefined();
  });
});

describe("access", () => {
  describeAccess(
    () => ({ h, tenantId: a, otherTenantId: b }),
    [
      { rpc: "CreateProject", call: (c) => c.createProject({ tenantId: a, slug: "intruder", displayName: "I" }) },
      { rpc: "GetProject", call: (c) => c.getProject({ tenantId: a, projectId: pa.id }) },
      { rpc: "ListProjects", call: (c) => c.listProjects({ tenantId: a }) },
      {
        rpc: "UpdateProject",
        call: (c) =>
          c.updateProject({ tenantId: a, projectId: pa.id, displayName: "X", updateMask: { paths: ["display_name"] } }),
      },
      { rpc: "DeleteProject", call: (c) => c.deleteProject({ tenantId: a, projectId: pa.id }) },
      { rpc: "RestoreProject", call: (c) => c.restoreProject({ tenantId: a, projectId: pa.id }) },
    ],
  );

  it("left the tenant's projects untouched", async () => {
    const p = (await admin.getProject({ tenantId: a, projectId: pa.id })).project!;
    expect(p).toMatchObject({ displayName: "Apollo", etag: "1" });
    expect(p.deleteTime).toBeUndefined();
    const intruders = await h.adminDb.selectFrom("projects").select("id").where("slug", "=", "intruder").execute();
    expect(intruders).toEqual([]);
  });
});

describe("soft delete, restore and purge", () => {
  it("hides deleted projects from lists unless show_deleted, and frees their slug", async () => {
    const tenantId = (await createTenant(h, "soft")).tenant.id;
    const keep = await project("keep", tenantId);
    const drop = await project("drop", tenantId);
    await admin.deleteProject({ tenantId, projectId: drop.id });

    expect((await admin.listProjects({ tenantId })).projects.map((p) => p.id)).toEqual([keep.id]);
    const all = await admin.listProjects({ tenantId, showDeleted: true });
    expect(all.projects.map((p) => p.id)).toEqual([keep.id, drop.id]);
    expect(all.projects[1]?.purgeTime).toBeDefined();
    // A deleted project can still be read, with its purge time.
    expect((await admin.getProject({ tenantId, projectId: drop.id })).project?.purgeTime).toBeDefined();
    const reused = await project("drop", tenantId);
    expect((await admin.listProjects({ tenantId })).projects.map((p) => p.id)).toEqual([keep.id, reused.id]);
  });

  it("purges deleted projects past their restore window and emits ProjectPurged", async () => {
    const tenantId = (await createTenant(h, "purge")).tenant.id;
    const live = await project("live", tenantId);
    const doomed = await project("doomed", tenantId);
    await admin.deleteProject({ tenantId, projectId: doomed.id });

    await sweepAt(h, new Date(Date.now() + 29 * DAY));
    expect((await admin.getProject({ tenantId, projectId: doomed.id })).project?.id).toBe(doomed.id);

    await sweepAt(h, afterRestoreWindow());
    const payload = await expectEvent(h, ProjectPurgedSchema, { type: PROJECT, id: doomed.id, tenantId });
    expect(payload.projectId).toBe(doomed.id);
    await expectCode(admin.getProject({ tenantId, projectId: doomed.id }), Code.NotFound);
    await expectCode(admin.restoreProject({ tenantId, projectId: doomed.id }), Code.NotFound);
    const listed = await admin.listProjects({ tenantId, showDeleted: true });
    expect(listed.projects.map((p) => p.id)).toEqual([live.id]);
  });
});

describe("pagination and query", () => {
  let tenantId: string;
  let ids: string[];

  beforeAll(async () => {
    tenantId = (await createTenant(h, "pages")).tenant.id;
    ids = [];
    for (let i = 0; i < 7; i++) {
      const res = await admin.createProject({
        tenantId,
        slug: `page-${i}`,
        displayName: i === 5 ? "Mercury Seven" : `Page ${i}`,
      });
      ids.push(res.project!.id);
    }
  });

  it("pages 7 projects 3 at a time (3, 3, 1) with chained tokens, no duplicates and no gaps", async () => {
    const pages: string[][] = [];
    let token = "";
    do {
      const res = await admin.listProjects({ tenantId, pageSize: 3, pageToken: token });
      pages.push(res.projects.map((p) => p.id));
      token = res.nextPageToken;
    } while (token);
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat()).toEqual(ids);
    expect(new Set(pages.flat()).size).toBe(7);
  });

  it("rejects a token replayed with other filters or for another tenant (INVALID_ARGUMENT naming page_token)", async () => {
    const { nextPageToken } = await admin.listProjects({ tenantId, pageSize: 3 });
    await expectInvalid(admin.listProjects({ tenantId, query: "page", pageToken: nextPageToken }), "page_token");
    await expectInvalid(admin.listProjects({ tenantId, showDeleted: true, pageToken: nextPageToken }), "page_token");
    await expectInvalid(admin.listProjects({ tenantId: a, pageToken: nextPageToken }), "page_token");
  });

  it("filters by query on slug or display name, case-insensitively", async () => {
    const bySlug = await admin.listProjects({ tenantId, query: "PAGE-2" });
    expect(bySlug.projects.map((p) => p.id)).toEqual([ids[2]]);
    const byName = await admin.listProjects({ tenantId, query: "mercury" });
    expect(byName.projects.map((p) => p.id)).toEqual([ids[5]]);
    expect((await admin.listProjects({ tenantId, query: "%" })).projects).toEqual([]);
    const paged = await admin.listProjects({ tenantId, query: "page", pageSize: 4 });
    expect(paged.projects).toHaveLength(4);
    const rest = await admin.listProjects({ tenantId, query: "page", pageSize: 4, pageToken: paged.nextPageToken });
    expect(rest.projects.map((p) => p.id)).toEqual(ids.slice(4));
    expect(rest.nextPageToken).toBe("");
  });
});
