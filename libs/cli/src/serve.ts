import { BootstrapAuthorizer, TokenVerifier } from "@uab/auth";
import { createLogger, env, loadConfig, startTelemetry } from "@uab/core";
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
  UAB_BOOTSTRAP_ADMIN_IDS: env.string("comma-separated principal ids of the platform bootstrap administrators"),
  UAB_READ_MAX_BYTES: env.int("largest request message in bytes", 4 * 1024 * 1024, 1024, 64 * 1024 * 1024),
  UAB_LOG_LEVEL: env.oneOf("log level", ["trace", "debug", "info", "warn", "error", "fatal", "silent"], "info"),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: env.optionalUrl("OTLP/HTTP traces endpoint", ["http", "https"]),
};

/** `uab serve`: the production entry point of one Deployment (migrations run as a separate Job). */
export async function runServe(environment: Record<string, string | undefined> = process.env): Promise<void> {
  const config = loadConfig(serveConfig, environment);
  const modules = selectModules(config.UAB_SERVICES);
  const logger = createLogger({ service: `uab-${modules.map((m) => m.name).join("-")}`, level: config.UAB_LOG_LEVEL });
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
    authorizer: new BootstrapAuthorizer(config.UAB_BOOTSTRAP_ADMIN_IDS.split(",").map((s) => s.trim())),
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
