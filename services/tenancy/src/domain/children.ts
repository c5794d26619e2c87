/**
 * Projects and teams: tenant-owned resources with a slug unique among live ones, custom
 * attributes, soft delete and restore. One implementation, configured per kind.
 */
import type { DescMessage, Message } from "@bufbuild/protobuf";
import { AlreadyExistsError, FailedPreconditionError, type IdKind, NotFoundError, newId } from "@uab/core";
import {
  decodePageToken,
  isUniqueViolation,
  likeContains,
  pageSize,
  paginate,
  withPlatform,
  withTenant,
} from "@uab/db";
import {
  ProjectCreatedSchema,
  ProjectDeletedSchema,
  ProjectPurgedSchema,
  ProjectRestoredSchema,
  ProjectUpdatedSchema,
  TeamCreatedSchema,
  TeamDeletedSchema,
  TeamPurgedSchema,
  TeamRestoredSchema,
  TeamUpdatedSchema,
} from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import { projectToProto, teamToProto } from "../convert.js";
import type { ChildRow, JsonObject, TeamRow } from "../storage/tables.js";
import {
  checkAttributes,
  checkEtag,
  emit,
  getTenantRow,
  nextRevision,
  type TenancyDeps,
  type Tx,
  writableTenant,
} from "./common.js";

/** How one child kind differs from the other. */
interface Kind {
  table: "projects" | "teams";
  idKind: IdKind;
  resource: "project" | "team";
  label: string;
  reason: string;
  toProto: (row: never) => Message;
  payloadKey: "project" | "team";
  created: DescMessage;
  updated: DescMessage;
  deleted: DescMessage;
  restored: DescMessage;
  purged: DescMessage;
  purgedKey: "projectId" | "teamId";
}

/** Projects. */
export const PROJECTS: Kind = {
  table: "projects",
  idKind: "project",
  resource: "project",
  label: "project",
  reason: "PROJECT",
  toProto: projectToProto as (row: never) => Message,
  payloadKey: "project",
  created: ProjectCreatedSchema,
  updated: ProjectUpdatedSchema,
  deleted: ProjectDeletedSchema,
  restored: ProjectRestoredSchema,
  purged: ProjectPurgedSchema,
  purgedKey: "projectId",
};

/** Teams. */
export const TEAMS: Kind = {
  table: "teams",
  idKind: "team",
  resource: "team",
  label: "team",
  reason: "TEAM",
  toProto: teamToProto as (row: never) => Message,
  payloadKey: "team",
  created: TeamCreatedSchema,
  updated: TeamUpdatedSchema,
  deleted: TeamDeletedSchema,
  restored: TeamRestoredSchema,
  purged: TeamPurgedSchema,
  purgedKey: "teamId",
};

/** Fields of a create request. */
export interface ChildInput {
  tenantId: string;
  slug: string;
  displayName: string;
  description: string;
  attributes: JsonObject;
}

/** Fields of an update request. */
export interface ChildUpdate {
  tenantId: string;
  id: string;
  displayName: string;
  description: string;
  attributes: JsonObject;
  paths: readonly string[];
  etag: string;
}

function slugTaken(kind: Kind, slug: string): AlreadyExistsError {
  return new AlreadyExistsError(
    `${kind.reason}_SLUG_TAKEN`,
    `slug: a live ${kind.label} with slug "${slug}" already exists in this tenant`,
    {
      violations: [{ field: "slug", description: "is taken" }],
    },
  );
}

function notFound(kind: Kind, id: string): NotFoundError {
  return new NotFoundError(`${kind.reason}_NOT_FOUND`, `${kind.label} ${id} not found`);
}

async function emitChange(tx: Tx, kind: Kind, schema: DescMessage, row: ChildRow, extra: Record<string, unknown> = {}) {
  await emit(tx, schema, { [kind.payloadKey]: kind.toProto(row as never), ...extra } as never, row.tenant_id, {
    type: `tenancy.${kind.resource}`,
    id: row.id,
    displayName: row.display_name,
  });
}

async function load(tx: Tx, kind: Kind, id: string, lock: boolean): Promise<ChildRow> {
  let q = tx.selectFrom(kind.table).selectAll().where("id", "=", id);
  if (lock) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) throw notFound(kind, id);
  return row as ChildRow;
}

/** Creates a project or team. */
export async function createChild(deps: TenancyDeps, kind: Kind, input: ChildInput): Promise<ChildRow> {
  try {
    return await withTenant(deps.db, input.tenantId, async (tx) => {
      await writableTenant(tx, input.tenantId);
      await checkAttributes(tx, kind.resource, input.attributes);
      const row = (await tx
        .insertInto(kind.table)
        .values({
          id: newId(kind.idKind),
          tenant_id: input.tenantId,
          slug: input.slug,
          display_name: input.displayName,
          description: input.description,
          attributes: JSON.stringify(input.attributes),
        })
        .returningAll()
        .executeTakeFirstOrThrow()) as ChildRow;
      await emitChange(tx, kind, kind.created, row);
      return row;
    });
  } catch (e) {
    if (isUniqueViolation(e, `${kind.table}_slug_key`)) throw slugTaken(kind, input.slug);
    throw e;
  }
}

/** One project or team (deleted ones too: they show their purge time). */
export function getChild(deps: TenancyDeps, kind: Kind, tenantId: string, id: string): Promise<ChildRow> {
  return withTenant(deps.db, tenantId, (tx) => load(tx, kind, id, false));
}

/** Filters of a list request. */
export interface ChildFilters {
  tenantId: string;
  pageSize: number;
  pageToken: string;
  query: string;
  showDeleted: boolean;
  memberUserId?: string;
}

/** A page of a tenant's projects or teams. */
export async function listChildren(
  deps: TenancyDeps,
  kind: Kind,
  f: ChildFilters,
): Promise<{ items: ChildRow[]; next: string }> {
  const filters = { t: f.tenantId, q: f.query, d: f.showDeleted, m: f.memberUserId ?? "" };
  const after = decodePageToken(f.pageToken, filters);
  const size = pageSize(f.pageSize);
  const rows = await withTenant(deps.db, f.tenantId, async (tx) => {
    // Listing the children of a tenant that does not exist is NOT_FOUND, not an empty page.
    await getTenantRow(tx, f.tenantId);
    let q = tx
      .selectFrom(kind.table)
      .selectAll(kind.table)
      .orderBy(`${kind.table}.id`)
      .limit(size + 1);
    if (after) q = q.where(`${kind.table}.id`, ">", after);
    if (!f.showDeleted) q = q.where(`${kind.table}.deleted_at`, "is", null);
    if (f.query) {
      const like = likeContains(f.query);
      q = q.where((eb) =>
        eb.or([eb(`${kind.table}.slug`, "ilike", like), eb(`${kind.table}.display_name`, "ilike", like)]),
      );
    }
    if (f.memberUserId && kind.table === "teams") {
      const user = f.memberUserId;
      q = q.where((eb) =>
        eb.exists(
          eb
            .selectFrom("team_members")
            .select("team_id")
            .whereRef("team_members.team_id", "=", "teams.id")
            .where("team_members.user_id", "=", user),
        ),
      );
    }
    return (await q.execute()) as ChildRow[];
  });
  return paginate(rows, size, filters);
}

/** Changes the fields named in the mask. */
export async function updateChild(deps: TenancyDeps, kind: Kind, u: ChildUpdate): Promise<ChildRow> {
  return withTenant(deps.db, u.tenantId, async (tx) => {
    await writableTenant(tx, u.tenantId);
    const current = await load(tx, kind, u.id, true);
    if (current.deleted_at)
      throw new FailedPreconditionError(`${kind.reason}_DELETED`, `${kind.label} ${u.id} is deleted; restore it first`);
    checkEtag(u.etag, current.revision, `${kind.label} ${u.id}`);
    const set: Record<string, unknown> = { revision: nextRevision(current.revision), updated_at: new Date() };
    for (const p of u.paths) {
      if (p === "display_name") set.display_name = u.displayName;
      if (p === "description") set.description = u.description;
      if (p === "attributes") {
        await checkAttributes(tx, kind.resource, u.attributes);
        set.attributes = JSON.stringify(u.attributes);
      }
    }
    const row = (await tx
      .updateTable(kind.table)
      .set(set)
      .where("id", "=", u.id)
      .returningAll()
      .executeTakeFirstOrThrow()) as ChildRow;
    await emitChange(tx, kind, kind.updated, row, { changedFields: [...new Set(u.paths)] });
    return row;
  });
}

/** Soft-deletes; restorable until the purge time. */
export async function deleteChild(
  deps: TenancyDeps,
  kind: Kind,
  tenantId: string,
  id: string,
  etag: string,
): Promise<ChildRow> {
  return withTenant(deps.db, tenantId, async (tx) => {
    await writableTenant(tx, tenantId);
    const current = await load(tx, kind, id, true);
    if (current.deleted_at)
      throw new FailedPreconditionError(`${kind.reason}_DELETED`, `${kind.label} ${id} is already deleted`);
    checkEtag(etag, current.revision, `${kind.label} ${id}`);
    const now = new Date();
    const row = (await tx
      .updateTable(kind.table)
      .set({
        deleted_at: now,
        purge_at: new Date(now.getTime() + deps.restoreWindowMs),
        revision: nextRevision(current.revision),
        updated_at: now,
      })
      .where("id", "=", id)
      .returningAll()
      .executeTakeFirstOrThrow()) as ChildRow;
    await emitChange(tx, kind, kind.deleted, row);
    return row;
  });
}

/** Restores a deleted project or team, if its slug is still free. */
export async function restoreChild(deps: TenancyDeps, kind: Kind, tenantId: string, id: string): Promise<ChildRow> {
  try {
    return await withTenant(deps.db, tenantId, async (tx) => {
      await writableTenant(tx, tenantId);
      const current = await load(tx, kind, id, true);
      if (!current.deleted_at)
        throw new FailedPreconditionError(`${kind.reason}_NOT_DELETED`, `${kind.label} ${id} is not deleted`);
      // Past its purge time the resource is gone even if the sweep has not run yet.
      if (current.purge_at && current.purge_at <= new Date()) {
        throw new FailedPreconditionError(
          "RESTORE_WINDOW_EXPIRED",
          `${kind.label} ${id} passed its purge time and can no longer be restored`,
        );
      }
      const row = (await tx
        .updateTable(kind.table)
        .set({ deleted_at: null, purge_at: null, revision: nextRevision(current.revision), updated_at: new Date() })
        .where("id", "=", id)
        .returningAll()
        .executeTakeFirstOrThrow()) as ChildRow;
      await emitChange(tx, kind, kind.restored, row);
      return row;
    });
  } catch (e) {
    if (isUniqueViolation(e, `${kind.table}_slug_key`)) {
      throw new AlreadyExistsError(
        `${kind.reason}_SLUG_TAKEN`,
        `slug: another live ${kind.label} of this tenant now uses this ${kind.label}'s slug; delete that one first`,
        { violations: [{ field: "slug", description: `is taken by a live ${kind.label}` }] },
      );
    }
    throw e;
  }
}

/** Purges deleted projects or teams past their restore window; returns how many. */
export async function purgeChildren(deps: TenancyDeps, kind: Kind, now = new Date()): Promise<number> {
  return withPlatform(deps.db, async (tx) => {
    const due = await tx.deleteFrom(kind.table).where("purge_at", "<=", now).returning(["id", "tenant_id"]).execute();
    for (const r of due) {
      await emit(tx, kind.purged, { [kind.purgedKey]: r.id } as never, r.tenant_id, {
        type: `tenancy.${kind.resource}`,
        id: r.id,
      });
    }
    return due.length;
  });
}

export type { TeamRow };
