/** Kysely table types of the tenancy schema (see migrations/). */
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from "kysely";

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T> = ColumnType<T, string, string>;

/** JSON object values as stored in `attributes` and `branding`. */
export type JsonObject = { [key: string]: unknown };

export interface TenantsTable {
  id: string;
  tenant_id: ColumnType<string, never, never>;
  slug: string;
  display_name: string;
  status: "active" | "suspended" | "terminated";
  status_reason: Generated<string>;
  plan_id: Generated<string>;
  branding: Json<JsonObject>;
  custom_domain: string | null;
  attributes: Json<JsonObject>;
  revision: ColumnType<string, never, string>;
  created_at: Timestamp;
  updated_at: Timestamp;
  deleted_at: ColumnType<Date | null, never, Date | string | null>;
  purge_at: ColumnType<Date | null, never, Date | string | null>;
}

/** Projects and teams share this shape (teams add member_count). */
export interface ChildTable {
  id: string;
  tenant_id: string;
  slug: string;
  display_name: string;
  description: Generated<string>;
  attributes: Json<JsonObject>;
  revision: ColumnType<string, never, string>;
  created_at: Timestamp;
  updated_at: Timestamp;
  deleted_at: ColumnType<Date | null, never, Date | string | null>;
  purge_at: ColumnType<Date | null, never, Date | string | null>;
}

export interface TeamsTable extends ChildTable {
  member_count: ColumnType<number, never, number>;
}

export interface MembershipsTable {
  id: string;
  tenant_id: string;
  user_id: string;
  owner: boolean;
  attributes: Json<JsonObject>;
  revision: ColumnType<string, never, string>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface TeamMembersTable {
  tenant_id: string;
  team_id: string;
  user_id: string;
  created_at: Timestamp;
}

export interface AttributeSchemasTable {
  tenant_id: string;
  resource_type: ResourceType;
  definitions: Json<AttributeDefinitionRow[]>;
  revision: ColumnType<string, never, string>;
  updated_at: Timestamp;
}

/** The resource kinds that carry custom attributes. */
export type ResourceType = "tenant" | "project" | "team" | "membership";

/** One stored attribute definition. */
export interface AttributeDefinitionRow {
  key: string;
  type: "string" | "number" | "boolean" | "string_list";
  required: boolean;
  allowed_values: string[];
  pattern: string;
  minimum?: number;
  maximum?: number;
  description: string;
}

export interface TenancyDatabase {
  tenants: TenantsTable;
  projects: ChildTable;
  teams: TeamsTable;
  memberships: MembershipsTable;
  team_members: TeamMembersTable;
  attribute_schemas: AttributeSchemasTable;
}

export type TenantRow = Selectable<TenantsTable>;
export type NewTenantRow = Insertable<TenantsTable>;
export type TenantUpdate = Updateable<TenantsTable>;
export type ProjectRow = Selectable<ChildTable>;
export type TeamRow = Selectable<TeamsTable>;
export type ChildRow = ProjectRow | TeamRow;
export type MembershipRow = Selectable<MembershipsTable>;
export type TeamMemberRow = Selectable<TeamMembersTable>;
export type AttributeSchemaRow = Selectable<AttributeSchemasTable>;
