/** What every authorization command shares: dependencies, events, revisions, etags. */
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { AbortedError, currentRequestContext, InvalidArgumentError, type Logger, type Principal } from "@uab/core";
import { withPlatform, withTenant } from "@uab/db";
import { appendEvent } from "@uab/events";
import type { Kysely, Transaction } from "kysely";
import type { Catalogue } from "../engine/catalogue.js";
import type { Evaluator } from "../engine/evaluator.js";
import { type RoleDef, revisionKey, revisionToken } from "../engine/model.js";
import type { SnapshotStore } from "../engine/store.js";
import { roleDef } from "../engine/store.js";
import type { AuthorizationDatabase, PrincipalKind } from "../storage/tables.js";

/** What the authorization domain needs. */
export interface AuthorizationDeps {
  readonly db: Kysely<AuthorizationDatabase>;
  readonly catalogue: Catalogue;
  readonly evaluator: Evaluator;
  readonly store: SnapshotStore;
  readonly logger: Logger;
}

/** An authorization transaction. */
export type Tx = Transaction<AuthorizationDatabase>;

/** Records a domain event in the outbox, in the caller's transaction (null tenant: platform). */
export async function emit<D extends DescMessage>(
  tx: Tx,
  schema: D,
  payload: MessageInitShape<D>,
  tenantId: string | null,
  resource: { type: string; id: string; displayName?: string },
): Promise<void> {
  await appendEvent(tx, { source: "authorization", schema, payload, tenantId: tenantId ?? undefined, resource });
}

/**
 * Bumps the revision of a tenant (or the platform, for null) in the caller's transaction
 * and returns the new value. The row lock this takes orders a tenant's authorization
 * writes, so revisions follow commit order within a tenant.
 */
export async function bumpRevision(tx: Tx, tenantId: string | null): Promise<bigint> {
  const key = revisionKey(tenantId);
  const row = await tx
    .insertInto("revisions")
    .values({ key, tenant_id: tenantId, revision: 1 })
    .onConflict((oc) =>
      oc.column("key").doUpdateSet((eb) => ({
        revision: eb("revisions.revision", "+", 1),
        updated_at: eb.fn("clock_timestamp"),
      })),
    )
    .returning("revision")
    .executeTakeFirstOrThrow();
  return BigInt(row.revision);
}

/** The result of a change plus the revision token it produced. */
export interface Revised<T> {
  readonly value: T;
  readonly revision: string;
}

/**
 * Runs a change in a tenant (or platform, for null) transaction that bumps the revision,
 * and marks this process's snapshot stale as soon as it commits.
 */
export async function change<T>(
  deps: AuthorizationDeps,
  tenantId: string | null,
  fn: (tx: Tx, revision: string) => Promise<T>,
): Promise<Revised<T>> {
  const key = revisionKey(tenantId);
  let rev = 0n;
  const run = async (tx: Tx) => {
    rev = await bumpRevision(tx, tenantId);
    return fn(tx, revisionToken(key, rev));
  };
  const value = tenantId ? await withTenant(deps.db, tenantId, run) : await withPlatform(deps.db, run);
  deps.store.observe(key, rev);
  return { value, revision: revisionToken(key, rev) };
}

/** The tenant's custom roles, as visible in a tenant transaction. */
export async function tenantRoles(tx: Tx): Promise<Map<string, RoleDef>> {
  const rows = await tx.selectFrom("roles").selectAll().execute();
  return new Map(rows.map((r) => [r.id, roleDef(r)]));
}

/** Fails with ABORTED when the client's etag is set and not the current revision. */
export function checkEtag(etag: string, revision: string, what: string): void {
  if (etag && etag !== revision) {
    throw new AbortedError(
      "ETAG_MISMATCH",
      `${what} changed since it was read (etag ${etag}, current ${revision}); read it again and retry`,
      { metadata: { current_etag: revision } },
    );
  }
}

/** The caller of the current request (the system outside one). */
export function caller(): Principal {
  const p = currentRequestContext()?.principal;
  return p ?? { id: "system", type: "system", amr: [] };
}

/** The caller as a stored principal kind (service accounts and API keys keep theirs). */
export function callerKind(p: Principal): PrincipalKind {
  return p.type === "service_account" ? "service_account" : p.type === "api_key" ? "api_key" : "user";
}

/** An INVALID_ARGUMENT naming a field. */
export function invalid(field: string, description: string): InvalidArgumentError {
  return InvalidArgumentError.field(field, description);
}
