import type { JsonObject } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { currentRequestContext, UnauthenticatedError } from "@uab/core";
import { decodePageToken, pageSize, paginate } from "@uab/db";
import type {
  AuthorizationService,
  BatchCheckItemResult,
} from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import type { ResourceRef } from "@uab/proto/gen/uab/authorization/v1/decision_pb.js";
import { type Principal, PrincipalType } from "@uab/proto/gen/uab/authorization/v1/principal_pb.js";
import type { ResourceScope } from "@uab/proto/gen/uab/authorization/v1/resource_scope_pb.js";
import {
  decisionToProto,
  grantPathToProto,
  principalKindOf,
  principalToProto,
  scopeFromProto,
  scopeRefToProto,
} from "../convert.js";
import type { AuthorizationDeps } from "../domain/common.js";
import { basis, decideOn, subjectOf } from "../domain/decisions.js";
import type { DecisionRequest, SubjectPrincipal, TraceStep } from "../engine/evaluator.js";

type Impl = ServiceImpl<typeof AuthorizationService>;

/** The principal of a request, with what request attributes say about its authentication. */
function subject(p: Principal, attributes: JsonObject | undefined): SubjectPrincipal {
  const amr = Array.isArray(attributes?.amr)
    ? attributes.amr.filter((a): a is string => typeof a === "string")
    : undefined;
  const mfaTime = typeof attributes?.mfa_time === "number" ? attributes.mfa_time : undefined;
  return { id: p.id, type: principalKindOf(p.type), tenantId: p.tenantId || undefined, amr, mfaTime };
}

function question(
  p: Principal,
  permission: string,
  scope: ResourceScope,
  resource: ResourceRef | undefined,
  attributes: JsonObject | undefined,
  now?: number,
): DecisionRequest {
  return {
    principal: subject(p, attributes),
    permission,
    scope: scopeFromProto(scope),
    resource: resource ? { type: resource.type, id: resource.id, attributes: resource.attributes ?? {} } : undefined,
    attributes,
    now,
  };
}

/** Check, BatchCheck, CheckPlatform, Explain, TestMyPermissions and the reverse lookups. */
export function decisionHandlers(
  deps: AuthorizationDeps,
): Pick<
  Impl,
  | "check"
  | "batchCheck"
  | "checkPlatform"
  | "explain"
  | "testMyPermissions"
  | "listEffectivePermissions"
  | "listPrincipals"
> {
  return {
    async check(req) {
      const b = await basis(deps, req.tenantId, req.minRevision);
      const d = decideOn(deps, b, question(req.principal!, req.permission, req.scope!, req.resource, req.attributes));
      return { result: decisionToProto(d), revision: b.revision };
    },
    async batchCheck(req) {
      const b = await basis(deps, req.tenantId, req.minRevision);
      const now = Date.now();
      const results: BatchCheckItemResult[] = new Array(req.checks.length);
      for (let i = 0; i < req.checks.length; i++) {
        const c = req.checks[i]!;
        results[i] = {
          $typeName: "uab.authorization.v1.BatchCheckItemResult",
          correlationId: c.correlationId,
          result: decisionToProto(
            decideOn(deps, b, question(c.principal!, c.permission, c.scope!, c.resource, c.attributes, now)),
          ),
        };
      }
      return { results, revision: b.revision };
    },
    async checkPlatform(req) {
      const b = await basis(deps, undefined, req.minRevision);
      const d = decideOn(deps, b, {
        principal: subject(req.principal!, req.attributes),
        permission: req.permission,
        scope: { type: "platform" },
        attributes: req.attributes ?? {},
      });
      return { result: decisionToProto(d), revision: b.revision };
    },
    async explain(req) {
      const b = await basis(deps, req.tenantId, req.minRevision);
      const trace: TraceStep[] = [];
      const q = question(req.principal!, req.permission, req.scope!, req.resource, req.attributes);
      const d = decideOn(deps, b, q, trace);
      const paths =
        deps.evaluator.effectivePermissions(b.platform, b.tenant, q.principal, q.scope).get(req.permission) ?? [];
      return {
        result: decisionToProto(d),
        trace: trace.map((s) => ({ ...s, scope: s.scope ? scopeRefToProto(s.scope) : undefined })),
        grantPaths: paths.map(grantPathToProto),
        revision: b.revision,
      };
    },
    async testMyPermissions(req) {
      const me = currentRequestContext()?.principal;
      if (!me) throw new UnauthenticatedError("TOKEN_MISSING", "missing bearer token");
      const scope = scopeFromProto(req.scope!);
      const b = await basis(deps, scope.tenantId, req.minRevision);
      const principal = subjectOf(me);
      const now = Date.now();
      const allowed = req.permissions.filter(
        (permission) =>
          decideOn(deps, b, { principal, permission, scope, attributes: req.attributes ?? {}, now }).allowed,
      );
      return { permissions: allowed, revision: b.revision };
    },
    async listEffectivePermissions(req) {
      const b = await basis(deps, req.tenantId, req.minRevision);
      const principal = subject(req.principal!, undefined);
      const scope = scopeFromProto(req.scope!);
      const size = pageSize(req.pageSize);
      const filters = { p: req.principal?.id, s: req.scope, v: req.service, u: req.unconditionalOnly };
      const after = decodePageToken(req.pageToken, filters);
      const all = deps.evaluator.effectivePermissions(b.platform, b.tenant, principal, scope);
      const rows = [...all.entries()]
        .filter(([name]) => (!after || name > after) && (!req.service || name.startsWith(`${req.service}.`)))
        .map(([name, paths]) => ({
          id: name,
          paths: req.unconditionalOnly ? paths.filter((p) => p.binding.condition === null) : paths,
        }))
        .filter((r) => r.paths.length > 0)
        .sort((x, y) => (x.id < y.id ? -1 : 1));
      const page = paginate(rows, size, filters);
      return {
        permissions: page.items.map((r) => ({
          permission: r.id,
          paths: r.paths.map(grantPathToProto),
          conditional: r.paths.every((p) => p.binding.condition !== null),
        })),
        nextPageToken: page.next,
        revision: b.revision,
      };
    },
    async listPrincipals(req) {
      const b = await basis(deps, req.tenantId, req.minRevision);
      const scope = scopeFromProto(req.scope!);
      const size = pageSize(req.pageSize);
      const filters = {
        p: req.permission,
        s: req.scope,
        t: req.principalType,
        u: req.unconditionalOnly,
        i: req.includePlatform,
      };
      const after = decodePageToken(req.pageToken, filters);
      const wantType = req.principalType === PrincipalType.UNSPECIFIED ? undefined : principalKindOf(req.principalType);
      const all = deps.evaluator.authorizedPrincipals(
        b.platform,
        b.tenant!,
        req.permission,
        scope,
        req.includePlatform,
      );
      const rows = [...all.entries()]
        .filter(([id, e]) => (!after || id > after) && (!wantType || e.type === wantType))
        .map(([id, e]) => ({
          id,
          entry: e,
          paths: req.unconditionalOnly ? e.paths.filter((p) => p.binding.condition === null) : e.paths,
        }))
        .filter((r) => r.paths.length > 0)
        .sort((x, y) => (x.id < y.id ? -1 : 1));
      const page = paginate(rows, size, filters);
      return {
        principals: page.items.map((r) => ({
          principal: principalToProto(r.entry.type, r.id, r.entry.tenantId),
          paths: r.paths.map(grantPathToProto),
        })),
        nextPageToken: page.next,
        revision: b.revision,
      };
    },
  };
}
