/**
 * Fast acceptance of the decision requests (Check, BatchCheck), the hottest messages UAB
 * receives: hand-written equivalents of their proto rules that accept only messages
 * protovalidate accepts (anything else falls through to protovalidate, which reports the
 * violations). test/fast-validation.test.ts proves them against protovalidate.
 */

import {
  type BatchCheckItem,
  BatchCheckRequestSchema,
  CheckRequestSchema,
} from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import type { ResourceRef } from "@uab/proto/gen/uab/authorization/v1/decision_pb.js";
import type { Principal } from "@uab/proto/gen/uab/authorization/v1/principal_pb.js";
import type { ResourceScope } from "@uab/proto/gen/uab/authorization/v1/resource_scope_pb.js";
import { registerFastAccept } from "@uab/server";

const TENANT = /^ten_[0-9a-z]{26}$/;
const PROJECT = /^prj_[0-9a-z]{26}$/;
const TEAM = /^team_[0-9a-z]{26}$/;
const PERMISSION = /^[a-z][a-z0-9_]*([.][a-z][a-z0-9_]*){2,3}$/;
const RESOURCE_TYPE = /^[a-z][a-z0-9_]*[.][a-z][a-z0-9_]*$/;
const PRINCIPAL_PREFIX = ["", "usr_", "team_", "sa_", "key_"];
const ID_TAIL = /^[0-9a-z]{26}$/;

function principalOk(p: Principal | undefined): p is Principal {
  if (!p) return false;
  const prefix = PRINCIPAL_PREFIX[p.type];
  if (p.type < 1 || p.type > 4 || prefix === undefined) return false;
  if (!p.id.startsWith(prefix) || !ID_TAIL.test(p.id.slice(prefix.length))) return false;
  return p.tenantId === "" || TENANT.test(p.tenantId);
}

function scopeOk(s: ResourceScope | undefined, tenantId: string): boolean {
  if (!s) return false;
  // In the request's tenant (not platform): the tenant, or one project, or one team.
  if (s.tenantId !== tenantId) return false;
  switch (s.type) {
    case 2:
      return s.projectId === "" && s.teamId === "";
    case 3:
      return s.teamId === "" && PROJECT.test(s.projectId);
    case 4:
      return s.projectId === "" && TEAM.test(s.teamId);
    default:
      return false;
  }
}

function resourceOk(r: ResourceRef | undefined): boolean {
  if (!r) return true;
  return r.type.length <= 100 && RESOURCE_TYPE.test(r.type) && r.id.length >= 1 && r.id.length <= 64;
}

function permissionOk(p: string): boolean {
  return p.length <= 200 && PERMISSION.test(p);
}

function itemOk(c: BatchCheckItem, tenantId: string): boolean {
  return (
    c.correlationId.length <= 64 &&
    principalOk(c.principal) &&
    permissionOk(c.permission) &&
    scopeOk(c.scope, tenantId) &&
    resourceOk(c.resource)
  );
}

/** Registers the predicates with the validation interceptor. */
export function registerDecisionValidators(): void {
  registerFastAccept(
    CheckRequestSchema,
    (m) =>
      TENANT.test(m.tenantId) &&
      principalOk(m.principal) &&
      permissionOk(m.permission) &&
      scopeOk(m.scope, m.tenantId) &&
      resourceOk(m.resource) &&
      m.minRevision.length <= 256,
  );
  registerFastAccept(BatchCheckRequestSchema, (m) => {
    if (!TENANT.test(m.tenantId) || m.checks.length < 1 || m.checks.length > 1000 || m.minRevision.length > 256) {
      return false;
    }
    for (const c of m.checks) if (!itemOk(c, m.tenantId)) return false;
    return true;
  });
}
