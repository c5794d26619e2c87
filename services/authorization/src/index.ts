/**
 * @packageDocumentation
 * The authorization service: the permission catalogue, system and custom roles, scoped and
 * time-bound bindings with CEL conditions, decisions (Check, BatchCheck, Explain, reverse
 * lookups), delegated grants, access requests with approvals, and the in-process
 * authorizer every hosted service's enforcement asks.
 */
export { migrations as authorizationMigrations } from "../migrations/index.js";
export type { AuthorizationDeps } from "./domain/common.js";
export { DenialRecorder, LocalAuthorizer } from "./domain/decisions.js";
export { Catalogue, type PermissionInfo } from "./engine/catalogue.js";
export { compileCondition } from "./engine/conditions.js";
export * from "./engine/evaluator.js";
export * from "./engine/model.js";
export { bindingDef, SnapshotStore, storedCondition } from "./engine/store.js";
export { buildSystemRoles, SYSTEM_ROLE, systemRoleId } from "./engine/system-roles.js";
export {
  authorizationConfig,
  authorizationModule,
  authorizationRoles,
  createAuthorizationService,
  sweep,
} from "./module.js";
export { RemoteAuthorizer, type RemoteAuthorizerOptions } from "./remote.js";
export type { AuthorizationDatabase } from "./storage/tables.js";
export { registerDecisionValidators } from "./validation.js";
