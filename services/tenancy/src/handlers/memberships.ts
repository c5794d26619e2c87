import type { ServiceImpl } from "@connectrpc/connect";
import type { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { definitionFromProto, membershipToProto, resourceTypeFromProto, schemaToProto } from "../convert.js";
import type { TenancyDeps } from "../domain/common.js";
import * as memberships from "../domain/memberships.js";
import * as schemas from "../domain/schemas.js";

type Impl = ServiceImpl<typeof TenancyService>;

/** Membership and attribute-schema RPCs. */
export function membershipHandlers(
  deps: TenancyDeps,
): Pick<
  Impl,
  | "createMembership"
  | "getMembership"
  | "listMemberships"
  | "updateMembership"
  | "deleteMembership"
  | "getAttributeSchema"
  | "listAttributeSchemas"
  | "updateAttributeSchema"
> {
  return {
    async createMembership(req) {
      return { membership: membershipToProto(await memberships.createMembership(deps, req)) };
    },
    async getMembership(req) {
      return { membership: membershipToProto(await memberships.getMembership(deps, req.tenantId, req.membershipId)) };
    },
    async listMemberships(req) {
      const page = await memberships.listMemberships(deps, req);
      return { memberships: page.items.map(membershipToProto), nextPageToken: page.next };
    },
    async updateMembership(req) {
      return { membership: membershipToProto(await memberships.updateMembership(deps, req)) };
    },
    async deleteMembership(req) {
      await memberships.deleteMembership(deps, req.tenantId, req.membershipId, req.etag);
      return {};
    },
    async getAttributeSchema(req) {
      const type = resourceTypeFromProto(req.resourceType);
      return { schema: schemaToProto(req.tenantId, type, await schemas.getSchema(deps, req.tenantId, type)) };
    },
    async listAttributeSchemas(req) {
      const rows = await schemas.listSchemas(deps, req.tenantId);
      return { schemas: rows.map((r) => schemaToProto(req.tenantId, r.resource_type, r)), nextPageToken: "" };
    },
    async updateAttributeSchema(req) {
      const type = resourceTypeFromProto(req.resourceType);
      const row = await schemas.updateSchema(
        deps,
        req.tenantId,
        type,
        req.attributes.map(definitionFromProto),
        req.etag,
      );
      return { schema: schemaToProto(req.tenantId, type, row) };
    },
  };
}
