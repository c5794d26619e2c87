/**
 * Built-in system roles. Their permissions are derived from the catalogue (so a new RPC
 * lands in the right roles without a list to maintain) and their ids are fixed:
 * `role_` + the slug without dashes, left-padded with zeros (`role_0000000000000platformadmin`),
 * which no generated id can collide with.
 */
import { type Catalogue, type PermissionInfo, Scope } from "./catalogue.js";
import type { RoleDef, ScopeType } from "./model.js";

/** The id of the system role with `slug`. */
export function systemRoleId(slug: string): string {
  return `role_${slug.replace(/-/g, "").padStart(26, "0")}`;
}

interface Spec {
  slug: string;
  displayName: string;
  description: string;
  scopes: ScopeType[];
  select: (p: PermissionInfo) => boolean;
  /** Written as wildcards instead of the selected list. */
  patterns?: string[];
}

const inTenant = (p: PermissionInfo) => p.scope !== Scope.PLATFORM;
const secretValues = (p: PermissionInfo) => p.service === "credentials" && p.resource === "secrets";

const MEMBER = new Set([
  "tenancy.tenants.get",
  "tenancy.projects.get",
  "tenancy.projects.list",
  "tenancy.teams.get",
  "tenancy.teams.list",
  "tenancy.teams.members.list",
  "authorization.roles.get",
  "authorization.roles.list",
  "authorization.access_requests.create",
  "authorization.access_requests.cancel",
]);

const SPECS: Spec[] = [
  {
    slug: "platform-admin",
    displayName: "Platform administrator",
    description: "Everything, in every tenant and at platform level. For the operators of the UAB installation.",
    scopes: ["platform"],
    select: () => true,
    patterns: ["*"],
  },
  {
    slug: "platform-auditor",
    displayName: "Platform auditor",
    description: "Reads everything in every tenant, including audit logs, but no secret values; changes nothing.",
    scopes: ["platform"],
    select: (p) => p.readOnly && !secretValues(p),
  },
  {
    slug: "authorization-checker",
    displayName: "Authorization checker",
    description:
      "Asks for authorization decisions in any tenant. For the service accounts of services that enforce UAB permissions.",
    scopes: ["platform"],
    select: (p) => p.name === "authorization.decisions.check" || p.name === "authorization.platform_decisions.check",
  },
  {
    slug: "tenant-provisioner",
    displayName: "Tenant provisioner",
    description:
      "Creates tenants on behalf of visitors who sign up. For the identity service's own principal; nothing else.",
    scopes: ["platform"],
    select: (p) => p.name === "tenancy.tenants.create",
  },
  {
    slug: "tenant-owner",
    displayName: "Tenant owner",
    description: "Everything inside the tenant, including billing, deleting the tenant and granting any role.",
    scopes: ["tenant"],
    select: inTenant,
  },
  {
    slug: "admin",
    displayName: "Administrator",
    description:
      "Administers the tenant: people, teams, projects, roles, credentials, notifications. Not billing changes, audit retention or deleting the tenant.",
    scopes: ["tenant"],
    select: (p) =>
      inTenant(p) &&
      !(p.service === "billing" && !p.readOnly) &&
      !(p.service === "audit" && !p.readOnly) &&
      p.name !== "tenancy.tenants.delete",
  },
  {
    slug: "security-admin",
    displayName: "Security administrator",
    description:
      "Manages identity (users, SSO, MFA, sessions) and authorization (roles, bindings, approvals); reads the audit log.",
    scopes: ["tenant"],
    select: (p) =>
      inTenant(p) &&
      (p.service === "identity" || p.service === "authorization" || (p.service === "audit" && p.readOnly)),
  },
  {
    slug: "billing-admin",
    displayName: "Billing administrator",
    description: "Manages billing: plans, subscriptions, usage, invoices.",
    scopes: ["tenant"],
    select: (p) => inTenant(p) && (p.service === "billing" || p.name === "tenancy.tenants.get"),
  },
  {
    slug: "auditor",
    displayName: "Auditor",
    description: "Reads everything in the tenant, including the audit log and its proofs, but no secret values.",
    scopes: ["tenant"],
    select: (p) => inTenant(p) && p.readOnly && !secretValues(p),
  },
  {
    slug: "access-approver",
    displayName: "Access approver",
    description: "Reviews access requests: approves or denies them.",
    scopes: ["tenant"],
    select: (p) => inTenant(p) && p.service === "authorization" && p.resource === "access_requests",
  },
  {
    slug: "viewer",
    displayName: "Viewer",
    description: "Reads what it is granted on (tenant, project or team), except secret values and the audit log.",
    scopes: ["tenant", "project", "team"],
    select: (p) => inTenant(p) && p.readOnly && !secretValues(p) && p.service !== "audit",
  },
  {
    slug: "member",
    displayName: "Member",
    description: "What every member of a tenant can do: see the tenant, its projects and teams, and request access.",
    scopes: ["tenant"],
    select: (p) => MEMBER.has(p.name),
  },
  {
    slug: "project-admin",
    displayName: "Project administrator",
    description: "Everything that is checked at project scope, on the projects it is granted on.",
    scopes: ["tenant", "project"],
    select: (p) => p.scope === Scope.PROJECT,
  },
  {
    slug: "team-admin",
    displayName: "Team administrator",
    description: "Manages the teams it is granted on: their settings and members.",
    scopes: ["tenant", "team"],
    select: (p) => p.scope === Scope.TEAM,
  },
];

/** The system roles over `catalogue`. */
export function buildSystemRoles(catalogue: Catalogue): RoleDef[] {
  return SPECS.map((s) => {
    const selected = catalogue.permissions.filter(s.select);
    return {
      id: systemRoleId(s.slug),
      tenantId: null,
      system: true,
      slug: s.slug,
      displayName: s.displayName,
      description: s.description,
      permissions: s.patterns ?? selected.map((p) => p.name),
      includedRoleIds: [],
      assignableScopes: s.scopes,
      sensitive: selected.some((p) => p.sensitive),
    };
  });
}

/** Ids of the system roles the service relies on by name. */
export const SYSTEM_ROLE = {
  platformAdmin: systemRoleId("platform-admin"),
  authorizationChecker: systemRoleId("authorization-checker"),
  tenantProvisioner: systemRoleId("tenant-provisioner"),
  tenantOwner: systemRoleId("tenant-owner"),
  member: systemRoleId("member"),
} as const;
