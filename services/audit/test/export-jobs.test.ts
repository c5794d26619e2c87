/**
 * Export jobs over RPC and their signed download links: CreateExportJob, GetExportJob,
 * ListExportJobs and CancelExportJob — success, invalid input naming the field, unknown ids
 * and one tenant's ids under another. A job runs in the background to SUCCEEDED with its
 * progress, its file is downloaded over plain HTTP from the link (relative to the API),
 * matches the job's SHA-256 and verifies offline (gunzipped when compressed); a link with a
 * tampered signature, an expired one or one moved to another tenant is refused.
 */
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { newId } from "@uab/core";
import {
  ExportCompression,
  ExportFormat,
  type ExportJob,
  ExportJobStatus,
} from "@uab/proto/gen/uab/audit/v1/export_job_pb.js";
import { eventually, expectCode, expectInvalid } from "@uab/testing";
import { verifyExport } from "@uab/tlog";
import { sql } from "kysely";
import { type Harness, ORIGIN, startHarness, type TestTenant } from "./harness.js";

let h: Harness;
let a: TestTenant;
let b: TestTenant;
/** A finished NDJSON job of tenant A. */
let done: ExportJob;

/** Polls a job until it finished; fails unless it succeeded. */
async function finished(t: TestTenant, id: string): Promise<ExportJob> {
  const job = await eventually(
    async () => {
      const { exportJob } = await h.audit(t.ownerToken).getExportJob({ tenantId: t.tenantId, exportJobId: id });
      return exportJob!.status === ExportJobStatus.PENDING || exportJob!.status === ExportJobStatus.RUNNING
        ? undefined
        : exportJob;
    },
    15_000,
    50,
  );
  expect({ status: ExportJobStatus[job.status], error: job.error }).toEqual({ status: "SUCCEEDED", error: "" });
  return job;
}

async function download(url: string) {
  const res = await fetch(`${h.url}${url}`);
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

async function verifierKeys(): Promise<string[]> {
  return (await h.audit().getPublicKeys({ includeRetired: true })).keys.map((k) => k.verifierKey);
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

beforeAll(async () => {
  h = await startHarness();
  [a, b] = await Promise.all([h.tenant("exp-a"), h.tenant("exp-b")]);
  for (let i = 0; i < 3; i++) {
    await h.tenancy(a.ownerToken).createProject({ tenantId: a.tenantId, slug: `p-${i}`, displayName: `P${i}` });
  }
  await h.waitForEntries(a.tenantId, 6);
  const { exportJob } = await h
    .audit(a.ownerToken)
    .createExportJob({ tenantId: a.tenantId, format: ExportFormat.NDJSON });
  done = await finished(a, exportJob!.id);
});
afterAll(async () => {
  await h?.close();
});

describe("CreateExportJob", () => {
  it("queues a job that runs to SUCCEEDED with its progress, checkpoint and a signed link", async () => {
    const before = Date.now();
    const { exportJob: created } = await h.audit(a.ownerToken).createExportJob({
      tenantId: a.tenantId,
      format: ExportFormat.NDJSON,
    });
    expect(created).toMatchObject({
      tenantId: a.tenantId,
      status: ExportJobStatus.PENDING,
      format: ExportFormat.NDJSON,
      compression: ExportCompression.NONE,
      creatorId: a.ownerId,
      downloadUrl: "",
    });
    expect(created!.id).toMatch(/^exp_[0-9a-z]{26}$/);
    const job = await finished(a, created!.id);
    const size = job.checkpoint!.treeSize;
    expect(size).toBeGreaterThanOrEqual(6n);
    expect(job).toMatchObject({ entriesExported: size, entriesTotal: size });
    expect(job.checkpoint?.origin).toBe(`${ORIGIN}/${a.tenantId}`);
    expect(job.downloadUrl).toMatch(
      new RegExp(`^/v1/tenants/${a.tenantId}/auditExports/${job.id}:download\\?expires=\\d+&signature=`),
    );
    const expires = Number(job.downloadUrlExpireTime!.seconds) * 1000;
    expect(expires).toBeGreaterThan(before + 167 * 3_600_000);
    expect(expires).toBeLessThan(Date.now() + 169 * 3_600_000);
    expect(job.startTime).toBeDefined();
    expect(job.completeTime).toBeDefined();
    const file = await download(job.downloadUrl);
    expect(file.status).toBe(200);
    expect(file.headers.get("content-type")).toBe("application/x-ndjson");
    expect(file.headers.get("content-disposition")).toContain(`audit-${a.tenantId}-${job.id}.ndjson`);
    expect(file.headers.get("x-content-sha256")).toBe(Buffer.from(job.sha256).toString("hex"));
    expect(file.bytes.length).toBe(Number(job.sizeBytes));
    expect(sha256(file.bytes)).toBe(Buffer.from(job.sha256).toString("hex"));
    const v = verifyExport(file.bytes, {
      verifierKeys: await verifierKeys(),
      checkpointNote: job.checkpoint!.note,
      origin: `${ORIGIN}/${a.tenantId}`,
    });
    expect(v).toMatchObject({ ok: true, entryCount: Number(size), complete: true });
  });

  it("compresses a CSV file with gzip; the gunzipped bytes verify", async () => {
    const { exportJob } = await h.audit(a.ownerToken).createExportJob({
      tenantId: a.tenantId,
      format: ExportFormat.CSV,
      compression: ExportCompression.GZIP,
    });
    const job = await finished(a, exportJob!.id);
    const file = await download(job.downloadUrl);
    expect(file.status).toBe(200);
    expect(file.headers.get("content-type")).toBe("application/gzip");
    expect(file.headers.get("content-disposition")).toContain(".csv.gz");
    expect(sha256(file.bytes)).toBe(Buffer.from(job.sha256).toString("hex"));
    const csv = gunzipSync(file.bytes);
    expect(csv.toString("utf8")).toMatch(/^index,id,event_id/);
    const v = verifyExport(csv, {
      verifierKeys: await verifierKeys(),
      checkpointNote: job.checkpoint!.note,
      origin: `${ORIGIN}/${a.tenantId}`,
      format: "csv",
    });
    expect(v).toMatchObject({ ok: true, format: "csv", entryCount: Number(job.entriesExported) });
  });

  it("exports a filtered selection with inclusion proofs, pinned to a checkpoint", async () => {
    const { checkpoint } = await h.audit(a.ownerToken).createCheckpoint({ tenantId: a.tenantId });
    const { exportJob } = await h.audit(a.ownerToken).createExportJob({
      tenantId: a.tenantId,
      format: ExportFormat.NDJSON,
      compression: ExportCompression.GZIP,
      filter: { eventTypes: ["uab.tenancy.v1.ProjectCreated"] },
      includeInclusionProofs: true,
      checkpointId: checkpoint!.id,
    });
    expect(exportJob?.filter?.eventTypes).toEqual(["uab.tenancy.v1.ProjectCreated"]);
    const job = await finished(a, exportJob!.id);
    expect(job.checkpoint?.id).toBe(checkpoint!.id);
    expect(job.entriesExported).toBe(3n);
    const file = await download(job.downloadUrl);
    const ndjson = gunzipSync(file.bytes);
    const lines = ndjson
      .toString("utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.type === "entry").every((l) => Array.isArray(l.inclusion_proof))).toBe(true);
    const v = verifyExport(ndjson, { verifierKeys: await verifierKeys(), origin: `${ORIGIN}/${a.tenantId}` });
    expect(v).toMatchObject({ ok: true, complete: false, entryCount: 3 });
  });

  it("records ExportJobCreated and ExportJobCompleted in the tenant's log", async () => {
    for (const type of ["uab.audit.v1.ExportJobCreated", "uab.audit.v1.ExportJobCompleted"]) {
      await eventually(async () => {
        const res = await h.audit(a.ownerToken).searchAuditEntries({
          tenantId: a.tenantId,
          filter: { eventTypes: [type], resourceId: done.id },
        });
        return res.entries.length === 1;
      });
    }
  });

  it("rejects invalid input naming the field", async () => {
    const owner = h.audit(a.ownerToken);
    const t = a.tenantId;
    await expectInvalid(owner.createExportJob({ tenantId: t }), "format");
    await expectInvalid(owner.createExportJob({ tenantId: "ten_", format: ExportFormat.CSV }), "tenant_id");
    await expectInvalid(
      owner.createExportJob({ tenantId: t, format: ExportFormat.CSV, compression: 7 as ExportCompression }),
      "compression",
    );
    await expectInvalid(
      owner.createExportJob({ tenantId: t, format: ExportFormat.CSV, includeInclusionProofs: true }),
      "include_inclusion_proofs",
    );
    await expectInvalid(
      owner.createExportJob({ tenantId: t, format: ExportFormat.CSV, checkpointId: "chk_nope" }),
      "checkpoint_id",
    );
    await expectInvalid(
      owner.createExportJob({ tenantId: t, format: ExportFormat.CSV, filter: { ipAddress: "nope" } }),
      "filter.ip_address",
    );
  });

  it("answers NOT_FOUND for an unknown checkpoint and for another tenant's", async () => {
    await expectCode(
      h.audit(a.ownerToken).createExportJob({
        tenantId: a.tenantId,
        format: ExportFormat.CSV,
        checkpointId: newId("checkpoint"),
      }),
      Code.NotFound,
      { reason: "CHECKPOINT_NOT_FOUND" },
    );
    await expectCode(
      h.audit(b.ownerToken).createExportJob({
        tenantId: b.tenantId,
        format: ExportFormat.CSV,
        checkpointId: done.checkpoint!.id,
      }),
      Code.NotFound,
      { reason: "CHECKPOINT_NOT_FOUND" },
    );
  });
});

describe("the download link", () => {
  const link = () => new URL(done.downloadUrl, "http://x");

  it("is refused with a tampered or missing signature", async () => {
    const u = link();
    const sig = u.searchParams.get("signature")!;
    u.searchParams.set("signature", `${sig.slice(0, -2)}${sig.endsWith("A") ? "B" : "A"}=`);
    expect((await download(`${u.pathname}${u.search}`)).status).toBe(403);
    u.searchParams.delete("signature");
    expect((await download(`${u.pathname}${u.search}`)).status).toBe(403);
    // A later expiry is not what was signed.
    const later = link();
    later.searchParams.set("expires", String(Number(later.searchParams.get("expires")) + 3600));
    expect((await download(`${later.pathname}${later.search}`)).status).toBe(403);
  });

  it("is refused once expired, even with a valid signature", async () => {
    const exp = Math.floor(Date.now() / 1000) - 60;
    const signature = h.box.mac(`${a.tenantId}/${done.id}/${exp}`, "audit-export-download");
    const res = await download(
      `/v1/tenants/${a.tenantId}/auditExports/${done.id}:download?expires=${exp}&signature=${encodeURIComponent(signature)}`,
    );
    expect(res.status).toBe(403);
    expect(res.bytes.toString("utf8")).toContain("expired");
  });

  it("does not open another tenant's path", async () => {
    const u = link();
    const moved = u.pathname.replace(a.tenantId, b.tenantId);
    expect((await download(`${moved}${u.search}`)).status).toBe(403);
  });

  it("answers 404 for a signed link to a job without a file", async () => {
    const id = newId("exportJob");
    const exp = Math.floor(Date.now() / 1000) + 600;
    const signature = h.box.mac(`${a.tenantId}/${id}/${exp}`, "audit-export-download");
    const res = await download(
      `/v1/tenants/${a.tenantId}/auditExports/${id}:download?expires=${exp}&signature=${encodeURIComponent(signature)}`,
    );
    expect(res.status).toBe(404);
  });
});

describe("GetExportJob", () => {
  it("returns a job with a fresh link", async () => {
    const { exportJob } = await h.audit(a.ownerToken).getExportJob({ tenantId: a.tenantId, exportJobId: done.id });
    expect(exportJob).toMatchObject({ id: done.id, status: ExportJobStatus.SUCCEEDED, sha256: done.sha256 });
    expect(exportJob!.downloadUrl).not.toBe("");
    expect((await download(exportJob!.downloadUrl)).status).toBe(200);
  });

  it("rejects a malformed id", async () => {
    await expectInvalid(
      h.audit(a.ownerToken).getExportJob({ tenantId: a.tenantId, exportJobId: "exp_" }),
      "export_job_id",
    );
  });

  it("answers NOT_FOUND for an unknown id and for another tenant's job", async () => {
    await expectCode(
      h.audit(a.ownerToken).getExportJob({ tenantId: a.tenantId, exportJobId: newId("exportJob") }),
      Code.NotFound,
      { reason: "EXPORT_JOB_NOT_FOUND" },
    );
    await expectCode(
      h.audit(b.ownerToken).getExportJob({ tenantId: b.tenantId, exportJobId: done.id }),
      Code.NotFound,
      { reason: "EXPORT_JOB_NOT_FOUND" },
    );
  });
});

/** A job a worker holds (running, its lease far away), so it stays unfinished for the test. */
async function runningJob(t: TestTenant): Promise<string> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const { exportJob } = await h
      .audit(t.ownerToken)
      .createExportJob({ tenantId: t.tenantId, format: ExportFormat.CSV });
    const res = await sql`
      UPDATE export_jobs SET status = 'running', started_at = now(), lease_until = now() + interval '1 hour'
      WHERE id = ${exportJob!.id} AND status = 'pending'`.execute(h.adminDb);
    if (Number(res.numAffectedRows) === 1) return exportJob!.id;
  }
  throw new Error("the export worker claimed every job first");
}

describe("CancelExportJob", () => {
  it("cancels an unfinished job; it then has no file", async () => {
    const id = await runningJob(a);
    const { exportJob } = await h.audit(a.ownerToken).cancelExportJob({ tenantId: a.tenantId, exportJobId: id });
    expect(exportJob).toMatchObject({ id, status: ExportJobStatus.CANCELED, downloadUrl: "" });
    expect(exportJob!.completeTime).toBeDefined();
    const again = await h.audit(a.ownerToken).getExportJob({ tenantId: a.tenantId, exportJobId: id });
    expect(again.exportJob?.status).toBe(ExportJobStatus.CANCELED);
    await expectCode(
      h.audit(a.ownerToken).cancelExportJob({ tenantId: a.tenantId, exportJobId: id }),
      Code.FailedPrecondition,
      { reason: "EXPORT_JOB_FINISHED" },
    );
  });

  it("fails with FAILED_PRECONDITION on a finished job, which keeps its file", async () => {
    await expectCode(
      h.audit(a.ownerToken).cancelExportJob({ tenantId: a.tenantId, exportJobId: done.id }),
      Code.FailedPrecondition,
      { reason: "EXPORT_JOB_FINISHED" },
    );
    const { exportJob } = await h.audit(a.ownerToken).getExportJob({ tenantId: a.tenantId, exportJobId: done.id });
    expect(exportJob?.status).toBe(ExportJobStatus.SUCCEEDED);
    expect((await download(exportJob!.downloadUrl)).status).toBe(200);
  });

  it("rejects a malformed id", async () => {
    await expectInvalid(
      h.audit(a.ownerToken).cancelExportJob({ tenantId: a.tenantId, exportJobId: "nope" }),
      "export_job_id",
    );
  });

  it("answers NOT_FOUND for an unknown id and for another tenant's job", async () => {
    await expectCode(
      h.audit(a.ownerToken).cancelExportJob({ tenantId: a.tenantId, exportJobId: newId("exportJob") }),
      Code.NotFound,
      { reason: "EXPORT_JOB_NOT_FOUND" },
    );
    const id = await runningJob(a);
    await expectCode(h.audit(b.ownerToken).cancelExportJob({ tenantId: b.tenantId, exportJobId: id }), Code.NotFound, {
      reason: "EXPORT_JOB_NOT_FOUND",
    });
    const { exportJob } = await h.audit(a.ownerToken).getExportJob({ tenantId: a.tenantId, exportJobId: id });
    expect(exportJob?.status).toBe(ExportJobStatus.RUNNING);
  });
});

describe("ListExportJobs", () => {
  it("lists a tenant's jobs newest first, page by page", async () => {
    const all = (await h.audit(a.ownerToken).listExportJobs({ tenantId: a.tenantId })).exportJobs;
    expect(all.length).toBeGreaterThanOrEqual(5);
    expect(all.map((j) => j.id)).toEqual([...all.map((j) => j.id)].sort().reverse());
    const seen: string[] = [];
    let pageToken = "";
    do {
      const res = await h.audit(a.ownerToken).listExportJobs({ tenantId: a.tenantId, pageSize: 2, pageToken });
      seen.push(...res.exportJobs.map((j) => j.id));
      pageToken = res.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual(all.map((j) => j.id));
  });

  it("filters by status", async () => {
    const succeeded = await h.audit(a.ownerToken).listExportJobs({
      tenantId: a.tenantId,
      status: ExportJobStatus.SUCCEEDED,
    });
    expect(succeeded.exportJobs.map((j) => j.id)).toContain(done.id);
    expect(succeeded.exportJobs.every((j) => j.status === ExportJobStatus.SUCCEEDED)).toBe(true);
    const canceled = await h.audit(a.ownerToken).listExportJobs({
      tenantId: a.tenantId,
      status: ExportJobStatus.CANCELED,
    });
    expect(canceled.exportJobs.length).toBeGreaterThan(0);
    expect(canceled.exportJobs.every((j) => j.status === ExportJobStatus.CANCELED)).toBe(true);
    expect(canceled.exportJobs.map((j) => j.id)).not.toContain(done.id);
  });

  it("lists jobs without their download links (Get one to download)", async () => {
    const res = await h.audit(a.ownerToken).listExportJobs({ tenantId: a.tenantId, status: ExportJobStatus.SUCCEEDED });
    expect(res.exportJobs.length).toBeGreaterThan(0);
    expect(res.exportJobs.map((j) => j.downloadUrl)).toEqual(res.exportJobs.map(() => ""));
  });

  it("does not list another tenant's jobs", async () => {
    const res = await h.audit(b.ownerToken).listExportJobs({ tenantId: b.tenantId });
    expect(res.exportJobs).toEqual([]);
  });

  it("rejects invalid input naming the field", async () => {
    const owner = h.audit(a.ownerToken);
    await expectInvalid(owner.listExportJobs({ tenantId: a.tenantId, status: 9 as ExportJobStatus }), "status");
    await expectInvalid(owner.listExportJobs({ tenantId: a.tenantId, pageSize: -1 }), "page_size");
    await expectInvalid(owner.listExportJobs({ tenantId: a.tenantId, pageToken: "x" }), "page_token");
  });
});
