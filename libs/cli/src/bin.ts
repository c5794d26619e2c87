#!/usr/bin/env node
import { ConfigError } from "@uab/core";
import { runAuditVerify } from "./audit-verify.js";
import { runDev } from "./dev.js";
import { runMigrate } from "./migrate.js";
import { runServe } from "./serve.js";

const USAGE = `usage: uab <command>

  dev                     run every service in one process (embedded PostgreSQL and
                          in-process events unless DATABASE_URL / NATS_URL are set)
  serve                   production entry point (UAB_SERVICES, DATABASE_URL, NATS_URL, UAB_JWKS_URL)
  migrate [--service S] [--down]
                          create schemas and roles and run migrations
  audit verify <file> (--key K)... [--key-file keys.json] [--checkpoint note.txt] [--origin O] [--json]
                          verify an audit export offline against its signed checkpoint
                          (exit 0 verified, 1 failed, 2 usage error or unreadable file)
`;

/** `uab audit <subcommand>`: only `verify` for now. */
function runAudit(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "verify") return runAuditVerify(rest, process);
  process.stderr.write(`uab audit: ${sub ? `unknown subcommand ${sub}` : "missing subcommand"}\n\n${USAGE}`);
  return Promise.resolve(2);
}

const [command, ...args] = process.argv.slice(2);
const commands: Record<string, () => Promise<unknown>> = {
  dev: () => runDev(),
  serve: () => runServe(),
  migrate: () => runMigrate(args),
  audit: () => runAudit(args),
};
const run = command ? commands[command] : undefined;
if (!run) {
  process.stderr.write(USAGE);
  process.exit(command ? 2 : 0);
}
run().then(
  (code) => process.exit(typeof code === "number" ? code : 0),
  (e: unknown) => {
    process.stderr.write(
      `uab ${command}: ${e instanceof ConfigError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    process.exit(1);
  },
);
