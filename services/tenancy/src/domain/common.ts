import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { AbortedError, FailedPreconditionError, NotFoundError } from "@uab/core";
import { appendEvent } from "@uab/events";
import type { Kysely, Transaction } from "kysely";
import type {
  AttributeDefinitionRow,
  JsonObject,
  ResourceType,
  TenancyDatabase,
  TenantRow,
} from "../storage/tables.js";
import { validateAttributes } from "./attributes.js";
import type { TenantCache } from "./tenant-cache.js";

/** What the tenancy domain needs. */
export interface TenancyDeps {
  /** The tenancy database (runtime role). */
  readonly db: Kysely<TenancyDatabase>;
  /** How long a deleted tenant, project or team stays restorable. */
  readonly restoreWindowMs: number;
  /** Tenant rows for GetTenant (see TenantCache). */
  readonly tenantCache: TenantCache;
}

/** A tenancy transaction. */
export type Tx = Transaction<TenancyDatabase>;

/** Records a domain event in the outbox, in the caller's transaction. */
export async function emit<D extends DescMessage>(
  tx: Tx,
  schema: D,
  payload: MessageInitShape<D>,
  tenantId: string,
  resource: { type: string; id: string; displayName?: string },
): Promise<void> {
  await appendEvent(tx, { source: "tenancy", schema, payload, tenantId, resource });
}

/** The tenant (visible in this transaction), or NOT_FOUND. */
export async function getTenantRow(tx: Tx, tenantId: string): Promise<TenantRow> {
  const row = await tx.selectFrom("tenants").selectAll().where("id", "=", tenantId).executeTakeFirst();
  if (!row) throw new NotFoundError("TENANT_NOT_FOUND", `tenant ${tenantId} not found`);
  return row;
}

/**
 * The tenant, locked for the rest of the transaction, when its resources may change: a
 * suspended or terminated tenant is read-only (FAILED_PRECONDITION). The key-share lock
 * (the weakest row lock) makes a suspension, which locks the row FOR UPDATE, wait for
 * in-flight writes instead of racing them, while writes never wait for each other.
 */
export async function writableTenant(tx: Tx, tenantId: string): Promise<TenantRow> {
  const row = await tx.selectFrom("tenants").selectAll().where("id", "=", tenantId).forKeyShare().executeTakeFirst();
  if (!row) throw new NotFoundError("TENANT_NOT_FOUND", `tenant ${tenantId} not found`);
  if (row.status === "suspended") {
    throw new FailedPreconditionError(
      "TENANT_SUSPENDED",
      `tenant ${tenantId} is suspended: ${row.status_reason || "no reason given"}`,
    );
  }
  if (row.status === "terminated")
    throw new FailedPreconditionError("TENANT_TERMINATED", `tenant ${tenantId} is terminated`);
  return row;
}

/** Fails with ABORTED when the client's etag is set and not the current revision. */
export function checkEtag(etag: string, revision: string, what: string): void {
  if (etag && etag !== revision) {
    throw new AbortedError(
      "ETAG_MISMATCH",
      `${what} changed since it was read (etag ${etag}, current ${revision}); read it again and retry`,
      {
        metadata: { current_etag: revision },
      },
    );
  }
}

/** The tenant's attribute definitions for a resource type (empty without a schema). */
export async function attributeDefinitions(tx: Tx, type: ResourceType): Promise<AttributeDefinitionRow[]> {
  const row = await tx
    .selectFrom("attribute_schemas")
    .select("definitions")
    .where("resource_type", "=", type)
    .executeTakeFirst();
  return row?.definitions ?? [];
}

const LABEL: Record<ResourceType, string> = {
  tenant: "tenants",
  project: "projects",
  team: "teams",
  membership: "memberships",
};

/** Validates custom attributes against the schema visible in `tx` (the tenant's). */
export async function checkAttributes(tx: Tx, type: ResourceType, attributes: JsonObject): Promise<void> {
  validateAttributes(attributes, await attributeDefinitions(tx, type), LABEL[type]);
}

/** The next revision as a string (revisions are bigint, kept as strings). */
export function nextRevision(revision: string): string {
  return (BigInt(revision) + 1n).toString();
}
