#!/usr/bin/env node
import { ConfigError } from "@uab/core";
import { runDev } from "./dev.js";
import { runMigrate } from "./migrate.js";
import { runServe } from "./serve.js";

const USAGE = `usage: uab <command>

  dev                     run every service in one process (embedded PostgreSQL and
                          in-process events unless DATABASE_URL / NATS_URL are set)
  serve                   production entry point (UAB_SERVICES, DATABASE_URL, NATS_URL, UAB_JWKS_URL)
  migrate [--service S] [--down]
                          create schemas and roles and run migrations
`;

const [command, ...args] = process.argv.slice(2);
const commands: Record<string, () => Promise<void>> = {
  dev: () => runDev(),
  serve: () => runServe(),
  migrate: () => runMigrate(args),
};
const run = command ? commands[command] : undefined;
if (!run) {
  process.stderr.write(USAGE);
  process.exit(command ? 2 : 0);
}
run().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(
      `uab ${command}: ${e instanceof ConfigError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    process.exit(1);
  },
);
