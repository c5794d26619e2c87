/**
 * @packageDocumentation
 * What every UAB service shares below the RPC layer: prefixed sortable ids, typed
 * configuration, the request context, JSON logging with redaction, domain errors and
 * OpenTelemetry helpers.
 */
export * from "./config.js";
export * from "./context.js";
export * from "./errors.js";
export * from "./ids.js";
export * from "./logger.js";
export * from "./secret-box.js";
export * from "./telemetry.js";
