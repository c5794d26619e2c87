import { withTenant } from "@uab/db";
import { AttributeSchemaUpdatedSchema } from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import { schemaToProto } from "../convert.js";
import type { AttributeDefinitionRow, AttributeSchemaRow, ResourceType } from "../storage/tables.js";
import { checkDefinitions } from "./attributes.js";
import { checkEtag, emit, getTenantRow, nextRevision, type TenancyDeps, writableTenant } from "./common.js";

/** A tenant's schema for one resource type (undefined when none was set). */
export function getSchema(
  deps: TenancyDeps,
  tenantId: string,
  type: ResourceType,
): Promise<AttributeSchemaRow | undefined> {
  return withTenant(deps.db, tenantId, async (tx) => {
    await getTenantRow(tx, tenantId);
    return tx.selectFrom("attribute_schemas").selectAll().where("resource_type", "=", type).executeTakeFirst();
  });
}

/** All of a tenant's schemas (at most one per resource type, so one page). */
export function listSchemas(deps: TenancyDeps, tenantId: string): Promise<AttributeSchemaRow[]> {
  return withTenant(deps.db, tenantId, async (tx) => {
    await getTenantRow(tx, tenantId);
    return tx.selectFrom("attribute_schemas").selectAll().orderBy("resource_type").execute();
  });
}

/** Replaces a schema (etag "0" or empty creates it). */
export async function updateSchema(
  deps: TenancyDeps,
  tenantId: string,
  type: ResourceType,
  definitions: AttributeDefinitionRow[],
  etag: string,
): Promise<AttributeSchemaRow> {
  checkDefinitions(definitions);
  return withTenant(deps.db, tenantId, async (tx) => {
    await writableTenant(tx, tenantId);
    const current = await tx
      .selectFrom("attribute_schemas")
      .selectAll()
      .where("resource_type", "=", type)
      .forUpdate()
      .executeTakeFirst();
    checkEtag(etag, current?.revision ?? "0", `attribute schema for ${type}`);
    const json = JSON.stringify(definitions);
    const row = current
      ? await tx
          .updateTable("attribute_schemas")
          .set({ definitions: json, revision: nextRevision(current.revision), updated_at: new Date() })
          .where("resource_type", "=", type)
          .returningAll()
          .executeTakeFirstOrThrow()
      : await tx
          .insertInto("attribute_schemas")
          .values({ tenant_id: tenantId, resource_type: type, definitions: json })
          .returningAll()
          .executeTakeFirstOrThrow();
    await emit(tx, AttributeSchemaUpdatedSchema, { schema: schemaToProto(tenantId, type, row) }, tenantId, {
      type: "tenancy.attribute_schema",
      id: `${tenantId}/${type}`,
    });
    return row;
  });
}
