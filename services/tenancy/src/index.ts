/**
 * @packageDocumentation
 * The tenancy service: tenants, projects, teams, memberships and attribute schemas.
 */
export { migrations as tenancyMigrations } from "../migrations/index.js";
export type { TenancyDeps } from "./domain/common.js";
export { createTenancyService, sweep, tenancyConfig, tenancyModule, tenancyRoles } from "./module.js";
export type { TenancyDatabase } from "./storage/tables.js";
