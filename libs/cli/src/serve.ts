import cluster from "node:cluster";
import { TokenVerifier } from "@uab/auth";
import { RemoteAuthorizer } from "@uab/authorization";
import { createLogger, env, type Logger, loadConfig, startTelemetry } from "@uab/core";
import { JetStreamBus } from "@uab/events";
import { hostModules } from "./host.js";
import { selectModules } from "./modules.js";

/** Production settings. */
export const serveConfig = {
  PORT: env.port("port to listen on", 8080),
  UAB_HOST: env.string("interface to bind", "0.0.0.0"),
  UAB_SERVICES: env.optionalString("comma-separated services this process runs (default: all)"),
  DATABASE_URL: env.string("PostgreSQL URL the services connect with (as their runtime role)"),
  NATS_URL: env.string("NATS JetStream URL"),
  UAB_JWKS_URL: env.string("identity's JWKS URL that access tokens are verified against"),
  UAB_TOKEN_ISSUER: env.string("expected access-token issuer", "uab"),
  UAB_TOKEN_AUDIENCE: env.string("expected access-token audience", "uab"),
  UAB_BOOTSTRAP_ADMIN_IDS: env.string(
    "comma-separated principal ids that hold platform-admin (read by the authorization service)",
    "",
  ),
  UAB_AUTHORIZATION_URL: env.optionalUrl(
    "authorization service URL, when this process does not host it (UAB_SERVICES without authorization)",
    ["http", "https"],
  ),
  UAB_SERVICE_TOKEN: env.optionalString("this service's access token for asking the authorization service"),
  UAB_AUTHORIZATION_CACHE_MS: env.int(
    "how long a remote authorization decision is reused; bounds how late a revoke takes effect here",
    1000,
    0,
    60_000,
  ),
  UAB_WORKERS: env.int("server processes sharing the port (use the pod's cores; each keeps its own caches)", 1, 1, 64),
  UAB_READ_MAX_BYTES: env.int("largest request message in bytes", 4 * 1024 * 1024, 1024, 64 * 1024 * 1024),
  UAB_LOG_LEVEL: env.oneOf("log level", ["trace", "debug", "info", "warn", "error", "fatal", "silent"], "info"),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: env.optionalUrl("OTLP/HTTP traces endpoint", ["http", "https"]),
};

/**
 * The primary of a multi-process server: forks `workers` processes that share the port
 * (Node's cluster module hands connections out round-robin), replaces a worker that dies,
 * and on SIGTERM/SIGINT stops them all gracefully. A Node process serves on one core; this
 * is how one pod uses the others.
 */
async function superviseWorkers(workers: number, logger: Logger): Promise<void> {
  let stopping = false;
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on("exit", (worker, code, signal) => {
    if (stopping) return;
    logger.error({ pid: worker.process.pid, code, signal }, "worker exited; starting another");
    cluster.fork();
  });
  await new Promise<void>((resolve) => {
    const stop = () => {
      if (stopping) return;
      stopping = true;
      const alive = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
      let left = alive.length;
      if (left === 0) resolve();
      for (const w of alive) {
        w.once("exit", () => {
          left--;
          if (left === 0) resolve();
        });
        w.process.kill("SIGTERM");
      }
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}

/** The remote authorizer when UAB_AUTHORIZATION_URL is set (it needs UAB_SERVICE_TOKEN). */
function remoteAuthorizer(config: ReturnType<typeof loadConfig<typeof serveConfig>>, logger: Logger) {
  if (!config.UAB_AUTHORIZATION_URL) return undefined;
  const token = config.UAB_SERVICE_TOKEN;
  if (!token) throw new Error("configuration error: UAB_SERVICE_TOKEN is required with UAB_AUTHORIZATION_URL");
  return new RemoteAuthorizer({
    url: config.UAB_AUTHORIZATION_URL,
    token: () => token,
    cacheMs: config.UAB_AUTHORIZATION_CACHE_MS,
    logger,
  });
}

/** `uab serve`: the production entry point of one Deployment (migrations run as a separate Job). */
export async function runServe(environment: Record<string, string | undefined> = process.env): Promise<void> {
  const config = loadConfig(serveConfig, environment);
  const modules = selectModules(config.UAB_SERVICES);
  const logger = createLogger({ service: `uab-${modules.map((m) => m.name).join("-")}`, level: config.UAB_LOG_LEVEL });
  if (config.UAB_WORKERS > 1 && cluster.isPrimary) {
    logger.info({ workers: config.UAB_WORKERS }, "starting workers");
    return superviseWorkers(config.UAB_WORKERS, logger);
  }
  startTelemetry({ otlpEndpoint: config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT });
  const bus = await JetStreamBus.connect({ url: config.NATS_URL, logger });
  const host = await hostModules({
    modules,
    adminDatabaseUrl: config.DATABASE_URL,
    runtimeDatabaseUrl: config.DATABASE_URL,
    migrate: false,
    bus,
    logger,
    verifier: new TokenVerifier({
      keys: { jwksUrl: config.UAB_JWKS_URL },
      issuer: config.UAB_TOKEN_ISSUER,
      audience: config.UAB_TOKEN_AUDIENCE,
    }),
    authorizer: modules.some((m) => m.name === "authorization") ? undefined : remoteAuthorizer(config, logger),
    port: config.PORT,
    host: config.UAB_HOST,
    env: environment,
    readMaxBytes: config.UAB_READ_MAX_BYTES,
  });
  logger.info({ url: host.server.url, services: modules.map((m) => m.name) }, "serving");
  await new Promise<void>((resolve) => {
    const stop = () =>
      host
        .close()
        .then(() => bus.close())
        .then(resolve, resolve);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
