/**
 * Conversion between stored rows and proto messages, in one place (handlers and event
 * payloads both use it).
 */
import { create, type MessageInitShape, type JsonObject as PbJsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type AttributeDefinitionSchema,
  AttributeResourceType,
  type AttributeSchema,
  AttributeSchemaSchema,
  AttributeType,
} from "@uab/proto/gen/uab/tenancy/v1/attribute_schema_pb.js";
import { type Membership, MembershipSchema } from "@uab/proto/gen/uab/tenancy/v1/membership_pb.js";
import { type Project, ProjectSchema } from "@uab/proto/gen/uab/tenancy/v1/project_pb.js";
import { type Team, type TeamMember, TeamMemberSchema, TeamSchema } from "@uab/proto/gen/uab/tenancy/v1/team_pb.js";
import type { AttributeDefinitionInput } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import {
  type Branding,
  type BrandingSchema,
  type Tenant,
  TenantSchema,
  TenantStatus,
} from "@uab/proto/gen/uab/tenancy/v1/tenant_pb.js";
import type {
  AttributeDefinitionRow,
  AttributeSchemaRow,
  JsonObject,
  MembershipRow,
  ProjectRow,
  ResourceType,
  TeamMemberRow,
  TeamRow,
  TenantRow,
} from "./storage/tables.js";

const ts = (d: Date | null | undefined) => (d ? timestampFromDate(d) : undefined);
const attrs = (o: JsonObject) => o as PbJsonObject;

const STATUS: Record<TenantRow["status"], TenantStatus> = {
  active: TenantStatus.ACTIVE,
  suspended: TenantStatus.SUSPENDED,
  terminated: TenantStatus.TERMINATED,
};

/** The stored status for a proto status filter. */
export function statusFromProto(s: TenantStatus): TenantRow["status"] | undefined {
  return (Object.entries(STATUS).find(([, v]) => v === s)?.[0] as TenantRow["status"] | undefined) ?? undefined;
}

/** A tenant row as the API shows it. */
export function tenantToProto(r: TenantRow): Tenant {
  return create(TenantSchema, {
    id: r.id,
    slug: r.slug,
    displayName: r.display_name,
    status: STATUS[r.status],
    statusReason: r.status_reason,
    planId: r.plan_id,
    branding: r.branding as MessageInitShape<typeof BrandingSchema>,
    customDomain: r.custom_domain ?? "",
    attributes: attrs(r.attributes),
    createTime: ts(r.created_at),
    updateTime: ts(r.updated_at),
    deleteTime: ts(r.deleted_at),
    purgeTime: ts(r.purge_at),
    etag: r.revision,
  });
}

/** Branding as stored (only set fields). */
export function brandingToRow(b: Branding | undefined): JsonObject {
  if (!b) return {};
  const out: JsonObject = {};
  if (b.logoUrl) out.logoUrl = b.logoUrl;
  if (b.primaryColor) out.primaryColor = b.primaryColor;
  if (b.productName) out.productName = b.productName;
  return out;
}

/** A project row as the API shows it. */
export function projectToProto(r: ProjectRow): Project {
  return create(ProjectSchema, {
    id: r.id,
    tenantId: r.tenant_id,
    slug: r.slug,
    displayName: r.display_name,
    description: r.description,
    attributes: attrs(r.attributes),
    createTime: ts(r.created_at),
    updateTime: ts(r.updated_at),
    deleteTime: ts(r.deleted_at),
    purgeTime: ts(r.purge_at),
    etag: r.revision,
  });
}

/** A team row as the API shows it. */
export function teamToProto(r: TeamRow): Team {
  return create(TeamSchema, {
    id: r.id,
    tenantId: r.tenant_id,
    slug: r.slug,
    displayName: r.display_name,
    description: r.description,
    attributes: attrs(r.attributes),
    memberCount: r.member_count,
    createTime: ts(r.created_at),
    updateTime: ts(r.updated_at),
    deleteTime: ts(r.deleted_at),
    purgeTime: ts(r.purge_at),
    etag: r.revision,
  });
}

/** A membership row as the API shows it. */
export function membershipToProto(r: MembershipRow): Membership {
  return create(MembershipSchema, {
    id: r.id,
    tenantId: r.tenant_id,
    userId: r.user_id,
    owner: r.owner,
    attributes: attrs(r.attributes),
    createTime: ts(r.created_at),
    updateTime: ts(r.updated_at),
    etag: r.revision,
  });
}

/** A team member row as the API shows it. */
export function teamMemberToProto(r: TeamMemberRow): TeamMember {
  return create(TeamMemberSchema, {
    tenantId: r.tenant_id,
    teamId: r.team_id,
    userId: r.user_id,
    createTime: ts(r.created_at),
  });
}

const RESOURCE: Record<ResourceType, AttributeResourceType> = {
  tenant: AttributeResourceType.TENANT,
  project: AttributeResourceType.PROJECT,
  team: AttributeResourceType.TEAM,
  membership: AttributeResourceType.MEMBERSHIP,
};

/** The stored resource type of a proto one (validation guarantees it is set). */
export function resourceTypeFromProto(t: AttributeResourceType): ResourceType {
  const found = Object.entries(RESOURCE).find(([, v]) => v === t);
  if (!found) throw new Error(`unknown attribute resource type ${t}`);
  return found[0] as ResourceType;
}

const TYPE: Record<AttributeDefinitionRow["type"], AttributeType> = {
  string: AttributeType.STRING,
  number: AttributeType.NUMBER,
  boolean: AttributeType.BOOLEAN,
  string_list: AttributeType.STRING_LIST,
};

/** An attribute definition from an update request, as stored. */
export function definitionFromProto(d: AttributeDefinitionInput): AttributeDefinitionRow {
  const type = Object.entries(TYPE).find(([, v]) => v === d.type)?.[0] as AttributeDefinitionRow["type"];
  const row: AttributeDefinitionRow = {
    key: d.key,
    type,
    required: d.required,
    allowed_values: [...d.allowedValues],
    pattern: d.pattern,
    description: d.description,
  };
  if (d.minimum !== undefined) row.minimum = d.minimum;
  if (d.maximum !== undefined) row.maximum = d.maximum;
  return row;
}

function definitionToProto(d: AttributeDefinitionRow): MessageInitShape<typeof AttributeDefinitionSchema> {
  return {
    key: d.key,
    type: TYPE[d.type],
    required: d.required,
    allowedValues: d.allowed_values,
    pattern: d.pattern,
    minimum: d.minimum,
    maximum: d.maximum,
    description: d.description,
  };
}

/** A schema row (or the empty schema of a type) as the API shows it. */
export function schemaToProto(
  tenantId: string,
  type: ResourceType,
  r: AttributeSchemaRow | undefined,
): AttributeSchema {
  return create(AttributeSchemaSchema, {
    tenantId,
    resourceType: RESOURCE[type],
    attributes: (r?.definitions ?? []).map(definitionToProto),
    updateTime: ts(r?.updated_at),
    etag: r?.revision ?? "0",
  });
}
