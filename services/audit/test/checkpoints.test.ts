/**
 * Checkpoints, proofs and verification over RPC: CreateCheckpoint, GetCheckpoint,
 * ListCheckpoints, GetLatestCheckpoint, GetInclusionProof, GetConsistencyProof and VerifyLog —
 * success (checked offline: notes open with the published key, proofs verify against the
 * signed roots), invalid input naming the field, unknown ids, and one tenant's ids under
 * another tenant. Also: the first checkpoints of a fresh installation, signed concurrently,
 * share one key; and a row tampered in the database (as a superuser, past the append-only
 * trigger) fails VerifyLog at its index and records LogVerificationFailed in the log.
 */
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { newId } from "@uab/core";
import { AuditOutcome } from "@uab/proto/gen/uab/audit/v1/audit_entry_pb.js";
import { AuditEntryOrder } from "@uab/proto/gen/uab/audit/v1/audit_service_pb.js";
import type { Checkpoint } from "@uab/proto/gen/uab/audit/v1/checkpoint_pb.js";
import { CheckpointTrigger } from "@uab/proto/gen/uab/audit/v1/checkpoint_pb.js";
import { SigningKeyStatus } from "@uab/proto/gen/uab/audit/v1/signing_key_pb.js";
import { LogVerificationFailure } from "@uab/proto/gen/uab/audit/v1/verification_pb.js";
import { eventually, expectCode, expectInvalid } from "@uab/testing";
import {
  chainHashFromExtensions,
  generateNoteKey,
  openCheckpoint,
  verifyConsistency,
  verifyInclusion,
} from "@uab/tlog";
import { sql } from "kysely";
import { type Harness, ORIGIN, startHarness, type TestTenant } from "./harness.js";

let h: Harness;
let a: TestTenant;
let b: TestTenant;
let c: TestTenant;

beforeAll(async () => {
  h = await startHarness();
  [a, b, c] = await Promise.all([h.tenant("chk-a"), h.tenant("chk-b"), h.tenant("chk-c")]);
  await Promise.all([a, b, c].map((t) => h.waitForEntries(t.tenantId, 3)));
});
afterAll(async () => {
  await h?.close();
});

let slugs = 0;
/** Adds `n` entries to a tenant's log (projects made through tenancy) and waits for them. */
async function grow(t: TestTenant, n = 1): Promise<number> {
  const before = await h.logSize(t.tenantId);
  for (let i = 0; i < n; i++) {
    slugs++;
    await h.tenancy(t.ownerToken).createProject({ tenantId: t.tenantId, slug: `p-${slugs}`, displayName: `P${slugs}` });
  }
  return h.waitForEntries(t.tenantId, before + n);
}

async function verifierKeys(): Promise<string[]> {
  return (await h.audit().getPublicKeys({ includeRetired: true })).keys.map((k) => k.verifierKey);
}

/** Opens a checkpoint's note with the published keys: what a client trusts, not the response's fields. */
async function opened(cp: Checkpoint, tenantId: string) {
  const note = openCheckpoint(cp.note, await verifierKeys(), { origin: `${ORIGIN}/${tenantId}` });
  return { treeSize: note.treeSize, rootHash: note.rootHash, chainHash: chainHashFromExtensions(note.extensions) };
}

describe("the first signing key", () => {
  it("is made once when the first checkpoints of an installation are signed concurrently", async () => {
    const tenants = [a, b, c, a, b, c];
    let calls: Promise<unknown>[] = [];
    // Hold back every writer of signing_keys until all the calls have looked for an active key
    // (plain reads pass an EXCLUSIVE lock): the race of a fresh installation, made certain.
    await h.adminDb.transaction().execute(async (tx) => {
      await sql`LOCK TABLE signing_keys IN EXCLUSIVE MODE`.execute(tx);
      calls = tenants.map((t) => h.audit(t.ownerToken).createCheckpoint({ tenantId: t.tenantId }));
      await eventually(async () => {
        const res = await sql<{ n: number }>`
          SELECT count(*)::int AS n FROM pg_locks
          WHERE NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`.execute(
          h.adminDb,
        );
        return res.rows[0]!.n >= 1;
      });
      // Let the other calls reach their read of the key too.
      await new Promise((r) => setTimeout(r, 300));
    });
    const outcomes = await Promise.allSettled(calls);
    expect(
      outcomes.filter((o) => o.status === "rejected").map((o) => String((o as PromiseRejectedResult).reason)),
    ).toEqual([]);
    const keys = (await h.audit().getPublicKeys({ includeRetired: true })).keys;
    expect(keys.map((k) => k.status)).toEqual([SigningKeyStatus.ACTIVE]);
    const signedBy = new Set(
      outcomes.map((o) => (o as PromiseFulfilledResult<{ checkpoint: Checkpoint }>).value.checkpoint.keyId),
    );
    expect([...signedBy]).toEqual([keys[0]!.keyId]);
  });
});

describe("CreateCheckpoint", () => {
  it("signs the log's head once; without new entries it returns that checkpoint", async () => {
    const size = await grow(a);
    const first = await h.audit(a.ownerToken).createCheckpoint({ tenantId: a.tenantId });
    expect(first.created).toBe(true);
    expect(first.checkpoint).toMatchObject({
      tenantId: a.tenantId,
      origin: `${ORIGIN}/${a.tenantId}`,
      treeSize: BigInt(size),
      trigger: CheckpointTrigger.ON_DEMAND,
    });
    expect(first.checkpoint!.id).toMatch(/^chk_[0-9a-z]{26}$/);
    const again = await h.audit(a.ownerToken).createCheckpoint({ tenantId: a.tenantId });
    expect(again.created).toBe(false);
    expect(again.checkpoint!.id).toBe(first.checkpoint!.id);
  });

  it("signs a note that opens with GetPublicKeys' verifier key and commits to root and chain head", async () => {
    await grow(a);
    const { checkpoint } = await h.audit(a.ownerToken).createCheckpoint({ tenantId: a.tenantId });
    const keys = (await h.audit().getPublicKeys({})).keys;
    expect(keys).toHaveLength(1);
    expect(checkpoint!.keyId).toBe(keys[0]!.keyId);
    const note = openCheckpoint(checkpoint!.note, [keys[0]!.verifierKey], { origin: `${ORIGIN}/${a.tenantId}` });
    expect(BigInt(note.treeSize)).toBe(checkpoint!.treeSize);
    expect(Buffer.from(note.rootHash)).toEqual(Buffer.from(checkpoint!.rootHash));
    expect(Buffer.from(chainHashFromExtensions(note.extensions)!)).toEqual(Buffer.from(checkpoint!.chainHash));
    // The newest entry's chain hash is the signed chain head.
    const { entries } = await h.audit(a.ownerToken).searchAuditEntries({ tenantId: a.tenantId, pageSize: 1 });
    const newest = entries.find((e) => e.index === checkpoint!.treeSize - 1n) ?? entries[0]!;
    expect(newest.index).toBe(checkpoint!.treeSize - 1n);
    expect(Buffer.from(newest.chainHash)).toEqual(Buffer.from(checkpoint!.chainHash));
    // Another installation's key does not open it.
    expect(() => openCheckpoint(checkpoint!.note, [generateNoteKey(ORIGIN).verifierKey])).toThrow();
  });

  it("publishes CheckpointCreated without appending it (checkpoints do not feed the log)", async () => {
    await grow(a);
    const { checkpoint, created } = await h.audit(a.ownerToken).createCheckpoint({ tenantId: a.tenantId });
    expect(created).toBe(true);
    await eventually(() =>
      h.events.some(
        (e) => e.event.type === "uab.audit.v1.CheckpointCreated" && e.event.resource?.id === checkpoint!.id,
      ),
    );
    // Published before this change, so it would be in the log by the time the change is.
    const size = await grow(a);
    expect(size).toBe(Number(checkpoint!.treeSize) + 1);
    const res = await h.audit(a.ownerToken).searchAuditEntries({
      tenantId: a.tenantId,
      filter: { eventTypes: ["uab.audit.v1.CheckpointCreated"] },
    });
    expect(res.entries).toEqual([]);
  });

  it("rejects a malformed tenant id", async () => {
    await expectInvalid(h.audit(a.ownerToken).createCheckpoint({ tenantId: "ten_NOPE" }), "tenant_id");
  });
});

describe("GetCheckpoint", () => {
  let cp: Checkpoint;
  beforeAll(async () => {
    await grow(b);
    cp = (await h.audit(b.ownerToken).createCheckpoint({ tenantId: b.tenantId })).checkpoint!;
  });

  it("returns a checkpoint", async () => {
    const res = await h.audit(b.ownerToken).getCheckpoint({ tenantId: b.tenantId, checkpointId: cp.id });
    expect(res.checkpoint).toEqual(cp);
  });

  it("rejects a malformed id", async () => {
    await expectInvalid(
      h.audit(b.ownerToken).getCheckpoint({ tenantId: b.tenantId, checkpointId: "chk_1" }),
      "checkpoint_id",
    );
  });

  it("answers NOT_FOUND for an unknown id", async () => {
    await expectCode(
      h.audit(b.ownerToken).getCheckpoint({ tenantId: b.tenantId, checkpointId: newId("checkpoint") }),
      Code.NotFound,
      { reason: "CHECKPOINT_NOT_FOUND" },
    );
  });

  it("does not find one tenant's checkpoint under another tenant", async () => {
    await expectCode(
      h.audit(c.ownerToken).getCheckpoint({ tenantId: c.tenantId, checkpointId: cp.id }),
      Code.NotFound,
      { reason: "CHECKPOINT_NOT_FOUND" },
    );
  });
});

describe("ListCheckpoints", () => {
  const made: Checkpoint[] = [];
  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      await grow(c);
      made.push((await h.audit(c.ownerToken).createCheckpoint({ tenantId: c.tenantId })).checkpoint!);
    }
  });

  it("pages through a tenant's checkpoints, newest first", async () => {
    const all = (await h.audit(c.ownerToken).listCheckpoints({ tenantId: c.tenantId })).checkpoints;
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const res = await h.audit(c.ownerToken).listCheckpoints({ tenantId: c.tenantId, pageSize: 2, pageToken });
      expect(res.checkpoints.length).toBeLessThanOrEqual(2);
      seen.push(...res.checkpoints.map((x) => x.id));
      pageToken = res.nextPageToken;
      pages++;
    } while (pageToken && pages < 10);
    expect(seen).toEqual(all.map((x) => x.id));
    expect(new Set(seen).size).toBe(seen.length);
    expect(pages).toBe(Math.ceil(all.length / 2));
    // Every checkpoint made, newest first.
    const order = made.map((m) => seen.indexOf(m.id));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((x, y) => y - x)).toEqual(order);
    expect(all.every((x) => x.tenantId === c.tenantId)).toBe(true);
  });

  it("filters by minimum tree size and time", async () => {
    const min = made[1]!.treeSize;
    const res = await h.audit(c.ownerToken).listCheckpoints({ tenantId: c.tenantId, minTreeSize: min });
    expect(res.checkpoints.map((x) => x.id)).toEqual([made[2]!.id, made[1]!.id]);
    const before = await h.audit(c.ownerToken).listCheckpoints({
      tenantId: c.tenantId,
      endTime: timestampFromDate(new Date(Date.UTC(2000, 0, 1))),
    });
    expect(before.checkpoints).toEqual([]);
  });

  it("does not list another tenant's checkpoints", async () => {
    const res = await h.audit(b.ownerToken).listCheckpoints({ tenantId: b.tenantId, pageSize: 1000 });
    expect(res.checkpoints.some((x) => made.some((m) => m.id === x.id))).toBe(false);
  });

  it("rejects invalid input naming the field", async () => {
    const owner = h.audit(c.ownerToken);
    await expectInvalid(owner.listCheckpoints({ tenantId: c.tenantId, pageSize: 1001 }), "page_size");
    await expectInvalid(owner.listCheckpoints({ tenantId: c.tenantId, pageToken: "garbage" }), "page_token");
    await expectInvalid(owner.listCheckpoints({ tenantId: c.tenantId, minTreeSize: -1n }), "min_tree_size");
    const err = await expectCode(
      owner.listCheckpoints({
        tenantId: c.tenantId,
        startTime: timestampFromDate(new Date(2_000_000)),
        endTime: timestampFromDate(new Date(1_000_000)),
      }),
      Code.InvalidArgument,
    );
    expect(err.rawMessage).toContain("end_time must be after start_time");
  });
});

describe("GetLatestCheckpoint", () => {
  it("returns the newest checkpoint", async () => {
    await grow(c);
    const { checkpoint } = await h.audit(c.ownerToken).createCheckpoint({ tenantId: c.tenantId });
    const res = await h.audit(c.ownerToken).getLatestCheckpoint({ tenantId: c.tenantId });
    expect(res.checkpoint).toEqual(checkpoint);
  });

  it("answers NOT_FOUND for a log without a checkpoint", async () => {
    const fresh = await h.tenant("chk-fresh");
    await expectCode(h.audit(fresh.ownerToken).getLatestCheckpoint({ tenantId: fresh.tenantId }), Code.NotFound, {
      reason: "CHECKPOINT_NOT_FOUND",
    });
  });

  it("rejects a malformed tenant id", async () => {
    await expectInvalid(h.audit(c.ownerToken).getLatestCheckpoint({ tenantId: "x" }), "tenant_id");
  });
});

describe("GetInclusionProof", () => {
  let early: Checkpoint;
  let late: Checkpoint;
  beforeAll(async () => {
    await grow(a, 2);
    early = (await h.audit(a.ownerToken).createCheckpoint({ tenantId: a.tenantId })).checkpoint!;
    await grow(a, 3);
    late = (await h.audit(a.ownerToken).createCheckpoint({ tenantId: a.tenantId })).checkpoint!;
  });

  it("proves every entry by index against the latest signed root", async () => {
    const signed = await opened(late, a.tenantId);
    const { entries } = await h.audit(a.ownerToken).searchAuditEntries({
      tenantId: a.tenantId,
      order: AuditEntryOrder.OLDEST_FIRST,
      filter: { endIndex: late.treeSize },
      pageSize: 1000,
    });
    expect(entries).toHaveLength(signed.treeSize);
    for (const e of entries) {
      const p = await h.audit(a.ownerToken).getInclusionProof({
        tenantId: a.tenantId,
        leaf: { case: "index", value: e.index },
      });
      expect(p.treeSize).toBe(BigInt(signed.treeSize));
      expect(p.checkpoint?.id).toBe(late.id);
      expect(Buffer.from(p.leafHash)).toEqual(Buffer.from(e.leafHash));
      expect(verifyInclusion(e.leafHash, Number(e.index), signed.treeSize, p.auditPath, signed.rootHash)).toBe(true);
      // The same path does not prove another leaf.
      expect(
        verifyInclusion(
          entries[(Number(e.index) + 1) % entries.length]!.leafHash,
          Number(e.index),
          signed.treeSize,
          p.auditPath,
          signed.rootHash,
        ),
      ).toBe(false);
    }
  });

  it("proves an entry by leaf hash against an earlier checkpoint's tree size", async () => {
    const signed = await opened(early, a.tenantId);
    const { entries } = await h.audit(a.ownerToken).searchAuditEntries({
      tenantId: a.tenantId,
      filter: { startIndex: early.treeSize - 1n, endIndex: early.treeSize },
    });
    const e = entries[0]!;
    const p = await h.audit(a.ownerToken).getInclusionProof({
      tenantId: a.tenantId,
      leaf: { case: "leafHash", value: e.leafHash },
      treeSize: early.treeSize,
    });
    expect(p.index).toBe(e.index);
    expect(p.checkpoint?.id).toBe(early.id);
    expect(verifyInclusion(e.leafHash, Number(p.index), signed.treeSize, p.auditPath, signed.rootHash)).toBe(true);
  });

  it("rejects invalid input naming the field", async () => {
    const owner = h.audit(a.ownerToken);
    await expectInvalid(owner.getInclusionProof({ tenantId: a.tenantId }), "leaf");
    await expectInvalid(
      owner.getInclusionProof({ tenantId: a.tenantId, leaf: { case: "leafHash", value: new Uint8Array(5) } }),
      "leaf_hash",
    );
    await expectInvalid(
      owner.getInclusionProof({ tenantId: a.tenantId, leaf: { case: "index", value: -1n } }),
      "index",
    );
    // An entry after the tree asked for.
    await expectInvalid(
      owner.getInclusionProof({
        tenantId: a.tenantId,
        leaf: { case: "index", value: late.treeSize - 1n },
        treeSize: early.treeSize,
      }),
      "tree_size",
    );
  });

  it("answers NOT_FOUND for an unknown entry or a tree size without a checkpoint", async () => {
    const owner = h.audit(a.ownerToken);
    await expectCode(
      owner.getInclusionProof({ tenantId: a.tenantId, leaf: { case: "index", value: 1_000_000n } }),
      Code.NotFound,
    );
    await expectCode(
      owner.getInclusionProof({ tenantId: a.tenantId, leaf: { case: "leafHash", value: new Uint8Array(32) } }),
      Code.NotFound,
    );
    await expectCode(
      owner.getInclusionProof({
        tenantId: a.tenantId,
        leaf: { case: "index", value: 0n },
        treeSize: early.treeSize + 1n,
      }),
      Code.NotFound,
      { reason: "CHECKPOINT_NOT_FOUND" },
    );
  });

  it("does not find one tenant's entry under another tenant", async () => {
    const { entries } = await h.audit(a.ownerToken).searchAuditEntries({ tenantId: a.tenantId, pageSize: 1 });
    await expectCode(
      h.audit(b.ownerToken).getInclusionProof({
        tenantId: b.tenantId,
        leaf: { case: "leafHash", value: entries[0]!.leafHash },
      }),
      Code.NotFound,
    );
  });
});

describe("GetConsistencyProof", () => {
  let first: Checkpoint;
  let second: Checkpoint;
  beforeAll(async () => {
    await grow(b);
    first = (await h.audit(b.ownerToken).createCheckpoint({ tenantId: b.tenantId })).checkpoint!;
    await grow(b, 3);
    second = (await h.audit(b.ownerToken).createCheckpoint({ tenantId: b.tenantId })).checkpoint!;
  });

  it("proves a later checkpoint extends an earlier one", async () => {
    const one = await opened(first, b.tenantId);
    const two = await opened(second, b.tenantId);
    const p = await h.audit(b.ownerToken).getConsistencyProof({
      tenantId: b.tenantId,
      firstTreeSize: first.treeSize,
      secondTreeSize: second.treeSize,
    });
    expect(p).toMatchObject({ firstTreeSize: first.treeSize, secondTreeSize: second.treeSize });
    expect(p.checkpoint?.id).toBe(second.id);
    expect(verifyConsistency(one.treeSize, two.treeSize, p.proof, one.rootHash, two.rootHash)).toBe(true);
    // It proves nothing about another root.
    expect(verifyConsistency(one.treeSize, two.treeSize, p.proof, two.rootHash, one.rootHash)).toBe(false);
  });

  it("proves against the latest checkpoint when the second size is 0, for every earlier size", async () => {
    const latest = await opened(second, b.tenantId);
    for (let size = 1; size <= latest.treeSize; size++) {
      const p = await h.audit(b.ownerToken).getConsistencyProof({ tenantId: b.tenantId, firstTreeSize: BigInt(size) });
      expect(p.secondTreeSize).toBe(BigInt(latest.treeSize));
      if (size === Number(first.treeSize)) {
        const one = await opened(first, b.tenantId);
        expect(verifyConsistency(size, latest.treeSize, p.proof, one.rootHash, latest.rootHash)).toBe(true);
      }
      expect(p.proof.length === 0).toBe(size === latest.treeSize);
    }
  });

  it("rejects invalid input naming the field", async () => {
    const owner = h.audit(b.ownerToken);
    await expectInvalid(owner.getConsistencyProof({ tenantId: b.tenantId, firstTreeSize: 0n }), "first_tree_size");
    await expectInvalid(
      owner.getConsistencyProof({ tenantId: b.tenantId, firstTreeSize: 1n, secondTreeSize: -2n }),
      "second_tree_size",
    );
    const err = await expectCode(
      owner.getConsistencyProof({ tenantId: b.tenantId, firstTreeSize: 3n, secondTreeSize: 2n }),
      Code.InvalidArgument,
    );
    expect(err.rawMessage).toContain("second_tree_size must not be smaller than first_tree_size");
    await expectInvalid(
      owner.getConsistencyProof({ tenantId: b.tenantId, firstTreeSize: second.treeSize + 1n }),
      "first_tree_size",
    );
  });

  it("answers NOT_FOUND for a tree size without a checkpoint, here or in another tenant", async () => {
    await expectCode(
      h.audit(b.ownerToken).getConsistencyProof({
        tenantId: b.tenantId,
        firstTreeSize: 1n,
        secondTreeSize: second.treeSize + 100n,
      }),
      Code.NotFound,
      { reason: "CHECKPOINT_NOT_FOUND" },
    );
    const fresh = await h.tenant("chk-cons");
    await expectCode(
      h.audit(fresh.ownerToken).getConsistencyProof({
        tenantId: fresh.tenantId,
        firstTreeSize: 1n,
        secondTreeSize: second.treeSize,
      }),
      Code.NotFound,
    );
  });
});

describe("VerifyLog", () => {
  it("verifies the stored log against the latest and an earlier checkpoint, and a range", async () => {
    await grow(c, 2);
    const early = (await h.audit(c.ownerToken).createCheckpoint({ tenantId: c.tenantId })).checkpoint!;
    await grow(c);
    const late = (await h.audit(c.ownerToken).createCheckpoint({ tenantId: c.tenantId })).checkpoint!;
    const latest = await h.audit(c.ownerToken).verifyLog({ tenantId: c.tenantId });
    expect(latest.result).toMatchObject({
      ok: true,
      tenantId: c.tenantId,
      startIndex: 0n,
      endIndex: late.treeSize,
      verifiedCount: late.treeSize,
      failure: LogVerificationFailure.UNSPECIFIED,
    });
    expect(latest.result?.firstBadIndex).toBeUndefined();
    expect(latest.result?.checkpoint?.id).toBe(late.id);
    // The root recomputed from the stored leaves is reported, and it is the signed one.
    expect(Buffer.from(latest.result!.computedRootHash).toString("base64")).toBe(
      Buffer.from(late.rootHash).toString("base64"),
    );
    const older = await h.audit(c.ownerToken).verifyLog({ tenantId: c.tenantId, checkpointId: early.id });
    expect(older.result).toMatchObject({ ok: true, endIndex: early.treeSize, verifiedCount: early.treeSize });
    const range = await h.audit(c.ownerToken).verifyLog({ tenantId: c.tenantId, startIndex: 2n, endIndex: 4n });
    expect(range.result).toMatchObject({ ok: true, startIndex: 2n, endIndex: 4n });
  });

  it("rejects invalid input naming the field", async () => {
    const owner = h.audit(c.ownerToken);
    await expectInvalid(owner.verifyLog({ tenantId: c.tenantId, checkpointId: "chk_x" }), "checkpoint_id");
    await expectInvalid(owner.verifyLog({ tenantId: c.tenantId, startIndex: -1n }), "start_index");
    const err = await expectCode(
      owner.verifyLog({ tenantId: c.tenantId, startIndex: 5n, endIndex: 5n }),
      Code.InvalidArgument,
    );
    expect(err.rawMessage).toContain("end_index must be after start_index");
    await expectInvalid(owner.verifyLog({ tenantId: c.tenantId, endIndex: 1_000_000n }), "end_index");
  });

  it("answers NOT_FOUND for an unknown checkpoint and for another tenant's", async () => {
    await expectCode(
      h.audit(c.ownerToken).verifyLog({ tenantId: c.tenantId, checkpointId: newId("checkpoint") }),
      Code.NotFound,
      { reason: "CHECKPOINT_NOT_FOUND" },
    );
    const { checkpoint } = await h.audit(c.ownerToken).getLatestCheckpoint({ tenantId: c.tenantId });
    await expectCode(
      h.audit(b.ownerToken).verifyLog({ tenantId: b.tenantId, checkpointId: checkpoint!.id }),
      Code.NotFound,
      { reason: "CHECKPOINT_NOT_FOUND" },
    );
  });

  it.each([
    ["actor_id", sql`actor_id = 'usr_forged'`],
    ["resource_name", sql`resource_name = 'forged'`],
    ["action", sql`action = 'tenancy.tenant.deleted'`],
    ["metadata", sql`metadata = '{"forged": true}'::jsonb`],
    ["occur_time", sql`occur_time = occur_time - interval '1 day'`],
  ])(
    "names an entry whose searchable %s column was rewritten (what the API shows must be what was hashed)",
    async (column, set) => {
      const t = await h.tenant("chk-column");
      await grow(t, 2);
      await h.audit(t.ownerToken).createCheckpoint({ tenantId: t.tenantId });
      const bad = 1;
      await h.adminDb.transaction().execute(async (tx) => {
        await sql`SET LOCAL session_replication_role = replica`.execute(tx);
        const res = await sql`UPDATE entries SET ${set} WHERE log_id = ${t.tenantId} AND idx = ${bad}`.execute(tx);
        expect(Number(res.numAffectedRows)).toBe(1);
      });
      const res = await h.audit(t.ownerToken).verifyLog({ tenantId: t.tenantId });
      expect(res.result).toMatchObject({
        ok: false,
        firstBadIndex: BigInt(bad),
        failure: LogVerificationFailure.CHANGED,
      });
      expect(res.result?.detail).toContain(`its ${column} column differs`);
    },
  );

  it("names the first tampered entry and records LogVerificationFailed in the log", async () => {
    const t = await h.tenant("chk-tamper");
    await grow(t, 4);
    const { checkpoint } = await h.audit(t.ownerToken).createCheckpoint({ tenantId: t.tenantId });
    expect((await h.audit(t.ownerToken).verifyLog({ tenantId: t.tenantId })).result?.ok).toBe(true);
    const bad = 3;
    // An attacker with the database: rewrite an entry's canonical bytes past the append-only trigger.
    await h.adminDb.transaction().execute(async (tx) => {
      await sql`SET LOCAL session_replication_role = replica`.execute(tx);
      const res = await sql`
        UPDATE entries
        SET canonical = convert_to(replace(convert_from(canonical, 'UTF8'), '"P', '"X'), 'UTF8')
        WHERE log_id = ${t.tenantId} AND idx = ${bad}`.execute(tx);
      expect(Number(res.numAffectedRows)).toBe(1);
    });
    const res = await h.audit(t.ownerToken).verifyLog({ tenantId: t.tenantId });
    expect(res.result).toMatchObject({
      ok: false,
      firstBadIndex: BigInt(bad),
      failure: LogVerificationFailure.CHANGED,
      verifiedCount: BigInt(bad),
    });
    expect(res.result?.checkpoint?.id).toBe(checkpoint!.id);
    expect(res.result?.detail).not.toBe("");
    const failed = await eventually(async () => {
      const found = await h.audit(t.ownerToken).searchAuditEntries({
        tenantId: t.tenantId,
        filter: { eventTypes: ["uab.audit.v1.LogVerificationFailed"] },
      });
      return found.entries[0];
    });
    expect(failed).toMatchObject({
      outcome: AuditOutcome.FAILURE,
      action: "audit.log_verification.failed",
      resource: { type: "audit.log", id: t.tenantId },
    });
    expect(failed.actor?.principalId).toBe(t.ownerId);
    expect(JSON.stringify(failed.metadata)).toContain(`"firstBadIndex":"${bad}"`);
  });
});
