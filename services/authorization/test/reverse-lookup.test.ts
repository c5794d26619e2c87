/**
 * Property test of the reverse lookups: over random (seeded) snapshots, `authorizedPrincipals`
 * and `effectivePermissions` must agree with brute force over `decide`.
 */
import { describe, expect, it } from "@jest/globals";
import { seededRandom } from "@uab/testing";
import { Catalogue } from "../src/engine/catalogue.js";
import { Evaluator, type SubjectPrincipal } from "../src/engine/evaluator.js";
import {
  type BindingDef,
  bySubject,
  type PlatformSnapshot,
  type RoleDef,
  type ScopeRef,
  type TenantSnapshot,
} from "../src/engine/model.js";
import { buildSystemRoles } from "../src/engine/system-roles.js";

const catalogue = new Catalogue();
const systemRoles = buildSystemRoles(catalogue);
const evaluator = new Evaluator(catalogue, systemRoles);
const names = catalogue.permissions.map((p) => p.name);
const T = "ten_prop";
const NOW = 1_900_000_000_000;
const ITERATIONS = 50;

interface World {
  tenant: TenantSnapshot;
  platform: PlatformSnapshot;
  users: string[];
  teams: string[];
  projects: string[];
}

function generate(seed: number): World {
  const rnd = seededRandom(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const services = [...new Set(names.map((n) => n.split(".")[0]!))];
  const resources = [...new Set(names.map((n) => n.split(".").slice(0, -1).join(".")))];

  const roles: RoleDef[] = [];
  const roleCount = 1 + int(6);
  for (let i = 0; i < roleCount; i++) {
    const permissions = new Set<string>();
    const n = int(6);
    for (let k = 0; k < n; k++) {
      const r = rnd();
      if (r < 0.04) permissions.add("*");
      else if (r < 0.12) permissions.add(`${pick(services)}.*`);
      else if (r < 0.25) permissions.add(`${pick(resources)}.*`);
      else permissions.add(pick(names));
    }
    // Include only earlier roles (no cycles), sometimes a system role.
    const includes = new Set<string>();
    for (let k = 0; k < i; k++) if (rnd() < 0.3) includes.add(roles[k]!.id);
    if (rnd() < 0.15) includes.add(pick(systemRoles).id);
    roles.push({
      id: `role_${seed}_${i}`,
      tenantId: T,
      system: false,
      slug: `r${i}`,
      displayName: `R${i}`,
      description: "",
      permissions: [...permissions],
      includedRoleIds: [...includes],
      assignableScopes: ["tenant", "project", "team"],
      sensitive: false,
    });
  }
  const roleIds = [
    ...roles.map((r) => r.id),
    ...systemRoles.filter((r) => r.id.includes("platform") === false).map((r) => r.id),
  ];

  const users = Array.from({ length: 2 + int(6) }, (_, i) => `usr_${seed}_${i}`);
  const teams = Array.from({ length: int(4) }, (_, i) => `team_${seed}_${i}`);
  const projects = Array.from({ length: 1 + int(3) }, (_, i) => `prj_${seed}_${i}`);
  const membersOf = new Map<string, string[]>();
  const teamsOf = new Map<string, string[]>();
  for (const t of teams) {
    const members = users.filter(() => rnd() < 0.4);
    membersOf.set(t, members);
    for (const m of members) teamsOf.set(m, [...(teamsOf.get(m) ?? []), t]);
  }

  const bindings: BindingDef[] = [];
  const principals = [...users, ...teams];
  const bindingCount = int(12);
  for (let i = 0; i < bindingCount; i++) {
    const principalId = pick(principals);
    const s = rnd();
    const scope: ScopeRef =
      s < 0.4
        ? { type: "tenant", tenantId: T }
        : s < 0.7 || teams.length === 0
          ? { type: "project", tenantId: T, projectId: pick(projects) }
          : { type: "team", tenantId: T, teamId: pick(teams) };
    const w = rnd();
    bindings.push({
      id: `bind_${seed}_${String(i).padStart(3, "0")}`,
      tenantId: T,
      principalType: principalId.startsWith("team_") ? "team" : "user",
      principalId,
      principalTenantId: T,
      roleId: pick(roleIds),
      scope,
      start: w < 0.1 ? NOW + 60_000 : w < 0.2 ? NOW - 120_000 : 0,
      expire: w >= 0.1 && w < 0.2 ? NOW - 60_000 : w < 0.3 ? NOW + 3_600_000 : Number.POSITIVE_INFINITY,
      condition: null,
      delegated: false,
    });
  }
  return {
    tenant: {
      tenantId: T,
      revision: 1n,
      status: "active",
      roles: new Map(roles.map((r) => [r.id, r])),
      bindings,
      bySubject: bySubject(bindings),
      teamsOf,
      membersOf,
      memberAttributes: new Map(),
    },
    platform: { revision: 1n, bindings: [], bySubject: new Map() },
    users,
    teams,
    projects,
  };
}

function principalOf(id: string): SubjectPrincipal {
  return { id, type: id.startsWith("team_") ? "team" : "user", tenantId: T };
}

function randomScope(rnd: () => number, w: World): ScopeRef {
  const s = rnd();
  if (s < 0.34) return { type: "tenant", tenantId: T };
  if (s < 0.67 || w.teams.length === 0)
    return { type: "project", tenantId: T, projectId: w.projects[Math.floor(rnd() * w.projects.length)]! };
  return { type: "team", tenantId: T, teamId: w.teams[Math.floor(rnd() * w.teams.length)]! };
}

describe("reverse lookups agree with decide", () => {
  it(`authorizedPrincipals equals brute force over ${ITERATIONS} random snapshots`, () => {
    let nonEmpty = 0;
    for (let seed = 1; seed <= ITERATIONS; seed++) {
      const w = generate(seed);
      const rnd = seededRandom(seed * 7919);
      const universe = [...w.users, ...w.teams];
      // A few permissions that some binding's role grants, and some random ones.
      const granted = w.tenant.bindings.flatMap((b) =>
        [...evaluator.flatten(b.roleId, w.tenant)].flatMap((p) => catalogue.expand(p).map((i) => i.name)),
      );
      const perms = [
        ...Array.from({ length: 3 }, () => names[Math.floor(rnd() * names.length)]!),
        ...(granted.length ? Array.from({ length: 5 }, () => granted[Math.floor(rnd() * granted.length)]!) : []),
      ];
      for (const permission of perms) {
        const scope = randomScope(rnd, w);
        const got = [
          ...evaluator.authorizedPrincipals(w.platform, w.tenant, permission, scope, true, NOW).keys(),
        ].sort();
        const want = universe
          .filter(
            (id) =>
              evaluator.decide(w.platform, w.tenant, { principal: principalOf(id), permission, scope, now: NOW })
                .allowed,
          )
          .sort();
        if (want.length) nonEmpty++;
        expect({ seed, permission, scope, principals: got }).toEqual({ seed, permission, scope, principals: want });
      }
    }
    // The generator must exercise grants, not only empty answers.
    expect(nonEmpty).toBeGreaterThan(ITERATIONS / 2);
  });

  it(`effectivePermissions equals brute force over ${ITERATIONS} random snapshots`, () => {
    let nonEmpty = 0;
    for (let seed = 1; seed <= ITERATIONS; seed++) {
      const w = generate(seed);
      const rnd = seededRandom(seed * 104729);
      const universe = [...w.users, ...w.teams];
      for (let k = 0; k < 3; k++) {
        const id = universe[Math.floor(rnd() * universe.length)]!;
        const scope = randomScope(rnd, w);
        const principal = principalOf(id);
        const got = [...evaluator.effectivePermissions(w.platform, w.tenant, principal, scope, NOW).keys()].sort();
        const want = names.filter(
          (permission) => evaluator.decide(w.platform, w.tenant, { principal, permission, scope, now: NOW }).allowed,
        );
        if (want.length) nonEmpty++;
        expect({ seed, id, scope, permissions: got }).toEqual({ seed, id, scope, permissions: want });
      }
    }
    expect(nonEmpty).toBeGreaterThan(ITERATIONS / 2);
  });
});
