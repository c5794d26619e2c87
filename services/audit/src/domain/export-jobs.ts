/**
 * Export jobs: large ranges exported in the background with progress, the file kept in
 * PostgreSQL (`export_chunks`) until it expires and downloaded through a signed link
 * (`…/auditExports/{id}:download?expires=…&signature=…`, an HMAC of the job, tenant and expiry
 * with a key derived from UAB_ENCRYPTION_KEYS; like a presigned object-store URL, the link is
 * the credential and expires with the job's file).
 *
 * Workers on any replica claim pending jobs with `FOR UPDATE SKIP LOCKED` and hold a lease
 * they renew with each chunk; a job whose worker died is claimed again after its lease and
 * restarts from scratch. Cancelling marks the job; the worker stops at its next page.
 */
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { FailedPreconditionError, type Logger, NotFoundError, newId } from "@uab/core";
import { decodePageToken, pageSize, paginate, withPlatform, withTenant } from "@uab/db";
import { type AuditEntryFilter, AuditEntryFilterSchema } from "@uab/proto/gen/uab/audit/v1/audit_entry_pb.js";
import {
  ExportJobCanceledSchema,
  ExportJobCompletedSchema,
  ExportJobCreatedSchema,
} from "@uab/proto/gen/uab/audit/v1/events_pb.js";
import type { HttpRoute } from "@uab/server";
import { sql } from "kysely";
import { checkpointToProto, exportJobToProto } from "../convert.js";
import type { CheckpointRow, ExportJobRow, ExportJobState } from "../storage/tables.js";
import { originOf } from "./checkpoints.js";
import { type AuditDeps, caller, emit, type Tx } from "./common.js";
import { exportLog } from "./export.js";

const LEASE_MS = 60_000;
const MAC_PURPOSE = "audit-export-download";

/** Records an event about a job, carrying the job as it is now. */
async function emitJob(
  tx: Tx,
  schema: typeof ExportJobCreatedSchema | typeof ExportJobCanceledSchema | typeof ExportJobCompletedSchema,
  row: ExportJobRow,
): Promise<void> {
  await emit(tx, schema, { exportJob: exportJobToProto(row, {}) }, row.tenant_id, {
    type: "audit.export_job",
    id: row.id,
  });
}

function notFound(id: string): NotFoundError {
  return new NotFoundError("EXPORT_JOB_NOT_FOUND", `export job ${id} not found`);
}

/**
 * The API view of a job, with its checkpoint and (when done, unless `link` is false) a signed
 * download link. Pass the checkpoint when it was already read (a list reads them together).
 */
export async function jobView(
  deps: AuditDeps,
  row: ExportJobRow,
  options: { link?: boolean; checkpoint?: CheckpointRow | undefined } = {},
) {
  const checkpoint =
    options.checkpoint ??
    (row.checkpoint_id
      ? await withTenant(deps.db, row.tenant_id, (tx) =>
          tx.selectFrom("checkpoints").selectAll().where("id", "=", row.checkpoint_id!).executeTakeFirst(),
        )
      : undefined);
  let link: { downloadUrl: string; downloadExpires: Date } | undefined;
  if (options.link !== false && row.status === "succeeded" && row.expires_at && row.expires_at.getTime() > Date.now()) {
    link = { downloadUrl: downloadUrl(deps, row, row.expires_at), downloadExpires: row.expires_at };
  }
  return exportJobToProto(row, {
    checkpoint: checkpoint
      ? checkpointToProto(checkpoint, originOf(deps.settings.installation, row.tenant_id))
      : undefined,
    ...(link ?? {}),
  });
}

function downloadPath(tenantId: string, jobId: string): string {
  return `/v1/tenants/${tenantId}/auditExports/${jobId}:download`;
}

function downloadUrl(deps: AuditDeps, row: ExportJobRow, expires: Date): string {
  const exp = Math.floor(expires.getTime() / 1000);
  const signature = deps.box.mac(`${row.tenant_id}/${row.id}/${exp}`, MAC_PURPOSE);
  return `${deps.settings.publicUrl}${downloadPath(row.tenant_id, row.id)}?expires=${exp}&signature=${encodeURIComponent(signature)}`;
}

/** Queues an export job. */
export async function createExportJob(
  deps: AuditDeps,
  input: {
    tenantId: string;
    filter: AuditEntryFilter | undefined;
    format: "ndjson" | "csv";
    compression: "none" | "gzip";
    includeProofs: boolean;
    checkpointId: string;
  },
): Promise<ExportJobRow> {
  return withTenant(deps.db, input.tenantId, async (tx) => {
    if (input.checkpointId) {
      const cp = await tx
        .selectFrom("checkpoints")
        .select("id")
        .where("id", "=", input.checkpointId)
        .where("log_id", "=", input.tenantId)
        .executeTakeFirst();
      if (!cp) throw new NotFoundError("CHECKPOINT_NOT_FOUND", `checkpoint ${input.checkpointId} not found`);
    }
    const row = await tx
      .insertInto("export_jobs")
      .values({
        id: newId("exportJob"),
        tenant_id: input.tenantId,
        filter: JSON.stringify(input.filter ? toJson(AuditEntryFilterSchema, input.filter) : {}),
        format: input.format,
        compression: input.compression,
        include_proofs: input.includeProofs,
        checkpoint_id: input.checkpointId || null,
        status: "pending",
        creator_id: caller().id,
        lease_until: null,
        started_at: null,
        completed_at: null,
        expires_at: null,
        sha256: null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await emitJob(tx, ExportJobCreatedSchema, row);
    return row;
  });
}

/** One job of a tenant. */
export async function getExportJob(deps: AuditDeps, tenantId: string, id: string): Promise<ExportJobRow> {
  const row = await withTenant(deps.db, tenantId, (tx) =>
    tx.selectFrom("export_jobs").selectAll().where("id", "=", id).executeTakeFirst(),
  );
  if (!row) throw notFound(id);
  return row;
}

/** A page of a tenant's jobs, newest first. */
export async function listExportJobs(
  deps: AuditDeps,
  tenantId: string,
  q: { pageSize: number; pageToken: string; status: ExportJobState | undefined },
): Promise<{ items: ExportJobRow[]; next: string; checkpoints: Map<string, CheckpointRow> }> {
  const size = pageSize(q.pageSize);
  const filters = { t: tenantId, s: q.status ?? "" };
  const after = decodePageToken(q.pageToken, filters);
  return withTenant(deps.db, tenantId, async (tx) => {
    let s = tx.selectFrom("export_jobs").selectAll();
    if (q.status) s = s.where("status", "=", q.status);
    if (after !== undefined) s = s.where("id", "<", after);
    const page = paginate(
      await s
        .orderBy("id", "desc")
        .limit(size + 1)
        .execute(),
      size,
      filters,
    );
    // The jobs' checkpoints in one read.
    const ids = [...new Set(page.items.flatMap((r) => (r.checkpoint_id ? [r.checkpoint_id] : [])))];
    const checkpoints = ids.length
      ? await tx.selectFrom("checkpoints").selectAll().where("id", "in", ids).execute()
      : [];
    return { ...page, checkpoints: new Map(checkpoints.map((c) => [c.id, c])) };
  });
}

/** Cancels a pending or running job; a finished one cannot be. */
export async function cancelExportJob(deps: AuditDeps, tenantId: string, id: string): Promise<ExportJobRow> {
  return withTenant(deps.db, tenantId, async (tx) => {
    const row = await tx.selectFrom("export_jobs").selectAll().where("id", "=", id).forUpdate().executeTakeFirst();
    if (!row) throw notFound(id);
    if (row.status !== "pending" && row.status !== "running") {
      throw new FailedPreconditionError("EXPORT_JOB_FINISHED", `export job ${id} is already ${row.status}`);
    }
    await tx.deleteFrom("export_chunks").where("job_id", "=", id).execute();
    const updated = await tx
      .updateTable("export_jobs")
      .set(() => ({
        status: "canceled",
        completed_at: new Date(),
        lease_until: null,
        revision: sql`revision + 1`,
      }))
      .where("id", "=", id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await emitJob(tx, ExportJobCanceledSchema, updated);
    return updated;
  });
}

/** Claims the oldest job that is pending or whose worker's lease ran out. */
async function claim(deps: AuditDeps): Promise<ExportJobRow | undefined> {
  return withPlatform(deps.db, async (tx) => {
    const next = await tx
      .selectFrom("export_jobs")
      .select("id")
      .where((eb) =>
        eb.or([
          eb("status", "=", "pending"),
          eb.and([eb("status", "=", "running"), eb("lease_until", "<", new Date())]),
        ]),
      )
      .orderBy("created_at")
      .limit(1)
      .forUpdate()
      .skipLocked()
      .executeTakeFirst();
    if (!next) return undefined;
    await tx.deleteFrom("export_chunks").where("job_id", "=", next.id).execute();
    return tx
      .updateTable("export_jobs")
      .set(() => ({
        status: "running",
        started_at: new Date(),
        lease_until: new Date(Date.now() + LEASE_MS),
        entries_exported: 0,
        revision: sql`revision + 1`,
      }))
      .where("id", "=", next.id)
      .returningAll()
      .executeTakeFirstOrThrow();
  });
}

class Canceled extends Error {}

/** Runs one claimed job to its end (succeeded, failed or canceled). */
async function run(deps: AuditDeps, job: ExportJobRow): Promise<void> {
  const t = job.tenant_id;
  let seq = 0;
  let size = 0;
  const gzip = job.compression === "gzip";
  const fileSha = createHash("sha256");
  const store = async (bytes: Uint8Array, exported: number) => {
    const data = gzip ? gzipSync(bytes) : bytes;
    fileSha.update(data);
    size += data.length;
    await withTenant(deps.db, t, async (tx) => {
      const current = await tx
        .selectFrom("export_jobs")
        .select("status")
        .where("id", "=", job.id)
        .forUpdate()
        .executeTakeFirst();
      if (current?.status !== "running") throw new Canceled();
      await tx.insertInto("export_chunks").values({ job_id: job.id, seq: seq++, tenant_id: t, data }).execute();
      await tx
        .updateTable("export_jobs")
        .set({ entries_exported: exported, size_bytes: size, lease_until: new Date(Date.now() + LEASE_MS) })
        .where("id", "=", job.id)
        .execute();
    });
  };
  try {
    const filter =
      job.filter && Object.keys(job.filter as object).length > 0
        ? fromJson(AuditEntryFilterSchema, job.filter as JsonValue)
        : undefined;
    let exported = 0;
    for await (const part of exportLog(
      deps,
      t,
      {
        filter,
        format: job.format,
        checkpointId: job.checkpoint_id ?? undefined,
        includeProofs: job.include_proofs,
      },
      (n) => {
        exported = n;
      },
    )) {
      if (part.kind === "header") {
        await withTenant(deps.db, t, (tx) =>
          tx
            .updateTable("export_jobs")
            .set({ checkpoint_id: part.checkpoint.id, entries_total: part.estimatedCount })
            .where("id", "=", job.id)
            .execute(),
        );
      } else if (part.kind === "data") {
        await store(part.bytes, exported);
      } else {
        await withTenant(deps.db, t, async (tx) => {
          const done = await tx
            .updateTable("export_jobs")
            .set(() => ({
              status: "succeeded",
              entries_exported: part.entryCount,
              entries_total: part.entryCount,
              size_bytes: size,
              sha256: fileSha.digest(),
              completed_at: new Date(),
              expires_at: new Date(Date.now() + deps.settings.exportTtlMs),
              lease_until: null,
              revision: sql`revision + 1`,
            }))
            .where("id", "=", job.id)
            .where("status", "=", "running")
            .returningAll()
            .executeTakeFirst();
          if (!done) throw new Canceled();
          await emitJob(tx, ExportJobCompletedSchema, done);
        });
      }
    }
  } catch (err) {
    if (err instanceof Canceled) return;
    deps.logger.error({ err, job: job.id }, "export job failed");
    await withTenant(deps.db, t, async (tx) => {
      await tx.deleteFrom("export_chunks").where("job_id", "=", job.id).execute();
      const failed = await tx
        .updateTable("export_jobs")
        .set(() => ({
          status: "failed",
          error: err instanceof Error ? err.message.slice(0, 500) : "export failed",
          completed_at: new Date(),
          lease_until: null,
          revision: sql`revision + 1`,
        }))
        .where("id", "=", job.id)
        .where("status", "=", "running")
        .returningAll()
        .executeTakeFirst();
      if (failed) {
        await emitJob(tx, ExportJobCompletedSchema, failed);
      }
    });
  }
}

/** Runs queued jobs until none is left; returns how many ran. */
export async function runExportJobs(deps: AuditDeps): Promise<number> {
  let ran = 0;
  for (let job = await claim(deps); job; job = await claim(deps)) {
    await run(deps, job);
    ran++;
  }
  return ran;
}

/** Removes the files of expired jobs. */
export async function expireExportJobs(deps: AuditDeps, now = new Date()): Promise<number> {
  return withPlatform(deps.db, async (tx) => {
    const res = await sql<{ n: string }>`
      WITH gone AS (
        DELETE FROM export_chunks c USING export_jobs j
        WHERE c.job_id = j.id AND j.expires_at < ${now}
        RETURNING c.job_id)
      SELECT count(DISTINCT job_id)::text AS n FROM gone`.execute(tx);
    return Number(res.rows[0]?.n ?? 0);
  });
}

/** The download route of finished export jobs (signed links). */
export function exportDownloadRoute(deps: AuditDeps, logger: Logger): HttpRoute {
  const pattern = /^\/v1\/tenants\/(ten_[0-9a-z]{26})\/auditExports\/(exp_[0-9a-z]{26}):download$/;
  return async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const m = pattern.exec(url.pathname);
    if (!m || req.method !== "GET") return false;
    const [, tenantId, jobId] = m as unknown as [string, string, string];
    const exp = Number(url.searchParams.get("expires") ?? "");
    const signature = url.searchParams.get("signature") ?? "";
    const refuse = (status: number, message: string) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify({ code: status === 404 ? "not_found" : "permission_denied", message }));
    };
    if (!Number.isSafeInteger(exp) || !deps.box.verifyMac(`${tenantId}/${jobId}/${exp}`, MAC_PURPOSE, signature)) {
      refuse(403, "the download link is not valid");
      return true;
    }
    if (exp * 1000 < Date.now()) {
      refuse(403, "the download link expired; get the export job again for a new one");
      return true;
    }
    try {
      const job = await withTenant(deps.db, tenantId, (tx) =>
        tx.selectFrom("export_jobs").selectAll().where("id", "=", jobId).executeTakeFirst(),
      );
      if (job?.status !== "succeeded") {
        refuse(404, `export job ${jobId} has no file`);
        return true;
      }
      const ext = `${job.format}${job.compression === "gzip" ? ".gz" : ""}`;
      res.writeHead(200, {
        "content-type":
          job.compression === "gzip" ? "application/gzip" : job.format === "csv" ? "text/csv" : "application/x-ndjson",
        "content-length": String(job.size_bytes),
        "content-disposition": `attachment; filename="audit-${tenantId}-${jobId}.${ext}"`,
        "x-content-sha256": Buffer.from(job.sha256 ?? []).toString("hex"),
      });
      let seq = 0;
      for (;;) {
        const chunks = await withTenant(deps.db, tenantId, (tx) =>
          tx
            .selectFrom("export_chunks")
            .select(["seq", "data"])
            .where("job_id", "=", jobId)
            .where("seq", ">=", seq)
            .orderBy("seq")
            .limit(16)
            .execute(),
        );
        for (const c of chunks) {
          if (!(res as NodeJS.WritableStream).write(c.data)) await new Promise((r) => res.once("drain", r));
          seq = c.seq + 1;
        }
        if (chunks.length < 16) break;
      }
      res.end();
    } catch (err) {
      logger.error({ err, job: jobId }, "export download failed");
      if (!res.headersSent) refuse(500, "the download failed");
      else res.destroy();
    }
    return true;
  };
}
