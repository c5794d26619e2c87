/**
 * Custom roles: per tenant, made of catalogue permissions and wildcards and of other roles
 * (system or the tenant's own; cycles rejected). System roles are read-only and shared.
 */
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  newId,
  type FieldViolation as Violation,
} from "@uab/core";
import { decodePageToken, isUniqueViolation, likeContains, pageSize, paginate, withTenant } from "@uab/db";
import {
  RoleCreatedSchema,
  RoleDeletedSchema,
  RoleUpdatedSchema,
} from "@uab/proto/gen/uab/authorization/v1/events_pb.js";
import { sql } from "kysely";
import { roleToProto } from "../convert.js";
import type { RoleDef, ScopeType } from "../engine/model.js";
import type { RoleRow } from "../storage/tables.js";
import { emitDeleted } from "./bindings.js";
import { type AuthorizationDeps, change, checkEtag, emit, type Revised, type Tx, tenantRoles } from "./common.js";
/** Fields of a role as written. */
export interface RoleInput {
  readonly tenantId: string;
  readonly slug: string;
  readonly displayName: string;
  readonly description: string;
  readonly permissions: readonly string[];
  readonly includedRoleIds: readonly string[];
  readonly assignableScopes: readonly ScopeType[];
  readonly sensitive: boolean;
}

function notFound(id: string): NotFoundError {
  return new NotFoundError("ROLE_NOT_FOUND", `role ${id} not found`);
}

/** Rejects unknown permissions, naming each bad entry. */
export function checkPermissions(deps: AuthorizationDeps, permissions: readonly string[], field = "permissions"): void {
  const violations: Violation[] = [];
  permissions.forEach((p, i) => {
    const why = deps.catalogue.rejectPattern(p);
    if (why) violations.push({ field: `${field}[${i}]`, description: why });
  });
  if (violations.length > 0) {
    throw new InvalidArgumentError(
      "UNKNOWN_PERMISSION",
      violations.map((v) => `${v.field}: ${v.description}`).join("; "),
      { violations },
    );
  }
}

/**
 * Checks that every included role exists (system or this tenant's) and that including them
 * in `roleId` makes no cycle.
 */
async function checkIncludes(
  deps: AuthorizationDeps,
  tx: Tx,
  roleId: string,
  includes: readonly string[],
): Promise<void> {
  if (includes.length === 0) return;
  const custom = await tenantRoles(tx);
  const lookup = (id: string) => deps.evaluator.role(id) ?? custom.get(id);
  includes.forEach((id, i) => {
    if (id === roleId) throw InvalidArgumentError.field(`included_role_ids[${i}]`, "a role cannot include itself");
    if (!lookup(id)) {
      throw InvalidArgumentError.field(`included_role_ids[${i}]`, `role ${id} does not exist in this tenant`);
    }
  });
  // Walk down from the included roles: reaching roleId again would be a cycle.
  const seen = new Set<string>();
  const stack = [...includes];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (id === roleId) {
      throw InvalidArgumentError.field(
        "included_role_ids",
        `including these roles would make a cycle back to ${roleId}`,
      );
    }
    if (seen.has(id)) continue;
    seen.add(id);
    stack.push(...(lookup(id)?.includedRoleIds ?? []));
  }
}

function slugTaken(slug: string): AlreadyExistsError {
  return new AlreadyExistsError("ROLE_SLUG_TAKEN", `slug: a role with slug "${slug}" already exists in this tenant`, {
    violations: [{ field: "slug", description: "is taken" }],
  });
}

/** Creates a custom role. */
export async function createRole(deps: AuthorizationDeps, input: RoleInput): Promise<Revised<RoleRow>> {
  checkPermissions(deps, input.permissions);
  if (deps.evaluator.listSystemRoles().some((r) => r.slug === input.slug)) {
    throw new AlreadyExistsError("ROLE_SLUG_TAKEN", `slug: "${input.slug}" is the slug of a system role`, {
      violations: [{ field: "slug", description: "is reserved by a system role" }],
    });
  }
  const id = newId("role");
  try {
    return await change(deps, input.tenantId, async (tx, revision) => {
      await checkIncludes(deps, tx, id, input.includedRoleIds);
      const row = await tx
        .insertInto("roles")
        .values({
          id,
          tenant_id: input.tenantId,
          slug: input.slug,
          display_name: input.displayName,
          description: input.description,
          permissions: [...input.permissions],
          included_role_ids: [...input.includedRoleIds],
          assignable_scopes: [...input.assignableScopes],
          sensitive: input.sensitive || impliesSensitive(deps, input.permissions, input.includedRoleIds),
          revision: 1,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      await emit(tx, RoleCreatedSchema, { role: roleToProto(row), revision }, row.tenant_id, {
        type: "authorization.role",
        id: row.id,
        displayName: row.display_name,
      });
      return row;
    });
  } catch (e) {
    if (isUniqueViolation(e)) throw slugTaken(input.slug);
    throw e;
  }
}

/** A role marked sensitive, or granting a sensitive permission directly or through a system role. */
function impliesSensitive(
  deps: AuthorizationDeps,
  permissions: readonly string[],
  includes: readonly string[],
): boolean {
  if (permissions.some((p) => deps.catalogue.expand(p).some((info) => info.sensitive))) return true;
  return includes.some((id) => deps.evaluator.role(id)?.sensitive === true);
}

/** A role visible in the tenant (system or custom), with its binding count for custom ones. */
export async function getRole(
  deps: AuthorizationDeps,
  tenantId: string,
  roleId: string,
): Promise<{ system?: RoleDef; row?: RoleRow; bindingCount: number; effective: string[] }> {
  const system = deps.evaluator.role(roleId);
  return withTenant(deps.db, tenantId, async (tx) => {
    const row = system
      ? undefined
      : await tx.selectFrom("roles").selectAll().where("id", "=", roleId).executeTakeFirst();
    if (!system && !row) throw notFound(roleId);
    const count = await tx
      .selectFrom("bindings")
      .select((eb) => eb.fn.countAll<string>().as("n"))
      .where("role_id", "=", roleId)
      .where("tenant_id", "=", tenantId)
      .executeTakeFirstOrThrow();
    const custom = system ? undefined : await tenantRoles(tx);
    const patterns = deps.evaluator.flatten(roleId, custom ? { roles: custom } : undefined);
    const effective = new Set<string>();
    for (const p of patterns) for (const info of deps.catalogue.expand(p)) effective.add(info.name);
    return { system, row, bindingCount: Number(count.n), effective: [...effective].sort() };
  });
}

/** Filters of ListRoles. */
export interface RoleFilters {
  readonly tenantId: string;
  readonly pageSize: number;
  readonly pageToken: string;
  /** "system", "custom" or undefined for both. */
  readonly type?: "system" | "custom" | undefined;
  readonly query: string;
  readonly grantsPermission: string;
}

/**
 * Lists roles usable in the tenant: system roles first (their ids sort before generated
 * ones), then custom roles, in id order.
 */
export async function listRoles(
  deps: AuthorizationDeps,
  f: RoleFilters,
): Promise<{ items: ({ system: RoleDef } | { row: RoleRow; bindingCount: number })[]; next: string }> {
  const size = pageSize(f.pageSize);
  const filters = { t: f.type, q: f.query, g: f.grantsPermission };
  const after = decodePageToken(f.pageToken, filters);
  return withTenant(deps.db, f.tenantId, async (tx) => {
    const custom = await tenantRoles(tx);
    const source = { roles: custom };
    const grants = (id: string) =>
      !f.grantsPermission || deps.evaluator.matcher(id, source)?.grants(f.grantsPermission) === true;
    const q = f.query.toLowerCase();
    const text = (r: { slug: string; displayName: string }) =>
      !q || r.slug.toLowerCase().includes(q) || r.displayName.toLowerCase().includes(q);
    const system =
      f.type === "custom"
        ? []
        : deps.evaluator
            .listSystemRoles()
            .filter((r) => (!after || r.id > after) && text(r) && grants(r.id))
            .sort((a, b) => (a.id < b.id ? -1 : 1));
    let rows: RoleRow[] = [];
    if (f.type !== "system" && system.length <= size) {
      let sel = tx.selectFrom("roles").selectAll().where("tenant_id", "=", f.tenantId);
      if (after) sel = sel.where("id", ">", after);
      if (q) {
        sel = sel.where((eb) =>
          eb.or([eb("slug", "ilike", likeContains(q)), eb("display_name", "ilike", likeContains(q))]),
        );
      }
      rows = (
        await sel
          .orderBy("id")
          .limit(size + 1 - system.length)
          .execute()
      ).filter((r) => grants(r.id));
    }
    const merged: ({ id: string; system: RoleDef } | { id: string; row: RoleRow })[] = [
      ...system.map((s) => ({ id: s.id, system: s })),
      ...rows.map((r) => ({ id: r.id, row: r })),
    ];
    const page = paginate(merged, size, filters);
    const ids = page.items.flatMap((i) => ("row" in i ? [i.id] : []));
    const counts = ids.length
      ? await tx
          .selectFrom("bindings")
          .select(["role_id", (eb) => eb.fn.countAll<string>().as("n")])
          .where("role_id", "in", ids)
          .where("tenant_id", "=", f.tenantId)
          .groupBy("role_id")
          .execute()
      : [];
    const countOf = new Map(counts.map((c) => [c.role_id, Number(c.n)]));
    return {
      items: page.items.map((i) =>
        "row" in i ? { row: i.row, bindingCount: countOf.get(i.id) ?? 0 } : { system: i.system },
      ),
      next: page.next,
    };
  });
}

/** Fields of UpdateRole. */
export interface RoleUpdate extends Omit<RoleInput, "slug"> {
  readonly roleId: string;
  readonly paths: readonly string[];
  readonly etag: string;
}

/** Updates a custom role (system roles cannot be changed). */
export async function updateRole(deps: AuthorizationDeps, u: RoleUpdate): Promise<Revised<RoleRow>> {
  if (deps.evaluator.role(u.roleId)) {
    throw new FailedPreconditionError(
      "SYSTEM_ROLE_READ_ONLY",
      `role ${u.roleId} is a system role and cannot be changed`,
    );
  }
  if (u.paths.includes("permissions")) checkPermissions(deps, u.permissions);
  return change(deps, u.tenantId, async (tx, revision) => {
    const current = await tx.selectFrom("roles").selectAll().where("id", "=", u.roleId).forUpdate().executeTakeFirst();
    if (!current) throw notFound(u.roleId);
    checkEtag(u.etag, String(current.revision), `role ${u.roleId}`);
    if (u.paths.includes("included_role_ids")) await checkIncludes(deps, tx, u.roleId, u.includedRoleIds);
    const set: Record<string, unknown> = {};
    if (u.paths.includes("display_name")) set.display_name = u.displayName;
    if (u.paths.includes("description")) set.description = u.description;
    if (u.paths.includes("permissions")) set.permissions = [...u.permissions];
    if (u.paths.includes("included_role_ids")) set.included_role_ids = [...u.includedRoleIds];
    if (u.paths.includes("assignable_scopes")) set.assignable_scopes = [...u.assignableScopes];
    const permissions = (set.permissions as string[] | undefined) ?? current.permissions;
    const includes = (set.included_role_ids as string[] | undefined) ?? current.included_role_ids;
    const marked = u.paths.includes("sensitive") ? u.sensitive : current.sensitive;
    set.sensitive = marked || impliesSensitive(deps, permissions, includes);
    if (u.paths.includes("assignable_scopes")) {
      const stranded = await tx
        .selectFrom("bindings")
        .select("scope_type")
        .where("role_id", "=", u.roleId)
        .where("scope_type", "not in", u.assignableScopes as ScopeType[])
        .limit(1)
        .executeTakeFirst();
      if (stranded) {
        throw new FailedPreconditionError(
          "ROLE_IN_USE_AT_SCOPE",
          `assignable_scopes: the role is bound at ${stranded.scope_type} scope; delete those bindings first`,
        );
      }
    }
    const row = await tx
      .updateTable("roles")
      .set({ ...set, revision: String(BigInt(current.revision) + 1n), updated_at: new Date() })
      .where("id", "=", u.roleId)
      .returningAll()
      .executeTakeFirstOrThrow();
    await emit(
      tx,
      RoleUpdatedSchema,
      { role: roleToProto(row), changedFields: [...u.paths], revision },
      row.tenant_id,
      {
        type: "authorization.role",
        id: row.id,
        displayName: row.display_name,
      },
    );
    return row;
  });
}

/**
 * Deletes a custom role. A role still bound or included by another role is refused unless
 * `force`, which also deletes its bindings (and removes it from including roles).
 */
export async function deleteRole(
  deps: AuthorizationDeps,
  tenantId: string,
  roleId: string,
  force: boolean,
  etag: string,
): Promise<Revised<number>> {
  if (deps.evaluator.role(roleId)) {
    throw new FailedPreconditionError("SYSTEM_ROLE_READ_ONLY", `role ${roleId} is a system role and cannot be deleted`);
  }
  return change(deps, tenantId, async (tx, revision) => {
    const row = await tx.selectFrom("roles").selectAll().where("id", "=", roleId).forUpdate().executeTakeFirst();
    if (!row) throw notFound(roleId);
    checkEtag(etag, String(row.revision), `role ${roleId}`);
    const bound = await tx
      .selectFrom("bindings")
      .select((eb) => eb.fn.countAll<string>().as("n"))
      .where("role_id", "=", roleId)
      .executeTakeFirstOrThrow();
    const includers = await tx
      .selectFrom("roles")
      .select("id")
      .where((eb) => eb(eb.val(roleId), "=", eb.fn.any("included_role_ids")))
      .execute();
    if (!force && (Number(bound.n) > 0 || includers.length > 0)) {
      throw new FailedPreconditionError(
        "ROLE_IN_USE",
        `role ${roleId} has ${bound.n} binding(s) and is included by ${includers.length} role(s); delete them first or pass force`,
      );
    }
    const deleted = await tx.deleteFrom("bindings").where("role_id", "=", roleId).returningAll().execute();
    await emitDeleted(tx, deleted, `role ${roleId} deleted`, revision);
    for (const inc of includers) {
      await tx
        .updateTable("roles")
        .set((eb) => ({
          included_role_ids: eb.fn("array_remove", ["included_role_ids", eb.val(roleId)]),
          revision: sql<string>`revision + 1`,
          updated_at: new Date(),
        }))
        .where("id", "=", inc.id)
        .execute();
    }
    await tx.deleteFrom("roles").where("id", "=", roleId).execute();
    await emit(
      tx,
      RoleDeletedSchema,
      { role: roleToProto(row), deletedBindingCount: deleted.length, revision },
      tenantId,
      { type: "authorization.role", id: roleId, displayName: row.display_name },
    );
    return deleted.length;
  });
}
