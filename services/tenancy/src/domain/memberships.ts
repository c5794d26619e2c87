import { AlreadyExistsError, FailedPreconditionError, NotFoundError, newId } from "@uab/core";
import { decodePageToken, isUniqueViolation, pageSize, paginate, pgErrorCode, withTenant } from "@uab/db";
import {
  MembershipCreatedSchema,
  MembershipDeletedSchema,
  MembershipUpdatedSchema,
  TeamMemberAddedSchema,
  TeamMemberRemovedSchema,
} from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import type {
  CreateMembershipRequest,
  ListMembershipsRequest,
  UpdateMembershipRequest,
} from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { membershipToProto, teamMemberToProto } from "../convert.js";
import type { JsonObject, MembershipRow, TeamMemberRow } from "../storage/tables.js";
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

const MEMBERSHIP = "tenancy.membership";

async function loadMembership(tx: Tx, id: string, lock: boolean): Promise<MembershipRow> {
  let q = tx.selectFrom("memberships").selectAll().where("id", "=", id);
  if (lock) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) throw new NotFoundError("MEMBERSHIP_NOT_FOUND", `membership ${id} not found`);
  return row;
}

/** Fails when removing `row`'s ownership would leave the tenant without an owner. */
async function keepAnOwner(tx: Tx, row: MembershipRow): Promise<void> {
  if (!row.owner) return;
  // Lock every owner row so two concurrent demotions cannot both see "another owner exists".
  const owners = await tx.selectFrom("memberships").select("id").where("owner", "=", true).forUpdate().execute();
  if (owners.length <= 1) {
    throw new FailedPreconditionError(
      "LAST_OWNER",
      `membership ${row.id} is the tenant's last owner; make another member an owner first`,
    );
  }
}

/** Makes a user a member of a tenant. */
export async function createMembership(deps: TenancyDeps, req: CreateMembershipRequest): Promise<MembershipRow> {
  const attributes = (req.attributes ?? {}) as JsonObject;
  try {
    return await withTenant(deps.db, req.tenantId, async (tx) => {
      await writableTenant(tx, req.tenantId);
      await checkAttributes(tx, "membership", attributes);
      const row = await tx
        .insertInto("memberships")
        .values({
          id: newId("membership"),
          tenant_id: req.tenantId,
          user_id: req.userId,
          owner: req.owner,
          attributes: JSON.stringify(attributes),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      await emit(tx, MembershipCreatedSchema, { membership: membershipToProto(row) }, req.tenantId, {
        type: MEMBERSHIP,
        id: row.id,
      });
      return row;
    });
  } catch (e) {
    if (isUniqueViolation(e)) {
      throw new AlreadyExistsError("MEMBERSHIP_EXISTS", `user_id: ${req.userId} is already a member of this tenant`, {
        violations: [{ field: "user_id", description: "is already a member" }],
      });
    }
    throw e;
  }
}

/** One membership. */
export function getMembership(deps: TenancyDeps, tenantId: string, id: string): Promise<MembershipRow> {
  return withTenant(deps.db, tenantId, (tx) => loadMembership(tx, id, false));
}

/** A page of a tenant's memberships. */
export async function listMemberships(
  deps: TenancyDeps,
  req: ListMembershipsRequest,
): Promise<{ items: MembershipRow[]; next: string }> {
  const filters = { t: req.tenantId, u: req.userId, o: req.ownersOnly };
  const after = decodePageToken(req.pageToken, filters);
  const size = pageSize(req.pageSize);
  const rows = await withTenant(deps.db, req.tenantId, async (tx) => {
    // Listing the members of a tenant that does not exist is NOT_FOUND, not an empty page.
    await getTenantRow(tx, req.tenantId);
    let q = tx
      .selectFrom("memberships")
      .selectAll()
      .orderBy("id")
      .limit(size + 1);
    if (after) q = q.where("id", ">", after);
    if (req.userId) q = q.where("user_id", "=", req.userId);
    if (req.ownersOnly) q = q.where("owner", "=", true);
    return q.execute();
  });
  return paginate(rows, size, filters);
}

/** Changes the owner flag or attributes; the last owner cannot be demoted. */
export async function updateMembership(deps: TenancyDeps, req: UpdateMembershipRequest): Promise<MembershipRow> {
  const paths = req.updateMask!.paths;
  return withTenant(deps.db, req.tenantId, async (tx) => {
    await writableTenant(tx, req.tenantId);
    const current = await loadMembership(tx, req.membershipId, true);
    checkEtag(req.etag, current.revision, `membership ${req.membershipId}`);
    const set: Record<string, unknown> = { revision: nextRevision(current.revision), updated_at: new Date() };
    if (paths.includes("owner")) {
      if (current.owner && !req.owner) await keepAnOwner(tx, current);
      set.owner = req.owner;
    }
    if (paths.includes("attributes")) {
      const attributes = (req.attributes ?? {}) as JsonObject;
      await checkAttributes(tx, "membership", attributes);
      set.attributes = JSON.stringify(attributes);
    }
    const row = await tx
      .updateTable("memberships")
      .set(set)
      .where("id", "=", req.membershipId)
      .returningAll()
      .executeTakeFirstOrThrow();
    await emit(
      tx,
      MembershipUpdatedSchema,
      { membership: membershipToProto(row), changedFields: [...new Set(paths)] },
      req.tenantId,
      {
        type: MEMBERSHIP,
        id: row.id,
      },
    );
    return row;
  });
}

/** Removes a user from the tenant and all its teams; the last owner cannot leave. */
export async function deleteMembership(deps: TenancyDeps, tenantId: string, id: string, etag: string): Promise<void> {
  await withTenant(deps.db, tenantId, async (tx) => {
    await writableTenant(tx, tenantId);
    const current = await loadMembership(tx, id, true);
    checkEtag(etag, current.revision, `membership ${id}`);
    await keepAnOwner(tx, current);
    // Team memberships go with it (FK cascade); keep the teams' counts right.
    const teams = await tx
      .selectFrom("team_members")
      .select("team_id")
      .where("user_id", "=", current.user_id)
      .execute();
    await tx.deleteFrom("memberships").where("id", "=", id).execute();
    for (const t of teams) {
      await tx
        .updateTable("teams")
        .set((eb) => ({ member_count: eb("member_count", "-", 1) }))
        .where("id", "=", t.team_id)
        .execute();
    }
    await emit(tx, MembershipDeletedSchema, { membership: membershipToProto(current) }, tenantId, {
      type: MEMBERSHIP,
      id,
    });
  });
}

async function liveTeam(tx: Tx, teamId: string): Promise<void> {
  const team = await tx
    .selectFrom("teams")
    .select(["id", "deleted_at"])
    .where("id", "=", teamId)
    .forUpdate()
    .executeTakeFirst();
  if (!team) throw new NotFoundError("TEAM_NOT_FOUND", `team ${teamId} not found`);
  if (team.deleted_at) throw new FailedPreconditionError("TEAM_DELETED", `team ${teamId} is deleted`);
}

/** Adds a tenant member to a team. */
export async function addTeamMember(
  deps: TenancyDeps,
  tenantId: string,
  teamId: string,
  userId: string,
): Promise<TeamMemberRow> {
  try {
    return await withTenant(deps.db, tenantId, async (tx) => {
      await writableTenant(tx, tenantId);
      await liveTeam(tx, teamId);
      const row = await tx
        .insertInto("team_members")
        .values({ tenant_id: tenantId, team_id: teamId, user_id: userId })
        .returningAll()
        .executeTakeFirstOrThrow();
      await tx
        .updateTable("teams")
        .set((eb) => ({ member_count: eb("member_count", "+", 1) }))
        .where("id", "=", teamId)
        .execute();
      await emit(tx, TeamMemberAddedSchema, { member: teamMemberToProto(row) }, tenantId, {
        type: "tenancy.team",
        id: teamId,
      });
      return row;
    });
  } catch (e) {
    if (isUniqueViolation(e)) {
      throw new AlreadyExistsError("TEAM_MEMBER_EXISTS", `user_id: ${userId} is already a member of team ${teamId}`, {
        violations: [{ field: "user_id", description: "is already in the team" }],
      });
    }
    if (pgErrorCode(e) === "23503") {
      throw new FailedPreconditionError(
        "NOT_A_TENANT_MEMBER",
        `user_id: ${userId} is not a member of this tenant; add a membership first`,
        {
          violations: [{ field: "user_id", description: "is not a member of the tenant" }],
        },
      );
    }
    throw e;
  }
}

/** Removes a user from a team. */
export async function removeTeamMember(
  deps: TenancyDeps,
  tenantId: string,
  teamId: string,
  userId: string,
): Promise<void> {
  await withTenant(deps.db, tenantId, async (tx) => {
    await writableTenant(tx, tenantId);
    await liveTeam(tx, teamId);
    const row = await tx
      .deleteFrom("team_members")
      .where("team_id", "=", teamId)
      .where("user_id", "=", userId)
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new NotFoundError("TEAM_MEMBER_NOT_FOUND", `user ${userId} is not a member of team ${teamId}`);
    await tx
      .updateTable("teams")
      .set((eb) => ({ member_count: eb("member_count", "-", 1) }))
      .where("id", "=", teamId)
      .execute();
    await emit(tx, TeamMemberRemovedSchema, { member: teamMemberToProto(row) }, tenantId, {
      type: "tenancy.team",
      id: teamId,
    });
  });
}

/** A page of a team's members (ordered by user id). */
export async function listTeamMembers(
  deps: TenancyDeps,
  tenantId: string,
  teamId: string,
  requestedSize: number,
  token: string,
): Promise<{ items: TeamMemberRow[]; next: string }> {
  const filters = { t: tenantId, team: teamId };
  const after = decodePageToken(token, filters);
  const size = pageSize(requestedSize);
  const rows = await withTenant(deps.db, tenantId, async (tx) => {
    const team = await tx.selectFrom("teams").select("id").where("id", "=", teamId).executeTakeFirst();
    if (!team) throw new NotFoundError("TEAM_NOT_FOUND", `team ${teamId} not found`);
    let q = tx
      .selectFrom("team_members")
      .selectAll()
      .where("team_id", "=", teamId)
      .orderBy("user_id")
      .limit(size + 1);
    if (after) q = q.where("user_id", ">", after);
    return q.execute();
  });
  const page = paginate(
    rows.map((r) => ({ ...r, id: r.user_id })),
    size,
    filters,
  );
  return { items: page.items, next: page.next };
}
