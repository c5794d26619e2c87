/**
 * The in-memory model decisions are made on: roles, bindings and team memberships of one
 * tenant (a {@link TenantSnapshot}) and the platform bindings (a {@link PlatformSnapshot}),
 * each labelled with the revision it was read at.
 */
import type { PrincipalKind, ScopeType } from "../storage/tables.js";
import type { Condition } from "./conditions.js";

export type { PrincipalKind, ScopeType };

/** A role, system or custom. */
export interface RoleDef {
  readonly id: string;
  /** The owning tenant; null for system roles. */
  readonly tenantId: string | null;
  readonly system: boolean;
  readonly slug: string;
  readonly displayName: string;
  readonly description: string;
  /** Exact permissions and wildcards. */
  readonly permissions: readonly string[];
  readonly includedRoleIds: readonly string[];
  readonly assignableScopes: readonly ScopeType[];
  readonly sensitive: boolean;
}

/** Where something is granted or asked about. */
export interface ScopeRef {
  readonly type: ScopeType;
  readonly tenantId?: string | undefined;
  readonly projectId?: string | undefined;
  readonly teamId?: string | undefined;
}

/** A binding as decisions use it. */
export interface BindingDef {
  readonly id: string;
  /** The tenant it lives in; null for platform bindings. */
  readonly tenantId: string | null;
  readonly principalType: PrincipalKind;
  readonly principalId: string;
  /** The principal's home tenant; null for platform principals. */
  readonly principalTenantId: string | null;
  readonly roleId: string;
  readonly scope: ScopeRef;
  /** Start in ms since epoch (0: always started). */
  readonly start: number;
  /** Expiry in ms since epoch (Infinity: never). */
  readonly expire: number;
  /** The compiled condition, or null when unconditional. */
  readonly condition: Condition | null;
  readonly delegated: boolean;
}

/** One tenant's authorization state at a revision. */
export interface TenantSnapshot {
  readonly tenantId: string;
  readonly revision: bigint;
  /** Tenant status from tenancy ("active" when tenancy has not told us otherwise). */
  readonly status: "active" | "suspended" | "terminated";
  /** The tenant's custom roles. */
  readonly roles: ReadonlyMap<string, RoleDef>;
  /** Every binding of the tenant, in id order. */
  readonly bindings: readonly BindingDef[];
  /** Bindings by principal id (users, teams, service accounts, API keys). */
  readonly bySubject: ReadonlyMap<string, readonly BindingDef[]>;
  /** Teams (not deleted) each user belongs to. */
  readonly teamsOf: ReadonlyMap<string, readonly string[]>;
  /** Members of each team (not deleted). */
  readonly membersOf: ReadonlyMap<string, readonly string[]>;
  /** Membership attributes of each user of the tenant, for conditions. */
  readonly memberAttributes: ReadonlyMap<string, Record<string, unknown>>;
}

/** The platform bindings at a revision. */
export interface PlatformSnapshot {
  readonly revision: bigint;
  readonly bindings: readonly BindingDef[];
  readonly bySubject: ReadonlyMap<string, readonly BindingDef[]>;
}

/** Indexes bindings by principal id. */
export function bySubject(bindings: readonly BindingDef[]): Map<string, BindingDef[]> {
  const map = new Map<string, BindingDef[]>();
  for (const b of bindings) {
    const list = map.get(b.principalId);
    if (list) list.push(b);
    else map.set(b.principalId, [b]);
  }
  return map;
}

/** The revision key of a tenant, or of the platform. */
export function revisionKey(tenantId: string | null | undefined): string {
  return tenantId ? tenantId : "platform";
}

/** Encodes a revision token (`<key>@<n>`): opaque to clients, compared by key. */
export function revisionToken(key: string, revision: bigint): string {
  return `${key}@${revision}`;
}

/** Parses a revision token; undefined when it is not one. */
export function parseRevisionToken(token: string): { key: string; revision: bigint } | undefined {
  const m = /^(platform|ten_[0-9a-z]{26})@([0-9]{1,19})$/.exec(token);
  if (!m) return undefined;
  return { key: m[1]!, revision: BigInt(m[2]!) };
}
