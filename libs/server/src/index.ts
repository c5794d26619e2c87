/**
 * @packageDocumentation
 * The server side every UAB service shares: one bootstrap serving gRPC, gRPC-Web and
 * Connect with health and reflection, and the interceptors every RPC passes — request
 * context and tracing, error mapping, authentication, protovalidate validation,
 * permission enforcement from the proto's access option, and idempotency keys.
 */
export * from "./context-values.js";
export * from "./errors.js";
export * from "./fast-validation.js";
export * from "./gateway.js";
export * from "./health.js";
export * from "./idempotency.js";
export * from "./interceptors.js";
export * from "./module.js";
export * from "./reflection.js";
export * from "./server.js";
