/**
 * Just-in-time access: approval policies say which roles need approval, by whom and for how
 * long; an access request asks for a role at a scope for a limited time and, once enough
 * distinct approvers holding the approver permission(s) at the request's scope approve it,
 * a binding of the requester expiring after the asked duration is created.
 *
 * When several enabled policies cover a request they all apply: the highest approval
 * count, every approver permission and the shortest maximum duration and pending
 * time-to-live. A request no policy covers needs one approval by a holder of
 * `authorization.access_requests.approve` and lasts at most 24 hours. A request keeps the
 * rules it was created under: `access_requests.approver_permission` stores every
 * applicable approver permission, comma-separated (permission names contain no comma).
 */
import {
  AlreadyExistsError,
  currentRequestContext,
  FailedPreconditionError,
  type FieldViolation,
  InvalidArgumentError,
  NotFoundError,
  newId,
  PermissionDeniedError,
  type Principal,
} from "@uab/core";
import { decodePageToken, isUniqueViolation, pageSize, paginate, withPlatform, withTenant } from "@uab/db";
import {
  AccessRequestApprovalRecordedSchema,
  AccessRequestApprovedSchema,
  AccessRequestCancelledSchema,
  AccessRequestCreatedSchema,
  AccessRequestDeniedSchema,
  AccessRequestExpiredSchema,
  ApprovalPolicyCreatedSchema,
  ApprovalPolicyDeletedSchema,
  ApprovalPolicyUpdatedSchema,
} from "@uab/proto/gen/uab/authorization/v1/events_pb.js";
import { sql } from "kysely";
import { accessRequestToProto, approvalPolicyToProto, approvalToProto, bindingToProto } from "../convert.js";
import type { RoleDef, ScopeRef } from "../engine/model.js";
import { roleDef } from "../engine/store.js";
import type {
  AccessRequestApprovalRow,
  AccessRequestRow,
  AccessRequestState,
  ApprovalPolicyRow,
  BindingRow,
  ScopeType,
} from "../storage/tables.js";
import { insertBinding } from "./bindings.js";
import {
  type AuthorizationDeps,
  caller,
  callerKind,
  change,
  checkEtag,
  emit,
  invalid,
  type Revised,
  type Tx,
} from "./common.js";
import { basis, type DecisionBasis, decideOn, subjectOf } from "./decisions.js";

/** The approver permission when a policy names none, and of requests no policy covers. */
export const DEFAULT_APPROVER_PERMISSION = "authorization.access_requests.approve";
/** How long a request stays pending when no policy says otherwise (7 days). */
export const DEFAULT_REQUEST_TTL_SECONDS = 7 * 24 * 3600;
/** The longest access a request no policy covers may ask for (24 hours). */
export const DEFAULT_MAX_DURATION_SECONDS = 24 * 3600;

const POLICY = "authorization.approval_policy";
const REQUEST = "authorization.access_request";
const PERMISSION_SEPARATOR = ",";
/** Rows examined per query when filtering pending requests through the engine. */
const AWAITING_BATCH = 200;

// ---------------------------------------------------------------------------------------
// Approval policies

/** Fields of an approval policy as written. */
export interface ApprovalPolicyInput {
  readonly tenantId: string;
  readonly displayName: string;
  readonly description: string;
  readonly roleIds: readonly string[];
  /** Empty means every scope type. */
  readonly scopeTypes: readonly ScopeType[];
  readonly requiredApprovals: number;
  /** Empty means {@link DEFAULT_APPROVER_PERMISSION}. */
  readonly approverPermission: string;
  readonly maxDurationSeconds: number;
  /** Undefined means {@link DEFAULT_REQUEST_TTL_SECONDS}. */
  readonly requestTtlSeconds?: number | undefined;
  readonly enforceOnDirectGrants: boolean;
  readonly enabled: boolean;
}

function policyNotFound(id: string): NotFoundError {
  return new NotFoundError("APPROVAL_POLICY_NOT_FOUND", `approval policy ${id} not found`);
}

const policyResource = (r: ApprovalPolicyRow) => ({ type: POLICY, id: r.id, displayName: r.display_name });

/** Rejects roles that are neither system roles nor custom roles of the tenant, naming each. */
async function checkPolicyRoles(
  deps: AuthorizationDeps,
  tx: Tx,
  tenantId: string,
  roleIds: readonly string[],
): Promise<void> {
  const customIds = roleIds.filter((id) => !deps.evaluator.role(id));
  const found = customIds.length
    ? await tx.selectFrom("roles").select("id").where("tenant_id", "=", tenantId).where("id", "in", customIds).execute()
    : [];
  const custom = new Set(found.map((r) => r.id));
  const violations: FieldViolation[] = [];
  roleIds.forEach((id, i) => {
    if (!deps.evaluator.role(id) && !custom.has(id)) {
      violations.push({ field: `role_ids[${i}]`, description: `role ${id} does not exist in this tenant` });
    }
  });
  if (violations.length > 0) {
    throw new InvalidArgumentError("UNKNOWN_ROLE", violations.map((v) => `${v.field}: ${v.description}`).join("; "), {
      violations,
    });
  }
}

/** The approver permission to store, or INVALID_ARGUMENT naming `approver_permission`. */
function approverPermissionOf(deps: AuthorizationDeps, permission: string): string {
  const p = permission || DEFAULT_APPROVER_PERMISSION;
  if (!deps.catalogue.has(p)) throw invalid("approver_permission", `${p} is not a permission in the catalogue`);
  return p;
}

/** Creates an approval policy. */
export async function createApprovalPolicy(
  deps: AuthorizationDeps,
  input: ApprovalPolicyInput,
): Promise<Revised<ApprovalPolicyRow>> {
  const approverPermission = approverPermissionOf(deps, input.approverPermission);
  return change(deps, input.tenantId, async (tx) => {
    await checkPolicyRoles(deps, tx, input.tenantId, input.roleIds);
    const row = await tx
      .insertInto("approval_policies")
      .values({
        id: newId("approvalPolicy"),
        tenant_id: input.tenantId,
        display_name: input.displayName,
        description: input.description,
        role_ids: [...input.roleIds],
        scope_types: [...input.scopeTypes],
        required_approvals: input.requiredApprovals,
        approver_permission: approverPermission,
        max_duration_seconds: input.maxDurationSeconds,
        request_ttl_seconds: input.requestTtlSeconds ?? DEFAULT_REQUEST_TTL_SECONDS,
        enforce_on_direct_grants: input.enforceOnDirectGrants,
        enabled: input.enabled,
        revision: 1,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await emit(
      tx,
      ApprovalPolicyCreatedSchema,
      { approvalPolicy: approvalPolicyToProto(row) },
      row.tenant_id,
      policyResource(row),
    );
    return row;
  });
}

/** One approval policy of the tenant. */
export async function getApprovalPolicy(
  deps: AuthorizationDeps,
  tenantId: string,
  id: string,
): Promise<ApprovalPolicyRow> {
  const row = await withTenant(deps.db, tenantId, (tx) =>
    tx
      .selectFrom("approval_policies")
      .selectAll()
      .where("id", "=", id)
      .where("tenant_id", "=", tenantId)
      .executeTakeFirst(),
  );
  if (!row) throw policyNotFound(id);
  return row;
}

/** Filters of ListApprovalPolicies. */
export interface ApprovalPolicyFilters {
  readonly tenantId: string;
  readonly pageSize: number;
  readonly pageToken: string;
  /** Only policies covering this role ("" for all). */
  readonly roleId: string;
}

/** Lists a tenant's approval policies in id (creation) order. */
export async function listApprovalPolicies(
  deps: AuthorizationDeps,
  f: ApprovalPolicyFilters,
): Promise<{ items: ApprovalPolicyRow[]; next: string }> {
  const size = pageSize(f.pageSize);
  const filters = { r: f.roleId };
  const after = decodePageToken(f.pageToken, filters);
  const rows = await withTenant(deps.db, f.tenantId, (tx) => {
    let q = tx.selectFrom("approval_policies").selectAll().where("tenant_id", "=", f.tenantId);
    if (after) q = q.where("id", ">", after);
    if (f.roleId) q = q.where((eb) => eb(eb.val(f.roleId), "=", eb.fn.any("role_ids")));
    return q
      .orderBy("id")
      .limit(size + 1)
      .execute();
  });
  return paginate(rows, size, filters);
}

/** Fields of UpdateApprovalPolicy: those named in `paths` are written. */
export interface ApprovalPolicyUpdate extends Omit<ApprovalPolicyInput, "maxDurationSeconds"> {
  readonly approvalPolicyId: string;
  /** Required when `max_duration` is in `paths`. */
  readonly maxDurationSeconds?: number | undefined;
  readonly paths: readonly string[];
  readonly etag: string;
}

/** Changes an approval policy; pending requests keep the rules they were created under. */
export async function updateApprovalPolicy(
  deps: AuthorizationDeps,
  u: ApprovalPolicyUpdate,
): Promise<Revised<ApprovalPolicyRow>> {
  const has = (p: string) => u.paths.includes(p);
  const approverPermission = has("approver_permission") ? approverPermissionOf(deps, u.approverPermission) : undefined;
  if (has("max_duration") && u.maxDurationSeconds === undefined)
    throw invalid("max_duration", "must be set when in update_mask");
  return change(deps, u.tenantId, async (tx) => {
    const current = await tx
      .selectFrom("approval_policies")
      .selectAll()
      .where("id", "=", u.approvalPolicyId)
      .where("tenant_id", "=", u.tenantId)
      .forUpdate()
      .executeTakeFirst();
    if (!current) throw policyNotFound(u.approvalPolicyId);
    checkEtag(u.etag, String(current.revision), `approval policy ${u.approvalPolicyId}`);
    if (has("role_ids")) await checkPolicyRoles(deps, tx, u.tenantId, u.roleIds);
    const row = await tx
      .updateTable("approval_policies")
      .set({
        ...(has("display_name") ? { display_name: u.displayName } : {}),
        ...(has("description") ? { description: u.description } : {}),
        ...(has("role_ids") ? { role_ids: [...u.roleIds] } : {}),
        ...(has("scope_types") ? { scope_types: [...u.scopeTypes] } : {}),
        ...(has("required_approvals") ? { required_approvals: u.requiredApprovals } : {}),
        ...(approverPermission !== undefined ? { approver_permission: approverPermission } : {}),
        ...(has("max_duration") && u.maxDurationSeconds !== undefined
          ? { max_duration_seconds: u.maxDurationSeconds }
          : {}),
        ...(has("request_ttl") ? { request_ttl_seconds: u.requestTtlSeconds ?? DEFAULT_REQUEST_TTL_SECONDS } : {}),
        ...(has("enforce_on_direct_grants") ? { enforce_on_direct_grants: u.enforceOnDirectGrants } : {}),
        ...(has("enabled") ? { enabled: u.enabled } : {}),
        revision: String(BigInt(current.revision) + 1n),
        updated_at: new Date(),
      })
      .where("id", "=", u.approvalPolicyId)
      .returningAll()
      .executeTakeFirstOrThrow();
    await emit(
      tx,
      ApprovalPolicyUpdatedSchema,
      { approvalPolicy: approvalPolicyToProto(row), changedFields: [...u.paths] },
      row.tenant_id,
      policyResource(row),
    );
    return row;
  });
}

/** Deletes an approval policy; pending requests keep the rules they were created under. */
export async function deleteApprovalPolicy(
  deps: AuthorizationDeps,
  tenantId: string,
  id: string,
  etag: string,
): Promise<Revised<ApprovalPolicyRow>> {
  return change(deps, tenantId, async (tx) => {
    const row = await tx
      .selectFrom("approval_policies")
      .selectAll()
      .where("id", "=", id)
      .where("tenant_id", "=", tenantId)
      .forUpdate()
      .executeTakeFirst();
    if (!row) throw policyNotFound(id);
    checkEtag(etag, String(row.revision), `approval policy ${id}`);
    await tx.deleteFrom("approval_policies").where("id", "=", id).execute();
    await emit(
      tx,
      ApprovalPolicyDeletedSchema,
      { approvalPolicy: approvalPolicyToProto(row) },
      tenantId,
      policyResource(row),
    );
    return row;
  });
}

// ---------------------------------------------------------------------------------------
// Access requests

/** An access request with its approvals (oldest first). */
export interface AccessRequestView {
  readonly row: AccessRequestRow;
  readonly approvals: readonly AccessRequestApprovalRow[];
}

/** Fields of CreateAccessRequest (the requester is the caller). */
export interface AccessRequestInput {
  readonly tenantId: string;
  readonly roleId: string;
  /** A tenant, project or team scope of `tenantId`. */
  readonly scope: ScopeRef;
  readonly justification: string;
  readonly durationSeconds: number;
  /** Unset means on approval. */
  readonly startTime?: Date | undefined;
}

function requestNotFound(id: string): NotFoundError {
  return new NotFoundError("ACCESS_REQUEST_NOT_FOUND", `access request ${id} not found`);
}

const requestResource = (id: string) => ({ type: REQUEST, id });

/** The scope a request asks for. */
function scopeOf(r: AccessRequestRow): ScopeRef {
  return {
    type: r.scope_type,
    tenantId: r.tenant_id,
    projectId: r.project_id ?? undefined,
    teamId: r.team_id ?? undefined,
  };
}

/** Every permission an approver of the request must hold at its scope. */
function approverPermissionsOf(r: AccessRequestRow): string[] {
  return r.approver_permission.split(PERMISSION_SEPARATOR).filter(Boolean);
}

/** The approvals of requests, by request id, oldest first. */
async function approvalsOf(tx: Tx, ids: readonly string[]): Promise<Map<string, AccessRequestApprovalRow[]>> {
  const out = new Map<string, AccessRequestApprovalRow[]>();
  if (ids.length === 0) return out;
  const rows = await tx
    .selectFrom("access_request_approvals")
    .selectAll()
    .where("access_request_id", "in", [...ids])
    .orderBy("created_at")
    .orderBy("approver_id")
    .execute();
  for (const a of rows) {
    const list = out.get(a.access_request_id);
    if (list) list.push(a);
    else out.set(a.access_request_id, [a]);
  }
  return out;
}

async function withApprovals(tx: Tx, rows: readonly AccessRequestRow[]): Promise<AccessRequestView[]> {
  const ids = rows.map((r) => r.id);
  const approvals = await approvalsOf(tx, ids);
  return rows.map((row) => ({ row, approvals: approvals.get(row.id) ?? [] }));
}

const toProto = (v: AccessRequestView) => accessRequestToProto(v.row, v.approvals);

/** Marks pending requests expired and emits AccessRequestExpired for each, in the caller's transaction. */
async function expireRows(tx: Tx, ids: readonly string[], now: Date): Promise<AccessRequestView[]> {
  if (ids.length === 0) return [];
  const rows = await tx
    .updateTable("access_requests")
    .set({ status: "expired", revision: sql<string>`revision + 1`, updated_at: now })
    .where("id", "in", [...ids])
    .where("status", "=", "pending")
    .where("expire_time", "<=", now)
    .returningAll()
    .execute();
  const views = await withApprovals(tx, rows);
  for (const v of views) {
    await emit(
      tx,
      AccessRequestExpiredSchema,
      { accessRequest: toProto(v) },
      v.row.tenant_id,
      requestResource(v.row.id),
    );
  }
  return views;
}

/** A role visible in the tenant transaction (system, or the tenant's custom role). */
async function roleIn(deps: AuthorizationDeps, tx: Tx, tenantId: string, roleId: string): Promise<RoleDef | undefined> {
  const system = deps.evaluator.role(roleId);
  if (system) return system;
  const row = await tx
    .selectFrom("roles")
    .selectAll()
    .where("id", "=", roleId)
    .where("tenant_id", "=", tenantId)
    .executeTakeFirst();
  return row ? roleDef(row) : undefined;
}

/** The rules the enabled policies covering a role at a scope type impose. */
interface Rules {
  readonly policyIds: string[];
  readonly requiredApprovals: number;
  readonly approverPermissions: string[];
  readonly maxDurationSeconds: number;
  /** The policy imposing the maximum duration, if any. */
  readonly maxDurationPolicyId: string | undefined;
  readonly requestTtlSeconds: number;
}

async function rulesFor(tx: Tx, tenantId: string, roleId: string, scopeType: ScopeType): Promise<Rules> {
  const candidates = await tx
    .selectFrom("approval_policies")
    .selectAll()
    .where("tenant_id", "=", tenantId)
    .where("enabled", "=", true)
    .where((eb) => eb(eb.val(roleId), "=", eb.fn.any("role_ids")))
    .orderBy("id")
    .execute();
  const policies = candidates.filter((p) => p.scope_types.length === 0 || p.scope_types.includes(scopeType));
  if (policies.length === 0) {
    return {
      policyIds: [],
      requiredApprovals: 1,
      approverPermissions: [DEFAULT_APPROVER_PERMISSION],
      maxDurationSeconds: DEFAULT_MAX_DURATION_SECONDS,
      maxDurationPolicyId: undefined,
      requestTtlSeconds: DEFAULT_REQUEST_TTL_SECONDS,
    };
  }
  const shortest = policies.reduce((a, b) => (b.max_duration_seconds < a.max_duration_seconds ? b : a));
  return {
    policyIds: policies.map((p) => p.id),
    requiredApprovals: Math.max(...policies.map((p) => p.required_approvals)),
    approverPermissions: [...new Set(policies.map((p) => p.approver_permission || DEFAULT_APPROVER_PERMISSION))],
    maxDurationSeconds: shortest.max_duration_seconds,
    maxDurationPolicyId: shortest.id,
    requestTtlSeconds: Math.min(...policies.map((p) => p.request_ttl_seconds)),
  };
}

/** Asks for a role at a scope for a limited time; the caller is the requester. */
export async function createAccessRequest(
  deps: AuthorizationDeps,
  input: AccessRequestInput,
): Promise<Revised<AccessRequestView>> {
  const requester = caller();
  if (requester.type === "system") {
    throw new PermissionDeniedError("REQUESTER_REQUIRED", "access requests are made by an authenticated principal");
  }
  const { tenantId, scope } = input;
  return change(deps, tenantId, async (tx) => {
    const now = new Date();
    const role = await roleIn(deps, tx, tenantId, input.roleId);
    if (!role) throw invalid("role_id", `role ${input.roleId} does not exist in this tenant`);
    if (!role.assignableScopes.includes(scope.type)) {
      throw invalid(
        "scope",
        `role ${role.id} can be bound at ${role.assignableScopes.join(", ")} scope, not ${scope.type}`,
      );
    }
    const rules = await rulesFor(tx, tenantId, role.id, scope.type);
    if (input.durationSeconds > rules.maxDurationSeconds) {
      const by = rules.maxDurationPolicyId
        ? `approval policy ${rules.maxDurationPolicyId}`
        : "the default for roles no approval policy covers";
      throw invalid("duration", `is longer than the ${rules.maxDurationSeconds}s maximum set by ${by}`);
    }

    // One pending request per requester, role and scope; a stale one expires here.
    let dup = tx
      .selectFrom("access_requests")
      .select(["id", "expire_time"])
      .where("tenant_id", "=", tenantId)
      .where("requester_id", "=", requester.id)
      .where("role_id", "=", role.id)
      .where("status", "=", "pending")
      .where("scope_type", "=", scope.type);
    dup = scope.projectId ? dup.where("project_id", "=", scope.projectId) : dup.where("project_id", "is", null);
    dup = scope.teamId ? dup.where("team_id", "=", scope.teamId) : dup.where("team_id", "is", null);
    const pending = await dup.forUpdate().execute();
    const stale = pending.filter((p) => p.expire_time <= now).map((p) => p.id);
    await expireRows(tx, stale, now);
    const live = pending.find((p) => p.expire_time > now);
    if (live) {
      throw new AlreadyExistsError(
        "ACCESS_REQUEST_PENDING",
        `access request ${live.id} for role ${role.id} at this scope is already pending; cancel it or wait for its decision`,
        { metadata: { access_request_id: live.id } },
      );
    }

    // A pending request also expires once the window it asks for has passed.
    let expire = now.getTime() + rules.requestTtlSeconds * 1000;
    if (input.startTime) expire = Math.min(expire, input.startTime.getTime() + input.durationSeconds * 1000);
    const row = await tx
      .insertInto("access_requests")
      .values({
        id: newId("accessRequest"),
        tenant_id: tenantId,
        requester_type: callerKind(requester),
        requester_id: requester.id,
        requester_tenant_id: requester.tenantId ?? null,
        role_id: role.id,
        scope_type: scope.type,
        project_id: scope.projectId ?? null,
        team_id: scope.teamId ?? null,
        justification: input.justification,
        duration_seconds: input.durationSeconds,
        start_time: input.startTime ?? null,
        status: "pending",
        approval_policy_ids: rules.policyIds,
        required_approvals: rules.requiredApprovals,
        approver_permission: rules.approverPermissions.join(PERMISSION_SEPARATOR),
        expire_time: new Date(expire),
        revision: 1,
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const view: AccessRequestView = { row, approvals: [] };
    await emit(tx, AccessRequestCreatedSchema, { accessRequest: toProto(view) }, tenantId, requestResource(row.id));
    return view;
  });
}

/** One access request of the tenant. */
export async function getAccessRequest(
  deps: AuthorizationDeps,
  tenantId: string,
  id: string,
): Promise<AccessRequestView> {
  const view = await withTenant(deps.db, tenantId, async (tx) => {
    const row = await tx
      .selectFrom("access_requests")
      .selectAll()
      .where("id", "=", id)
      .where("tenant_id", "=", tenantId)
      .executeTakeFirst();
    return row ? (await withApprovals(tx, [row]))[0] : undefined;
  });
  if (!view) throw requestNotFound(id);
  return view;
}

/** The permissions of `permissions` that `who` does not hold at `scope`, per the engine. */
function missingPermissions(
  deps: AuthorizationDeps,
  b: DecisionBasis,
  who: Principal,
  permissions: readonly string[],
  scope: ScopeRef,
): string[] {
  const ctx = currentRequestContext();
  const principal = subjectOf(who);
  const attributes = { ip: ctx?.ip, user_agent: ctx?.userAgent };
  return permissions.filter((permission) => !decideOn(deps, b, { principal, permission, scope, attributes }).allowed);
}

/** Filters of ListAccessRequests. */
export interface AccessRequestFilters {
  readonly tenantId: string;
  readonly pageSize: number;
  readonly pageToken: string;
  readonly status?: AccessRequestState | undefined;
  /** "" for all. */
  readonly requesterId: string;
  /** "" for all. */
  readonly roleId: string;
  /** Only pending requests the caller may approve, has not approved and did not make. */
  readonly awaitingMyApproval: boolean;
}

/** Lists a tenant's access requests, newest first. */
export async function listAccessRequests(
  deps: AuthorizationDeps,
  f: AccessRequestFilters,
): Promise<{ items: AccessRequestView[]; next: string }> {
  const size = pageSize(f.pageSize);
  const me = caller();
  const filters = { s: f.status, p: f.requesterId, r: f.roleId, a: f.awaitingMyApproval ? me.id : "" };
  const after = decodePageToken(f.pageToken, filters);
  const now = new Date();
  const b = f.awaitingMyApproval ? await basis(deps, f.tenantId) : undefined;
  return withTenant(deps.db, f.tenantId, async (tx) => {
    const query = (before: string | undefined, limit: number) => {
      let q = tx.selectFrom("access_requests").selectAll().where("tenant_id", "=", f.tenantId);
      if (before) q = q.where("id", "<", before);
      if (f.status) q = q.where("status", "=", f.status);
      if (f.requesterId) q = q.where("requester_id", "=", f.requesterId);
      if (f.roleId) q = q.where("role_id", "=", f.roleId);
      if (f.awaitingMyApproval) {
        q = q
          .where("status", "=", "pending")
          .where("expire_time", ">", now)
          .where("requester_id", "!=", me.id)
          .where(({ not, exists, selectFrom }) =>
            not(
              exists(
                selectFrom("access_request_approvals")
                  .select("access_request_id")
                  .whereRef("access_request_approvals.access_request_id", "=", "access_requests.id")
                  .where("access_request_approvals.approver_id", "=", me.id),
              ),
            ),
          );
      }
      return q.orderBy("id", "desc").limit(limit).execute();
    };
    let rows: AccessRequestRow[];
    if (!b) {
      rows = await query(after, size + 1);
    } else {
      // Whether the caller may approve depends on the engine: filter batches until the page fills.
      const memo = new Map<string, boolean>();
      const mayApprove = (r: AccessRequestRow) => {
        const key = `${r.approver_permission}|${r.scope_type}|${r.project_id ?? ""}|${r.team_id ?? ""}`;
        let ok = memo.get(key);
        if (ok === undefined) {
          ok = missingPermissions(deps, b, me, approverPermissionsOf(r), scopeOf(r)).length === 0;
          memo.set(key, ok);
        }
        return ok;
      };
      rows = [];
      let cursor = after;
      for (;;) {
        const batch = await query(cursor, AWAITING_BATCH);
        for (const r of batch) {
          if (rows.length > size) break;
          if (mayApprove(r)) rows.push(r);
        }
        if (rows.length > size || batch.length < AWAITING_BATCH) break;
        cursor = batch[batch.length - 1]!.id;
      }
    }
    const page = paginate(rows, size, filters);
    return { items: await withApprovals(tx, page.items), next: page.next };
  });
}

/** Filters of ListMyAccessRequests. */
export interface MyAccessRequestFilters {
  readonly pageSize: number;
  readonly pageToken: string;
  /** "" for every tenant. */
  readonly tenantId: string;
  readonly status?: AccessRequestState | undefined;
}

/**
 * Lists the caller's own requests across tenants, newest first. A caller with a home tenant
 * reads them under that tenant (row-level security lets a home tenant see its requesters'
 * rows); a platform principal reads at platform scope, filtered to its own requests.
 */
export async function listMyAccessRequests(
  deps: AuthorizationDeps,
  f: MyAccessRequestFilters,
): Promise<{ items: AccessRequestView[]; next: string }> {
  const size = pageSize(f.pageSize);
  const me = caller();
  const home = me.tenantId;
  const filters = { t: f.tenantId, s: f.status };
  const after = decodePageToken(f.pageToken, filters);
  const run = async (tx: Tx) => {
    let q = tx.selectFrom("access_requests").selectAll().where("requester_id", "=", me.id);
    if (f.tenantId) q = q.where("tenant_id", "=", f.tenantId);
    if (f.status) q = q.where("status", "=", f.status);
    if (after) q = q.where("id", "<", after);
    const rows = await q
      .orderBy("id", "desc")
      .limit(size + 1)
      .execute();
    const page = paginate(rows, size, filters);
    const ids = page.items.map((r) => r.id);
    return { page, approvals: await approvalsOf(tx, ids) };
  };
  const { page, approvals } = home ? await withTenant(deps.db, home, run) : await withPlatform(deps.db, run);
  // Approvals of requests in other tenants are not visible from the home tenant: read
  // them at platform scope, only for the requests just shown to be the caller's.
  const elsewhere = page.items.filter((r) => r.tenant_id !== home).map((r) => r.id);
  if (home && elsewhere.length > 0) {
    const more = await withPlatform(deps.db, (tx) => approvalsOf(tx, elsewhere));
    for (const [id, list] of more) approvals.set(id, list);
  }
  return { items: page.items.map((row) => ({ row, approvals: approvals.get(row.id) ?? [] })), next: page.next };
}

/** The outcome of a decision transaction: the request expired instead, or the result. */
type Decided<T> = { expired: AccessRequestView } | { done: T };

function expiredError(id: string): FailedPreconditionError {
  return new FailedPreconditionError("ACCESS_REQUEST_EXPIRED", `access request ${id} expired before it was decided`);
}

function notPending(r: AccessRequestRow): FailedPreconditionError {
  return new FailedPreconditionError(
    "ACCESS_REQUEST_NOT_PENDING",
    `access request ${r.id} is ${r.status}, not pending`,
    {
      metadata: { status: r.status },
    },
  );
}

/**
 * Runs a decision on a pending request: locks it, checks the etag and that it is pending
 * and not past its expiry (marking it expired, committed, when it is), then runs `fn`.
 */
async function decide<T>(
  deps: AuthorizationDeps,
  tenantId: string,
  id: string,
  etag: string,
  fn: (tx: Tx, row: AccessRequestRow, now: Date, revision: string) => Promise<T>,
  before?: (row: AccessRequestRow) => void,
): Promise<Revised<T>> {
  const { value, revision } = await change<Decided<T>>(deps, tenantId, async (tx, rev) => {
    const now = new Date();
    const row = await tx
      .selectFrom("access_requests")
      .selectAll()
      .where("id", "=", id)
      .where("tenant_id", "=", tenantId)
      .forUpdate()
      .executeTakeFirst();
    if (!row) throw requestNotFound(id);
    checkEtag(etag, String(row.revision), `access request ${id}`);
    before?.(row);
    if (row.status !== "pending") throw notPending(row);
    if (row.expire_time <= now) {
      const [expired] = await expireRows(tx, [row.id], now);
      return { expired: expired! };
    }
    return { done: await fn(tx, row, now, rev) };
  });
  if ("expired" in value) throw expiredError(id);
  return { value: value.done, revision };
}

/** Reads a request to authorize a decision on it (its scope and approver permissions never change). */
async function approverCheck(
  deps: AuthorizationDeps,
  tenantId: string,
  id: string,
): Promise<(row: AccessRequestRow) => void> {
  const approver = caller();
  const { row } = await getAccessRequest(deps, tenantId, id);
  const b = await basis(deps, tenantId);
  const missing = missingPermissions(deps, b, approver, approverPermissionsOf(row), scopeOf(row));
  return (current) => {
    if (current.status !== "pending") throw notPending(current);
    if (current.requester_id === approver.id) {
      throw new PermissionDeniedError("SELF_APPROVAL", "requesters cannot approve or deny their own access requests");
    }
    if (missing.length > 0) {
      throw new PermissionDeniedError(
        "APPROVER_PERMISSION_REQUIRED",
        `deciding access request ${id} needs ${missing.join(", ")} at its scope`,
        { metadata: { permissions: missing.join(",") } },
      );
    }
  };
}

function alreadyApproved(id: string): AlreadyExistsError {
  return new AlreadyExistsError("ALREADY_APPROVED", `you have already approved access request ${id}`);
}

/** The result of an approval: the request and, when it completed it, the binding created. */
export interface ApprovalResult {
  readonly request: AccessRequestView;
  readonly binding?: BindingRow | undefined;
}

/**
 * Records the caller's approval of a pending request; the last required approval approves
 * it and creates the requester's binding, expiring after the asked duration.
 */
export async function approveAccessRequest(
  deps: AuthorizationDeps,
  tenantId: string,
  id: string,
  comment: string,
  etag: string,
): Promise<Revised<ApprovalResult>> {
  const approver = caller();
  const check = await approverCheck(deps, tenantId, id);
  return decide(
    deps,
    tenantId,
    id,
    etag,
    async (tx, row, now, revision) => {
      const already = await tx
        .selectFrom("access_request_approvals")
        .select("approver_id")
        .where("access_request_id", "=", row.id)
        .where("approver_id", "=", approver.id)
        .executeTakeFirst();
      if (already) throw alreadyApproved(id);
      let approval: AccessRequestApprovalRow;
      try {
        approval = await tx
          .insertInto("access_request_approvals")
          .values({
            access_request_id: row.id,
            tenant_id: tenantId,
            approver_type: callerKind(approver),
            approver_id: approver.id,
            comment,
            created_at: now,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
      } catch (e) {
        throw isUniqueViolation(e) ? alreadyApproved(id) : e;
      }
      const approvals = (await approvalsOf(tx, [row.id])).get(row.id) ?? [];
      if (approvals.length < row.required_approvals) {
        const updated = await tx
          .updateTable("access_requests")
          .set({ revision: String(BigInt(row.revision) + 1n), updated_at: now })
          .where("id", "=", row.id)
          .returningAll()
          .executeTakeFirstOrThrow();
        const view = { row: updated, approvals };
        await emit(
          tx,
          AccessRequestApprovalRecordedSchema,
          { accessRequest: toProto(view), approval: approvalToProto(approval) },
          tenantId,
          requestResource(row.id),
        );
        return { request: view };
      }
      const role = await roleIn(deps, tx, tenantId, row.role_id);
      if (!role?.assignableScopes.includes(row.scope_type)) {
        throw new FailedPreconditionError(
          "ROLE_NOT_GRANTABLE",
          `role ${row.role_id} no longer exists or can no longer be bound at ${row.scope_type} scope`,
        );
      }
      const start = row.start_time ?? now;
      const grantEnd = new Date(start.getTime() + row.duration_seconds * 1000);
      if (grantEnd <= now) {
        throw new FailedPreconditionError(
          "ACCESS_WINDOW_ENDED",
          `the access window of request ${id} ended before approval`,
        );
      }
      const binding = await insertBinding(
        deps,
        tx,
        {
          tenantId,
          principalType: row.requester_type,
          principalId: row.requester_id,
          principalTenantId: row.requester_tenant_id ?? "",
          roleId: row.role_id,
          scope: scopeOf(row),
          startTime: row.start_time && row.start_time > now ? row.start_time : undefined,
          expireTime: grantEnd,
          condition: "",
          description: `granted by access request ${row.id}`,
          accessRequestId: row.id,
          source: "access_request",
        },
        row.requester_tenant_id,
        revision,
      );
      const updated = await tx
        .updateTable("access_requests")
        .set({
          status: "approved",
          binding_id: binding.id,
          grant_expire_time: grantEnd,
          revision: String(BigInt(row.revision) + 1n),
          updated_at: now,
        })
        .where("id", "=", row.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      const view = { row: updated, approvals };
      await emit(
        tx,
        AccessRequestApprovedSchema,
        { accessRequest: toProto(view), binding: bindingToProto(binding) },
        tenantId,
        requestResource(row.id),
      );
      return { request: view, binding };
    },
    check,
  );
}

/** Denies a pending request (one denial ends it); nothing is granted. */
export async function denyAccessRequest(
  deps: AuthorizationDeps,
  tenantId: string,
  id: string,
  reason: string,
  etag: string,
): Promise<Revised<AccessRequestView>> {
  const denier = caller();
  const check = await approverCheck(deps, tenantId, id);
  return decide(
    deps,
    tenantId,
    id,
    etag,
    async (tx, row, now) => {
      const updated = await tx
        .updateTable("access_requests")
        .set({
          status: "denied",
          denier_type: callerKind(denier),
          denier_id: denier.id,
          decision_comment: reason,
          revision: String(BigInt(row.revision) + 1n),
          updated_at: now,
        })
        .where("id", "=", row.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      const [view] = await withApprovals(tx, [updated]);
      await emit(tx, AccessRequestDeniedSchema, { accessRequest: toProto(view!) }, tenantId, requestResource(row.id));
      return view!;
    },
    check,
  );
}

/** Withdraws a pending request; only its requester may. */
export async function cancelAccessRequest(
  deps: AuthorizationDeps,
  tenantId: string,
  id: string,
  comment: string,
  etag: string,
): Promise<Revised<AccessRequestView>> {
  const me = caller();
  return decide(
    deps,
    tenantId,
    id,
    etag,
    async (tx, row, now) => {
      const updated = await tx
        .updateTable("access_requests")
        .set({
          status: "cancelled",
          decision_comment: comment,
          revision: String(BigInt(row.revision) + 1n),
          updated_at: now,
        })
        .where("id", "=", row.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      const [view] = await withApprovals(tx, [updated]);
      await emit(
        tx,
        AccessRequestCancelledSchema,
        { accessRequest: toProto(view!) },
        tenantId,
        requestResource(row.id),
      );
      return view!;
    },
    (row) => {
      if (row.requester_id !== me.id) {
        throw new PermissionDeniedError("NOT_REQUESTER", `only the requester can cancel access request ${id}`);
      }
    },
  );
}

/**
 * Marks pending requests past their expiry as expired (AccessRequestExpired), one
 * transaction per tenant, at most 1000 per call. Returns how many expired.
 */
export async function sweepAccessRequests(deps: AuthorizationDeps, now = new Date()): Promise<number> {
  const due = await withPlatform(deps.db, (tx) =>
    tx
      .selectFrom("access_requests")
      .select(["id", "tenant_id"])
      .where("status", "=", "pending")
      .where("expire_time", "<=", now)
      .orderBy("expire_time")
      .limit(1000)
      .execute(),
  );
  const byTenant = new Map<string, string[]>();
  for (const d of due) byTenant.set(d.tenant_id, [...(byTenant.get(d.tenant_id) ?? []), d.id]);
  let count = 0;
  for (const [tenantId, ids] of byTenant) {
    try {
      const { value } = await change(deps, tenantId, (tx) => expireRows(tx, ids, now));
      count += value.length;
    } catch (err) {
      deps.logger.error({ err, tenantId }, "expiring access requests failed");
    }
  }
  return count;
}
