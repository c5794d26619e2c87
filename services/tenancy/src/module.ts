import type { ServiceImpl } from "@connectrpc/connect";
import { env as field, loadConfig } from "@uab/core";
import { createDatabase, serviceRoles } from "@uab/db";
import { startOutboxRelay } from "@uab/events";
import { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { purgeExpiredIdempotencyKeys, type ServiceModule, type ServiceRegistration } from "@uab/server";
import { sql } from "kysely";
import { migrations } from "../migrations/index.js";
import { PROJECTS, purgeChildren, TEAMS } from "./domain/children.js";
import type { TenancyDeps } from "./domain/common.js";
import { TenantCache } from "./domain/tenant-cache.js";
import { purgeTenants } from "./domain/tenants.js";
import { membershipHandlers } from "./handlers/memberships.js";
import { projectHandlers } from "./handlers/projects.js";
import { teamHandlers } from "./handlers/teams.js";
import { tenantHandlers } from "./handlers/tenants.js";
import type { TenancyDatabase } from "./storage/tables.js";

/** Tenancy's own settings. */
export const tenancyConfig = {
  UAB_TENANCY_RESTORE_WINDOW_DAYS: field.int("days a deleted tenant, project or team stays restorable", 30, 1, 3650),
  UAB_TENANCY_TENANT_CACHE_TTL_MS: field.int(
    "how long GetTenant may serve a tenant from this process's cache; bounds staleness after a write on another replica (0 disables)",
    2000,
    0,
    60_000,
  ),
  UAB_TENANCY_PURGE_INTERVAL_SECONDS: field.int(
    "how often purges and expired idempotency keys are swept",
    300,
    1,
    86_400,
  ),
};

/** The TenancyService implementation over its dependencies. */
export function createTenancyService(deps: TenancyDeps): ServiceImpl<typeof TenancyService> {
  return { ...tenantHandlers(deps), ...projectHandlers(deps), ...teamHandlers(deps), ...membershipHandlers(deps) };
}

/** Runs every purge once (tenants, projects, teams past their window; expired idempotency keys). */
export async function sweep(deps: TenancyDeps, now = new Date()): Promise<void> {
  await purgeTenants(deps, now);
  await purgeChildren(deps, PROJECTS, now);
  await purgeChildren(deps, TEAMS, now);
  await purgeExpiredIdempotencyKeys(deps.db as never);
}

/** The tenancy service module. */
export const tenancyModule: ServiceModule = {
  name: "tenancy",
  migrations,
  async start(ctx) {
    const config = loadConfig(tenancyConfig, ctx.env);
    const logger = ctx.logger.child({ module: "tenancy" });
    const database = createDatabase<TenancyDatabase>({
      url: ctx.databaseUrl,
      schema: "tenancy",
      role: ctx.databaseRole,
      max: ctx.poolSize ?? 10,
      logger,
    });
    const deps: TenancyDeps = {
      db: database.db,
      restoreWindowMs: config.UAB_TENANCY_RESTORE_WINDOW_DAYS * 86_400_000,
      tenantCache: new TenantCache(config.UAB_TENANCY_TENANT_CACHE_TTL_MS),
    };
    const relay = await startOutboxRelay({ db: database.db, pool: database.pool, bus: ctx.bus, logger });
    const sweeper = setInterval(() => {
      sweep(deps).catch((err) => logger.error({ err }, "tenancy sweep failed"));
    }, config.UAB_TENANCY_PURGE_INTERVAL_SECONDS * 1000);
    sweeper.unref();
    return {
      services: [
        {
          service: TenancyService,
          impl: createTenancyService(deps),
          db: database.db,
        } as unknown as ServiceRegistration,
      ],
      readiness: [
        async () => {
          await sql`select 1`.execute(database.db);
        },
      ],
      async close() {
        clearInterval(sweeper);
        await relay.stop();
        await database.close();
      },
    };
  },
};

/** The runtime role name of the tenancy service. */
export const tenancyRoles = serviceRoles("tenancy");
