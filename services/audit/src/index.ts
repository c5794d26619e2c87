/**
 * @packageDocumentation
 * The audit service: a tamper-evident log per tenant (and one for the platform) fed by
 * every domain event, as a hash chain and an RFC 9162 Merkle tree with signed checkpoints;
 * proofs, verification, search, exports (streamed and as jobs), SIEM streams and retention.
 */
export { migrations as auditMigrations } from "../migrations/index.js";
export * from "./domain/append.js";
export * from "./domain/checkpoints.js";
export * from "./domain/common.js";
export * from "./domain/export.js";
export * from "./domain/export-jobs.js";
export * from "./domain/ingest.js";
export * from "./domain/proofs.js";
export * from "./domain/retention.js";
export * from "./domain/scheduler.js";
export * from "./domain/search.js";
export * from "./domain/stream-worker.js";
export * from "./domain/streams.js";
export * from "./domain/verify.js";
export { auditConfig, auditModule, auditRoles, createAuditService } from "./module.js";
export type { AuditDatabase, CheckpointRow, EntryRow, LogRow } from "./storage/tables.js";
