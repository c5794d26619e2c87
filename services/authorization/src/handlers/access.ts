import type { Duration } from "@bufbuild/protobuf/wkt";
import { durationMs, timestampDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { AuthorizationService } from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import {
  accessRequestStateOf,
  accessRequestToProto,
  approvalPolicyToProto,
  bindingToProto,
  scopeFromProto,
  scopeTypeOf,
} from "../convert.js";
import * as access from "../domain/access-requests.js";
import type { AuthorizationDeps } from "../domain/common.js";

type Impl = ServiceImpl<typeof AuthorizationService>;

/** Whole seconds of a duration (validation already bounded it). */
function seconds(d: Duration): number {
  return Math.round(durationMs(d) / 1000);
}

const out = (v: access.AccessRequestView) => accessRequestToProto(v.row, v.approvals);

/** Access request and approval policy RPCs. */
export function accessHandlers(
  deps: AuthorizationDeps,
): Pick<
  Impl,
  | "createAccessRequest"
  | "getAccessRequest"
  | "listAccessRequests"
  | "listMyAccessRequests"
  | "approveAccessRequest"
  | "denyAccessRequest"
  | "cancelAccessRequest"
  | "createApprovalPolicy"
  | "getApprovalPolicy"
  | "listApprovalPolicies"
  | "updateApprovalPolicy"
  | "deleteApprovalPolicy"
> {
  return {
    async createAccessRequest(req) {
      const { value } = await access.createAccessRequest(deps, {
        tenantId: req.tenantId,
        roleId: req.roleId,
        scope: scopeFromProto(req.scope!),
        justification: req.justification,
        durationSeconds: seconds(req.duration!),
        startTime: req.startTime ? timestampDate(req.startTime) : undefined,
      });
      return { accessRequest: out(value) };
    },
    async getAccessRequest(req) {
      return { accessRequest: out(await access.getAccessRequest(deps, req.tenantId, req.accessRequestId)) };
    },
    async listAccessRequests(req) {
      const page = await access.listAccessRequests(deps, {
        tenantId: req.tenantId,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        status: accessRequestStateOf(req.status),
        requesterId: req.requesterId,
        roleId: req.roleId,
        awaitingMyApproval: req.awaitingMyApproval,
      });
      return { accessRequests: page.items.map(out), nextPageToken: page.next };
    },
    async listMyAccessRequests(req) {
      const page = await access.listMyAccessRequests(deps, {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        tenantId: req.tenantId,
        status: accessRequestStateOf(req.status),
      });
      return { accessRequests: page.items.map(out), nextPageToken: page.next };
    },
    async approveAccessRequest(req) {
      const { value, revision } = await access.approveAccessRequest(
        deps,
        req.tenantId,
        req.accessRequestId,
        req.comment,
        req.etag,
      );
      return {
        accessRequest: out(value.request),
        binding: value.binding ? bindingToProto(value.binding) : undefined,
        revision,
      };
    },
    async denyAccessRequest(req) {
      const { value } = await access.denyAccessRequest(deps, req.tenantId, req.accessRequestId, req.comment, req.etag);
      return { accessRequest: out(value) };
    },
    async cancelAccessRequest(req) {
      const { value } = await access.cancelAccessRequest(
        deps,
        req.tenantId,
        req.accessRequestId,
        req.comment,
        req.etag,
      );
      return { accessRequest: out(value) };
    },
    async createApprovalPolicy(req) {
      const { value } = await access.createApprovalPolicy(deps, {
        tenantId: req.tenantId,
        displayName: req.displayName,
        description: req.description,
        roleIds: req.roleIds,
        scopeTypes: req.scopeTypes.map(scopeTypeOf),
        requiredApprovals: req.requiredApprovals,
        approverPermission: req.approverPermission,
        maxDurationSeconds: seconds(req.maxDuration!),
        requestTtlSeconds: req.requestTtl ? seconds(req.requestTtl) : undefined,
        enforceOnDirectGrants: req.enforceOnDirectGrants,
        enabled: req.enabled,
      });
      return { approvalPolicy: approvalPolicyToProto(value) };
    },
    async getApprovalPolicy(req) {
      return {
        approvalPolicy: approvalPolicyToProto(await access.getApprovalPolicy(deps, req.tenantId, req.approvalPolicyId)),
      };
    },
    async listApprovalPolicies(req) {
      const page = await access.listApprovalPolicies(deps, {
        tenantId: req.tenantId,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        roleId: req.roleId,
      });
      return { approvalPolicies: page.items.map(approvalPolicyToProto), nextPageToken: page.next };
    },
    async updateApprovalPolicy(req) {
      const { value } = await access.updateApprovalPolicy(deps, {
        tenantId: req.tenantId,
        approvalPolicyId: req.approvalPolicyId,
        displayName: req.displayName,
        description: req.description,
        roleIds: req.roleIds,
        scopeTypes: req.scopeTypes.map(scopeTypeOf),
        requiredApprovals: req.requiredApprovals,
        approverPermission: req.approverPermission,
        maxDurationSeconds: req.maxDuration ? seconds(req.maxDuration) : undefined,
        requestTtlSeconds: req.requestTtl ? seconds(req.requestTtl) : undefined,
        enforceOnDirectGrants: req.enforceOnDirectGrants,
        enabled: req.enabled,
        paths: req.updateMask?.paths ?? [],
        etag: req.etag,
      });
      return { approvalPolicy: approvalPolicyToProto(value) };
    },
    async deleteApprovalPolicy(req) {
      await access.deleteApprovalPolicy(deps, req.tenantId, req.approvalPolicyId, req.etag);
      return {};
    },
  };
}
