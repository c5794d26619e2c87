import type { ServiceImpl } from "@connectrpc/connect";
import { decodePageToken, pageSize, paginate } from "@uab/db";
import { Scope } from "@uab/proto";
import type { AuthorizationService } from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import { RoleType } from "@uab/proto/gen/uab/authorization/v1/role_pb.js";
import { permissionToProto, roleToProto, scopeTypeOf, systemRoleToProto } from "../convert.js";
import type { AuthorizationDeps } from "../domain/common.js";
import * as roles from "../domain/roles.js";

type Impl = ServiceImpl<typeof AuthorizationService>;

/** Catalogue and role RPCs. */
export function roleHandlers(
  deps: AuthorizationDeps,
): Pick<
  Impl,
  "listPermissions" | "listSystemRoles" | "createRole" | "getRole" | "listRoles" | "updateRole" | "deleteRole"
> {
  return {
    async listPermissions(req) {
      const size = pageSize(req.pageSize);
      const filters = { s: req.service, c: req.scope, q: req.query, x: req.sensitiveOnly };
      const after = decodePageToken(req.pageToken, filters);
      const q = req.query.toLowerCase();
      const matching = deps.catalogue.permissions
        .filter(
          (p) =>
            (!after || p.name > after) &&
            (!req.service || p.service === req.service) &&
            (req.scope === Scope.UNSPECIFIED || p.scope === req.scope) &&
            (!req.sensitiveOnly || p.sensitive) &&
            (!q || p.name.includes(q) || p.description.toLowerCase().includes(q)),
        )
        .slice(0, size + 1)
        .map((p) => ({ id: p.name, p }));
      const page = paginate(matching, size, filters);
      return { permissions: page.items.map((i) => permissionToProto(i.p)), nextPageToken: page.next };
    },
    async listSystemRoles(req) {
      const size = pageSize(req.pageSize);
      const filters = { a: req.assignableScope };
      const after = decodePageToken(req.pageToken, filters);
      const wanted = req.assignableScope === Scope.UNSPECIFIED ? undefined : scopeTypeOf(req.assignableScope);
      const list = deps.evaluator
        .listSystemRoles()
        .filter((r) => (!after || r.id > after) && (!wanted || r.assignableScopes.includes(wanted)))
        .sort((a, b) => (a.id < b.id ? -1 : 1));
      const page = paginate(list, size, filters);
      return { roles: page.items.map(systemRoleToProto), nextPageToken: page.next };
    },
    async createRole(req) {
      const { value, revision } = await roles.createRole(deps, {
        tenantId: req.tenantId,
        slug: req.slug,
        displayName: req.displayName,
        description: req.description,
        permissions: req.permissions,
        includedRoleIds: req.includedRoleIds,
        assignableScopes: req.assignableScopes.map(scopeTypeOf),
        sensitive: req.sensitive,
      });
      return { role: roleToProto(value), revision };
    },
    async getRole(req) {
      const r = await roles.getRole(deps, req.tenantId, req.roleId);
      const role = r.system ? systemRoleToProto(r.system) : roleToProto(r.row!, r.bindingCount);
      if (r.system) role.bindingCount = r.bindingCount;
      return { role, effectivePermissions: r.effective };
    },
    async listRoles(req) {
      const page = await roles.listRoles(deps, {
        tenantId: req.tenantId,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        type: req.type === RoleType.SYSTEM ? "system" : req.type === RoleType.CUSTOM ? "custom" : undefined,
        query: req.query,
        grantsPermission: req.grantsPermission,
      });
      return {
        roles: page.items.map((i) =>
          "system" in i ? systemRoleToProto(i.system) : roleToProto(i.row, i.bindingCount),
        ),
        nextPageToken: page.next,
      };
    },
    async updateRole(req) {
      const { value, revision } = await roles.updateRole(deps, {
        tenantId: req.tenantId,
        roleId: req.roleId,
        displayName: req.displayName,
        description: req.description,
        permissions: req.permissions,
        includedRoleIds: req.includedRoleIds,
        assignableScopes: req.assignableScopes.map(scopeTypeOf),
        sensitive: req.sensitive,
        paths: req.updateMask?.paths ?? [],
        etag: req.etag,
      });
      return { role: roleToProto(value), revision };
    },
    async deleteRole(req) {
      const { value, revision } = await roles.deleteRole(deps, req.tenantId, req.roleId, req.force, req.etag);
      return { revision, deletedBindingCount: value };
    },
  };
}
