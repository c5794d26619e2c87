import { AsyncLocalStorage } from "node:async_hooks";
import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  PostgresDialect,
  type PostgresDialectConfig,
  type TransactionSettings,
} from "kysely";

/** The scope statement a transaction about to begin should run, consumed once. */
export interface PendingScope {
  /** A `SELECT set_config(…)` statement with only safe literals in it. */
  statement: string | undefined;
}

/** The scope of the transaction being started in this async context (see {@link withTenant}). */
export const pendingScope = new AsyncLocalStorage<PendingScope>();

/**
 * A driver that starts a scoped transaction in one round trip: `BEGIN; SELECT set_config(…)`
 * as one simple-protocol query, instead of a BEGIN and a separate `set_config` query. A
 * tenant transaction is the unit of every request, so this is one network round trip, one
 * socket write and one statement parse fewer on every call.
 */
class ScopedDriver implements Driver {
  constructor(private readonly inner: Driver) {
    if (inner.savepoint) this.savepoint = inner.savepoint.bind(inner);
    if (inner.rollbackToSavepoint) this.rollbackToSavepoint = inner.rollbackToSavepoint.bind(inner);
    if (inner.releaseSavepoint) this.releaseSavepoint = inner.releaseSavepoint.bind(inner);
  }
  savepoint?: Driver["savepoint"];
  rollbackToSavepoint?: Driver["rollbackToSavepoint"];
  releaseSavepoint?: Driver["releaseSavepoint"];

  init(): Promise<void> {
    return this.inner.init();
  }
  acquireConnection(): Promise<DatabaseConnection> {
    return this.inner.acquireConnection();
  }
  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const pending = pendingScope.getStore();
    const statement = pending?.statement;
    if (pending && statement && settings.isolationLevel === undefined && settings.accessMode === undefined) {
      // Consumed here so a later transaction in the same async context does not inherit it.
      pending.statement = undefined;
      await connection.executeQuery(CompiledQuery.raw(`BEGIN; ${statement}`));
      return;
    }
    await this.inner.beginTransaction(connection, settings);
  }
  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.commitTransaction(connection);
  }
  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.rollbackTransaction(connection);
  }
  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection(connection);
  }
  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}

/** PostgreSQL dialect whose transactions can begin already scoped (see {@link ScopedDriver}). */
export class ScopedPostgresDialect extends PostgresDialect {
  constructor(config: PostgresDialectConfig) {
    super(config);
  }
  override createDriver(): Driver {
    return new ScopedDriver(super.createDriver());
  }
}
