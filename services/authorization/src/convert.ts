/**
 * Conversion between stored rows, engine values and proto messages, in one place (handlers
 * and event payloads both use it).
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Scope } from "@uab/proto";
import {
  type AccessRequest,
  type AccessRequestApproval,
  AccessRequestApprovalSchema,
  AccessRequestSchema,
  AccessRequestStatus,
} from "@uab/proto/gen/uab/authorization/v1/access_request_pb.js";
import { type ApprovalPolicy, ApprovalPolicySchema } from "@uab/proto/gen/uab/authorization/v1/approval_policy_pb.js";
import { type Binding, BindingSchema, BindingState } from "@uab/proto/gen/uab/authorization/v1/binding_pb.js";
import { type CheckResult, type GrantPath, GrantPathSchema } from "@uab/proto/gen/uab/authorization/v1/decision_pb.js";
import { type Permission, PermissionSchema } from "@uab/proto/gen/uab/authorization/v1/permission_pb.js";
import { type Principal, PrincipalSchema, PrincipalType } from "@uab/proto/gen/uab/authorization/v1/principal_pb.js";
import { type ResourceScope, ResourceScopeSchema } from "@uab/proto/gen/uab/authorization/v1/resource_scope_pb.js";
import { type Role, RoleSchema, RoleType } from "@uab/proto/gen/uab/authorization/v1/role_pb.js";
import type { PermissionInfo } from "./engine/catalogue.js";
import type { EngineDecision, GrantPathDef } from "./engine/evaluator.js";
import type { BindingDef, RoleDef, ScopeRef } from "./engine/model.js";
import type {
  AccessRequestApprovalRow,
  AccessRequestRow,
  AccessRequestState,
  ApprovalPolicyRow,
  BindingRow,
  PrincipalKind,
  RoleRow,
  ScopeType,
} from "./storage/tables.js";

const ts = (d: Date | null | undefined) => (d ? timestampFromDate(d) : undefined);

const SCOPES: Record<ScopeType, Scope> = {
  platform: Scope.PLATFORM,
  tenant: Scope.TENANT,
  project: Scope.PROJECT,
  team: Scope.TEAM,
};

const SCOPE_OF: readonly (ScopeType | undefined)[] = [undefined, "platform", "tenant", "project", "team"];

/** The stored scope type of a proto scope. */
export function scopeTypeOf(s: Scope): ScopeType {
  const found = SCOPE_OF[s];
  if (!found) throw new Error(`scope ${s} has no stored form`);
  return found;
}

/** The proto scope of a stored scope type. */
export function scopeToProto(s: ScopeType): Scope {
  return SCOPES[s];
}

const KINDS: Record<PrincipalKind, PrincipalType> = {
  user: PrincipalType.USER,
  team: PrincipalType.TEAM,
  service_account: PrincipalType.SERVICE_ACCOUNT,
  api_key: PrincipalType.API_KEY,
};

const KIND_OF: readonly (PrincipalKind | undefined)[] = [undefined, "user", "team", "service_account", "api_key"];

/** The stored principal kind of a proto principal type. */
export function principalKindOf(t: PrincipalType): PrincipalKind {
  const found = KIND_OF[t];
  if (!found) throw new Error(`principal type ${t} has no stored form`);
  return found;
}

/** A proto principal. */
export function principalToProto(type: PrincipalKind, id: string, tenantId: string | null): Principal {
  return create(PrincipalSchema, { type: KINDS[type], id, tenantId: tenantId ?? "" });
}

/** The engine scope of a proto resource scope. */
export function scopeFromProto(s: ResourceScope): ScopeRef {
  return {
    type: scopeTypeOf(s.type),
    tenantId: s.tenantId || undefined,
    projectId: s.projectId || undefined,
    teamId: s.teamId || undefined,
  };
}

/** A proto resource scope. */
export function scopeRefToProto(s: ScopeRef): ResourceScope {
  return create(ResourceScopeSchema, {
    type: SCOPES[s.type],
    tenantId: s.tenantId ?? "",
    projectId: s.projectId ?? "",
    teamId: s.teamId ?? "",
  });
}

/** A catalogue permission as the API shows it. */
export function permissionToProto(p: PermissionInfo): Permission {
  return create(PermissionSchema, {
    name: p.name,
    service: p.service,
    resource: p.resource,
    action: p.action,
    description: p.description,
    scope: p.scope,
    methods: [...p.methods],
    readOnly: p.readOnly,
    stepUpMaxAgeSeconds: p.stepUpMaxAgeSeconds,
    sensitive: p.sensitive,
  });
}

/** A system role as the API shows it. */
export function systemRoleToProto(r: RoleDef): Role {
  return create(RoleSchema, {
    id: r.id,
    type: RoleType.SYSTEM,
    slug: r.slug,
    displayName: r.displayName,
    description: r.description,
    permissions: [...r.permissions],
    includedRoleIds: [...r.includedRoleIds],
    assignableScopes: r.assignableScopes.map((s) => SCOPES[s]),
    sensitive: r.sensitive,
  });
}

/** A custom role row as the API shows it. */
export function roleToProto(r: RoleRow, bindingCount = 0): Role {
  return create(RoleSchema, {
    id: r.id,
    tenantId: r.tenant_id,
    type: RoleType.CUSTOM,
    slug: r.slug,
    displayName: r.display_name,
    description: r.description,
    permissions: r.permissions,
    includedRoleIds: r.included_role_ids,
    assignableScopes: r.assignable_scopes.map((s) => SCOPES[s]),
    sensitive: r.sensitive,
    bindingCount,
    createTime: ts(r.created_at),
    updateTime: ts(r.updated_at),
    etag: String(r.revision),
  });
}

/** The state of a binding at `now`. */
export function bindingState(r: BindingRow, now = Date.now()): BindingState {
  if (r.expire_time && r.expire_time.getTime() <= now) return BindingState.EXPIRED;
  if (r.start_time && r.start_time.getTime() > now) return BindingState.SCHEDULED;
  return BindingState.ACTIVE;
}

/** A binding row as the API shows it. */
export function bindingToProto(r: BindingRow, now = Date.now()): Binding {
  return create(BindingSchema, {
    id: r.id,
    tenantId: r.tenant_id ?? "",
    principal: principalToProto(r.principal_type, r.principal_id, r.principal_tenant_id),
    roleId: r.role_id,
    scope: scopeRefToProto({
      type: r.scope_type,
      tenantId: r.tenant_id ?? undefined,
      projectId: r.project_id ?? undefined,
      teamId: r.team_id ?? undefined,
    }),
    startTime: ts(r.start_time),
    expireTime: ts(r.expire_time),
    condition: r.condition,
    description: r.description,
    delegated: r.delegated,
    state: bindingState(r, now),
    accessRequestId: r.access_request_id ?? "",
    creatorId: r.creator_id,
    createTime: ts(r.created_at),
  });
}

/**
 * An engine decision as the API shows it. Built as a literal (a protobuf-es message is a
 * plain object with its type name and every field): BatchCheck makes hundreds per call and
 * `create()`'s reflection showed in its profile.
 */
export function decisionToProto(d: EngineDecision): CheckResult {
  return {
    $typeName: "uab.authorization.v1.CheckResult",
    allowed: d.allowed,
    reason: d.reason,
    message: d.message,
    bindingId: d.bindingId ?? "",
    roleId: d.roleId ?? "",
    teamId: d.teamId ?? "",
    permission: d.permission,
  } satisfies CheckResult;
}

/** A grant path as the API shows it. */
export function grantPathToProto(p: GrantPathDef): GrantPath {
  const b: BindingDef = p.binding;
  return create(GrantPathSchema, {
    bindingId: b.id,
    bindingScope: scopeRefToProto(b.scope),
    teamId: p.teamId ?? "",
    roleId: b.roleId,
    includedRoleChain: p.chain.slice(1),
    matchedPermission: p.pattern,
    conditional: b.condition !== null,
    expireTime: Number.isFinite(b.expire) ? timestampFromDate(new Date(b.expire)) : undefined,
    delegated: b.delegated,
  });
}

const STATUSES: Record<AccessRequestState, AccessRequestStatus> = {
  pending: AccessRequestStatus.PENDING,
  approved: AccessRequestStatus.APPROVED,
  denied: AccessRequestStatus.DENIED,
  cancelled: AccessRequestStatus.CANCELLED,
  expired: AccessRequestStatus.EXPIRED,
};

/** The stored state of a proto access request status. */
export function accessRequestStateOf(s: AccessRequestStatus): AccessRequestState | undefined {
  return (Object.keys(STATUSES) as AccessRequestState[]).find((k) => STATUSES[k] === s);
}

/** An approval as the API shows it. */
export function approvalToProto(a: AccessRequestApprovalRow): AccessRequestApproval {
  return create(AccessRequestApprovalSchema, {
    approver: principalToProto(a.approver_type, a.approver_id, null),
    comment: a.comment,
    createTime: ts(a.created_at),
  });
}

/** An access request row (with its approvals) as the API shows it. */
export function accessRequestToProto(
  r: AccessRequestRow,
  approvals: readonly AccessRequestApprovalRow[],
): AccessRequest {
  return create(AccessRequestSchema, {
    id: r.id,
    tenantId: r.tenant_id,
    requester: principalToProto(r.requester_type, r.requester_id, r.requester_tenant_id),
    roleId: r.role_id,
    scope: scopeRefToProto({
      type: r.scope_type,
      tenantId: r.tenant_id,
      projectId: r.project_id ?? undefined,
      teamId: r.team_id ?? undefined,
    }),
    justification: r.justification,
    duration: durationFromMs(r.duration_seconds * 1000),
    startTime: ts(r.start_time),
    status: STATUSES[r.status],
    approvalPolicyIds: r.approval_policy_ids,
    requiredApprovals: r.required_approvals,
    approvals: approvals.map(approvalToProto),
    denier: r.denier_type && r.denier_id ? principalToProto(r.denier_type, r.denier_id, null) : undefined,
    decisionComment: r.decision_comment,
    bindingId: r.binding_id ?? "",
    grantExpireTime: ts(r.grant_expire_time),
    expireTime: ts(r.expire_time),
    createTime: ts(r.created_at),
    updateTime: ts(r.updated_at),
    etag: String(r.revision),
  });
}

/** An approval policy row as the API shows it. */
export function approvalPolicyToProto(r: ApprovalPolicyRow): ApprovalPolicy {
  return create(ApprovalPolicySchema, {
    id: r.id,
    tenantId: r.tenant_id,
    displayName: r.display_name,
    description: r.description,
    roleIds: r.role_ids,
    scopeTypes: r.scope_types.map((s) => SCOPES[s]),
    requiredApprovals: r.required_approvals,
    approverPermission: r.approver_permission,
    maxDuration: durationFromMs(r.max_duration_seconds * 1000),
    requestTtl: durationFromMs(r.request_ttl_seconds * 1000),
    enforceOnDirectGrants: r.enforce_on_direct_grants,
    enabled: r.enabled,
    createTime: ts(r.created_at),
    updateTime: ts(r.updated_at),
    etag: String(r.revision),
  });
}
