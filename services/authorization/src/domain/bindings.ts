/**
 * Role bindings: a principal gets a role at a scope, optionally from a start time, until
 * an expiry and under a CEL condition. Tenant bindings live in the tenant of their scope;
 * platform bindings grant everywhere. A binding whose principal comes from another tenant
 * (or the platform) is a delegated grant, visible to both tenants.
 */
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, newId, PermissionDeniedError } from "@uab/core";
import { decodePageToken, pageSize, paginate, withPlatform, withTenant } from "@uab/db";
import { BindingState } from "@uab/proto/gen/uab/authorization/v1/binding_pb.js";
import {
  BindingCreatedSchema,
  BindingDeletedSchema,
  BindingExpiredSchema,
  SensitiveRoleGrantedSchema,
} from "@uab/proto/gen/uab/authorization/v1/events_pb.js";
import { bindingToProto, roleToProto, systemRoleToProto } from "../convert.js";
import { compileCondition } from "../engine/conditions.js";
import type { RoleDef, ScopeRef } from "../engine/model.js";
import { roleDef } from "../engine/store.js";
import type { BindingRow, PrincipalKind, RoleRow } from "../storage/tables.js";
import { type AuthorizationDeps, caller, change, emit, type Revised, type Tx, tenantRoles } from "./common.js";

/** Fields of a new binding. */
export interface BindingInput {
  /** The tenant; null for a platform binding. */
  readonly tenantId: string | null;
  readonly principalType: PrincipalKind;
  readonly principalId: string;
  /** The principal's home tenant as given ("" when not given). */
  readonly principalTenantId: string;
  readonly roleId: string;
  readonly scope: ScopeRef;
  readonly startTime?: Date | undefined;
  readonly expireTime?: Date | undefined;
  readonly condition: string;
  readonly description: string;
  /** Set when an approved access request creates the binding. */
  readonly accessRequestId?: string | undefined;
  readonly source?: "api" | "access_request" | "membership" | "bootstrap";
}

function notFound(id: string): NotFoundError {
  return new NotFoundError("BINDING_NOT_FOUND", `binding ${id} not found`);
}

/** Compiles a condition or fails naming `condition`. */
export function checkCondition(source: string): void {
  if (!source) return;
  try {
    compileCondition(source);
  } catch (e) {
    throw InvalidArgumentError.field("condition", (e as Error).message);
  }
}

/** The role to bind in a tenant transaction (system, or the tenant's), or INVALID_ARGUMENT. */
async function roleFor(deps: AuthorizationDeps, tx: Tx, roleId: string): Promise<{ def: RoleDef; row?: RoleRow }> {
  const system = deps.evaluator.role(roleId);
  if (system) return { def: system };
  const row = await tx.selectFrom("roles").selectAll().where("id", "=", roleId).executeTakeFirst();
  if (!row) throw InvalidArgumentError.field("role_id", `role ${roleId} does not exist in this tenant`);
  return { def: roleDef(row), row };
}

/**
 * The home tenant of a principal named without one: teams, service accounts and API keys
 * belong to the binding's tenant; a user belongs to the tenant it is a member of (this one
 * first), and a user who is a member of none is a platform principal.
 */
async function resolveHome(deps: AuthorizationDeps, input: BindingInput): Promise<string | null> {
  if (input.principalTenantId) return input.principalTenantId;
  if (input.principalType !== "user" || input.tenantId === null) return input.tenantId;
  const homes = await withPlatform(deps.db, (tx) =>
    tx.selectFrom("members").select("tenant_id").where("user_id", "=", input.principalId).execute(),
  );
  const tenants = homes.map((h) => h.tenant_id);
  if (tenants.includes(input.tenantId)) return input.tenantId;
  if (tenants.length === 0) return null;
  if (tenants.length === 1) return tenants[0]!;
  throw InvalidArgumentError.field(
    "principal.tenant_id",
    `user ${input.principalId} is a member of several tenants; name the one it acts from`,
  );
}

/** Refuses a direct grant of a role an enabled approval policy reserves for access requests. */
async function checkDirectGrantAllowed(tx: Tx, input: BindingInput): Promise<void> {
  if (input.source === "access_request" || input.tenantId === null) return;
  const policy = await tx
    .selectFrom("approval_policies")
    .select(["id", "scope_types"])
    .where("enabled", "=", true)
    .where("enforce_on_direct_grants", "=", true)
    .where((eb) => eb(eb.val(input.roleId), "=", eb.fn.any("role_ids")))
    .execute();
  const hit = policy.find((p) => p.scope_types.length === 0 || p.scope_types.includes(input.scope.type));
  if (hit) {
    throw new FailedPreconditionError(
      "APPROVAL_REQUIRED",
      `approval policy ${hit.id} requires role ${input.roleId} to be granted through an approved access request`,
      { metadata: { approval_policy_id: hit.id } },
    );
  }
}

/** Inserts a binding with its events, in the caller's transaction. */
export async function insertBinding(
  deps: AuthorizationDeps,
  tx: Tx,
  input: BindingInput,
  home: string | null,
  revision: string,
): Promise<BindingRow> {
  const { def, row: roleRow } = await roleFor(deps, tx, input.roleId);
  if (!def.assignableScopes.includes(input.scope.type)) {
    throw InvalidArgumentError.field(
      "scope",
      `role ${def.id} can be bound at ${def.assignableScopes.join(", ")} scope, not ${input.scope.type}`,
    );
  }
  if (input.principalType === "team" && home !== input.tenantId) {
    throw InvalidArgumentError.field("principal.tenant_id", "a team can only be bound in its own tenant");
  }
  await checkDirectGrantAllowed(tx, input);
  const by = caller();
  const row = await tx
    .insertInto("bindings")
    .values({
      id: newId("binding"),
      tenant_id: input.tenantId,
      principal_type: input.principalType,
      principal_id: input.principalId,
      principal_tenant_id: home,
      role_id: input.roleId,
      scope_type: input.scope.type,
      project_id: input.scope.projectId ?? null,
      team_id: input.scope.teamId ?? null,
      start_time: input.startTime ?? null,
      expire_time: input.expireTime ?? null,
      condition: input.condition,
      description: input.description,
      delegated: home !== input.tenantId,
      source: input.source ?? "api",
      access_request_id: input.accessRequestId ?? null,
      creator_id: by.id,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  const resource = { type: "authorization.binding", id: row.id };
  const binding = bindingToProto(row);
  await emit(tx, BindingCreatedSchema, { binding, revision }, row.tenant_id, resource);
  if (def.sensitive) {
    const sensitive = new Set<string>();
    // A custom role may include other custom roles: flatten it over all of the tenant's.
    const source = roleRow ? { roles: await tenantRoles(tx) } : undefined;
    for (const p of deps.evaluator.flatten(def.id, source)) {
      for (const info of deps.catalogue.expand(p)) if (info.sensitive) sensitive.add(info.name);
    }
    await emit(
      tx,
      SensitiveRoleGrantedSchema,
      {
        binding,
        role: roleRow ? roleToProto(roleRow) : systemRoleToProto(def),
        sensitivePermissions: [...sensitive].sort(),
      },
      row.tenant_id,
      resource,
    );
  }
  return row;
}

/** Creates a tenant or platform binding. */
export async function createBinding(deps: AuthorizationDeps, input: BindingInput): Promise<Revised<BindingRow>> {
  checkCondition(input.condition);
  if (input.tenantId === null) {
    const role = deps.evaluator.role(input.roleId);
    if (!role) throw InvalidArgumentError.field("role_id", `${input.roleId} is not a system role`);
  }
  const home = await resolveHome(deps, input);
  return change(deps, input.tenantId, (tx, revision) => insertBinding(deps, tx, input, home, revision));
}

/** A binding of the tenant (or the platform, for null). */
export async function getBinding(deps: AuthorizationDeps, tenantId: string | null, id: string): Promise<BindingRow> {
  const read = (tx: Tx) =>
    tx
      .selectFrom("bindings")
      .selectAll()
      .where("id", "=", id)
      .where("tenant_id", tenantId === null ? "is" : "=", tenantId)
      .executeTakeFirst();
  const row = tenantId === null ? await withPlatform(deps.db, read) : await withTenant(deps.db, tenantId, read);
  if (!row) throw notFound(id);
  return row;
}

/** Filters of ListBindings and ListPlatformBindings. */
export interface BindingFilters {
  readonly tenantId: string | null;
  readonly pageSize: number;
  readonly pageToken: string;
  readonly principalType?: PrincipalKind | undefined;
  readonly principalId: string;
  readonly roleId: string;
  readonly projectId?: string | undefined;
  readonly teamId?: string | undefined;
  readonly state: BindingState;
  readonly delegatedOnly?: boolean | undefined;
}

/** Lists bindings of a tenant (or the platform) in id order. */
export async function listBindings(
  deps: AuthorizationDeps,
  f: BindingFilters,
): Promise<{ items: BindingRow[]; next: string }> {
  const size = pageSize(f.pageSize);
  const { pageToken: _t, pageSize: _s, ...filters } = f;
  const after = decodePageToken(f.pageToken, filters);
  const run = async (tx: Tx) => {
    let q = tx
      .selectFrom("bindings")
      .selectAll()
      .where("tenant_id", f.tenantId === null ? "is" : "=", f.tenantId);
    if (after) q = q.where("id", ">", after);
    if (f.principalType) q = q.where("principal_type", "=", f.principalType);
    if (f.principalId) q = q.where("principal_id", "=", f.principalId);
    if (f.roleId) q = q.where("role_id", "=", f.roleId);
    if (f.projectId) q = q.where("project_id", "=", f.projectId);
    if (f.teamId) q = q.where("team_id", "=", f.teamId);
    if (f.delegatedOnly) q = q.where("delegated", "=", true);
    const now = new Date();
    if (f.state === BindingState.ACTIVE) {
      q = q
        .where((eb) => eb.or([eb("start_time", "is", null), eb("start_time", "<=", now)]))
        .where((eb) => eb.or([eb("expire_time", "is", null), eb("expire_time", ">", now)]));
    } else if (f.state === BindingState.SCHEDULED) {
      q = q
        .where("start_time", ">", now)
        .where((eb) => eb.or([eb("expire_time", "is", null), eb("expire_time", ">", now)]));
    } else if (f.state === BindingState.EXPIRED) {
      q = q.where("expire_time", "<=", now);
    } else if (f.state === BindingState.SUSPENDED) {
      return [];
    }
    return q
      .orderBy("id")
      .limit(size + 1)
      .execute();
  };
  const rows = f.tenantId === null ? await withPlatform(deps.db, run) : await withTenant(deps.db, f.tenantId, run);
  return paginate(rows, size, filters);
}

/** Emits BindingDeleted for rows being removed. */
export async function emitDeleted(
  tx: Tx,
  rows: readonly BindingRow[],
  reason: string,
  revision: string,
): Promise<void> {
  for (const row of rows) {
    await emit(tx, BindingDeletedSchema, { binding: bindingToProto(row), reason, revision }, row.tenant_id, {
      type: "authorization.binding",
      id: row.id,
    });
  }
}

/** Deletes (revokes) a binding; effective immediately for anyone holding the returned revision. */
export async function deleteBinding(
  deps: AuthorizationDeps,
  tenantId: string | null,
  id: string,
  reason: string,
): Promise<Revised<BindingRow>> {
  return change(deps, tenantId, async (tx, revision) => {
    const row = await tx
      .deleteFrom("bindings")
      .where("id", "=", id)
      .where("tenant_id", tenantId === null ? "is" : "=", tenantId)
      .returningAll()
      .executeTakeFirst();
    if (!row) throw notFound(id);
    if (row.source === "bootstrap") {
      throw new PermissionDeniedError(
        "BOOTSTRAP_BINDING",
        `binding ${id} comes from UAB_BOOTSTRAP_ADMIN_IDS; remove the id there to revoke it`,
      );
    }
    await emitDeleted(tx, [row], reason || "deleted", revision);
    return row;
  });
}

/** Filters of ListDelegatedGrants. */
export interface DelegatedFilters {
  readonly tenantId: string;
  readonly pageSize: number;
  readonly pageToken: string;
  /** inbound: grants in this tenant to outsiders; outbound: grants this tenant's principals hold elsewhere. */
  readonly direction: "inbound" | "outbound" | "both";
  readonly counterpartTenantId: string;
  readonly includeInactive: boolean;
}

/** Lists delegated grants into and out of a tenant (row-level security shows both). */
export async function listDelegated(
  deps: AuthorizationDeps,
  f: DelegatedFilters,
): Promise<{ items: BindingRow[]; next: string }> {
  const size = pageSize(f.pageSize);
  const { pageToken: _t, pageSize: _s, ...filters } = f;
  const after = decodePageToken(f.pageToken, filters);
  const rows = await withTenant(deps.db, f.tenantId, async (tx) => {
    let q = tx.selectFrom("bindings").selectAll().where("delegated", "=", true);
    if (f.direction === "inbound") q = q.where("tenant_id", "=", f.tenantId);
    else if (f.direction === "outbound") q = q.where("principal_tenant_id", "=", f.tenantId);
    if (f.counterpartTenantId) {
      q = q.where((eb) =>
        eb.or([
          eb.and([eb("tenant_id", "=", f.tenantId), eb("principal_tenant_id", "=", f.counterpartTenantId)]),
          eb.and([eb("principal_tenant_id", "=", f.tenantId), eb("tenant_id", "=", f.counterpartTenantId)]),
        ]),
      );
    }
    if (!f.includeInactive)
      q = q.where((eb) => eb.or([eb("expire_time", "is", null), eb("expire_time", ">", new Date())]));
    if (after) q = q.where("id", ">", after);
    return q
      .orderBy("id")
      .limit(size + 1)
      .execute();
  });
  return paginate(rows, size, filters);
}

/** Emits BindingExpired for bindings past their expiry and removes them (the audit log keeps the record). */
export async function sweepExpiredBindings(deps: AuthorizationDeps, now = new Date()): Promise<number> {
  const expired = await withPlatform(deps.db, (tx) =>
    tx.selectFrom("bindings").select(["id", "tenant_id"]).where("expire_time", "<=", now).limit(1000).execute(),
  );
  const byTenant = new Map<string | null, string[]>();
  for (const e of expired) byTenant.set(e.tenant_id, [...(byTenant.get(e.tenant_id) ?? []), e.id]);
  for (const [tenantId, ids] of byTenant) {
    await change(deps, tenantId, async (tx, revision) => {
      const rows = await tx.deleteFrom("bindings").where("id", "in", ids).returningAll().execute();
      for (const row of rows) {
        await emit(tx, BindingExpiredSchema, { binding: bindingToProto(row), revision }, row.tenant_id, {
          type: "authorization.binding",
          id: row.id,
        });
      }
    });
  }
  return expired.length;
}
