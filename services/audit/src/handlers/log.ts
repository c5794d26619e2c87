import { create } from "@bufbuild/protobuf";
import { durationMs, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { NotFoundError } from "@uab/core";
import { withPlatform } from "@uab/db";
import type { AuditService, ExportAuditEntriesResponse } from "@uab/proto/gen/uab/audit/v1/audit_service_pb.js";
import { CheckpointCreatedSchema, SigningKeyRotatedSchema } from "@uab/proto/gen/uab/audit/v1/events_pb.js";
import { ExportFormat } from "@uab/proto/gen/uab/audit/v1/export_job_pb.js";
import { LogVerificationFailure, LogVerificationResultSchema } from "@uab/proto/gen/uab/audit/v1/verification_pb.js";
import { checkpointToProto, entryToProto, signingKeyToProto } from "../convert.js";
import { createCheckpoint, getCheckpoint, latestCheckpoint, listCheckpoints, originOf } from "../domain/checkpoints.js";
import { type AuditDeps, emit, inLog } from "../domain/common.js";
import { exportLog } from "../domain/export.js";
import { consistency, inclusion } from "../domain/proofs.js";
import { searchEntries } from "../domain/search.js";
import { recordVerificationFailure, verifyStoredLog } from "../domain/verify.js";
import type { CheckpointRow } from "../storage/tables.js";

type Impl = ServiceImpl<typeof AuditService>;

const FAILURES = {
  changed: LogVerificationFailure.CHANGED,
  removed: LogVerificationFailure.REMOVED,
  inserted: LogVerificationFailure.INSERTED,
  reordered: LogVerificationFailure.REORDERED,
  bad_signature: LogVerificationFailure.BAD_SIGNATURE,
  root_mismatch: LogVerificationFailure.ROOT_MISMATCH,
  inconsistent_checkpoint: LogVerificationFailure.INCONSISTENT_CHECKPOINT,
} as const;

/** Entries, exports, checkpoints, proofs, verification and keys. */
export function logHandlers(
  deps: AuditDeps,
): Pick<
  Impl,
  | "searchAuditEntries"
  | "getAuditEntry"
  | "exportAuditEntries"
  | "searchPlatformAuditEntries"
  | "exportPlatformAuditEntries"
  | "getLatestPlatformCheckpoint"
  | "createCheckpoint"
  | "getCheckpoint"
  | "listCheckpoints"
  | "getLatestCheckpoint"
  | "getInclusionProof"
  | "getConsistencyProof"
  | "verifyLog"
  | "getPublicKeys"
  | "rotateSigningKey"
> {
  const origin = (logId: string) => originOf(deps.settings.installation, logId);
  const cp = (row: CheckpointRow, logId: string) => checkpointToProto(row, origin(logId));

  async function* exportParts(
    logId: string,
    req: {
      filter?: Parameters<typeof exportLog>[2]["filter"];
      format: ExportFormat;
      checkpointId: string;
      includeInclusionProofs: boolean;
    },
  ): AsyncGenerator<ExportAuditEntriesResponse> {
    const format = req.format === ExportFormat.CSV ? "csv" : "ndjson";
    for await (const part of exportLog(deps, logId, {
      filter: req.filter,
      format,
      checkpointId: req.checkpointId || undefined,
      includeProofs: req.includeInclusionProofs,
    })) {
      if (part.kind === "header") {
        yield {
          part: {
            case: "header",
            value: {
              format: req.format,
              contentType: part.contentType,
              checkpoint: cp(part.checkpoint, logId),
              estimatedEntryCount: BigInt(part.estimatedCount),
            },
          },
        } as ExportAuditEntriesResponse;
      } else if (part.kind === "data") {
        yield { part: { case: "data", value: part.bytes } } as ExportAuditEntriesResponse;
      } else {
        yield {
          part: {
            case: "trailer",
            value: {
              entryCount: BigInt(part.entryCount),
              byteCount: BigInt(part.byteCount),
              sha256: part.sha256,
              ...(part.firstIndex !== undefined
                ? { firstIndex: BigInt(part.firstIndex), lastIndex: BigInt(part.lastIndex!) }
                : {}),
            },
          },
        } as ExportAuditEntriesResponse;
      }
    }
  }

  return {
    async searchAuditEntries(req) {
      const page = await searchEntries(deps.db, req.tenantId, req.filter, req.order, req.pageSize, req.pageToken);
      return { entries: page.items.map(entryToProto), nextPageToken: page.next };
    },
    async searchPlatformAuditEntries(req) {
      const page = await searchEntries(deps.db, "platform", req.filter, req.order, req.pageSize, req.pageToken);
      return { entries: page.items.map(entryToProto), nextPageToken: page.next };
    },
    async getAuditEntry(req) {
      const row = await inLog(deps.db, req.tenantId, (tx) =>
        tx
          .selectFrom("entries")
          .selectAll()
          .where("log_id", "=", req.tenantId)
          .where("id", "=", req.entryId)
          .executeTakeFirst(),
      );
      if (!row) throw new NotFoundError("AUDIT_ENTRY_NOT_FOUND", `audit entry ${req.entryId} not found`);
      return { entry: entryToProto(row) };
    },
    exportAuditEntries(req) {
      return exportParts(req.tenantId, req);
    },
    exportPlatformAuditEntries(req) {
      return exportParts("platform", req) as never;
    },
    async getLatestPlatformCheckpoint() {
      return { checkpoint: cp(await latestCheckpoint(deps.db, "platform"), "platform") };
    },
    async createCheckpoint(req) {
      const row = await createCheckpoint(deps.db, deps.keys, deps.settings.installation, req.tenantId, "on_demand", {
        reuse: true,
      });
      const checkpoint = cp(row, req.tenantId);
      if (row.created) {
        await inLog(deps.db, req.tenantId, (tx) =>
          emit(tx, CheckpointCreatedSchema, { checkpoint }, req.tenantId, { type: "audit.checkpoint", id: row.id }),
        );
      }
      return { checkpoint, created: row.created };
    },
    async getCheckpoint(req) {
      return { checkpoint: cp(await getCheckpoint(deps.db, req.tenantId, req.checkpointId), req.tenantId) };
    },
    async listCheckpoints(req) {
      const page = await listCheckpoints(deps.db, req.tenantId, {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        minTreeSize: Number(req.minTreeSize),
        start: req.startTime ? timestampDate(req.startTime) : undefined,
        end: req.endTime ? timestampDate(req.endTime) : undefined,
      });
      return { checkpoints: page.items.map((r) => cp(r, req.tenantId)), nextPageToken: page.next };
    },
    async getLatestCheckpoint(req) {
      return { checkpoint: cp(await latestCheckpoint(deps.db, req.tenantId), req.tenantId) };
    },
    async getInclusionProof(req) {
      const leaf =
        req.leaf.case === "index" ? { index: Number(req.leaf.value) } : { leafHash: req.leaf.value as Uint8Array };
      const p = await inclusion(deps.db, req.tenantId, leaf, Number(req.treeSize));
      return {
        index: BigInt(p.index),
        leafHash: p.leafHash,
        treeSize: BigInt(p.treeSize),
        auditPath: p.path,
        checkpoint: cp(p.checkpoint, req.tenantId),
      };
    },
    async getConsistencyProof(req) {
      const p = await consistency(deps.db, req.tenantId, Number(req.firstTreeSize), Number(req.secondTreeSize));
      return {
        firstTreeSize: BigInt(p.first),
        secondTreeSize: BigInt(p.second),
        proof: p.proof,
        checkpoint: cp(p.checkpoint, req.tenantId),
      };
    },
    async verifyLog(req) {
      const v = await verifyStoredLog(deps.db, req.tenantId, deps.settings.installation, req.checkpointId, {
        start: Number(req.startIndex),
        end: Number(req.endIndex),
      });
      const result = create(LogVerificationResultSchema, {
        ok: v.ok,
        tenantId: req.tenantId,
        startIndex: BigInt(v.startIndex),
        endIndex: BigInt(v.endIndex),
        verifiedCount: BigInt(v.verifiedCount),
        ...(v.firstBadIndex !== undefined ? { firstBadIndex: BigInt(v.firstBadIndex) } : {}),
        failure: v.failure ? FAILURES[v.failure] : LogVerificationFailure.UNSPECIFIED,
        detail: v.detail ?? "",
        checkpoint: cp(v.checkpoint, req.tenantId),
        ...(v.computedRootHash ? { computedRootHash: v.computedRootHash } : {}),
        verifyTime: timestampFromDate(new Date()),
      });
      if (!v.ok) await recordVerificationFailure(deps.db, req.tenantId, deps.settings.installation, v, result);
      return { result };
    },
    async getPublicKeys(req) {
      const rows = await withPlatform(deps.db, (tx) => {
        let q = tx.selectFrom("signing_keys").selectAll();
        if (!req.includeRetired) q = q.where("status", "=", "active");
        return q.orderBy("created_at", "desc").execute();
      });
      return { keys: rows.map(signingKeyToProto) };
    },
    async rotateSigningKey(req) {
      const { active, retired } = await deps.keys.rotate(deps.db);
      const activeKey = signingKeyToProto(active);
      const retiredKey = retired ? signingKeyToProto(retired) : undefined;
      await withPlatform(deps.db, (tx) =>
        emit(tx, SigningKeyRotatedSchema, { activeKey, retiredKey, reason: req.reason }, null, {
          type: "audit.signing_key",
          id: active.key_id,
        }),
      );
      // Sign every log's head with the new key, so verifiers can move to it at once.
      const logs = await withPlatform(deps.db, (tx) =>
        tx.selectFrom("logs").select("id").where("size", ">", "0").execute(),
      );
      for (const { id } of logs)
        await createCheckpoint(deps.db, deps.keys, deps.settings.installation, id, "on_demand");
      return { activeKey, ...(retiredKey ? { retiredKey } : {}) };
    },
  };
}

/** Milliseconds of a proto duration (0 when unset). */
export function msOf(d: Parameters<typeof durationMs>[0] | undefined): number {
  return d ? durationMs(d) : 0;
}
