/**
 * @packageDocumentation
 * Domain events for UAB services: the transactional outbox (`appendEvent` in the change's
 * transaction), the relay that moves outbox rows to the bus, the bus itself (NATS
 * JetStream, or in-process without NATS) and the inbox that makes consumers idempotent.
 */
export * from "./bus.js";
export * from "./inbox.js";
export * from "./inprocess.js";
export * from "./jetstream.js";
export * from "./migrations.js";
export * from "./outbox.js";
export * from "./relay.js";
export * from "./subjects.js";
