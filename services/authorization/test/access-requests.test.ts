/**
 * Just-in-time access over RPC: approval policies and access requests. The full flow
 * (policy → request → two approvals → binding → tenancy call allowed → binding expired →
 * access gone), denial, the approver rules (no self-approval, approver permission, one
 * approval per approver, only the requester cancels, decisions only on pending requests),
 * the events, and for each of the twelve RPCs: success, invalid input naming the field,
 * missing token, missing permission, unknown id and another tenant's resources.
 */
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { newId } from "@uab/core";
import { unpackPayload } from "@uab/events";
import { Scope } from "@uab/proto";
import { AccessRequestStatus } from "@uab/proto/gen/uab/authorization/v1/access_request_pb.js";
import { DecisionReason } from "@uab/proto/gen/uab/authorization/v1/decision_pb.js";
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
import { PrincipalType } from "@uab/proto/gen/uab/authorization/v1/principal_pb.js";
import { eventually, expectCode, expectInvalid } from "@uab/testing";
import { systemRoleId } from "../src/index.js";
import { type Harness, startHarness, type TestTenant, userId } from "./harness.js";

let h: Harness;
let a: TestTenant;
let b: TestTenant;
/** Members of tenant A holding access-approver at tenant scope. */
let approverB: { userId: string; token: string };
let approverC: { userId: string; token: string };
/** A member of tenant A (member role only). */
let plain: { userId: string; token: string };
/** A user of tenant A with no binding at all. */
let strangerToken: string;

const APPROVE = "authorization.access_requests.approve";
const ACCESS_APPROVER = systemRoleId("access-approver");
const VIEWER = systemRoleId("viewer");

beforeAll(async () => {
  h = await startHarness();
  [a, b] = await Promise.all([h.tenant("areq-a"), h.tenant("areq-b")]);
  [approverB, approverC, plain] = await Promise.all([h.member(a.tenantId), h.member(a.tenantId), h.member(a.tenantId)]);
  for (const who of [approverB, approverC]) {
    await h.client(a.ownerToken).createBinding({
      tenantId: a.tenantId,
      principal: { type: PrincipalType.USER, id: who.userId },
      roleId: ACCESS_APPROVER,
      scope: { type: Scope.TENANT, tenantId: a.tenantId },
    });
  }
  strangerToken = await h.token({ sub: userId(), tid: a.tenantId });
});
afterAll(async () => {
  await h?.close();
});

const tenantScope = (tenantId: string) => ({ type: Scope.TENANT, tenantId });
const seconds = (s: number) => ({ seconds: BigInt(s) });

let slugs = 0;
/** A custom role of `t` granting `permissions` at tenant scope. */
async function makeRole(t: TestTenant, permissions = ["tenancy.projects.create"]): Promise<string> {
  slugs++;
  const { role } = await h.client(t.ownerToken).createRole({
    tenantId: t.tenantId,
    slug: `jit-${slugs}`,
    displayName: `JIT role ${slugs}`,
    permissions,
    assignableScopes: [Scope.TENANT],
  });
  return role!.id;
}

function policyInput(tenantId: string, roleIds: string[], extra: Record<string, unknown> = {}) {
  return {
    tenantId,
    displayName: "Needs approval",
    description: "covered roles need approvals",
    roleIds,
    requiredApprovals: 1,
    approverPermission: APPROVE,
    maxDuration: seconds(3600),
    enabled: true,
    ...extra,
  };
}

async function makePolicy(t: TestTenant, roleIds: string[], extra: Record<string, unknown> = {}) {
  const { approvalPolicy } = await h.client(t.ownerToken).createApprovalPolicy(policyInput(t.tenantId, roleIds, extra));
  return approvalPolicy!;
}

function requestInput(tenantId: string, roleId: string, extra: Record<string, unknown> = {}) {
  return {
    tenantId,
    roleId,
    scope: tenantScope(tenantId),
    justification: "incident 42 needs me to create a project",
    duration: seconds(300),
    ...extra,
  };
}

/** A pending request of `token` in tenant A for `roleId` (a fresh role by default). */
async function makeRequest(token: string, roleId?: string) {
  const role = roleId ?? (await makeRole(a));
  const { accessRequest } = await h.client(token).createAccessRequest(requestInput(a.tenantId, role));
  return accessRequest!;
}

/** Waits for the authorization event of `schema` about `resourceId`; returns its payload. */
async function expectEvent<D extends DescMessage>(
  schema: D,
  resourceId: string,
  match: (p: MessageShape<D>) => boolean = () => true,
): Promise<MessageShape<D>> {
  const e = await eventually(() =>
    h.events.find((x) => {
      if (x.event.type !== schema.typeName || x.event.resource?.id !== resourceId) return false;
      const p = unpackPayload(x.event, schema);
      return p !== undefined && match(p);
    }),
  );
  expect(e.event.source).toBe("authorization");
  return unpackPayload(e.event, schema)!;
}

/** Owner-side Check of `permission` for a user of tenant A at tenant scope. */
async function check(principalId: string, permission: string, minRevision = "") {
  const res = await h.client(a.ownerToken).check({
    tenantId: a.tenantId,
    principal: { type: PrincipalType.USER, id: principalId, tenantId: a.tenantId },
    permission,
    scope: tenantScope(a.tenantId),
    minRevision,
  });
  return res.result!;
}

let projects = 0;
function project(token: string, revision: string) {
  projects++;
  return h
    .tenancy(token, { "uab-min-revision": revision })
    .createProject({ tenantId: a.tenantId, slug: `jit-${projects}`, displayName: `JIT ${projects}` });
}

describe("the full flow", () => {
  it("grants a role for a limited time after two approvals, and the access ends when the binding expires", async () => {
    const owner = h.client(a.ownerToken);
    const roleId = await makeRole(a);
    const policy = await makePolicy(a, [roleId], { requiredApprovals: 2, maxDuration: seconds(7200) });
    expect(policy).toMatchObject({
      tenantId: a.tenantId,
      roleIds: [roleId],
      requiredApprovals: 2,
      approverPermission: APPROVE,
      enabled: true,
    });
    expect(policy.id).toMatch(/^apol_/);
    expect(policy.maxDuration?.seconds).toBe(7200n);
    await expectEvent(ApprovalPolicyCreatedSchema, policy.id);

    const requester = await h.member(a.tenantId);
    const created = await h.client(requester.token).createAccessRequest(requestInput(a.tenantId, roleId));
    const request = created.accessRequest!;
    expect(request).toMatchObject({
      tenantId: a.tenantId,
      roleId,
      status: AccessRequestStatus.PENDING,
      requiredApprovals: 2,
      approvalPolicyIds: [policy.id],
      justification: "incident 42 needs me to create a project",
      bindingId: "",
      approvals: [],
    });
    expect(request.id).toMatch(/^areq_/);
    expect(request.requester?.id).toBe(requester.userId);
    expect(request.duration?.seconds).toBe(300n);
    expect(request.scope).toMatchObject(tenantScope(a.tenantId));
    // Nothing is granted while pending.
    await expectCode(project(requester.token, ""), Code.PermissionDenied);

    const first = await h
      .client(approverB.token)
      .approveAccessRequest({ tenantId: a.tenantId, accessRequestId: request.id, comment: "ok by B" });
    expect(first.accessRequest?.status).toBe(AccessRequestStatus.PENDING);
    expect(first.accessRequest?.approvals).toHaveLength(1);
    expect(first.accessRequest?.approvals[0]).toMatchObject({ approver: { id: approverB.userId }, comment: "ok by B" });
    expect(first.accessRequest?.bindingId).toBe("");
    expect(first.binding).toBeUndefined();

    // One approval per approver.
    await expectCode(
      h.client(approverB.token).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: request.id }),
      Code.AlreadyExists,
      { reason: "ALREADY_APPROVED" },
    );

    const before = Date.now();
    const second = await h
      .client(approverC.token)
      .approveAccessRequest({ tenantId: a.tenantId, accessRequestId: request.id, comment: "ok by C" });
    const approved = second.accessRequest!;
    expect(approved.status).toBe(AccessRequestStatus.APPROVED);
    expect(approved.approvals.map((x) => x.approver?.id)).toEqual([approverB.userId, approverC.userId]);
    expect(second.binding).toMatchObject({ roleId, principal: { id: requester.userId } });
    expect(approved.bindingId).toBe(second.binding!.id);
    expect(second.revision).not.toBe("");
    const grantEnd = timestampDate(approved.grantExpireTime!).getTime();
    expect(grantEnd).toBeGreaterThanOrEqual(before + 300_000 - 2_000);
    expect(grantEnd).toBeLessThanOrEqual(Date.now() + 300_000 + 2_000);
    expect(timestampDate(second.binding!.expireTime!).getTime()).toBe(grantEnd);

    // A decision on a decided request fails.
    await expectCode(
      h.client(a.ownerToken).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: request.id }),
      Code.FailedPrecondition,
      { reason: "ACCESS_REQUEST_NOT_PENDING" },
    );

    // The requester may now do what the role grants.
    const p = await project(requester.token, second.revision);
    expect(p.project?.tenantId).toBe(a.tenantId);
    const allowed = await check(requester.userId, "tenancy.projects.create", second.revision);
    expect(allowed).toMatchObject({ allowed: true, bindingId: approved.bindingId, roleId });

    const read = await owner.getAccessRequest({ tenantId: a.tenantId, accessRequestId: request.id });
    expect(read.accessRequest).toMatchObject({ status: AccessRequestStatus.APPROVED, bindingId: approved.bindingId });

    // Time passes: the binding's expiry moves into the past; an unrelated write bumps the
    // revision so a decision at that revision reloads the tenant's data.
    await h.adminDb
      .updateTable("bindings")
      .set({ expire_time: new Date(Date.now() - 1000) })
      .where("id", "=", approved.bindingId)
      .execute();
    const bump = await owner.createRole({
      tenantId: a.tenantId,
      slug: `bump-${newId("request").slice(-8)}`,
      displayName: "Unrelated",
      permissions: ["tenancy.projects.get"],
      assignableScopes: [Scope.TENANT],
    });
    const gone = await check(requester.userId, "tenancy.projects.create", bump.revision);
    expect(gone.allowed).toBe(false);
    expect([DecisionReason.BINDING_EXPIRED, DecisionReason.NO_BINDING]).toContain(gone.reason);
    await expectCode(project(requester.token, bump.revision), Code.PermissionDenied);

    const created1 = await expectEvent(AccessRequestCreatedSchema, request.id);
    expect(created1.accessRequest?.status).toBe(AccessRequestStatus.PENDING);
    const recorded = await expectEvent(AccessRequestApprovalRecordedSchema, request.id);
    expect(recorded.approval?.approver?.id).toBe(approverB.userId);
    expect(recorded.accessRequest?.approvals).toHaveLength(1);
    const done = await expectEvent(AccessRequestApprovedSchema, request.id);
    expect(done.accessRequest?.status).toBe(AccessRequestStatus.APPROVED);
    expect(done.binding?.id).toBe(approved.bindingId);
    const envelope = h.events.find(
      (e) => e.event.type === AccessRequestApprovedSchema.typeName && e.event.resource?.id === request.id,
    );
    expect(envelope?.event.tenantId).toBe(a.tenantId);
    expect(envelope?.event.type).toBe("uab.authorization.v1.AccessRequestApproved");
  });
});

describe("decisions", () => {
  it("a denied request grants nothing", async () => {
    const requester = await h.member(a.tenantId);
    const roleId = await makeRole(a);
    await makePolicy(a, [roleId], { requiredApprovals: 2 });
    const req = await makeRequest(requester.token, roleId);
    await h.client(approverB.token).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id });
    const res = await h
      .client(approverC.token)
      .denyAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id, comment: "not needed" });
    expect(res.accessRequest).toMatchObject({
      status: AccessRequestStatus.DENIED,
      bindingId: "",
      decisionComment: "not needed",
      denier: { id: approverC.userId },
    });
    expect(res.accessRequest?.approvals).toHaveLength(1);
    const result = await check(requester.userId, "tenancy.projects.create");
    expect(result).toMatchObject({ allowed: false, reason: DecisionReason.NO_BINDING });
    const bindings = await h.adminDb
      .selectFrom("bindings")
      .select("id")
      .where("access_request_id", "=", req.id)
      .execute();
    expect(bindings).toEqual([]);
    await expectCode(
      h.client(approverB.token).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id }),
      Code.FailedPrecondition,
      { reason: "ACCESS_REQUEST_NOT_PENDING" },
    );
    const e = await expectEvent(AccessRequestDeniedSchema, req.id);
    expect(e.accessRequest?.status).toBe(AccessRequestStatus.DENIED);
  });

  it("a request no policy covers needs one approval and is capped at 24 hours", async () => {
    const requester = await h.member(a.tenantId);
    await expectInvalid(
      h.client(requester.token).createAccessRequest(requestInput(a.tenantId, VIEWER, { duration: seconds(86_401) })),
      "duration",
    );
    const req = await makeRequest(requester.token, VIEWER);
    expect(req).toMatchObject({ requiredApprovals: 1, approvalPolicyIds: [] });
    const res = await h.client(approverB.token).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id });
    expect(res.accessRequest?.status).toBe(AccessRequestStatus.APPROVED);
    expect(res.binding?.roleId).toBe(VIEWER);
  });

  it("requesters cannot decide their own requests", async () => {
    // A plain member lacks the approve permission altogether.
    const mine = await makeRequest(plain.token);
    await expectCode(
      h.client(plain.token).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: mine.id }),
      Code.PermissionDenied,
    );
    // An approver asking for access cannot approve or deny the request either.
    const own = await makeRequest(approverB.token);
    await expectCode(
      h.client(approverB.token).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: own.id }),
      Code.PermissionDenied,
      { reason: "SELF_APPROVAL" },
    );
    await expectCode(
      h.client(approverB.token).denyAccessRequest({ tenantId: a.tenantId, accessRequestId: own.id, comment: "no" }),
      Code.PermissionDenied,
      { reason: "SELF_APPROVAL" },
    );
    const still = await h.client(a.ownerToken).getAccessRequest({ tenantId: a.tenantId, accessRequestId: own.id });
    expect(still.accessRequest).toMatchObject({ status: AccessRequestStatus.PENDING, approvals: [] });
  });

  it("approvers need the approver permission of every applicable policy at the request's scope", async () => {
    const roleId = await makeRole(a);
    await makePolicy(a, [roleId], { approverPermission: "tenancy.projects.delete" });
    const requester = await h.member(a.tenantId);
    const req = await makeRequest(requester.token, roleId);
    // access-approver holds authorization.access_requests.approve but not tenancy.projects.delete.
    await expectCode(
      h.client(approverB.token).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id }),
      Code.PermissionDenied,
      { reason: "APPROVER_PERMISSION_REQUIRED" },
    );
    await expectCode(
      h.client(approverB.token).denyAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id, comment: "no" }),
      Code.PermissionDenied,
      { reason: "APPROVER_PERMISSION_REQUIRED" },
    );
    // A member without any approver role.
    await expectCode(
      h.client(plain.token).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id }),
      Code.PermissionDenied,
    );
    // The tenant owner holds both.
    const res = await h.client(a.ownerToken).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id });
    expect(res.accessRequest?.status).toBe(AccessRequestStatus.APPROVED);
  });

  it("only the requester cancels, and only a pending request", async () => {
    const requester = await h.member(a.tenantId);
    const req = await makeRequest(requester.token);
    await expectCode(
      h.client(plain.token).cancelAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id }),
      Code.PermissionDenied,
      { reason: "NOT_REQUESTER" },
    );
    await expectCode(
      h.client(a.ownerToken).cancelAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id }),
      Code.PermissionDenied,
      { reason: "NOT_REQUESTER" },
    );
    const res = await h
      .client(requester.token)
      .cancelAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id, comment: "no longer needed" });
    expect(res.accessRequest).toMatchObject({
      status: AccessRequestStatus.CANCELLED,
      decisionComment: "no longer needed",
      bindingId: "",
    });
    await expectCode(
      h.client(approverB.token).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id }),
      Code.FailedPrecondition,
      { reason: "ACCESS_REQUEST_NOT_PENDING" },
    );
    await expectCode(
      h.client(approverB.token).denyAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id, comment: "no" }),
      Code.FailedPrecondition,
      { reason: "ACCESS_REQUEST_NOT_PENDING" },
    );
    await expectCode(
      h.client(requester.token).cancelAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id }),
      Code.FailedPrecondition,
      { reason: "ACCESS_REQUEST_NOT_PENDING" },
    );
    const e = await expectEvent(AccessRequestCancelledSchema, req.id);
    expect(e.accessRequest?.status).toBe(AccessRequestStatus.CANCELLED);
  });

  it("allows one pending request per requester, role and scope", async () => {
    const requester = await h.member(a.tenantId);
    const roleId = await makeRole(a);
    const req = await makeRequest(requester.token, roleId);
    await expectCode(
      h.client(requester.token).createAccessRequest(requestInput(a.tenantId, roleId)),
      Code.AlreadyExists,
      { reason: "ACCESS_REQUEST_PENDING" },
    );
    await h.client(requester.token).cancelAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id });
    const again = await makeRequest(requester.token, roleId);
    expect(again.id).not.toBe(req.id);
  });

  it("refuses a decision with a stale etag", async () => {
    const requester = await h.member(a.tenantId);
    const req = await makeRequest(requester.token);
    await expectCode(
      h
        .client(approverB.token)
        .approveAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id, etag: `${req.etag}0` }),
      Code.Aborted,
      { reason: "ETAG_MISMATCH" },
    );
    const res = await h
      .client(approverB.token)
      .approveAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id, etag: req.etag });
    expect(res.accessRequest?.status).toBe(AccessRequestStatus.APPROVED);
  });

  it("a request not decided in time expires", async () => {
    const requester = await h.member(a.tenantId);
    const req = await makeRequest(requester.token);
    await h.adminDb
      .updateTable("access_requests")
      .set({ expire_time: new Date(Date.now() - 1000) })
      .where("id", "=", req.id)
      .execute();
    await expectCode(
      h.client(approverB.token).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id }),
      Code.FailedPrecondition,
      { reason: "ACCESS_REQUEST_EXPIRED" },
    );
    const read = await h.client(approverB.token).getAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id });
    expect(read.accessRequest?.status).toBe(AccessRequestStatus.EXPIRED);
    await expectEvent(AccessRequestExpiredSchema, req.id);
  });

  it("a policy enforced on direct grants refuses bindings of its roles outside access requests", async () => {
    const roleId = await makeRole(a);
    const policy = await makePolicy(a, [roleId], { enforceOnDirectGrants: true });
    const requester = await h.member(a.tenantId);
    await expectCode(
      h.client(a.ownerToken).createBinding({
        tenantId: a.tenantId,
        principal: { type: PrincipalType.USER, id: requester.userId },
        roleId,
        scope: tenantScope(a.tenantId),
      }),
      Code.FailedPrecondition,
      { reason: "APPROVAL_REQUIRED" },
    );
    const req = await makeRequest(requester.token, roleId);
    expect(req.approvalPolicyIds).toEqual([policy.id]);
    const res = await h.client(approverB.token).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id });
    expect(res.binding?.roleId).toBe(roleId);
  });

  it("pending requests keep the rules they were created under", async () => {
    const roleId = await makeRole(a);
    const policy = await makePolicy(a, [roleId], { requiredApprovals: 2 });
    const requester = await h.member(a.tenantId);
    const req = await makeRequest(requester.token, roleId);
    await h.client(a.ownerToken).updateApprovalPolicy({
      tenantId: a.tenantId,
      approvalPolicyId: policy.id,
      requiredApprovals: 1,
      updateMask: { paths: ["required_approvals"] },
    });
    const res = await h.client(approverB.token).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id });
    expect(res.accessRequest).toMatchObject({ status: AccessRequestStatus.PENDING, requiredApprovals: 2 });
  });
});

// ---------------------------------------------------------------------------------------
// The RPC matrix

describe("CreateAccessRequest", () => {
  it("creates a pending request of the caller", async () => {
    const requester = await h.member(a.tenantId);
    const req = await makeRequest(requester.token);
    expect(req).toMatchObject({ status: AccessRequestStatus.PENDING, requester: { id: requester.userId } });
    expect(req.expireTime).toBeDefined();
    await expectEvent(AccessRequestCreatedSchema, req.id);
  });

  it("rejects invalid input naming the field", async () => {
    const roleId = await makeRole(a);
    await makePolicy(a, [roleId], { maxDuration: seconds(600) });
    const c = h.client(plain.token);
    await expectInvalid(
      c.createAccessRequest(requestInput(a.tenantId, roleId, { justification: "short" })),
      "justification",
    );
    await expectInvalid(c.createAccessRequest(requestInput(a.tenantId, "nope")), "role_id");
    await expectInvalid(c.createAccessRequest(requestInput(a.tenantId, roleId, { duration: seconds(60) })), "duration");
    await expectInvalid(
      c.createAccessRequest(requestInput(a.tenantId, roleId, { duration: seconds(900) })),
      "duration",
    );
    await expectInvalid(c.createAccessRequest(requestInput(a.tenantId, roleId, { scope: undefined })), "scope");
    await expectInvalid(
      c.createAccessRequest(requestInput(a.tenantId, roleId, { scope: tenantScope(b.tenantId) })),
      "scope",
    );
    await expectInvalid(c.createAccessRequest(requestInput(a.tenantId, newId("role"))), "role_id");
    // Another tenant's role does not exist here.
    const foreign = await makeRole(b);
    await expectInvalid(c.createAccessRequest(requestInput(a.tenantId, foreign)), "role_id");
  });

  it("requires a token", async () => {
    await expectCode(h.client().createAccessRequest(requestInput(a.tenantId, VIEWER)), Code.Unauthenticated);
  });

  it("requires authorization.access_requests.create", async () => {
    await expectCode(
      h.client(strangerToken).createAccessRequest(requestInput(a.tenantId, VIEWER)),
      Code.PermissionDenied,
    );
  });

  it("reports an unknown tenant", async () => {
    const other = newId("tenant");
    await expectCode(
      h.client(plain.token).createAccessRequest(requestInput(other, VIEWER, { scope: tenantScope(other) })),
      Code.NotFound,
    );
  });

  it("hides another tenant", async () => {
    await expectCode(h.client(b.ownerToken).createAccessRequest(requestInput(a.tenantId, VIEWER)), Code.NotFound);
  });
});

describe("GetAccessRequest", () => {
  let id: string;
  beforeAll(async () => {
    id = (await makeRequest((await h.member(a.tenantId)).token)).id;
  });

  it("returns the request", async () => {
    const res = await h.client(approverB.token).getAccessRequest({ tenantId: a.tenantId, accessRequestId: id });
    expect(res.accessRequest).toMatchObject({ id, tenantId: a.tenantId, status: AccessRequestStatus.PENDING });
  });

  it("rejects a malformed id", async () => {
    await expectInvalid(
      h.client(plain.token).getAccessRequest({ tenantId: a.tenantId, accessRequestId: "nope" }),
      "access_request_id",
    );
    await expectInvalid(h.client(plain.token).getAccessRequest({ tenantId: "nope", accessRequestId: id }), "tenant_id");
  });

  it("requires a token", async () => {
    await expectCode(h.client().getAccessRequest({ tenantId: a.tenantId, accessRequestId: id }), Code.Unauthenticated);
  });

  it("requires authorization.access_requests.get (members read their own through ListMyAccessRequests)", async () => {
    for (const token of [strangerToken, plain.token]) {
      await expectCode(
        h.client(token).getAccessRequest({ tenantId: a.tenantId, accessRequestId: id }),
        Code.PermissionDenied,
      );
    }
  });

  it("reports an unknown request", async () => {
    await expectCode(
      h.client(a.ownerToken).getAccessRequest({ tenantId: a.tenantId, accessRequestId: newId("accessRequest") }),
      Code.NotFound,
      { reason: "ACCESS_REQUEST_NOT_FOUND" },
    );
  });

  it("hides another tenant and its requests", async () => {
    await expectCode(
      h.client(b.ownerToken).getAccessRequest({ tenantId: b.tenantId, accessRequestId: id }),
      Code.NotFound,
    );
    await expectCode(
      h.client(b.ownerToken).getAccessRequest({ tenantId: a.tenantId, accessRequestId: id }),
      Code.NotFound,
    );
  });
});

describe("ListAccessRequests", () => {
  let requester: { userId: string; token: string };
  let first: string;
  let second: string;
  beforeAll(async () => {
    requester = await h.member(a.tenantId);
    first = (await makeRequest(requester.token)).id;
    second = (await makeRequest(requester.token)).id;
  });

  it("lists the tenant's requests newest first, with filters and pages", async () => {
    const owner = h.client(a.ownerToken);
    const mine = await owner.listAccessRequests({ tenantId: a.tenantId, requesterId: requester.userId });
    expect(mine.accessRequests.map((r) => r.id)).toEqual([second, first]);
    const page1 = await owner.listAccessRequests({ tenantId: a.tenantId, requesterId: requester.userId, pageSize: 1 });
    expect(page1.accessRequests.map((r) => r.id)).toEqual([second]);
    expect(page1.nextPageToken).not.toBe("");
    const page2 = await owner.listAccessRequests({
      tenantId: a.tenantId,
      requesterId: requester.userId,
      pageSize: 1,
      pageToken: page1.nextPageToken,
    });
    expect(page2.accessRequests.map((r) => r.id)).toEqual([first]);
    expect(page2.nextPageToken).toBe("");

    const pending = await owner.listAccessRequests({
      tenantId: a.tenantId,
      status: AccessRequestStatus.PENDING,
      pageSize: 1000,
    });
    expect(pending.accessRequests.every((r) => r.status === AccessRequestStatus.PENDING)).toBe(true);
    expect(pending.accessRequests.map((r) => r.id)).toEqual(expect.arrayContaining([first, second]));

    const byRole = (await owner.getAccessRequest({ tenantId: a.tenantId, accessRequestId: first })).accessRequest!
      .roleId;
    const role = await owner.listAccessRequests({ tenantId: a.tenantId, roleId: byRole });
    expect(role.accessRequests.map((r) => r.id)).toEqual([first]);

    // An approver's queue: pending requests of others it has not approved yet.
    const queue = await h
      .client(approverC.token)
      .listAccessRequests({ tenantId: a.tenantId, awaitingMyApproval: true, pageSize: 1000 });
    expect(queue.accessRequests.map((r) => r.id)).toEqual(expect.arrayContaining([first, second]));
    expect(queue.accessRequests.every((r) => r.requester?.id !== approverC.userId)).toBe(true);
  });

  it("rejects invalid input naming the field", async () => {
    const owner = h.client(a.ownerToken);
    await expectInvalid(owner.listAccessRequests({ tenantId: a.tenantId, pageSize: 5000 }), "page_size");
    await expectInvalid(owner.listAccessRequests({ tenantId: a.tenantId, requesterId: "nope" }), "requester_id");
    await expectInvalid(owner.listAccessRequests({ tenantId: a.tenantId, roleId: "nope" }), "role_id");
    await expectInvalid(
      owner.listAccessRequests({ tenantId: a.tenantId, status: 99 as AccessRequestStatus }),
      "status",
    );
  });

  it("requires a token", async () => {
    await expectCode(h.client().listAccessRequests({ tenantId: a.tenantId }), Code.Unauthenticated);
  });

  it("requires authorization.access_requests.list", async () => {
    await expectCode(h.client(plain.token).listAccessRequests({ tenantId: a.tenantId }), Code.PermissionDenied);
  });

  it("reports an unknown tenant", async () => {
    await expectCode(h.client(a.ownerToken).listAccessRequests({ tenantId: newId("tenant") }), Code.NotFound);
  });

  it("hides another tenant and its requests", async () => {
    await expectCode(h.client(b.ownerToken).listAccessRequests({ tenantId: a.tenantId }), Code.NotFound);
    const own = await h.client(b.ownerToken).listAccessRequests({ tenantId: b.tenantId, pageSize: 1000 });
    expect(own.accessRequests.map((r) => r.id)).not.toContain(first);
  });
});

describe("ListMyAccessRequests", () => {
  let requester: { userId: string; token: string };
  let id: string;
  beforeAll(async () => {
    requester = await h.member(a.tenantId);
    id = (await makeRequest(requester.token)).id;
  });

  it("lists the caller's own requests only", async () => {
    const res = await h.client(requester.token).listMyAccessRequests({});
    expect(res.accessRequests.map((r) => r.id)).toEqual([id]);
    const filtered = await h
      .client(requester.token)
      .listMyAccessRequests({ tenantId: a.tenantId, status: AccessRequestStatus.PENDING });
    expect(filtered.accessRequests.map((r) => r.id)).toEqual([id]);
    const none = await h
      .client(requester.token)
      .listMyAccessRequests({ tenantId: a.tenantId, status: AccessRequestStatus.APPROVED });
    expect(none.accessRequests).toEqual([]);
    const others = await h.client(plain.token).listMyAccessRequests({ pageSize: 1000 });
    expect(others.accessRequests.map((r) => r.id)).not.toContain(id);
  });

  it("rejects invalid input naming the field", async () => {
    await expectInvalid(h.client(requester.token).listMyAccessRequests({ tenantId: "nope" }), "tenant_id");
    await expectInvalid(h.client(requester.token).listMyAccessRequests({ pageSize: -1 }), "page_size");
  });

  it("requires a token", async () => {
    await expectCode(h.client().listMyAccessRequests({}), Code.Unauthenticated);
  });

  it("needs no permission: a principal without bindings sees an empty list", async () => {
    const res = await h.client(strangerToken).listMyAccessRequests({});
    expect(res.accessRequests).toEqual([]);
  });

  it("finds nothing in an unknown tenant", async () => {
    const res = await h.client(requester.token).listMyAccessRequests({ tenantId: newId("tenant") });
    expect(res.accessRequests).toEqual([]);
  });

  it("never shows another principal's requests, whatever the tenant filter", async () => {
    const res = await h.client(b.ownerToken).listMyAccessRequests({ tenantId: a.tenantId });
    expect(res.accessRequests).toEqual([]);
  });
});

describe("ApproveAccessRequest", () => {
  let id: string;
  beforeAll(async () => {
    id = (await makeRequest((await h.member(a.tenantId)).token)).id;
  });

  it("approves a request (see the full flow)", async () => {
    const requester = await h.member(a.tenantId);
    const req = await makeRequest(requester.token);
    const res = await h
      .client(approverC.token)
      .approveAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id, comment: "fine" });
    expect(res.accessRequest?.status).toBe(AccessRequestStatus.APPROVED);
    expect(res.binding?.principal?.id).toBe(requester.userId);
    const e = await expectEvent(AccessRequestApprovedSchema, req.id);
    expect(e.binding?.id).toBe(res.binding?.id);
  });

  it("rejects invalid input naming the field", async () => {
    const c = h.client(approverB.token);
    await expectInvalid(c.approveAccessRequest({ tenantId: a.tenantId, accessRequestId: "nope" }), "access_request_id");
    await expectInvalid(
      c.approveAccessRequest({ tenantId: a.tenantId, accessRequestId: id, comment: "x".repeat(1001) }),
      "comment",
    );
    await expectInvalid(
      c.approveAccessRequest({ tenantId: a.tenantId, accessRequestId: id, etag: "x".repeat(65) }),
      "etag",
    );
  });

  it("requires a token", async () => {
    await expectCode(
      h.client().approveAccessRequest({ tenantId: a.tenantId, accessRequestId: id }),
      Code.Unauthenticated,
    );
  });

  it("requires authorization.access_requests.approve", async () => {
    await expectCode(
      h.client(plain.token).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: id }),
      Code.PermissionDenied,
    );
  });

  it("reports an unknown request", async () => {
    await expectCode(
      h.client(approverB.token).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: newId("accessRequest") }),
      Code.NotFound,
      { reason: "ACCESS_REQUEST_NOT_FOUND" },
    );
  });

  it("hides another tenant and its requests", async () => {
    await expectCode(
      h.client(b.ownerToken).approveAccessRequest({ tenantId: b.tenantId, accessRequestId: id }),
      Code.NotFound,
    );
    await expectCode(
      h.client(b.ownerToken).approveAccessRequest({ tenantId: a.tenantId, accessRequestId: id }),
      Code.NotFound,
    );
    const still = await h.client(a.ownerToken).getAccessRequest({ tenantId: a.tenantId, accessRequestId: id });
    expect(still.accessRequest).toMatchObject({ status: AccessRequestStatus.PENDING, approvals: [] });
  });
});

describe("DenyAccessRequest", () => {
  let id: string;
  beforeAll(async () => {
    id = (await makeRequest((await h.member(a.tenantId)).token)).id;
  });

  it("denies a request (see decisions)", async () => {
    const req = await makeRequest((await h.member(a.tenantId)).token);
    const res = await h
      .client(a.ownerToken)
      .denyAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id, comment: "no" });
    expect(res.accessRequest).toMatchObject({ status: AccessRequestStatus.DENIED, denier: { id: a.ownerId } });
  });

  it("rejects invalid input naming the field", async () => {
    const c = h.client(approverB.token);
    await expectInvalid(c.denyAccessRequest({ tenantId: a.tenantId, accessRequestId: id, comment: "" }), "comment");
    await expectInvalid(
      c.denyAccessRequest({ tenantId: a.tenantId, accessRequestId: "nope", comment: "no" }),
      "access_request_id",
    );
  });

  it("requires a token", async () => {
    await expectCode(
      h.client().denyAccessRequest({ tenantId: a.tenantId, accessRequestId: id, comment: "no" }),
      Code.Unauthenticated,
    );
  });

  it("requires authorization.access_requests.deny", async () => {
    await expectCode(
      h.client(plain.token).denyAccessRequest({ tenantId: a.tenantId, accessRequestId: id, comment: "no" }),
      Code.PermissionDenied,
    );
  });

  it("reports an unknown request", async () => {
    await expectCode(
      h
        .client(approverB.token)
        .denyAccessRequest({ tenantId: a.tenantId, accessRequestId: newId("accessRequest"), comment: "no" }),
      Code.NotFound,
      { reason: "ACCESS_REQUEST_NOT_FOUND" },
    );
  });

  it("hides another tenant and its requests", async () => {
    await expectCode(
      h.client(b.ownerToken).denyAccessRequest({ tenantId: b.tenantId, accessRequestId: id, comment: "no" }),
      Code.NotFound,
    );
    await expectCode(
      h.client(b.ownerToken).denyAccessRequest({ tenantId: a.tenantId, accessRequestId: id, comment: "no" }),
      Code.NotFound,
    );
  });
});

describe("CancelAccessRequest", () => {
  let requester: { userId: string; token: string };
  let id: string;
  beforeAll(async () => {
    requester = await h.member(a.tenantId);
    id = (await makeRequest(requester.token)).id;
  });

  it("cancels the caller's request (see decisions)", async () => {
    const req = await makeRequest(requester.token);
    const res = await h.client(requester.token).cancelAccessRequest({ tenantId: a.tenantId, accessRequestId: req.id });
    expect(res.accessRequest?.status).toBe(AccessRequestStatus.CANCELLED);
  });

  it("rejects invalid input naming the field", async () => {
    const c = h.client(requester.token);
    await expectInvalid(c.cancelAccessRequest({ tenantId: a.tenantId, accessRequestId: "nope" }), "access_request_id");
    await expectInvalid(
      c.cancelAccessRequest({ tenantId: a.tenantId, accessRequestId: id, comment: "x".repeat(1001) }),
      "comment",
    );
  });

  it("requires a token", async () => {
    await expectCode(
      h.client().cancelAccessRequest({ tenantId: a.tenantId, accessRequestId: id }),
      Code.Unauthenticated,
    );
  });

  it("requires authorization.access_requests.cancel", async () => {
    await expectCode(
      h.client(strangerToken).cancelAccessRequest({ tenantId: a.tenantId, accessRequestId: id }),
      Code.PermissionDenied,
    );
  });

  it("reports an unknown request", async () => {
    await expectCode(
      h.client(requester.token).cancelAccessRequest({ tenantId: a.tenantId, accessRequestId: newId("accessRequest") }),
      Code.NotFound,
      { reason: "ACCESS_REQUEST_NOT_FOUND" },
    );
  });

  it("hides another tenant and its requests", async () => {
    await expectCode(
      h.client(b.ownerToken).cancelAccessRequest({ tenantId: b.tenantId, accessRequestId: id }),
      Code.NotFound,
    );
    await expectCode(
      h.client(b.ownerToken).cancelAccessRequest({ tenantId: a.tenantId, accessRequestId: id }),
      Code.NotFound,
    );
  });
});

describe("CreateApprovalPolicy", () => {
  it("creates a policy with defaults", async () => {
    const roleId = await makeRole(a);
    const res = await h.client(a.ownerToken).createApprovalPolicy({
      tenantId: a.tenantId,
      displayName: "Defaults",
      roleIds: [roleId, VIEWER],
      scopeTypes: [Scope.TENANT],
      requiredApprovals: 3,
      maxDuration: seconds(900),
    });
    expect(res.approvalPolicy).toMatchObject({
      tenantId: a.tenantId,
      displayName: "Defaults",
      roleIds: [roleId, VIEWER],
      scopeTypes: [Scope.TENANT],
      requiredApprovals: 3,
      approverPermission: APPROVE,
      enabled: false,
      enforceOnDirectGrants: false,
    });
    expect(res.approvalPolicy?.requestTtl?.seconds).toBe(BigInt(7 * 24 * 3600));
    expect(res.approvalPolicy?.etag).not.toBe("");
  });

  it("rejects invalid input naming the field", async () => {
    const owner = h.client(a.ownerToken);
    const roleId = await makeRole(a);
    await expectInvalid(
      owner.createApprovalPolicy(policyInput(a.tenantId, [roleId], { requiredApprovals: 0 })),
      "required_approvals",
    );
    await expectInvalid(owner.createApprovalPolicy(policyInput(a.tenantId, [])), "role_ids");
    await expectInvalid(
      owner.createApprovalPolicy(policyInput(a.tenantId, [roleId], { displayName: "" })),
      "display_name",
    );
    await expectInvalid(
      owner.createApprovalPolicy(policyInput(a.tenantId, [roleId], { maxDuration: undefined })),
      "max_duration",
    );
    await expectInvalid(
      owner.createApprovalPolicy(policyInput(a.tenantId, [roleId], { approverPermission: "Not A Permission" })),
      "approver_permission",
    );
    await expectInvalid(
      owner.createApprovalPolicy(policyInput(a.tenantId, [roleId], { approverPermission: "tenancy.nope.get" })),
      "approver_permission",
    );
    await expectInvalid(owner.createApprovalPolicy(policyInput(a.tenantId, [roleId, newId("role")])), "role_ids[1]");
    const foreign = await makeRole(b);
    await expectInvalid(owner.createApprovalPolicy(policyInput(a.tenantId, [foreign])), "role_ids[0]");
  });

  it("requires a token", async () => {
    await expectCode(h.client().createApprovalPolicy(policyInput(a.tenantId, [VIEWER])), Code.Unauthenticated);
  });

  it("requires authorization.approval_policies.create", async () => {
    await expectCode(
      h.client(plain.token).createApprovalPolicy(policyInput(a.tenantId, [VIEWER])),
      Code.PermissionDenied,
    );
    await expectCode(
      h.client(approverB.token).createApprovalPolicy(policyInput(a.tenantId, [VIEWER])),
      Code.PermissionDenied,
    );
  });

  it("reports an unknown tenant", async () => {
    await expectCode(
      h.client(a.ownerToken).createApprovalPolicy(policyInput(newId("tenant"), [VIEWER])),
      Code.NotFound,
    );
  });

  it("hides another tenant", async () => {
    await expectCode(h.client(b.ownerToken).createApprovalPolicy(policyInput(a.tenantId, [VIEWER])), Code.NotFound);
  });
});

describe("GetApprovalPolicy", () => {
  let id: string;
  beforeAll(async () => {
    id = (await makePolicy(a, [await makeRole(a)], { enabled: false })).id;
  });

  it("returns the policy", async () => {
    const res = await h.client(a.ownerToken).getApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: id });
    expect(res.approvalPolicy).toMatchObject({ id, tenantId: a.tenantId, displayName: "Needs approval" });
  });

  it("rejects a malformed id", async () => {
    await expectInvalid(
      h.client(a.ownerToken).getApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: "nope" }),
      "approval_policy_id",
    );
  });

  it("requires a token", async () => {
    await expectCode(
      h.client().getApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: id }),
      Code.Unauthenticated,
    );
  });

  it("requires authorization.approval_policies.get", async () => {
    await expectCode(
      h.client(plain.token).getApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: id }),
      Code.PermissionDenied,
    );
  });

  it("reports an unknown policy", async () => {
    await expectCode(
      h.client(a.ownerToken).getApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: newId("approvalPolicy") }),
      Code.NotFound,
      { reason: "APPROVAL_POLICY_NOT_FOUND" },
    );
  });

  it("hides another tenant and its policies", async () => {
    await expectCode(
      h.client(b.ownerToken).getApprovalPolicy({ tenantId: b.tenantId, approvalPolicyId: id }),
      Code.NotFound,
    );
    await expectCode(
      h.client(b.ownerToken).getApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: id }),
      Code.NotFound,
    );
  });
});

describe("ListApprovalPolicies", () => {
  let roleId: string;
  let id: string;
  beforeAll(async () => {
    roleId = await makeRole(a);
    id = (await makePolicy(a, [roleId], { enabled: false })).id;
  });

  it("lists the tenant's policies, filtered by role", async () => {
    const owner = h.client(a.ownerToken);
    const all = await owner.listApprovalPolicies({ tenantId: a.tenantId, pageSize: 1000 });
    expect(all.approvalPolicies.map((p) => p.id)).toContain(id);
    expect(all.approvalPolicies.every((p) => p.tenantId === a.tenantId)).toBe(true);
    const byRole = await owner.listApprovalPolicies({ tenantId: a.tenantId, roleId });
    expect(byRole.approvalPolicies.map((p) => p.id)).toEqual([id]);
    const page = await owner.listApprovalPolicies({ tenantId: a.tenantId, pageSize: 1 });
    expect(page.approvalPolicies).toHaveLength(1);
    expect(page.nextPageToken).not.toBe("");
  });

  it("rejects invalid input naming the field", async () => {
    const owner = h.client(a.ownerToken);
    await expectInvalid(owner.listApprovalPolicies({ tenantId: a.tenantId, roleId: "nope" }), "role_id");
    await expectInvalid(owner.listApprovalPolicies({ tenantId: a.tenantId, pageSize: 1001 }), "page_size");
    await expectInvalid(owner.listApprovalPolicies({ tenantId: a.tenantId, pageToken: "x".repeat(513) }), "page_token");
  });

  it("requires a token", async () => {
    await expectCode(h.client().listApprovalPolicies({ tenantId: a.tenantId }), Code.Unauthenticated);
  });

  it("requires authorization.approval_policies.list", async () => {
    await expectCode(h.client(plain.token).listApprovalPolicies({ tenantId: a.tenantId }), Code.PermissionDenied);
  });

  it("reports an unknown tenant", async () => {
    await expectCode(h.client(a.ownerToken).listApprovalPolicies({ tenantId: newId("tenant") }), Code.NotFound);
  });

  it("hides another tenant and its policies", async () => {
    await expectCode(h.client(b.ownerToken).listApprovalPolicies({ tenantId: a.tenantId }), Code.NotFound);
    const own = await h.client(b.ownerToken).listApprovalPolicies({ tenantId: b.tenantId, pageSize: 1000 });
    expect(own.approvalPolicies.map((p) => p.id)).not.toContain(id);
  });
});

describe("UpdateApprovalPolicy", () => {
  let roleId: string;
  let id: string;
  beforeAll(async () => {
    roleId = await makeRole(a);
    id = (await makePolicy(a, [roleId], { enabled: false })).id;
  });

  it("changes the fields in the mask only, checking the etag", async () => {
    const owner = h.client(a.ownerToken);
    const current = (await owner.getApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: id })).approvalPolicy!;
    const res = await owner.updateApprovalPolicy({
      tenantId: a.tenantId,
      approvalPolicyId: id,
      displayName: "Renamed",
      description: "ignored: not in the mask",
      requiredApprovals: 4,
      maxDuration: seconds(1800),
      updateMask: { paths: ["display_name", "required_approvals", "max_duration"] },
      etag: current.etag,
    });
    expect(res.approvalPolicy).toMatchObject({
      displayName: "Renamed",
      description: current.description,
      requiredApprovals: 4,
      roleIds: [roleId],
      enabled: false,
    });
    expect(res.approvalPolicy?.maxDuration?.seconds).toBe(1800n);
    expect(res.approvalPolicy?.etag).not.toBe(current.etag);
    await expectCode(
      owner.updateApprovalPolicy({
        tenantId: a.tenantId,
        approvalPolicyId: id,
        enabled: true,
        updateMask: { paths: ["enabled"] },
        etag: current.etag,
      }),
      Code.Aborted,
      { reason: "ETAG_MISMATCH" },
    );
    const e = await expectEvent(ApprovalPolicyUpdatedSchema, id);
    expect(e.changedFields).toEqual(["display_name", "required_approvals", "max_duration"]);
  });

  it("rejects invalid input naming the field", async () => {
    const owner = h.client(a.ownerToken);
    const base = { tenantId: a.tenantId, approvalPolicyId: id };
    await expectInvalid(owner.updateApprovalPolicy({ ...base, updateMask: { paths: ["nope"] } }), "update_mask");
    await expectInvalid(owner.updateApprovalPolicy({ ...base, updateMask: { paths: [] } }), "update_mask");
    await expectInvalid(owner.updateApprovalPolicy({ ...base }), "update_mask");
    await expectInvalid(
      owner.updateApprovalPolicy({ ...base, displayName: "", updateMask: { paths: ["display_name"] } }),
      "display_name",
    );
    await expectInvalid(
      owner.updateApprovalPolicy({ ...base, requiredApprovals: 0, updateMask: { paths: ["required_approvals"] } }),
      "required_approvals",
    );
    await expectInvalid(owner.updateApprovalPolicy({ ...base, updateMask: { paths: ["role_ids"] } }), "role_ids");
    await expectInvalid(
      owner.updateApprovalPolicy({ ...base, updateMask: { paths: ["max_duration"] } }),
      "max_duration",
    );
    await expectInvalid(
      owner.updateApprovalPolicy({ ...base, roleIds: [newId("role")], updateMask: { paths: ["role_ids"] } }),
      "role_ids[0]",
    );
    await expectInvalid(
      owner.updateApprovalPolicy({
        ...base,
        approverPermission: "tenancy.nope.get",
        updateMask: { paths: ["approver_permission"] },
      }),
      "approver_permission",
    );
    await expectInvalid(
      owner.updateApprovalPolicy({ ...base, approvalPolicyId: "nope", updateMask: { paths: ["enabled"] } }),
      "approval_policy_id",
    );
  });

  it("requires a token", async () => {
    await expectCode(
      h
        .client()
        .updateApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: id, updateMask: { paths: ["enabled"] } }),
      Code.Unauthenticated,
    );
  });

  it("requires authorization.approval_policies.update", async () => {
    await expectCode(
      h
        .client(plain.token)
        .updateApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: id, updateMask: { paths: ["enabled"] } }),
      Code.PermissionDenied,
    );
  });

  it("reports an unknown policy", async () => {
    await expectCode(
      h.client(a.ownerToken).updateApprovalPolicy({
        tenantId: a.tenantId,
        approvalPolicyId: newId("approvalPolicy"),
        updateMask: { paths: ["enabled"] },
      }),
      Code.NotFound,
      { reason: "APPROVAL_POLICY_NOT_FOUND" },
    );
  });

  it("hides another tenant and its policies", async () => {
    const update = (tenantId: string) =>
      h
        .client(b.ownerToken)
        .updateApprovalPolicy({ tenantId, approvalPolicyId: id, enabled: true, updateMask: { paths: ["enabled"] } });
    await expectCode(update(b.tenantId), Code.NotFound);
    await expectCode(update(a.tenantId), Code.NotFound);
    const still = await h.client(a.ownerToken).getApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: id });
    expect(still.approvalPolicy?.enabled).toBe(false);
  });
});

describe("DeleteApprovalPolicy", () => {
  let id: string;
  beforeAll(async () => {
    id = (await makePolicy(a, [await makeRole(a)], { enabled: false })).id;
  });

  it("deletes the policy, checking the etag", async () => {
    const owner = h.client(a.ownerToken);
    const p = await makePolicy(a, [await makeRole(a)], { enabled: false });
    await expectCode(
      owner.deleteApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: p.id, etag: `${p.etag}0` }),
      Code.Aborted,
      { reason: "ETAG_MISMATCH" },
    );
    await owner.deleteApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: p.id, etag: p.etag });
    await expectCode(owner.getApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: p.id }), Code.NotFound);
    await expectEvent(ApprovalPolicyDeletedSchema, p.id);
  });

  it("rejects a malformed id", async () => {
    await expectInvalid(
      h.client(a.ownerToken).deleteApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: "nope" }),
      "approval_policy_id",
    );
  });

  it("requires a token", async () => {
    await expectCode(
      h.client().deleteApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: id }),
      Code.Unauthenticated,
    );
  });

  it("requires authorization.approval_policies.delete", async () => {
    await expectCode(
      h.client(plain.token).deleteApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: id }),
      Code.PermissionDenied,
    );
  });

  it("reports an unknown policy", async () => {
    await expectCode(
      h.client(a.ownerToken).deleteApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: newId("approvalPolicy") }),
      Code.NotFound,
      { reason: "APPROVAL_POLICY_NOT_FOUND" },
    );
  });

  it("hides another tenant and its policies", async () => {
    await expectCode(
      h.client(b.ownerToken).deleteApprovalPolicy({ tenantId: b.tenantId, approvalPolicyId: id }),
      Code.NotFound,
    );
    await expectCode(
      h.client(b.ownerToken).deleteApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: id }),
      Code.NotFound,
    );
    await h.client(a.ownerToken).getApprovalPolicy({ tenantId: a.tenantId, approvalPolicyId: id });
  });
});
