import type { ServiceImpl } from "@connectrpc/connect";
import type { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { projectToProto } from "../convert.js";
import * as children from "../domain/children.js";
import type { TenancyDeps } from "../domain/common.js";
import type { JsonObject, ProjectRow } from "../storage/tables.js";

type Impl = ServiceImpl<typeof TenancyService>;
const P = children.PROJECTS;
const out = (r: children.ChildInput | ProjectRow) => projectToProto(r as ProjectRow);

/** Project RPCs. */
export function projectHandlers(
  deps: TenancyDeps,
): Pick<Impl, "createProject" | "getProject" | "listProjects" | "updateProject" | "deleteProject" | "restoreProject"> {
  return {
    async createProject(req) {
      const row = await children.createChild(deps, P, {
        tenantId: req.tenantId,
        slug: req.slug,
        displayName: req.displayName,
        description: req.description,
        attributes: (req.attributes ?? {}) as JsonObject,
      });
      return { project: out(row) };
    },
    async getProject(req) {
      return { project: out(await children.getChild(deps, P, req.tenantId, req.projectId)) };
    },
    async listProjects(req) {
      const page = await children.listChildren(deps, P, req);
      return { projects: page.items.map(out), nextPageToken: page.next };
    },
    async updateProject(req) {
      const row = await children.updateChild(deps, P, {
        tenantId: req.tenantId,
        id: req.projectId,
        displayName: req.displayName,
        description: req.description,
        attributes: (req.attributes ?? {}) as JsonObject,
        paths: req.updateMask!.paths,
        etag: req.etag,
      });
      return { project: out(row) };
    },
    async deleteProject(req) {
      return { project: out(await children.deleteChild(deps, P, req.tenantId, req.projectId, req.etag)) };
    },
    async restoreProject(req) {
      return { project: out(await children.restoreChild(deps, P, req.tenantId, req.projectId)) };
    },
  };
}
