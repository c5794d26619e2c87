/**
 * The same behaviour over the gRPC protocol (HTTP/2, binary, status in trailers, details in
 * `grpc-status-details-bin`): success, invalid input with its BadRequest detail, missing and
 * forged credentials, denial, and the cross-tenant NOT_FOUND.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { ProjectCreatedSchema } from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import { TenantStatus } from "@uab/proto/gen/uab/tenancy/v1/tenant_pb.js";
import { type Harness, startHarness, userId } from "./harness.js";
import {
  describeAccess,
  expectCode,
  expectEvent,
  expectInvalid,
  forgedToken,
  slug,
  type TenancyClient,
  unknown,
} from "./support.js";

let h: Harness;
let grpc: TenancyClient;
let a: string;
let b: string;
let projectB: string;

beforeAll(async () => {
  h = await startHarness();
  grpc = h.grpcClient(h.adminToken);
  a = (await grpc.createTenant({ slug: slug("grpc-a"), displayName: "A", ownerUserId: userId() })).tenant!.id;
  b = (await grpc.createTenant({ slug: slug("grpc-b"), displayName: "B", ownerUserId: userId() })).tenant!.id;
  projectB = (await grpc.createProject({ tenantId: b, slug: "bp", displayName: "B's" })).project!.id;
});
afterAll(async () => {
  await h.close();
});

describe("over gRPC", () => {
  it("creates, reads and lists, and emits the event", async () => {
    const owner = userId();
    const s = slug("grpc");
    const created = await grpc.createTenant({ slug: s, displayName: "Over gRPC", ownerUserId: owner, planId: "pro" });
    expect(created.tenant).toMatchObject({
      slug: s,
      displayName: "Over gRPC",
      status: TenantStatus.ACTIVE,
      planId: "pro",
    });
    expect(created.ownerMembership).toMatchObject({ userId: owner, owner: true });
    const tenantId = created.tenant!.id;

    const p = (await grpc.createProject({ tenantId, slug: "web", displayName: "Web", description: "site" })).project!;
    expect(p).toMatchObject({ tenantId, slug: "web", displayName: "Web", description: "site", etag: "1" });
    expect((await grpc.getProject({ tenantId, projectId: p.id })).project?.id).toBe(p.id);
    expect((await grpc.listProjects({ tenantId })).projects.map((x) => x.id)).toEqual([p.id]);
    const payload = await expectEvent(h, ProjectCreatedSchema, { type: "tenancy.project", id: p.id, tenantId });
    expect(payload.project?.slug).toBe("web");

    const updated = await grpc.updateProject({
      tenantId,
      projectId: p.id,
      displayName: "Ignored",
      description: "new",
      updateMask: { paths: ["description"] },
    });
    expect(updated.project).toMatchObject({ displayName: "Web", description: "new", etag: "2" });
  });

  it("rejects invalid input with INVALID_ARGUMENT naming the field, with the BadRequest detail", async () => {
    await expectInvalid(
      grpc.createProject({ tenantId: a, slug: "Bad Slug", displayName: "X" }),
      "slug",
      "INVALID_REQUEST",
    );
    await expectInvalid(
      grpc.updateTenant({ tenantId: a, planId: "x", updateMask: { paths: ["slug"] } }),
      "update_mask",
      "INVALID_REQUEST",
    );
    await expectInvalid(grpc.listProjects({ tenantId: a, pageToken: "forged" }), "page_token");
  });

  it("maps domain errors the same way (ALREADY_EXISTS naming slug, ABORTED on a stale etag)", async () => {
    await grpc.createProject({ tenantId: a, slug: "dup", displayName: "One" });
    await expectCode(grpc.createProject({ tenantId: a, slug: "dup", displayName: "Two" }), Code.AlreadyExists, {
      reason: "PROJECT_SLUG_TAKEN",
      field: "slug",
    });
    await expectCode(grpc.deleteTenant({ tenantId: a, etag: "42" }), Code.Aborted, { reason: "ETAG_MISMATCH" });
  });

  it("answers NOT_FOUND for unknown ids and for another tenant's resource", async () => {
    await expectCode(grpc.getTenant({ tenantId: unknown.tenant() }), Code.NotFound, { reason: "TENANT_NOT_FOUND" });
    await expectCode(grpc.getProject({ tenantId: a, projectId: projectB }), Code.NotFound, {
      reason: "PROJECT_NOT_FOUND",
    });
  });

  it("rejects a call without a token or with a forged one (UNAUTHENTICATED)", async () => {
    await expectCode(h.grpcClient().listTenants({}), Code.Unauthenticated, { reason: "TOKEN_MISSING" });
    await expectCode(h.grpcClient(await forgedToken(h)).getTenant({ tenantId: a }), Code.Unauthenticated, {
      reason: "TOKEN_INVALID",
    });
  });

  it("denies a principal without the permission (PERMISSION_DENIED) and hides other tenants (NOT_FOUND)", async () => {
    const plain = h.grpcClient(await h.token({ sub: userId() }));
    await expectCode(
      plain.createTenant({ slug: slug("no"), displayName: "No", ownerUserId: userId() }),
      Code.PermissionDenied,
      {
        reason: "PERMISSION_DENIED",
      },
    );
    const ofB = h.grpcClient(await h.token({ sub: userId(), tid: b }));
    await expectCode(ofB.getTenant({ tenantId: a }), Code.NotFound, { reason: "TENANT_NOT_FOUND" });
    await expectCode(ofB.getTenant({ tenantId: b }), Code.PermissionDenied);
  });
});

describe("over gRPC, access matrix", () => {
  // The shared access cases, with every client speaking gRPC.
  describeAccess(
    () => ({ h: { ...h, client: (token?: string) => h.grpcClient(token) }, tenantId: a, otherTenantId: b }),
    [
      { rpc: "GetTenant", call: (c) => c.getTenant({ tenantId: a }) },
      { rpc: "GetProject", call: (c) => c.getProject({ tenantId: a, projectId: unknown.project() }) },
      {
        rpc: "CreateTenant",
        platform: true,
        call: (c) => c.createTenant({ slug: slug("x"), displayName: "X", ownerUserId: userId() }),
      },
    ],
  );
});
