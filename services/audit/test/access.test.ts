/**
 * Who may call each AuditService RPC, through the real server stack: every one of the 31 RPCs
 * without a token (UNAUTHENTICATED), the tenant RPCs by a plain member of the tenant
 * (PERMISSION_DENIED), by the owner of another tenant (NOT_FOUND: tenants cannot probe each
 * other) and by a user without a tenant claim (PERMISSION_DENIED); the tenant auditor and
 * administrator roles read everything and change nothing; step-up RPCs refuse a token without
 * a recent second factor; the platform RPCs are the platform administrator's alone; and
 * GetPublicKeys is public.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { newId } from "@uab/core";
import { accessOf, Scope } from "@uab/proto";
import { AuditService } from "@uab/proto/gen/uab/audit/v1/audit_service_pb.js";
import { ExportFormat } from "@uab/proto/gen/uab/audit/v1/export_job_pb.js";
import { expectCode } from "@uab/testing";
import {
  type AuditClient,
  collect,
  type Harness,
  type Receiver,
  startHarness,
  startReceiver,
  type TestTenant,
  type TestUser,
} from "./harness.js";

let h: Harness;
let a: TestTenant;
let b: TestTenant;
let member: TestUser;
let auditor: TestUser;
let admin: TestUser;
let receiver: Receiver;
/** Resources of tenant A. */
const ids = { entryId: "", checkpointId: "", jobId: "", streamId: "", leafHash: new Uint8Array(), treeSize: 0n };

beforeAll(async () => {
  h = await startHarness();
  receiver = await startReceiver((_r, res) => {
    res.writeHead(204);
    res.end();
  });
  [a, b] = await Promise.all([h.tenant("access-a"), h.tenant("access-b")]);
  [member, auditor, admin] = await Promise.all([
    h.member(a.tenantId),
    h.withRole(a, "auditor"),
    h.withRole(a, "admin"),
  ]);
  const owner = h.audit(a.ownerToken);
  const { checkpoint } = await owner.createCheckpoint({ tenantId: a.tenantId });
  const { entries } = await owner.searchAuditEntries({ tenantId: a.tenantId, pageSize: 1 });
  const { exportJob } = await owner.createExportJob({ tenantId: a.tenantId, format: ExportFormat.NDJSON });
  const { auditStream } = await owner.createAuditStream({
    tenantId: a.tenantId,
    displayName: "siem",
    endpointUrl: `${receiver.url}/access`,
  });
  Object.assign(ids, {
    entryId: entries[0]!.id,
    leafHash: entries[0]!.leafHash,
    checkpointId: checkpoint!.id,
    treeSize: checkpoint!.treeSize,
    jobId: exportJob!.id,
    streamId: auditStream!.id,
  });
});
afterAll(async () => {
  await h?.close();
  await receiver?.close();
});

interface TenantRpc {
  readonly name: string;
  /** Changes something (the auditor and administrator roles may not). */
  readonly write: boolean;
  /** Declares step_up_max_age_seconds. */
  readonly stepUp?: boolean;
  readonly call: (c: AuditClient, tenantId: string) => Promise<unknown>;
}

const TENANT_RPCS: readonly TenantRpc[] = [
  { name: "SearchAuditEntries", write: false, call: (c, t) => c.searchAuditEntries({ tenantId: t }) },
  { name: "GetAuditEntry", write: false, call: (c, t) => c.getAuditEntry({ tenantId: t, entryId: ids.entryId }) },
  {
    name: "ExportAuditEntries",
    write: false,
    call: (c, t) => collect(c.exportAuditEntries({ tenantId: t, format: ExportFormat.NDJSON })),
  },
  {
    name: "CreateExportJob",
    write: true,
    call: (c, t) => c.createExportJob({ tenantId: t, format: ExportFormat.CSV }),
  },
  { name: "GetExportJob", write: false, call: (c, t) => c.getExportJob({ tenantId: t, exportJobId: ids.jobId }) },
  { name: "ListExportJobs", write: false, call: (c, t) => c.listExportJobs({ tenantId: t }) },
  { name: "CancelExportJob", write: true, call: (c, t) => c.cancelExportJob({ tenantId: t, exportJobId: ids.jobId }) },
  { name: "CreateCheckpoint", write: true, call: (c, t) => c.createCheckpoint({ tenantId: t }) },
  {
    name: "GetCheckpoint",
    write: false,
    call: (c, t) => c.getCheckpoint({ tenantId: t, checkpointId: ids.checkpointId }),
  },
  { name: "ListCheckpoints", write: false, call: (c, t) => c.listCheckpoints({ tenantId: t }) },
  { name: "GetLatestCheckpoint", write: false, call: (c, t) => c.getLatestCheckpoint({ tenantId: t }) },
  {
    name: "GetInclusionProof",
    write: false,
    call: (c, t) => c.getInclusionProof({ tenantId: t, leaf: { case: "leafHash", value: ids.leafHash } }),
  },
  {
    name: "GetConsistencyProof",
    write: false,
    call: (c, t) => c.getConsistencyProof({ tenantId: t, firstTreeSize: 1n, secondTreeSize: ids.treeSize }),
  },
  { name: "VerifyLog", write: false, call: (c, t) => c.verifyLog({ tenantId: t, checkpointId: ids.checkpointId }) },
  {
    name: "CreateAuditStream",
    write: true,
    call: (c, t) =>
      c.createAuditStream({ tenantId: t, displayName: `s-${newId("request")}`, endpointUrl: `${receiver.url}/x` }),
  },
  {
    name: "GetAuditStream",
    write: false,
    call: (c, t) => c.getAuditStream({ tenantId: t, auditStreamId: ids.streamId }),
  },
  { name: "ListAuditStreams", write: false, call: (c, t) => c.listAuditStreams({ tenantId: t }) },
  {
    name: "UpdateAuditStream",
    write: true,
    call: (c, t) =>
      c.updateAuditStream({
        tenantId: t,
        auditStreamId: ids.streamId,
        displayName: "renamed",
        updateMask: { paths: ["display_name"] },
      }),
  },
  {
    name: "DeleteAuditStream",
    write: true,
    call: (c, t) => c.deleteAuditStream({ tenantId: t, auditStreamId: ids.streamId }),
  },
  {
    name: "PauseAuditStream",
    write: true,
    call: (c, t) => c.pauseAuditStream({ tenantId: t, auditStreamId: ids.streamId }),
  },
  {
    name: "ResumeAuditStream",
    write: true,
    call: (c, t) => c.resumeAuditStream({ tenantId: t, auditStreamId: ids.streamId }),
  },
  {
    name: "RotateAuditStreamSecret",
    write: true,
    stepUp: true,
    call: (c, t) => c.rotateAuditStreamSecret({ tenantId: t, auditStreamId: ids.streamId }),
  },
  {
    name: "ListAuditStreamDeliveries",
    write: false,
    call: (c, t) => c.listAuditStreamDeliveries({ tenantId: t, auditStreamId: ids.streamId }),
  },
  {
    name: "SendTestAuditStreamEvent",
    write: true,
    call: (c, t) => c.sendTestAuditStreamEvent({ tenantId: t, auditStreamId: ids.streamId }),
  },
  { name: "GetRetentionPolicy", write: false, call: (c, t) => c.getRetentionPolicy({ tenantId: t }) },
  {
    name: "UpdateRetentionPolicy",
    write: true,
    stepUp: true,
    call: (c, t) => c.updateRetentionPolicy({ tenantId: t, retainDays: 400, updateMask: { paths: ["retain_days"] } }),
  },
];

/** A user's token with a second factor presented now (so step-up is never why a call fails). */
const fresh = (userId: string, tenantId?: string) =>
  h.mfa(tenantId === undefined ? { sub: userId } : { sub: userId, tid: tenantId });

describe("every tenant RPC", () => {
  it("covers every tenant RPC of the contract, as the contract declares them", () => {
    const declared = AuditService.methods.filter((m) => accessOf(m).scope === Scope.TENANT);
    expect(declared).toHaveLength(26);
    expect(TENANT_RPCS.map((r) => r.name).sort()).toEqual(declared.map((m) => m.name).sort());
    for (const rpc of TENANT_RPCS) {
      const access = accessOf(declared.find((m) => m.name === rpc.name)!);
      expect({ rpc: rpc.name, write: rpc.write, stepUp: rpc.stepUp === true }).toEqual({
        rpc: rpc.name,
        write: !access.readOnly,
        stepUp: access.stepUpMaxAgeSeconds > 0,
      });
    }
  });

  for (const rpc of TENANT_RPCS) {
    describe(rpc.name, () => {
      it("requires a token", async () => {
        await expectCode(rpc.call(h.audit(), a.tenantId), Code.Unauthenticated, { reason: "TOKEN_MISSING" });
      });

      it("is denied to a plain member of the tenant", async () => {
        const token = await fresh(member.userId, a.tenantId);
        await expectCode(rpc.call(h.audit(token), a.tenantId), Code.PermissionDenied, {
          reason: "PERMISSION_DENIED",
        });
      });

      it("hides another tenant from a tenant's owner", async () => {
        const token = await fresh(a.ownerId, a.tenantId);
        await expectCode(rpc.call(h.audit(token), b.tenantId), Code.NotFound, { reason: "TENANT_NOT_FOUND" });
      });

      it("is denied on another tenant to a user without a tenant claim", async () => {
        const token = await fresh(a.ownerId);
        await expectCode(rpc.call(h.audit(token), b.tenantId), Code.PermissionDenied);
      });

      if (rpc.write) {
        it("is denied to the tenant's auditor and administrator (they only read the audit log)", async () => {
          for (const u of [auditor, admin]) {
            const token = await fresh(u.userId, a.tenantId);
            await expectCode(rpc.call(h.audit(token), a.tenantId), Code.PermissionDenied);
          }
        });
      } else {
        it("is allowed to the tenant's auditor and administrator", async () => {
          for (const u of [auditor, admin]) {
            await expect(rpc.call(h.audit(u.token), a.tenantId)).resolves.toBeDefined();
          }
        });
      }

      if (rpc.stepUp) {
        it("needs a second factor presented within 300 s", async () => {
          await expectCode(rpc.call(h.audit(a.ownerToken), a.tenantId), Code.Unauthenticated, {
            reason: "STEP_UP_REQUIRED",
          });
          const stale = await h.token({
            sub: a.ownerId,
            tid: a.tenantId,
            mfa_time: Math.floor(Date.now() / 1000) - 301,
          });
          await expectCode(rpc.call(h.audit(stale), a.tenantId), Code.Unauthenticated, {
            reason: "STEP_UP_REQUIRED",
          });
        });
      }
    });
  }
});

describe("platform RPCs", () => {
  const PLATFORM: readonly { name: string; call: (c: AuditClient) => Promise<unknown> }[] = [
    { name: "SearchPlatformAuditEntries", call: (c) => c.searchPlatformAuditEntries({}) },
    {
      name: "ExportPlatformAuditEntries",
      call: (c) => collect(c.exportPlatformAuditEntries({ format: ExportFormat.NDJSON })),
    },
    { name: "GetLatestPlatformCheckpoint", call: (c) => c.getLatestPlatformCheckpoint({}) },
    { name: "RotateSigningKey", call: (c) => c.rotateSigningKey({ reason: "scheduled" }) },
  ];

  it("covers every platform RPC of the contract; the rest (GetPublicKeys) is public", () => {
    const platform = AuditService.methods.filter((m) => accessOf(m).scope === Scope.PLATFORM && !accessOf(m).public);
    expect(PLATFORM.map((r) => r.name).sort()).toEqual(platform.map((m) => m.name).sort());
    const rest = AuditService.methods.filter((m) => accessOf(m).scope !== Scope.TENANT && !platform.includes(m));
    expect(rest.map((m) => [m.name, accessOf(m).public])).toEqual([["GetPublicKeys", true]]);
    expect(AuditService.methods).toHaveLength(31);
  });

  for (const rpc of PLATFORM) {
    describe(rpc.name, () => {
      it("requires a token", async () => {
        await expectCode(rpc.call(h.audit()), Code.Unauthenticated, { reason: "TOKEN_MISSING" });
      });

      it("is denied to a tenant's owner and auditor", async () => {
        for (const u of [a.ownerId, auditor.userId]) {
          const token = await fresh(u, a.tenantId);
          await expectCode(rpc.call(h.audit(token)), Code.PermissionDenied, { reason: "PERMISSION_DENIED" });
        }
      });
    });
  }

  it("the platform administrator reads, exports and gets the platform checkpoint", async () => {
    const admin = h.audit(h.adminToken);
    await expect(admin.searchPlatformAuditEntries({})).resolves.toBeDefined();
    const parts = await collect(admin.exportPlatformAuditEntries({ format: ExportFormat.NDJSON }));
    expect(parts.map((p) => p.part.case)).toEqual(expect.arrayContaining(["header", "trailer"]));
    const latest = await admin.getLatestPlatformCheckpoint({});
    expect(latest.checkpoint?.origin).toBe("uab.test/platform");
  });

  it("RotateSigningKey needs the platform administrator's recent second factor", async () => {
    await expectCode(h.audit(h.adminToken).rotateSigningKey({ reason: "scheduled" }), Code.Unauthenticated, {
      reason: "STEP_UP_REQUIRED",
    });
    const res = await h.audit(await fresh(h.adminId)).rotateSigningKey({ reason: "scheduled" });
    expect(res.activeKey?.keyId).toMatch(/^uab\.test\+[0-9a-f]{8}$/);
  });
});

describe("GetPublicKeys", () => {
  it("is public: it answers without a token", async () => {
    const res = await h.audit().getPublicKeys({});
    expect(res.keys.length).toBeGreaterThan(0);
    expect(res.keys[0]!.verifierKey).toMatch(/^uab\.test\+[0-9a-f]{8}\+/);
  });
});

describe("over the REST gateway", () => {
  const rest = (path: string, token?: string) =>
    fetch(`${h.url}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});

  it("GetPublicKeys answers without a token", async () => {
    const res = await rest("/v1/auditSigningKeys");
    expect(res.status).toBe(200);
    const body = (await res.json()) as { keys: { verifierKey: string }[] };
    expect(body.keys[0]?.verifierKey).toMatch(/^uab\.test\+[0-9a-f]{8}\+/);
  });

  it("tenant reads need a token and the permission", async () => {
    expect((await rest(`/v1/tenants/${a.tenantId}/auditEntries`)).status).toBe(401);
    expect((await rest(`/v1/tenants/${a.tenantId}/auditEntries`, member.token)).status).toBe(403);
    expect((await rest(`/v1/tenants/${b.tenantId}/auditEntries`, a.ownerToken)).status).toBe(404);
    const res = await rest(`/v1/tenants/${a.tenantId}/auditEntries?page_size=2`, auditor.token);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { entries: { tenantId: string }[] };
    expect(body.entries).toHaveLength(2);
    expect(body.entries.every((e) => e.tenantId === a.tenantId)).toBe(true);
  });
});
