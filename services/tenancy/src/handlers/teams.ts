import type { ServiceImpl } from "@connectrpc/connect";
import type { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { teamMemberToProto, teamToProto } from "../convert.js";
import * as children from "../domain/children.js";
import type { TenancyDeps } from "../domain/common.js";
import * as memberships from "../domain/memberships.js";
import type { ChildRow, JsonObject, TeamRow } from "../storage/tables.js";

type Impl = ServiceImpl<typeof TenancyService>;
const T = children.TEAMS;
const out = (r: ChildRow) => teamToProto(r as TeamRow);

/** Team and team-member RPCs. */
export function teamHandlers(
  deps: TenancyDeps,
): Pick<
  Impl,
  | "createTeam"
  | "getTeam"
  | "listTeams"
  | "updateTeam"
  | "deleteTeam"
  | "restoreTeam"
  | "addTeamMember"
  | "removeTeamMember"
  | "listTeamMembers"
> {
  return {
    async createTeam(req) {
      const row = await children.createChild(deps, T, {
        tenantId: req.tenantId,
        slug: req.slug,
        displayName: req.displayName,
        description: req.description,
        attributes: (req.attributes ?? {}) as JsonObject,
      });
      return { team: out(row) };
    },
    async getTeam(req) {
      return { team: out(await children.getChild(deps, T, req.tenantId, req.teamId)) };
    },
    async listTeams(req) {
      const page = await children.listChildren(deps, T, { ...req, memberUserId: req.memberUserId });
      return { teams: page.items.map(out), nextPageToken: page.next };
    },
    async updateTeam(req) {
      const row = await children.updateChild(deps, T, {
        tenantId: req.tenantId,
        id: req.teamId,
        displayName: req.displayName,
        description: req.description,
        attributes: (req.attributes ?? {}) as JsonObject,
        paths: req.updateMask!.paths,
        etag: req.etag,
      });
      return { team: out(row) };
    },
    async deleteTeam(req) {
      return { team: out(await children.deleteChild(deps, T, req.tenantId, req.teamId, req.etag)) };
    },
    async restoreTeam(req) {
      return { team: out(await children.restoreChild(deps, T, req.tenantId, req.teamId)) };
    },
    async addTeamMember(req) {
      return { member: teamMemberToProto(await memberships.addTeamMember(deps, req.tenantId, req.teamId, req.userId)) };
    },
    async removeTeamMember(req) {
      await memberships.removeTeamMember(deps, req.tenantId, req.teamId, req.userId);
      return {};
    },
    async listTeamMembers(req) {
      const page = await memberships.listTeamMembers(deps, req.tenantId, req.teamId, req.pageSize, req.pageToken);
      return { members: page.items.map(teamMemberToProto), nextPageToken: page.next };
    },
  };
}
