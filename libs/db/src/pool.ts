import { type Logger, SpanKind, tracer } from "@uab/core";
import { Kysely } from "kysely";
import pg from "pg";
import { ScopedPostgresDialect } from "./scoped-dialect.js";

/** Options for {@link createDatabase}. */
export interface DatabaseOptions {
  /** PostgreSQL connection URL. */
  readonly url: string;
  /** The service's schema; becomes the connection's `search_path`. */
  readonly schema: string;
  /**
   * The role to act as (`SET ROLE`) on every new connection. Set it when `url` logs in as
   * an administrator (development, tests); leave it unset when `url` already logs in as
   * the service's runtime role (production).
   */
  readonly role?: string | undefined;
  /** Pool size; defaults to 10. */
  readonly max?: number;
  /** Per-statement timeout in milliseconds; defaults to 15 000. */
  readonly statementTimeoutMs?: number;
  /** `application_name` seen in `pg_stat_activity`. */
  readonly applicationName?: string;
  /** Logs slow queries and pool errors. */
  readonly logger?: Logger;
}

/** A service's database handle: the pool and a Kysely instance over it. */
export interface Database<DB> {
  /** The Kysely instance; most code uses only this. */
  readonly db: Kysely<DB>;
  /** The underlying pool (for LISTEN/NOTIFY and health checks). */
  readonly pool: pg.Pool;
  /** The service's schema. */
  readonly schema: string;
  /** Ends the pool. */
  close(): Promise<void>;
}

function quoteIdent(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`unsafe SQL identifier: ${name}`);
  return `"${name}"`;
}

// timestamptz/int8 parsing: keep int8 as string (ids and counters may exceed 2^53) and
// numeric as string; dates arrive as Date.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => v);

/**
 * Creates a pool and Kysely instance for one service. Every connection gets the service's
 * `search_path`, a statement timeout and, when configured, the runtime role; every query
 * becomes an OpenTelemetry client span (`db.query`).
 */
export function createDatabase<DB>(options: DatabaseOptions): Database<DB> {
  const schema = quoteIdent(options.schema);
  const role = options.role ? quoteIdent(options.role) : undefined;
  const setup = [
    role ? `SET ROLE ${role}` : "",
    `SET search_path TO ${schema}, public`,
    `SET statement_timeout TO ${options.statementTimeoutMs ?? 15_000}`,
  ]
    .filter(Boolean)
    .join("; ");
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max ?? 10,
    application_name: options.applicationName ?? `uab-${options.schema}`,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
  });
  // Run the session setup before the pool hands the client out: a failure here fails the
  // first query instead of silently using a connection without the runtime role.
  const originalConnect = pool.connect.bind(pool) as () => Promise<pg.PoolClient>;
  const prepared = new WeakSet<pg.PoolClient>();
  (pool as unknown as { connect: () => Promise<pg.PoolClient> }).connect = async () => {
    const client = await originalConnect();
    if (!prepared.has(client)) {
      // A connection lost while checked out (server restart, failover, pg_terminate_backend
      // during a query) emits 'error' on the client: the query in flight fails and the pool
      // discards the client on release. Without a listener Node would end the process.
      client.on("error", (err) => options.logger?.warn({ err: err.message }, "PostgreSQL connection lost in use"));
      try {
        await client.query(setup);
        prepared.add(client);
      } catch (e) {
        client.release(e instanceof Error ? e : new Error(String(e)));
        throw e;
      }
    }
    return client;
  };
  // An idle connection closed by the server (restart, failover, or Ctrl-C reaching an embedded
  // PostgreSQL first) is dropped by the pool and replaced on demand: worth a warning, not more.
  pool.on("error", (err) => options.logger?.warn({ err: err.message }, "idle PostgreSQL connection closed"));
  const db = new Kysely<DB>({
    dialect: new ScopedPostgresDialect({ pool }),
    log(event) {
      const end = Date.now();
      const span = tracer().startSpan("db.query", {
        kind: SpanKind.CLIENT,
        startTime: end - event.queryDurationMillis,
        attributes: {
          "db.system.name": "postgresql",
          "db.namespace": options.schema,
          "db.query.text": event.query.sql,
        },
      });
      if (event.level === "error") {
        span.recordException(event.error instanceof Error ? event.error : String(event.error));
        span.setStatus({ code: 2 });
      }
      span.end(end);
      if (event.queryDurationMillis > 1000) {
        options.logger?.warn({ sql: event.query.sql, ms: event.queryDurationMillis }, "slow query");
      }
    },
  });
  return {
    db,
    pool,
    schema: options.schema,
    async close() {
      await db.destroy();
    },
  };
}
