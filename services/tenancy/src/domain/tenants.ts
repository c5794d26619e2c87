import { AlreadyExistsError, FailedPreconditionError, newId } from "@uab/core";
import {
  decodePageToken,
  isUniqueViolation,
  likeContains,
  pageSize,
  paginate,
  withPlatform,
  withTenant,
} from "@uab/db";
import {
  TenantCreatedSchema,
  TenantDeletedSchema,
  TenantPurgedSchema,
  TenantRestoredSchema,
  TenantResumedSchema,
  TenantSuspendedSchema,
  TenantUpdatedSchema,
} from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import type {
  CreateTenantRequest,
  DeleteTenantRequest,
  ListTenantsRequest,
  UpdateTenantRequest,
} from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { brandingToRow, membershipToProto, statusFromProto, tenantToProto } from "../convert.js";
import type { JsonObject, MembershipRow, TenantRow } from "../storage/tables.js";
import { validateAttributes } from "./attributes.js";
import { checkAttributes, checkEtag, emit, getTenantRow, nextRevision, type TenancyDeps, type Tx } from "./common.js";

const TENANT = "tenancy.tenant";

function conflict(e: unknown, slug: string, domain: string | undefined): never {
  if (isUniqueViolation(e, "tenants_slug_key")) {
    throw new AlreadyExistsError("TENANT_SLUG_TAKEN", `slug: a tenant with slug "${slug}" already exists`, {
      violations: [{ field: "slug", description: "is taken" }],
    });
  }
  if (isUniqueViolation(e, "tenants_custom_domain_key")) {
    throw new AlreadyExistsError("CUSTOM_DOMAIN_TAKEN", `custom_domain: "${domain}" is used by another tenant`, {
      violations: [{ field: "custom_domain", description: "is used by another tenant" }],
    });
  }
  throw e;
}

/** Provisions a tenant and its first owner membership in one transaction. */
export async function createTenant(
  deps: TenancyDeps,
  req: CreateTenantRequest,
): Promise<{ tenant: TenantRow; owner: MembershipRow }> {
  const attributes = (req.attributes ?? {}) as JsonObject;
  // A new tenant has no attribute schema yet, so it can carry no attributes.
  validateAttributes(attributes, [], "tenants");
  const id = newId("tenant");
  try {
    return await withPlatform(deps.db, async (tx) => {
      const tenant = await tx
        .insertInto("tenants")
        .values({
          id,
          slug: req.slug,
          display_name: req.displayName,
          status: "active",
          plan_id: req.planId,
          branding: JSON.stringify(brandingToRow(req.branding)),
          custom_domain: req.customDomain || null,
          attributes: JSON.stringify(attributes),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      const owner = await tx
        .insertInto("memberships")
        .values({ id: newId("membership"), tenant_id: id, user_id: req.ownerUserId, owner: true, attributes: "{}" })
        .returningAll()
        .executeTakeFirstOrThrow();
      await emit(
        tx,
        TenantCreatedSchema,
        { tenant: tenantToProto(tenant), ownerMembership: membershipToProto(owner) },
        id,
        {
          type: TENANT,
          id,
          displayName: tenant.display_name,
        },
      );
      return { tenant, owner };
    });
  } catch (e) {
    conflict(e, req.slug, req.customDomain);
  }
}

/** One tenant. */
export async function getTenant(deps: TenancyDeps, tenantId: string): Promise<TenantRow> {
  const cached = deps.tenantCache.get(tenantId);
  if (cached) return cached;
  const generation = deps.tenantCache.generation(tenantId);
  const row = await withTenant(deps.db, tenantId, (tx) => getTenantRow(tx, tenantId));
  deps.tenantCache.set(tenantId, row, generation);
  return row;
}

/** Runs a write to one tenant and drops its cached row afterwards, whether it committed or not. */
async function writing<T>(deps: TenancyDeps, tenantId: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } finally {
    deps.tenantCache.invalidate(tenantId);
  }
}

/** A page of tenants across the platform. */
export async function listTenants(
  deps: TenancyDeps,
  req: ListTenantsRequest,
): Promise<{ items: TenantRow[]; next: string }> {
  const filters = { s: req.status, q: req.query, p: req.planId, d: req.showDeleted };
  const after = decodePageToken(req.pageToken, filters);
  const size = pageSize(req.pageSize);
  const status = statusFromProto(req.status);
  const rows = await withPlatform(deps.db, async (tx) => {
    let q = tx
      .selectFrom("tenants")
      .selectAll()
      .orderBy("id")
      .limit(size + 1);
    if (after) q = q.where("id", ">", after);
    if (status) q = q.where("status", "=", status);
    else if (!req.showDeleted) q = q.where("status", "!=", "terminated");
    if (req.planId) q = q.where("plan_id", "=", req.planId);
    if (req.query) {
      const like = likeContains(req.query);
      q = q.where((eb) => eb.or([eb("slug", "ilike", like), eb("display_name", "ilike", like)]));
    }
    return q.execute();
  });
  return paginate(rows, size, filters);
}

async function lockTenant(tx: Tx, tenantId: string): Promise<TenantRow> {
  await tx.selectFrom("tenants").select("id").where("id", "=", tenantId).forUpdate().execute();
  return getTenantRow(tx, tenantId);
}

function requireStatus(row: TenantRow, allowed: TenantRow["status"][], action: string): void {
  if (!allowed.includes(row.status)) {
    throw new FailedPreconditionError(
      `TENANT_${row.status.toUpperCase()}`,
      `cannot ${action} tenant ${row.id}: it is ${row.status}`,
    );
  }
}

/** Changes the fields named in the mask. */
export async function updateTenant(deps: TenancyDeps, req: UpdateTenantRequest): Promise<TenantRow> {
  const paths = req.updateMask!.paths;
  try {
    return await writing(deps, req.tenantId, () =>
      withTenant(deps.db, req.tenantId, async (tx) => {
        const current = await lockTenant(tx, req.tenantId);
        requireStatus(current, ["active"], "update");
        checkEtag(req.etag, current.revision, `tenant ${req.tenantId}`);
        const set: Record<string, unknown> = { revision: nextRevision(current.revision), updated_at: new Date() };
        for (const p of paths) {
          if (p === "display_name") set.display_name = req.displayName;
          if (p === "plan_id") set.plan_id = req.planId;
          if (p === "branding") set.branding = JSON.stringify(brandingToRow(req.branding));
          if (p === "custom_domain") set.custom_domain = req.customDomain || null;
          if (p === "attributes") {
            const attributes = (req.attributes ?? {}) as JsonObject;
            await checkAttributes(tx, "tenant", attributes);
            set.attributes = JSON.stringify(attributes);
          }
        }
        const row = await tx
          .updateTable("tenants")
          .set(set)
          .where("id", "=", req.tenantId)
          .returningAll()
          .executeTakeFirstOrThrow();
        await emit(
          tx,
          TenantUpdatedSchema,
          { tenant: tenantToProto(row), changedFields: [...new Set(paths)] },
          row.id,
          {
            type: TENANT,
            id: row.id,
            displayName: row.display_name,
          },
        );
        return row;
      }),
    );
  } catch (e) {
    conflict(e, "", req.customDomain);
  }
}

/** Terminates a tenant, restorable until its purge time. */
export async function deleteTenant(deps: TenancyDeps, req: DeleteTenantRequest): Promise<TenantRow> {
  return writing(deps, req.tenantId, () =>
    withTenant(deps.db, req.tenantId, async (tx) => {
      const current = await lockTenant(tx, req.tenantId);
      requireStatus(current, ["active", "suspended"], "delete");
      checkEtag(req.etag, current.revision, `tenant ${req.tenantId}`);
      const now = new Date();
      const row = await tx
        .updateTable("tenants")
        .set({
          status: "terminated",
          status_reason: req.reason,
          deleted_at: now,
          purge_at: new Date(now.getTime() + deps.restoreWindowMs),
          revision: nextRevision(current.revision),
          updated_at: now,
        })
        .where("id", "=", req.tenantId)
        .returningAll()
        .executeTakeFirstOrThrow();
      await emit(tx, TenantDeletedSchema, { tenant: tenantToProto(row), reason: req.reason }, row.id, {
        type: TENANT,
        id: row.id,
        displayName: row.display_name,
      });
      return row;
    }),
  );
}

async function transition(
  deps: TenancyDeps,
  tenantId: string,
  from: TenantRow["status"][],
  action: string,
  change: (row: TenantRow, now: Date) => Record<string, unknown>,
  event: (tx: Tx, row: TenantRow) => Promise<void>,
): Promise<TenantRow> {
  return writing(deps, tenantId, () =>
    withPlatform(deps.db, async (tx) => {
      const current = await lockTenant(tx, tenantId);
      requireStatus(current, from, action);
      const now = new Date();
      const row = await tx
        .updateTable("tenants")
        .set({ ...change(current, now), revision: nextRevision(current.revision), updated_at: now })
        .where("id", "=", tenantId)
        .returningAll()
        .executeTakeFirstOrThrow();
      await event(tx, row);
      return row;
    }),
  );
}

const ref = (row: TenantRow) => ({ type: TENANT, id: row.id, displayName: row.display_name });

/** Brings a terminated tenant back before its purge time. */
export function restoreTenant(deps: TenancyDeps, tenantId: string): Promise<TenantRow> {
  return transition(
    deps,
    tenantId,
    ["terminated"],
    "restore",
    (row, now) => {
      // Past its purge time the tenant is gone even if the sweep has not run yet.
      if (row.purge_at && row.purge_at <= now) {
        throw new FailedPreconditionError(
          "RESTORE_WINDOW_EXPIRED",
          `tenant ${row.id} passed its purge time and can no longer be restored`,
        );
      }
      return { status: "active", status_reason: "", deleted_at: null, purge_at: null };
    },
    (tx, row) => emit(tx, TenantRestoredSchema, { tenant: tenantToProto(row) }, row.id, ref(row)),
  );
}

/** Suspends an active tenant. */
export function suspendTenant(deps: TenancyDeps, tenantId: string, reason: string): Promise<TenantRow> {
  return transition(
    deps,
    tenantId,
    ["active"],
    "suspend",
    () => ({ status: "suspended", status_reason: reason }),
    (tx, row) => emit(tx, TenantSuspendedSchema, { tenant: tenantToProto(row), reason }, row.id, ref(row)),
  );
}

/** Lifts a suspension. */
export function resumeTenant(deps: TenancyDeps, tenantId: string): Promise<TenantRow> {
  return transition(
    deps,
    tenantId,
    ["suspended"],
    "resume",
    () => ({ status: "active", status_reason: "" }),
    (tx, row) => emit(tx, TenantResumedSchema, { tenant: tenantToProto(row) }, row.id, ref(row)),
  );
}

/** Purges tenants whose restore window has passed; returns how many. Runs as a system job. */
export async function purgeTenants(deps: TenancyDeps, now = new Date()): Promise<number> {
  return withPlatform(deps.db, async (tx) => {
    const due = await tx
      .deleteFrom("tenants")
      .where("purge_at", "<=", now)
      .where("status", "=", "terminated")
      .returning(["id", "slug"])
      .execute();
    for (const t of due) {
      deps.tenantCache.invalidate(t.id);
      await emit(tx, TenantPurgedSchema, { tenantId: t.id, slug: t.slug }, t.id, { type: TENANT, id: t.id });
    }
    return due.length;
  });
}
