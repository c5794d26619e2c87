/**
 * Retention over RPC and the purge: GetRetentionPolicy and UpdateRetentionPolicy — the
 * default policy, changes with etags, legal holds that need a reason, invalid input naming
 * the field; then a purge (purgeExpired, as the retention loop runs it, at a time in the
 * future) removes a tenant's entries older than its retention and nothing else: not a tenant
 * under legal hold, not one on the default policy. After it the policy shows the oldest
 * retained index, the log still verifies, inclusion and consistency proofs of what remains
 * still verify against signed roots, and an export of what remains verifies offline.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import type { AuditEntry } from "@uab/proto/gen/uab/audit/v1/audit_entry_pb.js";
import { AuditEntryOrder } from "@uab/proto/gen/uab/audit/v1/audit_service_pb.js";
import { CheckpointTrigger } from "@uab/proto/gen/uab/audit/v1/checkpoint_pb.js";
import { ExportFormat } from "@uab/proto/gen/uab/audit/v1/export_job_pb.js";
import { eventually, expectCode, expectInvalid } from "@uab/testing";
import { openCheckpoint, verifyConsistency, verifyExport, verifyInclusion } from "@uab/tlog";
import { purgeExpired } from "../src/index.js";
import { collect, type Harness, ORIGIN, startHarness, type TestTenant } from "./harness.js";

const DAY = 86_400_000;

let h: Harness;
let a: TestTenant;
let b: TestTenant;

beforeAll(async () => {
  h = await startHarness();
  [a, b] = await Promise.all([h.tenant("ret-a"), h.tenant("ret-b")]);
  await Promise.all([h.waitForEntries(a.tenantId, 3), h.waitForEntries(b.tenantId, 3)]);
});
afterAll(async () => {
  await h?.close();
});

/** The owner's client with a fresh second factor (UpdateRetentionPolicy needs step-up). */
async function stepped(t: TestTenant) {
  return h.audit(await h.mfa({ sub: t.ownerId, tid: t.tenantId }));
}

let slugs = 0;
async function grow(t: TestTenant, n: number): Promise<number> {
  const before = await h.logSize(t.tenantId);
  for (let i = 0; i < n; i++) {
    slugs++;
    await h.tenancy(t.ownerToken).createProject({ tenantId: t.tenantId, slug: `p-${slugs}`, displayName: `P${slugs}` });
  }
  return h.waitForEntries(t.tenantId, before + n);
}

async function allEntries(t: TestTenant): Promise<AuditEntry[]> {
  const res = await h.audit(t.ownerToken).searchAuditEntries({
    tenantId: t.tenantId,
    order: AuditEntryOrder.OLDEST_FIRST,
    pageSize: 1000,
  });
  return res.entries;
}

describe("GetRetentionPolicy", () => {
  it("returns the installation default for a tenant that set none", async () => {
    const [first] = await allEntries(b);
    const { retentionPolicy: p } = await h.audit(b.ownerToken).getRetentionPolicy({ tenantId: b.tenantId });
    expect(p).toMatchObject({
      tenantId: b.tenantId,
      retainDays: 365,
      legalHold: false,
      legalHoldReason: "",
      oldestRetainedIndex: 0n,
      etag: '"0"',
    });
    expect(p!.updateTime).toBeUndefined();
    expect(p!.oldestRetainedTime).toEqual(first!.recordTime);
    const oldest = Number(first!.recordTime!.seconds) * 1000 + Math.floor(first!.recordTime!.nanos / 1e6);
    const next = Number(p!.nextPurgeTime!.seconds) * 1000 + Math.floor(p!.nextPurgeTime!.nanos / 1e6);
    expect(next - oldest).toBe(365 * DAY);
  });

  it("rejects a malformed tenant id", async () => {
    await expectInvalid(h.audit(b.ownerToken).getRetentionPolicy({ tenantId: "tenant" }), "tenant_id");
  });
});

describe("UpdateRetentionPolicy", () => {
  it("changes the retention with the etag read; a stale etag is ABORTED", async () => {
    const owner = await stepped(a);
    const read = (await owner.getRetentionPolicy({ tenantId: a.tenantId })).retentionPolicy!;
    const res = await owner.updateRetentionPolicy({
      tenantId: a.tenantId,
      retainDays: 90,
      updateMask: { paths: ["retain_days"] },
      etag: read.etag,
    });
    expect(res.retentionPolicy).toMatchObject({ tenantId: a.tenantId, retainDays: 90, legalHold: false });
    expect(res.retentionPolicy!.etag).not.toBe(read.etag);
    expect(res.retentionPolicy!.updateTime).toBeDefined();
    const next = Number(res.retentionPolicy!.nextPurgeTime!.seconds) * 1000;
    const oldest = Number(res.retentionPolicy!.oldestRetainedTime!.seconds) * 1000;
    expect(next - oldest).toBe(90 * DAY);
    await expectCode(
      owner.updateRetentionPolicy({
        tenantId: a.tenantId,
        retainDays: 120,
        updateMask: { paths: ["retain_days"] },
        etag: read.etag,
      }),
      Code.Aborted,
      { reason: "ETAG_MISMATCH" },
    );
    expect((await owner.getRetentionPolicy({ tenantId: a.tenantId })).retentionPolicy?.retainDays).toBe(90);
    // Another tenant's policy is untouched.
    expect((await h.audit(b.ownerToken).getRetentionPolicy({ tenantId: b.tenantId })).retentionPolicy?.retainDays).toBe(
      365,
    );
  });

  it("puts a legal hold only with a reason; under a hold nothing is due for purging", async () => {
    const owner = await stepped(a);
    await expectInvalid(
      owner.updateRetentionPolicy({ tenantId: a.tenantId, legalHold: true, updateMask: { paths: ["legal_hold"] } }),
      "legal_hold_reason",
    );
    const held = await owner.updateRetentionPolicy({
      tenantId: a.tenantId,
      legalHold: true,
      legalHoldReason: "case 42",
      updateMask: { paths: ["legal_hold", "legal_hold_reason"] },
    });
    expect(held.retentionPolicy).toMatchObject({ legalHold: true, legalHoldReason: "case 42", retainDays: 90 });
    expect(held.retentionPolicy!.nextPurgeTime).toBeUndefined();
    // Clearing the reason of a hold in place is refused too.
    await expectInvalid(
      owner.updateRetentionPolicy({
        tenantId: a.tenantId,
        legalHoldReason: "",
        updateMask: { paths: ["legal_hold_reason"] },
      }),
      "legal_hold_reason",
    );
    const lifted = await owner.updateRetentionPolicy({
      tenantId: a.tenantId,
      legalHold: false,
      updateMask: { paths: ["legal_hold"] },
    });
    expect(lifted.retentionPolicy).toMatchObject({ legalHold: false });
    expect(lifted.retentionPolicy!.nextPurgeTime).toBeDefined();
  });

  it("records RetentionPolicyUpdated with the changed fields", async () => {
    const e = await eventually(async () => {
      const res = await h.audit(a.ownerToken).searchAuditEntries({
        tenantId: a.tenantId,
        filter: { eventTypes: ["uab.audit.v1.RetentionPolicyUpdated"] },
        order: AuditEntryOrder.OLDEST_FIRST,
      });
      return res.entries.length >= 3 ? res.entries : undefined;
    });
    expect(e[0]).toMatchObject({ actor: { principalId: a.ownerId }, resource: { type: "audit.retention_policy" } });
    expect(JSON.stringify(e[0]!.metadata)).toContain('"changedFields":["retain_days"]');
    expect(JSON.stringify(e[0]!.metadata)).toContain('"previousRetainDays":365');
  });

  it("rejects invalid input naming the field", async () => {
    const owner = await stepped(a);
    const t = a.tenantId;
    await expectInvalid(
      owner.updateRetentionPolicy({ tenantId: t, retainDays: 10, updateMask: { paths: ["retain_days"] } }),
      "retain_days",
    );
    await expectInvalid(
      owner.updateRetentionPolicy({ tenantId: t, retainDays: 4000, updateMask: { paths: ["retain_days"] } }),
      "retain_days",
    );
    await expectInvalid(owner.updateRetentionPolicy({ tenantId: t, retainDays: 90 }), "update_mask");
    await expectInvalid(owner.updateRetentionPolicy({ tenantId: t, updateMask: { paths: [] } }), "update_mask");
    await expectInvalid(
      owner.updateRetentionPolicy({ tenantId: t, updateMask: { paths: ["retain_days", "nope"] } }),
      "update_mask",
    );
    await expectInvalid(
      owner.updateRetentionPolicy({
        tenantId: t,
        legalHoldReason: "x".repeat(501),
        updateMask: { paths: ["legal_hold_reason"] },
      }),
      "legal_hold_reason",
    );
    await expectInvalid(
      owner.updateRetentionPolicy({ tenantId: t, etag: "x".repeat(65), updateMask: { paths: ["legal_hold"] } }),
      "etag",
    );
    const err = await expectCode(
      owner.updateRetentionPolicy({ tenantId: t, updateMask: { paths: ["retain_days"] } }),
      Code.InvalidArgument,
    );
    expect(err.rawMessage).toContain("retain_days must be set when it is in update_mask");
  });
});

describe("purging expired entries", () => {
  /** Purged with a 30-day retention. */
  let t: TestTenant;
  /** Same retention, under a legal hold. */
  let held: TestTenant;
  /** The default retention. */
  let plain: TestTenant;
  /** Indices below it were recorded before the cut. */
  let cut = 0;
  let cutMs = 0;
  let sizeBefore = 0;
  let heldSize = 0;
  let purged: AuditEntry[] = [];
  /** A checkpoint signed before the purge. */
  let before: { treeSize: bigint; rootHash: Uint8Array; id: string };
  let removed = 0;

  beforeAll(async () => {
    [t, held, plain] = await Promise.all([h.tenant("ret-t"), h.tenant("ret-held"), h.tenant("ret-plain")]);
    await (await stepped(t)).updateRetentionPolicy({
      tenantId: t.tenantId,
      retainDays: 30,
      updateMask: { paths: ["retain_days"] },
    });
    await (await stepped(held)).updateRetentionPolicy({
      tenantId: held.tenantId,
      retainDays: 30,
      legalHold: true,
      legalHoldReason: "litigation",
      updateMask: { paths: ["retain_days", "legal_hold", "legal_hold_reason"] },
    });
    await grow(t, 3);
    await grow(held, 1);
    await grow(plain, 1);
    // Everything so far is older than the cut; what follows is newer.
    const old = await allEntries(t);
    const newest = old[old.length - 1]!.recordTime!;
    cutMs = Number(newest.seconds) * 1000 + Math.floor(newest.nanos / 1e6) + 1;
    await new Promise((r) => setTimeout(r, 20));
    sizeBefore = await grow(t, 3);
    const entries = await allEntries(t);
    cut = entries.findIndex((e) => Number(e.recordTime!.seconds) * 1000 + e.recordTime!.nanos / 1e6 >= cutMs);
    expect(cut).toBe(old.length);
    purged = entries.slice(0, cut);
    const cp = (await h.audit(t.ownerToken).createCheckpoint({ tenantId: t.tenantId })).checkpoint!;
    before = { treeSize: cp.treeSize, rootHash: cp.rootHash, id: cp.id };
    heldSize = await h.logSize(held.tenantId);
    // The retention loop, 30 days after the cut.
    removed = await purgeExpired(h.deps(), new Date(cutMs + 30 * DAY));
  });

  it("removes exactly the entries older than the tenant's retention", async () => {
    expect(removed).toBe(cut);
    const left = await allEntries(t);
    expect(left[0]!.index).toBe(BigInt(cut));
    expect(left.some((e) => purged.some((p) => p.id === e.id))).toBe(false);
    await expectCode(
      h.audit(t.ownerToken).getAuditEntry({ tenantId: t.tenantId, entryId: purged[0]!.id }),
      Code.NotFound,
    );
    // Nothing else was due: a second run removes nothing.
    expect(await purgeExpired(h.deps(), new Date(cutMs + 30 * DAY))).toBe(0);
  });

  it("shows the oldest retained index in the policy", async () => {
    const { retentionPolicy: p } = await h.audit(t.ownerToken).getRetentionPolicy({ tenantId: t.tenantId });
    expect(p).toMatchObject({ retainDays: 30, oldestRetainedIndex: BigInt(cut) });
    expect(Number(p!.oldestRetainedTime!.seconds) * 1000 + p!.oldestRetainedTime!.nanos / 1e6).toBeGreaterThanOrEqual(
      cutMs,
    );
  });

  it("spares a tenant under legal hold and one on the default retention", async () => {
    for (const [x, size] of [
      [held, heldSize],
      [plain, 0],
    ] as const) {
      const { retentionPolicy: p } = await h.audit(x.ownerToken).getRetentionPolicy({ tenantId: x.tenantId });
      expect(p?.oldestRetainedIndex).toBe(0n);
      expect((await allEntries(x))[0]?.index).toBe(0n);
      if (size) expect(await h.logSize(x.tenantId)).toBeGreaterThanOrEqual(size);
    }
  });

  it("records EntriesPurged and a retention checkpoint covering the purged range", async () => {
    const e = await eventually(async () => {
      const res = await h.audit(t.ownerToken).searchAuditEntries({
        tenantId: t.tenantId,
        filter: { eventTypes: ["uab.audit.v1.EntriesPurged"] },
      });
      return res.entries[0];
    });
    expect(e.resource).toMatchObject({ type: "audit.log", id: t.tenantId });
    const m = e.metadata as unknown as {
      firstIndex?: string;
      lastIndex: string;
      entryCount: string;
      checkpoint: { id: string; treeSize: string };
    };
    // Proto JSON leaves out a zero firstIndex.
    expect({ first: m.firstIndex ?? "0", last: m.lastIndex, count: m.entryCount }).toEqual({
      first: "0",
      last: String(cut - 1),
      count: String(cut),
    });
    // The signed checkpoint the purge relied on covers what went (here the one signed just before: the log had not grown).
    expect(Number(m.checkpoint.treeSize)).toBeGreaterThanOrEqual(cut);
    expect(m.checkpoint.id).toBe(before.id);
    const { checkpoint } = await h
      .audit(t.ownerToken)
      .getCheckpoint({ tenantId: t.tenantId, checkpointId: m.checkpoint.id });
    expect([CheckpointTrigger.RETENTION, CheckpointTrigger.ON_DEMAND]).toContain(checkpoint!.trigger);
  });

  it("still verifies, and proves what remains against signed roots", async () => {
    const size = await h.waitForEntries(t.tenantId, sizeBefore + 1);
    const { checkpoint } = await h.audit(t.ownerToken).createCheckpoint({ tenantId: t.tenantId });
    expect(checkpoint!.treeSize).toBe(BigInt(size));
    const v = await h.audit(t.ownerToken).verifyLog({ tenantId: t.tenantId });
    expect(v.result).toMatchObject({ ok: true, startIndex: BigInt(cut), endIndex: BigInt(size) });
    expect(v.result!.verifiedCount).toBe(BigInt(size - cut));
    // Against the checkpoint signed before the purge, too.
    expect((await h.audit(t.ownerToken).verifyLog({ tenantId: t.tenantId, checkpointId: before.id })).result?.ok).toBe(
      true,
    );
    const keys = (await h.audit().getPublicKeys({ includeRetired: true })).keys.map((k) => k.verifierKey);
    const signed = openCheckpoint(checkpoint!.note, keys, { origin: `${ORIGIN}/${t.tenantId}` });
    for (const e of await allEntries(t)) {
      if (e.index >= checkpoint!.treeSize) continue;
      const p = await h.audit(t.ownerToken).getInclusionProof({
        tenantId: t.tenantId,
        leaf: { case: "index", value: e.index },
      });
      expect(verifyInclusion(e.leafHash, Number(e.index), signed.treeSize, p.auditPath, signed.rootHash)).toBe(true);
    }
    await expectCode(
      h.audit(t.ownerToken).getInclusionProof({ tenantId: t.tenantId, leaf: { case: "index", value: 0n } }),
      Code.NotFound,
    );
    // The tree signed before the purge is a prefix of today's; sizes inside the purged part cannot be proven.
    const c = await h.audit(t.ownerToken).getConsistencyProof({ tenantId: t.tenantId, firstTreeSize: before.treeSize });
    expect(verifyConsistency(Number(before.treeSize), signed.treeSize, c.proof, before.rootHash, signed.rootHash)).toBe(
      true,
    );
    await expectCode(
      h.audit(t.ownerToken).getConsistencyProof({ tenantId: t.tenantId, firstTreeSize: 1n }),
      Code.FailedPrecondition,
      { reason: "LOG_PREFIX_PURGED" },
    );
  });

  it("exports what remains as NDJSON that verifies from the kept boundary", async () => {
    const parts = await collect(
      h.audit(t.ownerToken).exportAuditEntries({ tenantId: t.tenantId, format: ExportFormat.NDJSON }),
    );
    const bytes = Buffer.concat(parts.slice(1, -1).map((p) => p.part.value as Uint8Array));
    const header = JSON.parse(bytes.toString("utf8").split("\n")[0]!) as {
      complete: boolean;
      boundary: { start_index: number };
    };
    expect(header).toMatchObject({ complete: true, boundary: { start_index: cut } });
    const keys = (await h.audit().getPublicKeys({ includeRetired: true })).keys.map((k) => k.verifierKey);
    const size = Number((parts[0]!.part.value as { checkpoint: { treeSize: bigint } }).checkpoint.treeSize);
    const v = verifyExport(bytes, { verifierKeys: keys, origin: `${ORIGIN}/${t.tenantId}` });
    expect(v).toMatchObject({ ok: true, complete: true, entryCount: size - cut });
  });
});
