/**
 * The permission catalogue: every `service.resource.action` permission declared by an RPC's
 * `(uab.options.v1.access)` option in any UAB contract. Generated from the descriptors at
 * start-up, so a new RPC is in the catalogue the moment its proto is.
 */
import type { DescService } from "@bufbuild/protobuf";
import { accessOf, contractServices, Scope } from "@uab/proto";

/** One catalogue permission. */
export interface PermissionInfo {
  /** `service.resource.action`. */
  readonly name: string;
  readonly service: string;
  readonly resource: string;
  readonly action: string;
  /** What it allows, for people. */
  readonly description: string;
  /** The scope the RPCs check it at. */
  readonly scope: Scope;
  /** Fully-qualified RPCs that require it. */
  readonly methods: readonly string[];
  /** Every RPC requiring it only reads. */
  readonly readOnly: boolean;
  /** Largest step-up age any of its RPCs demands (0: none). */
  readonly stepUpMaxAgeSeconds: number;
  /** Grants that include it are reported as sensitive (audited as such). */
  readonly sensitive: boolean;
}

// Writes to these resources change who can do what, or reveal or replace key material.
const SENSITIVE_RESOURCES = new Set([
  "authorization.roles",
  "authorization.bindings",
  "authorization.platform_bindings",
  "authorization.approval_policies",
  "credentials.secrets",
  "credentials.encryption_keys",
  "credentials.api_keys",
  "identity.signing_keys",
  "identity.sso_connections",
  "identity.scim_directories",
  "identity.service_account_secrets",
  "identity.mfa_policies",
  "identity.login_policies",
  "audit.retention",
  "audit.signing_keys",
  "tenancy.tenants",
]);

/** Valid wildcard or exact pattern syntax (the proto rule, repeated for direct callers). */
const PATTERN = /^([*]|[a-z][a-z0-9_]*([.][a-z][a-z0-9_]*){0,3}[.][*]|[a-z][a-z0-9_]*([.][a-z][a-z0-9_]*){2,3})$/;

function words(s: string): string {
  return s.replace(/_/g, " ");
}

/** The catalogue, with lookups and wildcard expansion. */
export class Catalogue {
  /** All permissions, sorted by name. */
  readonly permissions: readonly PermissionInfo[];
  private readonly byName: ReadonlyMap<string, PermissionInfo>;

  /** Builds the catalogue from services (default: every UAB contract service). */
  constructor(services: readonly DescService[] = contractServices()) {
    const acc = new Map<string, { methods: string[]; scope: Scope; readOnly: boolean; stepUp: number }>();
    for (const service of services) {
      for (const method of service.methods) {
        const access = accessOf(method);
        if (!access.permission) continue;
        const entry = acc.get(access.permission) ?? { methods: [], scope: access.scope, readOnly: true, stepUp: 0 };
        entry.methods.push(`${service.typeName}.${method.name}`);
        entry.readOnly &&= access.readOnly;
        entry.stepUp = Math.max(entry.stepUp, access.stepUpMaxAgeSeconds);
        acc.set(access.permission, entry);
      }
    }
    const list: PermissionInfo[] = [];
    for (const [name, e] of acc) {
      const parts = name.split(".");
      const service = parts[0]!;
      const action = parts[parts.length - 1]!;
      const resource = parts.slice(1, -1).join(".");
      list.push({
        name,
        service,
        resource,
        action,
        description: `${words(action)} ${words(resource)} in the ${service} service (${e.methods.map((m) => m.split(".").pop()).join(", ")})`,
        scope: e.scope,
        methods: e.methods.sort(),
        readOnly: e.readOnly,
        stepUpMaxAgeSeconds: e.stepUp,
        sensitive: e.stepUp > 0 || (!e.readOnly && SENSITIVE_RESOURCES.has(`${service}.${resource}`)),
      });
    }
    list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.permissions = list;
    this.byName = new Map(list.map((p) => [p.name, p]));
  }

  /** The permission, if it is in the catalogue. */
  get(name: string): PermissionInfo | undefined {
    return this.byName.get(name);
  }

  /** True when `name` is a catalogue permission. */
  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Catalogue permissions an exact name or wildcard pattern (`*`, `svc.*`, `svc.res.*`) covers. */
  expand(pattern: string): PermissionInfo[] {
    if (pattern === "*") return [...this.permissions];
    if (pattern.endsWith(".*")) {
      const prefix = pattern.slice(0, -1);
      return this.permissions.filter((p) => p.name.startsWith(prefix));
    }
    const p = this.byName.get(pattern);
    return p ? [p] : [];
  }

  /**
   * Why `pattern` cannot be used in a role, or undefined when it can: it must be a
   * well-formed name or wildcard that covers at least one catalogue permission.
   */
  rejectPattern(pattern: string): string | undefined {
    if (!PATTERN.test(pattern)) return `"${pattern}" is not a permission (service.resource.action) or wildcard`;
    if (this.expand(pattern).length === 0) {
      return pattern.endsWith(".*")
        ? `"${pattern}" matches no permission in the catalogue`
        : `"${pattern}" is not a permission in the catalogue (see ListPermissions)`;
    }
    return undefined;
  }
}

/** True when the pattern (exact or wildcard) covers `permission`. */
export function patternCovers(pattern: string, permission: string): boolean {
  if (pattern === "*") return true;
  if (pattern.endsWith(".*")) return permission.startsWith(pattern.slice(0, -1));
  return pattern === permission;
}

export { Scope };
