import type { ServiceImpl } from "@connectrpc/connect";
import { env as field, loadConfig } from "@uab/core";
import { createDatabase, serviceRoles } from "@uab/db";
import { startOutboxRelay } from "@uab/events";
import { AuthorizationService } from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import { purgeExpiredIdempotencyKeys, type ServiceModule, type ServiceRegistration } from "@uab/server";
import { sql } from "kysely";
import { migrations } from "../migrations/index.js";
import { sweepAccessRequests } from "./domain/access-requests.js";
import { sweepExpiredBindings } from "./domain/bindings.js";
import type { AuthorizationDeps } from "./domain/common.js";
import { DenialRecorder, LocalAuthorizer } from "./domain/decisions.js";
import { reconcileBootstrapBindings, startProjection } from "./domain/projection.js";
import { Catalogue } from "./engine/catalogue.js";
import { Evaluator } from "./engine/evaluator.js";
import { SnapshotStore } from "./engine/store.js";
import { buildSystemRoles, SYSTEM_ROLE } from "./engine/system-roles.js";
import { accessHandlers } from "./handlers/access.js";
import { bindingHandlers } from "./handlers/bindings.js";
import { decisionHandlers } from "./handlers/decisions.js";
import { roleHandlers } from "./handlers/roles.js";
import type { AuthorizationDatabase } from "./storage/tables.js";
import { registerDecisionValidators } from "./validation.js";

/** Authorization's own settings. */
export const authorizationConfig = {
  UAB_BOOTSTRAP_ADMIN_IDS: field.string(
    "comma-separated principal ids that hold platform-admin through a managed platform binding",
    "",
  ),
  UAB_SERVICE_ACCOUNT_IDS: field.string(
    "comma-separated service-account ids of UAB's own services (they get authorization-checker to ask for decisions)",
    "",
  ),
  UAB_TENANT_PROVISIONER_IDS: field.string(
    "comma-separated principal ids allowed to create tenants for sign-up (the identity service's own principal)",
    "",
  ),
  UAB_AUTHORIZATION_REFRESH_MS: field.int(
    "how often other replicas' authorization changes are polled for; bounds how stale a decision can be (0 disables)",
    500,
    0,
    60_000,
  ),
  UAB_AUTHORIZATION_MAX_TENANTS: field.int("tenants whose authorization data is kept in memory", 10_000, 1, 10_000_000),
  UAB_AUTHORIZATION_SWEEP_INTERVAL_SECONDS: field.int(
    "how often expired bindings and access requests are swept",
    30,
    1,
    86_400,
  ),
};

/** The AuthorizationService implementation over its dependencies. */
export function createAuthorizationService(deps: AuthorizationDeps): ServiceImpl<typeof AuthorizationService> {
  return { ...roleHandlers(deps), ...bindingHandlers(deps), ...decisionHandlers(deps), ...accessHandlers(deps) };
}

/** Runs every sweep once (expired bindings, expired access requests, idempotency keys). */
export async function sweep(deps: AuthorizationDeps, now = new Date()): Promise<void> {
  await sweepExpiredBindings(deps, now);
  await sweepAccessRequests(deps, now);
  await purgeExpiredIdempotencyKeys(deps.db as never);
}

/** The authorization service module; it also answers every hosted service's enforcement. */
export const authorizationModule: ServiceModule = {
  name: "authorization",
  migrations,
  async start(ctx) {
    const config = loadConfig(authorizationConfig, ctx.env);
    registerDecisionValidators();
    const logger = ctx.logger.child({ module: "authorization" });
    const database = createDatabase<AuthorizationDatabase>({
      url: ctx.databaseUrl,
      schema: "authorization",
      role: ctx.databaseRole,
      max: ctx.poolSize ?? 10,
      logger,
    });
    const catalogue = new Catalogue();
    const evaluator = new Evaluator(catalogue, buildSystemRoles(catalogue));
    const store = new SnapshotStore({
      db: database.db,
      logger,
      refreshMs: config.UAB_AUTHORIZATION_REFRESH_MS,
      maxTenants: config.UAB_AUTHORIZATION_MAX_TENANTS,
    });
    const deps: AuthorizationDeps = { db: database.db, catalogue, evaluator, store, logger };
    const ids = (list: string) =>
      list
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
    await reconcileBootstrapBindings(deps, [
      ...ids(config.UAB_BOOTSTRAP_ADMIN_IDS).map((principalId) => ({ principalId, roleId: SYSTEM_ROLE.platformAdmin })),
      ...ids(config.UAB_SERVICE_ACCOUNT_IDS).map((principalId) => ({
        principalId,
        roleId: SYSTEM_ROLE.authorizationChecker,
      })),
      ...ids(config.UAB_TENANT_PROVISIONER_IDS).map((principalId) => ({
        principalId,
        roleId: SYSTEM_ROLE.tenantProvisioner,
      })),
    ]);
    const denials = new DenialRecorder(deps, logger);
    const relay = await startOutboxRelay({ db: database.db, pool: database.pool, bus: ctx.bus, logger });
    const projection = await startProjection(deps, ctx.bus, logger);
    store.start();
    const sweeper = setInterval(() => {
      sweep(deps).catch((err) => logger.error({ err }, "authorization sweep failed"));
    }, config.UAB_AUTHORIZATION_SWEEP_INTERVAL_SECONDS * 1000);
    sweeper.unref();
    return {
      services: [
        {
          service: AuthorizationService,
          impl: createAuthorizationService(deps),
          db: database.db,
        } as unknown as ServiceRegistration,
      ],
      readiness: [
        async () => {
          await sql`select 1`.execute(database.db);
        },
      ],
      authorizer: new LocalAuthorizer(deps, denials),
      async close() {
        clearInterval(sweeper);
        store.stop();
        await projection.stop();
        await denials.close();
        await relay.stop();
        await database.close();
      },
    };
  },
};

/** The runtime role name of the authorization service. */
export const authorizationRoles = serviceRoles("authorization");
