/**
 * @packageDocumentation
 * Helpers for tests that run against the real PostgreSQL and NATS of the machine. Each test
 * file gets a database of its own (created here, dropped afterwards), so files can run in
 * parallel without seeing each other's rows. Also: row-level security checks and sessions
 * (rls.ts), RPC outcome assertions (rpc.ts), clients and tokens for a test server
 * (clients.ts, tokens.ts), seeded randomness (random.ts) and an allow-list authorizer. The
 * benchmarks use them too; none needs a test framework.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";

/** The administrative PostgreSQL URL tests use (`UAB_TEST_DATABASE_URL`, else the local server). */
export function adminDatabaseUrl(): string {
  return process.env.UAB_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
}

/** The NATS URL tests use (`UAB_TEST_NATS_URL`, else the local server). */
export function testNatsUrl(): string {
  return process.env.UAB_TEST_NATS_URL ?? "nats://127.0.0.1:4222";
}

/** A database created for one test file. */
export interface TestDatabase {
  /** Its name. */
  readonly name: string;
  /** A superuser URL to it. */
  readonly url: string;
  /** Drops it (terminating leftover connections). */
  drop(): Promise<void>;
}

/** A short random suffix for names that must not collide between parallel test files. */
export function uniqueSuffix(): string {
  return randomBytes(5).toString("hex");
}

/** Creates a fresh, empty database on the test server. */
export async function createTestDatabase(prefix = "uab_test"): Promise<TestDatabase> {
  const name = `${prefix}_${uniqueSuffix()}`;
  const admin = new pg.Client({ connectionString: adminDatabaseUrl() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminDatabaseUrl());
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: adminDatabaseUrl() });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** Resolves when `check` returns a truthy value, polling every `intervalMs`; rejects after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 10_000,
  intervalMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export * from "./authorizer.js";
export * from "./clients.js";
export * from "./random.js";
export * from "./rls.js";
export * from "./rpc.js";
export * from "./tokens.js";
