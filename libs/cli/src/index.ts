/**
 * @packageDocumentation
 * The `uab` command: `uab dev` (all services, one process), `uab serve` (production) and
 * `uab migrate`, plus the module host they share.
 */
export { devConfig, runDev } from "./dev.js";
export { type Host, type HostOptions, hostModules } from "./host.js";
export { runMigrate } from "./migrate.js";
export { MODULES, selectModules } from "./modules.js";
export { runServe, serveConfig } from "./serve.js";
