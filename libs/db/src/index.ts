/**
 * @packageDocumentation
 * PostgreSQL access for UAB services: one pool + Kysely per service with its schema and
 * runtime role, tenant-scoped transactions that row-level security relies on, and the
 * migration entry point that creates each service's schema, roles and tables.
 */
export * from "./migrate.js";
export * from "./pagination.js";
export * from "./pool.js";
export * from "./tenant.js";
