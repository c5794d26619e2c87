import type { Logger } from "@uab/core";
import { Kysely, PostgresDialect, sql } from "kysely";
import { type Migration, type MigrationResultSet, Migrator, NO_MIGRATIONS } from "kysely/migration";
import pg from "pg";

/** The schema and the two roles of one service. */
export interface ServiceRoles {
  /** The service's schema (`tenancy`). */
  readonly schema: string;
  /** Owns the schema and its tables; NOLOGIN; used only by migrations. */
  readonly owner: string;
  /** What the service runs as: owns nothing, NOSUPERUSER, NOBYPASSRLS, DML only. */
  readonly runtime: string;
}

/** Names of a service's schema and roles. */
export function serviceRoles(service: string): ServiceRoles {
  if (!/^[a-z][a-z0-9_]*$/.test(service)) throw new Error(`invalid service name ${service}`);
  return { schema: service, owner: `uab_${service}_owner`, runtime: `uab_${service}` };
}

/** Options for {@link migrateService}. */
export interface MigrateOptions {
  /** A URL that may create roles and schemas (superuser or CREATEROLE + CREATE on the database). */
  readonly url: string;
  /** The service name; also its schema. */
  readonly service: string;
  /** The service's migrations by name; names sort in the order they must run. */
  readonly migrations: Record<string, Migration>;
  /** `latest` (default), `down` (undo the last one) or `reset` (undo all). */
  readonly direction?: "latest" | "down" | "reset";
  /** When set, the runtime role gets LOGIN with this password (production). */
  readonly runtimePassword?: string | undefined;
  /** Progress log. */
  readonly logger?: Logger;
}

async function ensureRole(db: Kysely<unknown>, name: string, login: boolean): Promise<void> {
  const exists = await sql<{ n: number }>`select 1 as n from pg_roles where rolname = ${name}`.execute(db);
  if (exists.rows.length === 0) {
    try {
      await sql
        .raw(`CREATE ROLE "${name}" ${login ? "LOGIN" : "NOLOGIN"} NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE`)
        .execute(db);
    } catch (e) {
      // Another migrator created it concurrently (roles are cluster-wide): fine.
      const code = (e as { code?: string }).code;
      if (code !== "42710" && code !== "23505") throw e;
    }
  }
  // Whatever created it, the role must never bypass RLS. Roles are shared by every database
  // of the cluster and the advisory lock only serialises migrators of one database, so alter
  // the role only when needed: concurrent ALTER ROLEs fail with "tuple concurrently updated".
  const attrs = await sql<{ rolsuper: boolean; rolbypassrls: boolean }>`
    select rolsuper, rolbypassrls from pg_roles where rolname = ${name}`.execute(db);
  if (attrs.rows[0]?.rolsuper || attrs.rows[0]?.rolbypassrls) {
    await retryConcurrentUpdate(() => sql.raw(`ALTER ROLE "${name}" NOSUPERUSER NOBYPASSRLS`).execute(db));
  }
}

/** Retries a statement on a role (cluster-wide catalog row) that a concurrent migrator updated at the same time. */
async function retryConcurrentUpdate<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      if (attempt >= 5 || !message.includes("tuple concurrently updated")) throw e;
      await new Promise((r) => setTimeout(r, 20 * attempt + Math.random() * 50));
    }
  }
}

/**
 * Prepares a service's schema and roles and runs its migrations with kysely's Migrator.
 * Tables are created as the owner role, and default privileges give the runtime role
 * SELECT/INSERT/UPDATE/DELETE (and nothing else) on them; it gets nothing on the migration
 * ledger. Throws on failure, so the migration entry point exits non-zero.
 */
export async function migrateService(options: MigrateOptions): Promise<MigrationResultSet> {
  const roles = serviceRoles(options.service);
  const pool = new pg.Pool({
    connectionString: options.url,
    max: 1,
    application_name: `uab-migrate-${options.service}`,
  });
  const admin = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
  try {
    // Serialise concurrent migrators of the same service across processes (roles and
    // default privileges are outside kysely's migration lock).
    await sql`select pg_advisory_lock(hashtext(${`uab-migrate-${options.service}`}))`.execute(admin);
    await ensureRole(admin, roles.owner, false);
    await ensureRole(admin, roles.runtime, options.runtimePassword !== undefined);
    if (options.runtimePassword !== undefined) {
      const password = options.runtimePassword.replaceAll("'", "''");
      await retryConcurrentUpdate(() =>
        sql.raw(`ALTER ROLE "${roles.runtime}" LOGIN PASSWORD '${password}'`).execute(admin),
      );
    }
    const isSuper = await sql<{ s: boolean }>`select rolsuper as s from pg_roles where rolname = current_user`.execute(
      admin,
    );
    if (!isSuper.rows[0]?.s) await sql.raw(`GRANT "${roles.owner}" TO CURRENT_USER`).execute(admin);
    await sql.raw(`CREATE SCHEMA IF NOT EXISTS "${roles.schema}" AUTHORIZATION "${roles.owner}"`).execute(admin);
    await sql.raw(`GRANT USAGE ON SCHEMA "${roles.schema}" TO "${roles.runtime}"`).execute(admin);
    for (const stmt of [
      `GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "${roles.runtime}"`,
      `GRANT USAGE, SELECT ON SEQUENCES TO "${roles.runtime}"`,
      `GRANT EXECUTE ON FUNCTIONS TO "${roles.runtime}"`,
    ]) {
      await sql
        .raw(`ALTER DEFAULT PRIVILEGES FOR ROLE "${roles.owner}" IN SCHEMA "${roles.schema}" ${stmt}`)
        .execute(admin);
    }
    await sql.raw(`SET ROLE "${roles.owner}"`).execute(admin);
    await sql.raw(`SET search_path TO "${roles.schema}", public`).execute(admin);
    const migrator = new Migrator({
      db: admin,
      provider: { getMigrations: async () => options.migrations },
      migrationTableSchema: roles.schema,
    });
    let result: MigrationResultSet;
    if (options.direction === "down") result = await migrator.migrateDown();
    else if (options.direction === "reset") result = await migrator.migrateTo(NO_MIGRATIONS);
    else result = await migrator.migrateToLatest();
    // The default privileges above also reach kysely's ledger tables, which live in the same
    // schema: the runtime role must not be able to rewrite which migrations ran.
    for (const ledger of ["kysely_migration", "kysely_migration_lock"]) {
      const table = `"${roles.schema}"."${ledger}"`;
      const exists = await sql<{ t: string | null }>`select to_regclass(${table})::text as t`.execute(admin);
      if (exists.rows[0]?.t) await sql.raw(`REVOKE ALL ON TABLE ${table} FROM "${roles.runtime}"`).execute(admin);
    }
    for (const r of result.results ?? []) {
      options.logger?.info({ migration: r.migrationName, direction: r.direction, status: r.status }, "migration");
    }
    if (result.error) throw result.error instanceof Error ? result.error : new Error(String(result.error));
    return result;
  } finally {
    await admin.destroy();
  }
}
