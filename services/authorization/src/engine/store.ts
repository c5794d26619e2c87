/**
 * Snapshots of the authorization state, loaded from PostgreSQL and kept in memory.
 *
 * Freshness: every change to what decisions in a tenant depend on bumps that tenant's row
 * in `revisions` (the platform has one too) in the changing transaction. A snapshot is
 * labelled with the revision read before its rows, so it is at least that fresh.
 * - A write in this process marks the snapshot stale as it commits (read-your-writes for
 *   the writer, and for anyone holding the revision the write returned).
 * - A request may demand a minimum revision; an older snapshot is reloaded first.
 * - Other replicas' writes are noticed by a poll of recently changed revision rows every
 *   `refreshMs` (and by authorization events where the host forwards them), so a change is
 *   visible everywhere within `refreshMs` plus one load.
 */
import type { Logger } from "@uab/core";
import { withPlatform, withTenant } from "@uab/db";
import { type Kysely, sql } from "kysely";
import type { AuthorizationDatabase, BindingRow, RoleRow } from "../storage/tables.js";
import { type Condition, compileCondition } from "./conditions.js";
import {
  type BindingDef,
  bySubject,
  type PlatformSnapshot,
  type RoleDef,
  revisionKey,
  type TenantSnapshot,
} from "./model.js";

/** Options of {@link SnapshotStore}. */
export interface SnapshotStoreOptions {
  readonly db: Kysely<AuthorizationDatabase>;
  readonly logger: Logger;
  /** How often other replicas' changes are polled for (ms); 0 disables polling. */
  readonly refreshMs: number;
  /** Most tenants kept in memory (least recently used ones are dropped). */
  readonly maxTenants: number;
}

interface Entry<S> {
  snapshot?: S | undefined;
  loading?: Promise<S> | undefined;
  /** Known to be older than the database. */
  stale: boolean;
}

const conditionCache = new Map<string, Condition | Error>();

/** Compiles a stored condition, memoised by source (a stored one compiled once already). */
export function storedCondition(source: string): Condition {
  let c = conditionCache.get(source);
  if (!c) {
    try {
      c = compileCondition(source);
    } catch (e) {
      c = e as Error;
    }
    if (conditionCache.size > 50_000) conditionCache.clear();
    conditionCache.set(source, c);
  }
  if (c instanceof Error) {
    const message = c.message;
    // A stored condition that no longer compiles (say, after an engine upgrade) must deny.
    return { source, evaluate: () => ({ ok: false, error: `condition ${message}` }) };
  }
  return c;
}

/** A binding row as decisions use it. */
export function bindingDef(row: BindingRow): BindingDef {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    principalType: row.principal_type,
    principalId: row.principal_id,
    principalTenantId: row.principal_tenant_id,
    roleId: row.role_id,
    scope: {
      type: row.scope_type,
      tenantId: row.tenant_id ?? undefined,
      projectId: row.project_id ?? undefined,
      teamId: row.team_id ?? undefined,
    },
    start: row.start_time ? row.start_time.getTime() : 0,
    expire: row.expire_time ? row.expire_time.getTime() : Number.POSITIVE_INFINITY,
    condition: row.condition ? storedCondition(row.condition) : null,
    delegated: row.delegated,
  };
}

/** A custom role row as decisions use it. */
export function roleDef(row: RoleRow): RoleDef {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    system: false,
    slug: row.slug,
    displayName: row.display_name,
    description: row.description,
    permissions: row.permissions,
    includedRoleIds: row.included_role_ids,
    assignableScopes: row.assignable_scopes,
    sensitive: row.sensitive,
  };
}

function group(rows: { key: string; value: string }[]): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const r of rows) {
    const list = map.get(r.key);
    if (list) list.push(r.value);
    else map.set(r.key, [r.value]);
  }
  return map;
}

/** Loads, caches and refreshes snapshots. */
export class SnapshotStore {
  private readonly tenants = new Map<string, Entry<TenantSnapshot>>();
  private readonly platformEntry: Entry<PlatformSnapshot> = { stale: true };
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(private readonly options: SnapshotStoreOptions) {}

  /** Starts polling for other replicas' changes. */
  start(): void {
    if (this.options.refreshMs <= 0 || this.timer) return;
    this.timer = setInterval(() => {
      if (this.polling) return;
      this.polling = true;
      this.poll()
        .catch((err) => this.options.logger.warn({ err }, "authorization revision poll failed"))
        .finally(() => {
          this.polling = false;
        });
    }, this.options.refreshMs);
    this.timer.unref();
  }

  /** Stops polling. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Reads recently changed revisions and marks older snapshots stale. */
  async poll(): Promise<void> {
    const rows = await withPlatform(this.options.db, (tx) =>
      tx
        .selectFrom("revisions")
        .select(["key", "revision"])
        .where("updated_at", ">", sql<Date>`now() - interval '30 seconds'`)
        .execute(),
    );
    for (const r of rows) this.observe(r.key, BigInt(r.revision));
  }

  /** Notes that `key` (a tenant id or "platform") is at `revision`; older snapshots go stale. */
  observe(key: string, revision: bigint): void {
    const entry = key === "platform" ? this.platformEntry : this.tenants.get(key);
    if (entry?.snapshot && entry.snapshot.revision < revision) entry.stale = true;
  }

  /** Marks a snapshot stale regardless of revision. */
  invalidate(key: string): void {
    const entry = key === "platform" ? this.platformEntry : this.tenants.get(key);
    if (entry) entry.stale = true;
  }

  /** The platform snapshot if loaded and fresh (the synchronous fast path), else undefined. */
  platformNow(): PlatformSnapshot | undefined {
    const e = this.platformEntry;
    return e.stale ? undefined : e.snapshot;
  }

  /** A tenant snapshot if loaded and fresh, else undefined. */
  tenantNow(tenantId: string): TenantSnapshot | undefined {
    const e = this.tenants.get(tenantId);
    return e && !e.stale ? e.snapshot : undefined;
  }

  /** The platform snapshot, at least `minRevision` fresh. */
  async platform(minRevision?: bigint): Promise<PlatformSnapshot> {
    return this.get(this.platformEntry, minRevision, () => this.loadPlatform());
  }

  /** A tenant's snapshot, at least `minRevision` fresh. */
  async tenant(tenantId: string, minRevision?: bigint): Promise<TenantSnapshot> {
    let entry = this.tenants.get(tenantId);
    if (entry) {
      // Refresh its place in the LRU order.
      this.tenants.delete(tenantId);
      this.tenants.set(tenantId, entry);
    } else {
      entry = { stale: true };
      this.tenants.set(tenantId, entry);
      if (this.tenants.size > this.options.maxTenants) {
        const oldest = this.tenants.keys().next();
        if (!oldest.done) this.tenants.delete(oldest.value);
      }
    }
    return this.get(entry, minRevision, () => this.loadTenant(tenantId));
  }

  private async get<S extends { revision: bigint }>(
    entry: Entry<S>,
    minRevision: bigint | undefined,
    load: () => Promise<S>,
  ): Promise<S> {
    const s = entry.snapshot;
    if (s && !entry.stale && (minRevision === undefined || s.revision >= minRevision)) return s;
    if (!entry.loading) {
      entry.stale = false;
      entry.loading = load().then(
        (loaded) => {
          entry.loading = undefined;
          entry.snapshot = loaded;
          return loaded;
        },
        (err) => {
          entry.loading = undefined;
          entry.stale = true;
          throw err;
        },
      );
    }
    const loaded = await entry.loading;
    if (minRevision !== undefined && loaded.revision < minRevision) {
      // The load began before the demanded write committed; read again.
      entry.stale = true;
      return this.get(entry, minRevision, load);
    }
    return loaded;
  }

  private async loadPlatform(): Promise<PlatformSnapshot> {
    return withPlatform(this.options.db, async (tx) => {
      const rev = await tx.selectFrom("revisions").select("revision").where("key", "=", "platform").executeTakeFirst();
      const rows = await tx.selectFrom("bindings").selectAll().where("tenant_id", "is", null).orderBy("id").execute();
      const bindings = rows.map(bindingDef);
      return { revision: BigInt(rev?.revision ?? 0), bindings, bySubject: bySubject(bindings) };
    });
  }

  private async loadTenant(tenantId: string): Promise<TenantSnapshot> {
    return withTenant(this.options.db, tenantId, async (tx) => {
      // The revision first: the rows read after it are at least that fresh.
      const rev = await tx
        .selectFrom("revisions")
        .select("revision")
        .where("key", "=", revisionKey(tenantId))
        .executeTakeFirst();
      const [tenant, roles, bindings, members, teamMembers, deletedTeams] = await Promise.all([
        tx.selectFrom("tenants").select("status").where("id", "=", tenantId).executeTakeFirst(),
        tx.selectFrom("roles").selectAll().where("tenant_id", "=", tenantId).execute(),
        tx.selectFrom("bindings").selectAll().where("tenant_id", "=", tenantId).orderBy("id").execute(),
        tx.selectFrom("members").select(["user_id", "attributes"]).where("tenant_id", "=", tenantId).execute(),
        tx.selectFrom("team_members").select(["team_id", "principal_id"]).where("tenant_id", "=", tenantId).execute(),
        tx.selectFrom("deleted_teams").select("team_id").where("tenant_id", "=", tenantId).execute(),
      ]);
      const deleted = new Set(deletedTeams.map((d) => d.team_id));
      const live = teamMembers.filter((m) => !deleted.has(m.team_id));
      const defs = bindings.map(bindingDef);
      return {
        tenantId,
        revision: BigInt(rev?.revision ?? 0),
        status: tenant?.status ?? "active",
        roles: new Map(roles.map((r) => [r.id, roleDef(r)])),
        bindings: defs,
        bySubject: bySubject(defs),
        teamsOf: group(live.map((m) => ({ key: m.principal_id, value: m.team_id }))),
        membersOf: group(live.map((m) => ({ key: m.team_id, value: m.principal_id }))),
        memberAttributes: new Map(members.map((m) => [m.user_id, m.attributes])),
      };
    });
  }
}
