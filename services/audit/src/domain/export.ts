/**
 * Exports of a log: the NDJSON or CSV file of docs/audit-export.md, produced as a sequence of
 * parts (a header naming the checkpoint, data chunks, a trailer with counts and the SHA-256),
 * so the streaming RPC and the export jobs share one implementation.
 *
 * Every export is pinned to a signed checkpoint (the one asked for, else the latest when it
 * covers the whole log, else a new one): entries beyond its tree size are left out. An export
 * of every entry from a start index to the checkpoint is "complete" and verifies as a whole
 * (boundary frontier + chain); any other selection carries an inclusion proof per entry
 * (NDJSON) so each exported entry is proven on its own.
 */
import { createHash } from "node:crypto";
import { clone, create, toJson } from "@bufbuild/protobuf";
import { type AuditEntryFilter, AuditEntryFilterSchema } from "@uab/proto/gen/uab/audit/v1/audit_entry_pb.js";
import { AuditEntryOrder } from "@uab/proto/gen/uab/audit/v1/audit_service_pb.js";
import {
  CsvExportWriter,
  type ExportBoundary,
  type ExportEntryInput,
  inclusionProof,
  type JsonValue,
  MerkleFrontier,
  NdjsonExportWriter,
} from "@uab/tlog";
import type { CheckpointRow } from "../storage/tables.js";
import { createCheckpoint, getCheckpoint, originOf } from "./checkpoints.js";
import { type AuditDeps, inLog } from "./common.js";
import { rangeHasher } from "./proofs.js";
import { searchEntries } from "./search.js";

/** What to export. */
export interface ExportRequest {
  readonly filter?: AuditEntryFilter | undefined;
  readonly format: "ndjson" | "csv";
  readonly checkpointId?: string | undefined;
  readonly includeProofs: boolean;
}

/** One part of an export. */
export type ExportPart =
  | { kind: "header"; checkpoint: CheckpointRow; estimatedCount: number; contentType: string }
  | { kind: "data"; bytes: Uint8Array }
  | {
      kind: "trailer";
      entryCount: number;
      byteCount: number;
      sha256: Uint8Array;
      firstIndex?: number;
      lastIndex?: number;
    };

/** Content types by format. */
export const CONTENT_TYPES = { ndjson: "application/x-ndjson", csv: "text/csv; charset=utf-8" } as const;

const CHUNK = 64 * 1024;
const PAGE = 1000;

/** Whether a filter selects anything beyond an index range. */
function selective(f: AuditEntryFilter | undefined): boolean {
  if (!f) return false;
  return Boolean(
    f.actorId ||
      f.impersonatorId ||
      f.principalType ||
      f.eventTypes.length ||
      f.actions.length ||
      f.resourceType ||
      f.resourceId ||
      f.outcome ||
      f.ipAddress ||
      f.startTime ||
      f.endTime ||
      f.query ||
      f.requestId ||
      f.sessionId,
  );
}

/** The checkpoint an export is pinned to. */
async function pin(deps: AuditDeps, logId: string, checkpointId: string | undefined): Promise<CheckpointRow> {
  if (checkpointId) return getCheckpoint(deps.db, logId, checkpointId);
  return createCheckpoint(deps.db, deps.keys, deps.settings.installation, logId, "export", { reuse: true });
}

/**
 * Produces an export of a log. Reads the log in pages of 1,000 entries; memory stays bounded
 * by one page plus, when proofs are included, the leaf hashes of the checkpoint's tree.
 */
export async function* exportLog(
  deps: AuditDeps,
  logId: string,
  request: ExportRequest,
  onProgress?: (exported: number) => Promise<void> | void,
): AsyncGenerator<ExportPart> {
  const checkpoint = await pin(deps, logId, request.checkpointId);
  const size = Number(checkpoint.tree_size);
  const f = request.filter;
  const prepared = await inLog(deps.db, logId, async (tx) => {
    const head = await tx
      .selectFrom("logs")
      .select(["first_index", "boundary_chain_hash", "boundary_frontier"])
      .where("id", "=", logId)
      .executeTakeFirst();
    const first = Number(head?.first_index ?? 0);
    const start = Math.min(size, Math.max(first, Number(f?.startIndex ?? 0)));
    const end = Math.max(start, Math.min(size, f?.endIndex !== undefined ? Number(f.endIndex) : size));
    const complete = !selective(f) && end === size;
    const proofs = request.format === "ndjson" && (request.includeProofs || !complete);
    let boundary: ExportBoundary | null = null;
    if (complete) {
      const frontier = MerkleFrontier.from({ size: first, hashes: head?.boundary_frontier ?? [] });
      let previous = first > 0 && head?.boundary_chain_hash ? head.boundary_chain_hash : new Uint8Array(32);
      if (start > first) {
        const rows = await tx
          .selectFrom("entries")
          .select(["leaf_hash", "chain_hash"])
          .where("log_id", "=", logId)
          .where("idx", ">=", String(first))
          .where("idx", "<", String(start))
          .orderBy("idx")
          .execute();
        for (const r of rows) frontier.append(r.leaf_hash);
        previous = rows[rows.length - 1]?.chain_hash ?? previous;
      }
      boundary = { startIndex: start, previousChainHash: previous, frontier: frontier.hashes };
    }
    const hasher = proofs && size > 0 ? (await rangeHasher(tx, logId, size)).hasher : undefined;
    return { start, end, complete, boundary, hasher };
  });
  const contentType = CONTENT_TYPES[request.format];
  yield { kind: "header", checkpoint, estimatedCount: prepared.end - prepared.start, contentType };

  const sha = createHash("sha256");
  let pending: string[] = [];
  let pendingBytes = 0;
  let byteCount = 0;
  const take = (): Uint8Array => {
    const bytes = Buffer.from(pending.join(""), "utf8");
    pending = [];
    pendingBytes = 0;
    sha.update(bytes);
    byteCount += bytes.length;
    return bytes;
  };
  const push = (line: string) => {
    pending.push(line);
    pendingBytes += line.length;
  };
  const ndjson = request.format === "ndjson" ? new NdjsonExportWriter() : undefined;
  const csv = request.format === "csv" ? new CsvExportWriter() : undefined;
  if (ndjson) {
    push(
      ndjson.header({
        log: logId,
        origin: originOf(deps.settings.installation, logId),
        checkpoint: {
          id: checkpoint.id,
          treeSize: size,
          rootHash: checkpoint.root_hash,
          chainHash: checkpoint.chain_hash,
          keyId: checkpoint.key_id,
          note: checkpoint.note,
        },
        complete: prepared.complete,
        boundary: prepared.boundary,
        filter: f && selective(f) ? (toJson(AuditEntryFilterSchema, f) as JsonValue) : null,
        createTime: new Date(),
      }),
    );
  } else {
    push(csv!.header());
  }
  let count = 0;
  let firstIndex: number | undefined;
  let lastIndex: number | undefined;
  if (prepared.end > prepared.start) {
    const range = f ? clone(AuditEntryFilterSchema, f) : create(AuditEntryFilterSchema);
    range.startIndex = BigInt(prepared.start);
    range.endIndex = BigInt(prepared.end);
    let token = "";
    do {
      const page = await searchEntries(deps.db, logId, range, AuditEntryOrder.OLDEST_FIRST, PAGE, token);
      for (const r of page.items) {
        const index = Number(r.idx);
        const entry: ExportEntryInput = {
          index,
          id: r.id,
          canonical: r.canonical,
          leafHash: r.leaf_hash,
          previousChainHash: r.prev_chain_hash,
          chainHash: r.chain_hash,
          ...(prepared.hasher ? { inclusionProof: inclusionProof(index, size, prepared.hasher) } : {}),
        };
        push(ndjson ? ndjson.entry(entry) : csv!.entry(entry));
        count++;
        firstIndex ??= index;
        lastIndex = index;
        if (pendingBytes >= CHUNK) yield { kind: "data", bytes: take() };
      }
      token = page.next;
      await onProgress?.(count);
    } while (token);
  }
  if (ndjson) push(ndjson.trailer());
  if (pendingBytes > 0) yield { kind: "data", bytes: take() };
  yield {
    kind: "trailer",
    entryCount: count,
    byteCount,
    sha256: sha.digest(),
    ...(firstIndex !== undefined ? { firstIndex, lastIndex: lastIndex! } : {}),
  };
}
