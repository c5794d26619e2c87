/** Kysely table types of the authorization schema (see migrations/). */
import type { EventsTables } from "@uab/events";
import type { ColumnType, Generated, Selectable } from "kysely";

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
/** bigint columns come back from pg as strings. */
type BigintColumn = ColumnType<string, string | number | undefined, string | number>;

/** Scope levels as stored. */
export type ScopeType = "platform" | "tenant" | "project" | "team";
/** Principal kinds a binding can name. */
export type PrincipalKind = "user" | "team" | "service_account" | "api_key";

export interface RevisionsTable {
  key: string;
  tenant_id: string | null;
  revision: BigintColumn;
  updated_at: Timestamp;
}

export interface RolesTable {
  id: string;
  tenant_id: string;
  slug: string;
  display_name: string;
  description: Generated<string>;
  permissions: string[];
  included_role_ids: string[];
  assignable_scopes: ScopeType[];
  sensitive: Generated<boolean>;
  revision: BigintColumn;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface BindingsTable {
  id: string;
  tenant_id: string | null;
  principal_type: PrincipalKind;
  principal_id: string;
  principal_tenant_id: string | null;
  role_id: string;
  scope_type: ScopeType;
  project_id: string | null;
  team_id: string | null;
  start_time: NullableTimestamp;
  expire_time: NullableTimestamp;
  condition: Generated<string>;
  description: Generated<string>;
  delegated: Generated<boolean>;
  source: Generated<"api" | "access_request" | "membership" | "bootstrap">;
  access_request_id: string | null;
  creator_id: string;
  created_at: Timestamp;
}

export interface ApprovalPoliciesTable {
  id: string;
  tenant_id: string;
  display_name: string;
  description: Generated<string>;
  role_ids: string[];
  scope_types: ScopeType[];
  required_approvals: number;
  approver_permission: string;
  max_duration_seconds: number;
  request_ttl_seconds: number;
  enforce_on_direct_grants: Generated<boolean>;
  enabled: Generated<boolean>;
  revision: BigintColumn;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** Access request states as stored. */
export type AccessRequestState = "pending" | "approved" | "denied" | "cancelled" | "expired";

export interface AccessRequestsTable {
  id: string;
  tenant_id: string;
  requester_type: PrincipalKind;
  requester_id: string;
  requester_tenant_id: string | null;
  role_id: string;
  scope_type: ScopeType;
  project_id: string | null;
  team_id: string | null;
  justification: string;
  duration_seconds: number;
  start_time: NullableTimestamp;
  status: AccessRequestState;
  approval_policy_ids: string[];
  required_approvals: number;
  approver_permission: string;
  denier_type: PrincipalKind | null;
  denier_id: string | null;
  decision_comment: Generated<string>;
  binding_id: string | null;
  grant_expire_time: NullableTimestamp;
  expire_time: Timestamp;
  revision: BigintColumn;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface AccessRequestApprovalsTable {
  access_request_id: string;
  tenant_id: string;
  approver_type: PrincipalKind;
  approver_id: string;
  comment: Generated<string>;
  created_at: Timestamp;
}

export interface TenantsTable {
  id: string;
  tenant_id: ColumnType<string, never, never>;
  status: "active" | "suspended" | "terminated";
  updated_at: Timestamp;
}

export interface MembersTable {
  tenant_id: string;
  user_id: string;
  owner: boolean;
  attributes: ColumnType<Record<string, unknown>, string | undefined, string>;
}

export interface TeamMembersTable {
  tenant_id: string;
  team_id: string;
  principal_id: string;
}

export interface DeletedTeamsTable {
  tenant_id: string;
  team_id: string;
}

/** The authorization schema. */
export interface AuthorizationDatabase extends EventsTables {
  revisions: RevisionsTable;
  roles: RolesTable;
  bindings: BindingsTable;
  approval_policies: ApprovalPoliciesTable;
  access_requests: AccessRequestsTable;
  access_request_approvals: AccessRequestApprovalsTable;
  tenants: TenantsTable;
  members: MembersTable;
  team_members: TeamMembersTable;
  deleted_teams: DeletedTeamsTable;
}

export type RoleRow = Selectable<RolesTable>;
export type BindingRow = Selectable<BindingsTable>;
export type ApprovalPolicyRow = Selectable<ApprovalPoliciesTable>;
export type AccessRequestRow = Selectable<AccessRequestsTable>;
export type AccessRequestApprovalRow = Selectable<AccessRequestApprovalsTable>;
