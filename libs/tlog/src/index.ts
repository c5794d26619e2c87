/**
 * @packageDocumentation
 * Tamper-evident log primitives for the audit service and its offline verifier:
 *
 * - merkle.ts: RFC 9162 Merkle tree heads, inclusion and consistency proofs and their
 *   verification, and the incremental {@link MerkleFrontier};
 * - canonical.ts: RFC 8785 canonical JSON, the bytes an entry's leaf hash is taken over;
 * - chain.ts: the per-log hash chain `SHA-256(previous ‖ leaf)` and entry leaf hashes;
 * - note.ts: checkpoints as C2SP signed notes with Ed25519 keys (golang.org/x/mod/sumdb/note
 *   compatible);
 * - verify.ts: offline verification of a log against a checkpoint, naming the first changed,
 *   removed, inserted or reordered entry;
 * - export.ts: audit exports (NDJSON and CSV writers, the `chain-hash` checkpoint extension)
 *   and their offline verification (docs/audit-export.md), behind `uab audit verify`.
 *
 * Hashes are 32-byte Uint8Arrays; indexes and tree sizes are numbers (safe integers; convert
 * protobuf int64 bigints with `Number()`).
 */
export * from "./canonical.js";
export * from "./chain.js";
export * from "./export.js";
export * from "./merkle.js";
export * from "./note.js";
export * from "./verify.js";
