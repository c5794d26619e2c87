import { readFileSync } from "node:fs";
import type { ServiceImpl } from "@connectrpc/connect";
import { env as field, type Logger, loadConfig, secretBoxField } from "@uab/core";
import { createDatabase, serviceRoles } from "@uab/db";
import { startOutboxRelay } from "@uab/events";
import { AuditService } from "@uab/proto/gen/uab/audit/v1/audit_service_pb.js";
import { purgeExpiredIdempotencyKeys, type ServiceModule, type ServiceRegistration } from "@uab/server";
import { EndpointBreakers } from "@uab/webhooks";
import { sql } from "kysely";
import { migrations } from "../migrations/index.js";
import { KeyRing, loadActiveKey } from "./domain/checkpoints.js";
import type { AuditDeps } from "./domain/common.js";
import { expireExportJobs, exportDownloadRoute, runExportJobs } from "./domain/export-jobs.js";
import { startIngestion } from "./domain/ingest.js";
import { purgeExpired } from "./domain/retention.js";
import { checkpointGrownLogs } from "./domain/scheduler.js";
import { deliverDueStreams } from "./domain/stream-worker.js";
import { logHandlers } from "./handlers/log.js";
import { streamHandlers } from "./handlers/streams.js";
import type { AuditDatabase } from "./storage/tables.js";

/** Audit's own settings. */
export const auditConfig = {
  UAB_AUDIT_ORIGIN: field.string(
    "this installation's name in checkpoint origins (`<origin>/<log id>`), e.g. the API's host name",
    "uab.local",
  ),
  UAB_AUDIT_SIGNING_KEY: field.optionalString(
    "the checkpoint signing key as a note private key (PRIVATE+KEY+<origin>+…); unset keeps a generated key in the database",
  ),
  UAB_ENCRYPTION_KEYS: secretBoxField(
    "key ring sealing secrets at rest and signing download links: comma-separated <key id>:<base64 of 32 bytes>, the first one active",
  ),
  UAB_AUDIT_CHECKPOINT_INTERVAL_SECONDS: field.int(
    "how often every log that grew gets a signed checkpoint",
    60,
    1,
    86_400,
  ),
  UAB_AUDIT_DEFAULT_RETAIN_DAYS: field.int(
    "how long a tenant's entries are kept when it set no retention policy (0: forever)",
    365,
    0,
    3650,
  ),
  UAB_AUDIT_RETENTION_INTERVAL_SECONDS: field.int("how often expired entries are purged", 3600, 1, 86_400),
  UAB_AUDIT_STREAM_POLL_MS: field.int("how often audit streams look for entries to deliver", 1000, 50, 60_000),
  UAB_AUDIT_STREAM_TIMEOUT_MS: field.int("time limit of one stream delivery attempt", 15_000, 100, 120_000),
  UAB_AUDIT_STREAM_FAILING_AFTER: field.int(
    "consecutive failed deliveries after which a stream is failing",
    5,
    1,
    1000,
  ),
  UAB_AUDIT_STREAM_ALLOW_PRIVATE_NETWORKS: field.bool(
    "let audit streams reach private, loopback and link-local addresses (an on-premises SIEM)",
    false,
  ),
  UAB_AUDIT_STREAM_CA_FILE: field.optionalString("PEM file of extra CA certificates trusted for stream endpoints"),
  UAB_AUDIT_EXPORT_TTL_HOURS: field.int("how long an export job's file can be downloaded", 168, 1, 8760),
  UAB_PUBLIC_URL: field.string("the API's public base URL, prefixed to download links (empty: relative links)", ""),
};

/** The AuditService implementation over its dependencies. */
export function createAuditService(deps: AuditDeps, breakers: EndpointBreakers): ServiceImpl<typeof AuditService> {
  return { ...logHandlers(deps), ...streamHandlers(deps, breakers) } as ServiceImpl<typeof AuditService>;
}

/** Runs `fn` every `ms` (never two at once); `poke()` runs it soon. */
class Loop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly name: string,
    private readonly ms: number,
    private readonly fn: () => Promise<unknown>,
    private readonly logger: Logger,
  ) {}

  start(): this {
    this.schedule(this.ms);
    return this;
  }

  poke(): void {
    if (this.stopped) return;
    if (this.running) this.again = true;
    else this.schedule(0);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), ms);
    this.timer.unref();
  }

  private tick(): void {
    if (this.stopped || this.running) return;
    this.running = this.fn()
      .then(
        () => undefined,
        (err) => this.logger.error({ err }, `${this.name} failed`),
      )
      .finally(() => {
        this.running = undefined;
        if (this.stopped) return;
        const again = this.again;
        this.again = false;
        this.schedule(again ? 0 : this.ms);
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}

/** The audit service module. */
export const auditModule: ServiceModule = {
  name: "audit",
  migrations,
  async start(ctx) {
    const config = loadConfig(auditConfig, ctx.env);
    const logger = ctx.logger.child({ module: "audit" });
    const database = createDatabase<AuditDatabase>({
      url: ctx.databaseUrl,
      schema: "audit",
      role: ctx.databaseRole,
      max: ctx.poolSize ?? 10,
      logger,
    });
    const configured = config.UAB_AUDIT_SIGNING_KEY
      ? await loadActiveKey(database.db, config.UAB_AUDIT_SIGNING_KEY, config.UAB_AUDIT_ORIGIN)
      : undefined;
    const keys = new KeyRing(configured, config.UAB_AUDIT_ORIGIN);
    const deps: AuditDeps = {
      db: database.db,
      keys,
      box: config.UAB_ENCRYPTION_KEYS,
      logger,
      settings: {
        installation: config.UAB_AUDIT_ORIGIN,
        defaultRetainDays: config.UAB_AUDIT_DEFAULT_RETAIN_DAYS,
        allowPrivateNetworks: config.UAB_AUDIT_STREAM_ALLOW_PRIVATE_NETWORKS,
        deliveryTimeoutMs: config.UAB_AUDIT_STREAM_TIMEOUT_MS,
        failingAfter: config.UAB_AUDIT_STREAM_FAILING_AFTER,
        exportTtlMs: config.UAB_AUDIT_EXPORT_TTL_HOURS * 3_600_000,
        publicUrl: config.UAB_PUBLIC_URL.replace(/\/$/, ""),
        streamCa: config.UAB_AUDIT_STREAM_CA_FILE ? readFileSync(config.UAB_AUDIT_STREAM_CA_FILE, "utf8") : undefined,
      },
    };
    const breakers = new EndpointBreakers();
    const relay = await startOutboxRelay({ db: database.db, pool: database.pool, bus: ctx.bus, logger });
    const pollMs = config.UAB_AUDIT_STREAM_POLL_MS;
    const loops = {
      checkpoints: new Loop(
        "audit checkpoints",
        config.UAB_AUDIT_CHECKPOINT_INTERVAL_SECONDS * 1000,
        () => checkpointGrownLogs(database.db, keys, config.UAB_AUDIT_ORIGIN, logger),
        logger,
      ),
      streams: new Loop("audit streams", pollMs, () => deliverDueStreams(deps, breakers, { pollMs }), logger),
      exports: new Loop("audit export jobs", 1000, () => runExportJobs(deps), logger),
      retention: new Loop(
        "audit retention",
        config.UAB_AUDIT_RETENTION_INTERVAL_SECONDS * 1000,
        async () => {
          await purgeExpired(deps);
          await expireExportJobs(deps);
          await purgeExpiredIdempotencyKeys(database.db as never);
        },
        logger,
      ),
    };
    for (const loop of Object.values(loops)) loop.start();
    const ingestion = await startIngestion(database.db, ctx.bus, logger, {
      onAppended: () => loops.streams.poke(),
    });
    const service = createAuditService(deps, breakers);
    return {
      services: [{ service: AuditService, impl: service, db: database.db } as unknown as ServiceRegistration],
      readiness: [
        async () => {
          await sql`select 1`.execute(database.db);
        },
      ],
      routes: [exportDownloadRoute(deps, logger)],
      async close() {
        await ingestion.stop();
        for (const loop of Object.values(loops)) await loop.stop();
        await relay.stop();
        breakers.close();
        await database.close();
      },
    };
  },
};

/** The runtime role name of the audit service. */
export const auditRoles = serviceRoles("audit");
