import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { AuthorizationService } from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import { DelegationDirection } from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import { PrincipalType } from "@uab/proto/gen/uab/authorization/v1/principal_pb.js";
import { bindingToProto, principalKindOf, scopeFromProto } from "../convert.js";
import * as bindings from "../domain/bindings.js";
import type { AuthorizationDeps } from "../domain/common.js";

type Impl = ServiceImpl<typeof AuthorizationService>;

/** Tenant bindings, platform bindings and delegated grants. */
export function bindingHandlers(
  deps: AuthorizationDeps,
): Pick<
  Impl,
  | "createBinding"
  | "getBinding"
  | "listBindings"
  | "deleteBinding"
  | "listDelegatedGrants"
  | "createPlatformBinding"
  | "getPlatformBinding"
  | "listPlatformBindings"
  | "deletePlatformBinding"
> {
  return {
    async createBinding(req) {
      const p = req.principal!;
      const { value, revision } = await bindings.createBinding(deps, {
        tenantId: req.tenantId,
        principalType: principalKindOf(p.type),
        principalId: p.id,
        principalTenantId: p.tenantId,
        roleId: req.roleId,
        scope: scopeFromProto(req.scope!),
        startTime: req.startTime ? timestampDate(req.startTime) : undefined,
        expireTime: req.expireTime ? timestampDate(req.expireTime) : undefined,
        condition: req.condition,
        description: req.description,
      });
      return { binding: bindingToProto(value), revision };
    },
    async getBinding(req) {
      return { binding: bindingToProto(await bindings.getBinding(deps, req.tenantId, req.bindingId)) };
    },
    async listBindings(req) {
      const page = await bindings.listBindings(deps, {
        tenantId: req.tenantId,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        principalType: req.principalType === PrincipalType.UNSPECIFIED ? undefined : principalKindOf(req.principalType),
        principalId: req.principalId,
        roleId: req.roleId,
        projectId: req.projectId || undefined,
        teamId: req.teamId || undefined,
        state: req.state,
        delegatedOnly: req.delegatedOnly,
      });
      return { bindings: page.items.map((r) => bindingToProto(r)), nextPageToken: page.next };
    },
    async deleteBinding(req) {
      const { revision } = await bindings.deleteBinding(deps, req.tenantId, req.bindingId, req.reason);
      return { revision };
    },
    async listDelegatedGrants(req) {
      const page = await bindings.listDelegated(deps, {
        tenantId: req.tenantId,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        direction:
          req.direction === DelegationDirection.INBOUND
            ? "inbound"
            : req.direction === DelegationDirection.OUTBOUND
              ? "outbound"
              : "both",
        counterpartTenantId: req.counterpartTenantId,
        includeInactive: req.includeInactive,
      });
      return { grants: page.items.map((r) => bindingToProto(r)), nextPageToken: page.next };
    },
    async createPlatformBinding(req) {
      const p = req.principal!;
      const { value, revision } = await bindings.createBinding(deps, {
        tenantId: null,
        principalType: principalKindOf(p.type),
        principalId: p.id,
        principalTenantId: p.tenantId,
        roleId: req.roleId,
        scope: { type: "platform" },
        startTime: req.startTime ? timestampDate(req.startTime) : undefined,
        expireTime: req.expireTime ? timestampDate(req.expireTime) : undefined,
        condition: req.condition,
        description: req.description,
      });
      return { binding: bindingToProto(value), revision };
    },
    async getPlatformBinding(req) {
      return { binding: bindingToProto(await bindings.getBinding(deps, null, req.bindingId)) };
    },
    async listPlatformBindings(req) {
      const page = await bindings.listBindings(deps, {
        tenantId: null,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        principalId: req.principalId,
        roleId: req.roleId,
        state: req.state,
      });
      return { bindings: page.items.map((r) => bindingToProto(r)), nextPageToken: page.next };
    },
    async deletePlatformBinding(req) {
      const { revision } = await bindings.deleteBinding(deps, null, req.bindingId, req.reason);
      return { revision };
    },
  };
}
