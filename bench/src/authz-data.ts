/**
 * The authorization benchmark's synthetic data: tenants with chained custom roles (each
 * role includes the previous one of its tenant) and users bound to 1–3 of them at tenant
 * scope, with what every user may do computed independently of both engines, and a seeded
 * random query sequence about half allowed, half denied; the same data and queries on
 * every run.
 */
import { seededRandom } from "@uab/testing";

/** One custom role: its own permissions and the role it includes (the previous one). */
export interface SynthRole {
  readonly id: string;
  readonly slug: string;
  readonly permissions: readonly string[];
  readonly includes: string | undefined;
}

export interface SynthUser {
  readonly id: string;
  readonly roleIds: readonly string[];
  /** Every permission the user holds through its roles and their inclusions. */
  readonly granted: ReadonlySet<string>;
}

export interface SynthTenant {
  readonly id: string;
  readonly roles: readonly SynthRole[];
  readonly users: readonly SynthUser[];
}

/** One question with the answer the data implies. */
export interface SynthQuery {
  readonly tenant: number;
  readonly user: number;
  readonly permission: string;
  readonly expected: boolean;
}

export interface DataShape {
  readonly tenants: number;
  readonly rolesPerTenant: number;
  /** A role starts a new inclusion chain every `chain` roles (chains of depth ≤ `chain`). */
  readonly chain: number;
  readonly usersPerTenant: number;
  readonly permissionsPerRole: number;
}

function pick<T>(r: () => number, list: readonly T[]): T {
  return list[Math.floor(r() * list.length)]!;
}

function sample<T>(r: () => number, list: readonly T[], n: number): T[] {
  const out = new Set<T>();
  while (out.size < Math.min(n, list.length)) out.add(pick(r, list));
  return [...out];
}

/** Builds the dataset; `id(kind)` makes ids (real UAB ids, so they pass the API's patterns). */
export function buildDataset(
  shape: DataShape,
  permissions: readonly string[],
  id: (kind: "tenant" | "role" | "user") => string,
  seed = 1,
): SynthTenant[] {
  const r = seededRandom(seed);
  const tenants: SynthTenant[] = [];
  for (let t = 0; t < shape.tenants; t++) {
    const roles: SynthRole[] = [];
    const flat = new Map<string, Set<string>>();
    for (let i = 0; i < shape.rolesPerTenant; i++) {
      const perms = sample(r, permissions, shape.permissionsPerRole);
      const includes = i % shape.chain === 0 ? undefined : roles[i - 1]!.id;
      const role: SynthRole = { id: id("role"), slug: `bench-role-${i}`, permissions: perms, includes };
      roles.push(role);
      flat.set(role.id, new Set([...perms, ...(includes ? flat.get(includes)! : [])]));
    }
    const users: SynthUser[] = [];
    for (let u = 0; u < shape.usersPerTenant; u++) {
      const roleIds = sample(
        r,
        roles.map((x) => x.id),
        1 + Math.floor(r() * 3),
      );
      const granted = new Set<string>();
      for (const rid of roleIds) for (const p of flat.get(rid)!) granted.add(p);
      users.push({ id: id("user"), roleIds, granted });
    }
    tenants.push({ id: id("tenant"), roles, users });
  }
  return tenants;
}

/** `n` queries, each allowed with probability ½ (a held permission) or denied (one not held). */
export function buildQueries(
  tenants: readonly SynthTenant[],
  permissions: readonly string[],
  n: number,
  seed = 2,
): SynthQuery[] {
  const r = seededRandom(seed);
  const out: SynthQuery[] = [];
  while (out.length < n) {
    const tenant = Math.floor(r() * tenants.length);
    const t = tenants[tenant]!;
    const user = Math.floor(r() * t.users.length);
    const u = t.users[user]!;
    if (r() < 0.5) {
      out.push({ tenant, user, permission: pick(r, [...u.granted]), expected: true });
    } else {
      let p = pick(r, permissions);
      while (u.granted.has(p)) p = pick(r, permissions);
      out.push({ tenant, user, permission: p, expected: false });
    }
  }
  return out;
}
