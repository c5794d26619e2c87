import type { ServiceImpl } from "@connectrpc/connect";
import type { AuditService } from "@uab/proto/gen/uab/audit/v1/audit_service_pb.js";
import {
  AuditStreamDeliveryStatus,
  AuditStreamPayloadFormat,
  AuditStreamStatus,
} from "@uab/proto/gen/uab/audit/v1/audit_stream_pb.js";
import { ExportCompression, ExportFormat } from "@uab/proto/gen/uab/audit/v1/export_job_pb.js";
import type { EndpointBreakers } from "@uab/webhooks";
import { deliveryToProto, JOB_STATES } from "../convert.js";
import type { AuditDeps } from "../domain/common.js";
import { cancelExportJob, createExportJob, getExportJob, jobView, listExportJobs } from "../domain/export-jobs.js";
import { getRetention, updateRetention } from "../domain/retention.js";
import { sendTest } from "../domain/stream-worker.js";
import {
  createStream,
  deleteStream,
  getStream,
  listDeliveries,
  listStreams,
  loadStream,
  pauseStream,
  resumeStream,
  rotateStreamSecret,
  type StreamFields,
  updateStream,
} from "../domain/streams.js";
import { msOf } from "./log.js";

type Impl = ServiceImpl<typeof AuditService>;

const STATUS = {
  [AuditStreamStatus.ACTIVE]: "active",
  [AuditStreamStatus.PAUSED]: "paused",
  [AuditStreamStatus.FAILING]: "failing",
} as const;

/** Defaults of a new stream. */
const DEFAULT_BATCH = 100;
const DEFAULT_FLUSH_MS = 5000;

function fields(req: {
  displayName: string;
  endpointUrl: string;
  eventTypes: string[];
  payloadFormat: AuditStreamPayloadFormat;
  batchSize: number;
  flushInterval?: Parameters<typeof msOf>[0];
  headers: Record<string, string>;
}): StreamFields {
  return {
    displayName: req.displayName,
    endpointUrl: req.endpointUrl,
    eventTypes: req.eventTypes,
    payloadFormat: req.payloadFormat === AuditStreamPayloadFormat.NDJSON ? "ndjson" : "json",
    batchSize: req.batchSize || DEFAULT_BATCH,
    flushIntervalMs: msOf(req.flushInterval) || DEFAULT_FLUSH_MS,
    headers: req.headers,
  };
}

/** Streams, export jobs and retention. */
export function streamHandlers(
  deps: AuditDeps,
  breakers: EndpointBreakers,
): Pick<
  Impl,
  | "createAuditStream"
  | "getAuditStream"
  | "listAuditStreams"
  | "updateAuditStream"
  | "deleteAuditStream"
  | "pauseAuditStream"
  | "resumeAuditStream"
  | "rotateAuditStreamSecret"
  | "listAuditStreamDeliveries"
  | "sendTestAuditStreamEvent"
  | "createExportJob"
  | "getExportJob"
  | "listExportJobs"
  | "cancelExportJob"
  | "getRetentionPolicy"
  | "updateRetentionPolicy"
> {
  return {
    async createAuditStream(req) {
      const { view, secret } = await createStream(
        deps,
        req.tenantId,
        fields(req),
        req.startIndex !== undefined ? Number(req.startIndex) : undefined,
      );
      return { auditStream: view, signingSecret: secret };
    },
    async getAuditStream(req) {
      return { auditStream: await getStream(deps, req.tenantId, req.auditStreamId) };
    },
    async listAuditStreams(req) {
      const page = await listStreams(deps, req.tenantId, {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        status: req.status ? STATUS[req.status as keyof typeof STATUS] : undefined,
      });
      return { auditStreams: page.items, nextPageToken: page.next };
    },
    async updateAuditStream(req) {
      const view = await updateStream(
        deps,
        req.tenantId,
        req.auditStreamId,
        fields(req),
        req.updateMask!.paths,
        req.etag,
      );
      return { auditStream: view };
    },
    async deleteAuditStream(req) {
      await deleteStream(deps, req.tenantId, req.auditStreamId, req.etag);
      return {};
    },
    async pauseAuditStream(req) {
      return { auditStream: await pauseStream(deps, req.tenantId, req.auditStreamId) };
    },
    async resumeAuditStream(req) {
      return { auditStream: await resumeStream(deps, req.tenantId, req.auditStreamId, req.skipBacklog) };
    },
    async rotateAuditStreamSecret(req) {
      const { view, secret } = await rotateStreamSecret(
        deps,
        req.tenantId,
        req.auditStreamId,
        req.overlap ? msOf(req.overlap) : 86_400_000,
      );
      return { auditStream: view, signingSecret: secret };
    },
    async listAuditStreamDeliveries(req) {
      const page = await listDeliveries(deps, req.tenantId, req.auditStreamId, {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        status:
          req.status === AuditStreamDeliveryStatus.SUCCEEDED
            ? "succeeded"
            : req.status === AuditStreamDeliveryStatus.FAILED
              ? "failed"
              : undefined,
      });
      return { deliveries: page.items.map(deliveryToProto), nextPageToken: page.next };
    },
    async sendTestAuditStreamEvent(req) {
      const row = await loadStream(deps, req.tenantId, req.auditStreamId);
      return { delivery: deliveryToProto(await sendTest(deps, breakers, row)) };
    },
    async createExportJob(req) {
      const row = await createExportJob(deps, {
        tenantId: req.tenantId,
        filter: req.filter,
        format: req.format === ExportFormat.CSV ? "csv" : "ndjson",
        compression: req.compression === ExportCompression.GZIP ? "gzip" : "none",
        includeProofs: req.includeInclusionProofs,
        checkpointId: req.checkpointId,
      });
      return { exportJob: await jobView(deps, row) };
    },
    async getExportJob(req) {
      return { exportJob: await jobView(deps, await getExportJob(deps, req.tenantId, req.exportJobId)) };
    },
    async listExportJobs(req) {
      const page = await listExportJobs(deps, req.tenantId, {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        status: req.status ? JOB_STATES[req.status] : undefined,
      });
      return {
        exportJobs: await Promise.all(
          page.items.map((r) =>
            jobView(deps, r, {
              link: false,
              checkpoint: r.checkpoint_id ? page.checkpoints.get(r.checkpoint_id) : undefined,
            }),
          ),
        ),
        nextPageToken: page.next,
      };
    },
    async cancelExportJob(req) {
      return { exportJob: await jobView(deps, await cancelExportJob(deps, req.tenantId, req.exportJobId)) };
    },
    async getRetentionPolicy(req) {
      return { retentionPolicy: await getRetention(deps, req.tenantId) };
    },
    async updateRetentionPolicy(req) {
      const policy = await updateRetention(
        deps,
        req.tenantId,
        { retainDays: req.retainDays, legalHold: req.legalHold, legalHoldReason: req.legalHoldReason },
        req.updateMask!.paths,
        req.etag,
      );
      return { retentionPolicy: policy };
    },
  };
}
