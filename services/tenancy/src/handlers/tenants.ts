import type { ServiceImpl } from "@connectrpc/connect";
import type { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { membershipToProto, tenantToProto } from "../convert.js";
import type { TenancyDeps } from "../domain/common.js";
import * as tenants from "../domain/tenants.js";

type Impl = ServiceImpl<typeof TenancyService>;

/** Tenant RPCs. */
export function tenantHandlers(
  deps: TenancyDeps,
): Pick<
  Impl,
  | "createTenant"
  | "getTenant"
  | "listTenants"
  | "updateTenant"
  | "deleteTenant"
  | "restoreTenant"
  | "suspendTenant"
  | "resumeTenant"
> {
  return {
    async createTenant(req) {
      const { tenant, owner } = await tenants.createTenant(deps, req);
      return { tenant: tenantToProto(tenant), ownerMembership: membershipToProto(owner) };
    },
    async getTenant(req) {
      return { tenant: tenantToProto(await tenants.getTenant(deps, req.tenantId)) };
    },
    async listTenants(req) {
      const page = await tenants.listTenants(deps, req);
      return { tenants: page.items.map(tenantToProto), nextPageToken: page.next };
    },
    async updateTenant(req) {
      return { tenant: tenantToProto(await tenants.updateTenant(deps, req)) };
    },
    async deleteTenant(req) {
      return { tenant: tenantToProto(await tenants.deleteTenant(deps, req)) };
    },
    async restoreTenant(req) {
      return { tenant: tenantToProto(await tenants.restoreTenant(deps, req.tenantId)) };
    },
    async suspendTenant(req) {
      return { tenant: tenantToProto(await tenants.suspendTenant(deps, req.tenantId, req.reason)) };
    },
    async resumeTenant(req) {
      return { tenant: tenantToProto(await tenants.resumeTenant(deps, req.tenantId)) };
    },
  };
}
