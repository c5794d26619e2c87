import { createLogger, env, loadConfig } from "@uab/core";
import { migrateService } from "@uab/db";
import { selectModules } from "./modules.js";

/** Migration settings. */
export const migrateConfig = {
  DATABASE_URL: env.string("PostgreSQL URL allowed to create roles and schemas"),
  UAB_SERVICES: env.optionalString("comma-separated services to migrate (default: all)"),
};

/**
 * `uab migrate [--service NAME] [--down]`: creates each service's schema and roles and runs
 * its migrations (or undoes the last one). Exits non-zero on failure.
 */
export async function runMigrate(
  args: string[],
  environment: Record<string, string | undefined> = process.env,
): Promise<void> {
  const config = loadConfig(migrateConfig, environment);
  const i = args.indexOf("--service");
  const names = i >= 0 ? args[i + 1] : config.UAB_SERVICES;
  const logger = createLogger({ service: "uab-migrate" });
  for (const m of selectModules(names, "--service")) {
    const password = environment[`UAB_${m.name.toUpperCase()}_DB_PASSWORD`];
    await migrateService({
      url: config.DATABASE_URL,
      service: m.name,
      migrations: m.migrations,
      direction: args.includes("--down") ? "down" : "latest",
      runtimePassword: password,
      logger,
    });
  }
}
