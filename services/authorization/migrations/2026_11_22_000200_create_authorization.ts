/**
 * The authorization schema: custom roles, role bindings (tenant and platform), approval
 * policies and access requests, the per-tenant revision counters decisions are versioned
 * by, and projections of tenancy's tenants, teams and team members (kept by a consumer of
 * tenancy's events) that decisions need.
 *
 * Every tenant table has `tenant_id` and a forced row-level-security policy. Platform rows
 * (platform bindings, the platform revision) have a NULL `tenant_id` and are visible only
 * under `uab.platform = on`. Bindings are also readable, never writable, by the tenant of
 * their principal, so a tenant sees the grants its people hold in other tenants.
 * Frozen in time: never import application code here.
 */
import { type Kysely, sql } from "kysely";

const CURRENT = "NULLIF(current_setting('uab.tenant_id', true), '')";
const PLATFORM = "current_setting('uab.platform', true) = 'on'";
const POLICY = sql.raw(`tenant_id = ${CURRENT} OR ${PLATFORM}`);

async function isolate(db: Kysely<unknown>, table: string): Promise<void> {
  await sql`ALTER TABLE ${sql.table(table)} ENABLE ROW LEVEL SECURITY`.execute(db);
  await sql`ALTER TABLE ${sql.table(table)} FORCE ROW LEVEL SECURITY`.execute(db);
  await sql`CREATE POLICY tenant_isolation ON ${sql.table(table)} USING (${POLICY}) WITH CHECK (${POLICY})`.execute(db);
}

export async function up(db: Kysely<unknown>): Promise<void> {
  // One row per tenant plus one platform row (tenant_id NULL, key 'platform'): bumped in
  // every transaction that changes what decisions in that tenant depend on.
  await sql`
    CREATE TABLE revisions (
      key text PRIMARY KEY,
      tenant_id text UNIQUE,
      revision bigint NOT NULL DEFAULT 0,
      updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      CHECK ((key = 'platform') = (tenant_id IS NULL)),
      CHECK (tenant_id IS NULL OR key = tenant_id)
    )`.execute(db);
  await sql`CREATE INDEX revisions_updated_at ON revisions (updated_at)`.execute(db);
  await isolate(db, "revisions");

  await sql`
    CREATE TABLE roles (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      slug text NOT NULL,
      display_name text NOT NULL,
      description text NOT NULL DEFAULT '',
      permissions text[] NOT NULL DEFAULT '{}',
      included_role_ids text[] NOT NULL DEFAULT '{}',
      assignable_scopes text[] NOT NULL,
      sensitive boolean NOT NULL DEFAULT false,
      revision bigint NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (tenant_id, slug)
    )`.execute(db);
  await sql`CREATE INDEX roles_tenant_id ON roles (tenant_id, id)`.execute(db);
  await isolate(db, "roles");

  await sql`
    CREATE TABLE bindings (
      id text PRIMARY KEY,
      tenant_id text,
      principal_type text NOT NULL CHECK (principal_type IN ('user', 'team', 'service_account', 'api_key')),
      principal_id text NOT NULL,
      principal_tenant_id text,
      role_id text NOT NULL,
      scope_type text NOT NULL CHECK (scope_type IN ('platform', 'tenant', 'project', 'team')),
      project_id text,
      team_id text,
      start_time timestamptz,
      expire_time timestamptz,
      condition text NOT NULL DEFAULT '',
      description text NOT NULL DEFAULT '',
      delegated boolean NOT NULL DEFAULT false,
      source text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'access_request', 'membership', 'bootstrap')),
      access_request_id text,
      creator_id text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      CHECK ((scope_type = 'platform') = (tenant_id IS NULL)),
      CHECK ((scope_type = 'project') = (project_id IS NOT NULL)),
      CHECK ((scope_type = 'team') = (team_id IS NOT NULL))
    )`.execute(db);
  await sql`CREATE INDEX bindings_tenant_principal ON bindings (tenant_id, principal_id)`.execute(db);
  await sql`CREATE INDEX bindings_tenant_id ON bindings (tenant_id, id)`.execute(db);
  await sql`CREATE INDEX bindings_role_id ON bindings (role_id)`.execute(db);
  await sql`CREATE INDEX bindings_delegated ON bindings (principal_tenant_id, id) WHERE delegated`.execute(db);
  await sql`CREATE INDEX bindings_expire_time ON bindings (expire_time) WHERE expire_time IS NOT NULL`.execute(db);
  // A membership-managed binding exists once per (tenant, principal, role).
  await sql`CREATE UNIQUE INDEX bindings_managed_key ON bindings (tenant_id, principal_id, role_id) WHERE source = 'membership'`.execute(
    db,
  );
  await sql`CREATE UNIQUE INDEX bindings_platform_bootstrap_key ON bindings (principal_id, role_id) WHERE source = 'bootstrap' AND tenant_id IS NULL`.execute(
    db,
  );
  await sql`ALTER TABLE bindings ENABLE ROW LEVEL SECURITY`.execute(db);
  await sql`ALTER TABLE bindings FORCE ROW LEVEL SECURITY`.execute(db);
  await sql`CREATE POLICY tenant_isolation ON bindings USING (${POLICY}) WITH CHECK (${POLICY})`.execute(db);
  // Delegated grants are visible (read only) to the principal's home tenant as well.
  await sql`CREATE POLICY delegated_visibility ON bindings FOR SELECT USING (principal_tenant_id = ${sql.raw(CURRENT)})`.execute(
    db,
  );

  await sql`
    CREATE TABLE approval_policies (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      display_name text NOT NULL,
      description text NOT NULL DEFAULT '',
      role_ids text[] NOT NULL,
      scope_types text[] NOT NULL DEFAULT '{}',
      required_approvals integer NOT NULL CHECK (required_approvals BETWEEN 1 AND 10),
      approver_permission text NOT NULL,
      max_duration_seconds integer NOT NULL,
      request_ttl_seconds integer NOT NULL,
      enforce_on_direct_grants boolean NOT NULL DEFAULT false,
      enabled boolean NOT NULL DEFAULT true,
      revision bigint NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);
  await sql`CREATE INDEX approval_policies_tenant_id ON approval_policies (tenant_id, id)`.execute(db);
  await isolate(db, "approval_policies");

  await sql`
    CREATE TABLE access_requests (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      requester_type text NOT NULL,
      requester_id text NOT NULL,
      requester_tenant_id text,
      role_id text NOT NULL,
      scope_type text NOT NULL,
      project_id text,
      team_id text,
      justification text NOT NULL,
      duration_seconds integer NOT NULL,
      start_time timestamptz,
      status text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'cancelled', 'expired')),
      approval_policy_ids text[] NOT NULL DEFAULT '{}',
      required_approvals integer NOT NULL,
      approver_permission text NOT NULL,
      denier_type text,
      denier_id text,
      decision_comment text NOT NULL DEFAULT '',
      binding_id text,
      grant_expire_time timestamptz,
      expire_time timestamptz NOT NULL,
      revision bigint NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);
  await sql`CREATE INDEX access_requests_tenant_id ON access_requests (tenant_id, id)`.execute(db);
  await sql`CREATE INDEX access_requests_requester ON access_requests (requester_id, id)`.execute(db);
  await sql`CREATE INDEX access_requests_pending ON access_requests (expire_time) WHERE status = 'pending'`.execute(db);
  await isolate(db, "access_requests");
  // A requester sees their own requests from their home tenant too (ListMyAccessRequests).
  await sql`CREATE POLICY requester_visibility ON access_requests FOR SELECT USING (requester_tenant_id = ${sql.raw(CURRENT)})`.execute(
    db,
  );

  await sql`
    CREATE TABLE access_request_approvals (
      access_request_id text NOT NULL REFERENCES access_requests (id) ON DELETE CASCADE,
      tenant_id text NOT NULL,
      approver_type text NOT NULL,
      approver_id text NOT NULL,
      comment text NOT NULL DEFAULT '',
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (access_request_id, approver_id)
    )`.execute(db);
  await isolate(db, "access_request_approvals");

  // Projections of tenancy's state, maintained from its events.
  await sql`
    CREATE TABLE tenants (
      id text PRIMARY KEY,
      tenant_id text GENERATED ALWAYS AS (id) STORED NOT NULL,
      status text NOT NULL CHECK (status IN ('active', 'suspended', 'terminated')),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);
  await isolate(db, "tenants");
  await sql`
    CREATE TABLE members (
      tenant_id text NOT NULL,
      user_id text NOT NULL,
      owner boolean NOT NULL DEFAULT false,
      attributes jsonb NOT NULL DEFAULT '{}',
      PRIMARY KEY (tenant_id, user_id)
    )`.execute(db);
  await isolate(db, "members");
  await sql`
    CREATE TABLE team_members (
      tenant_id text NOT NULL,
      team_id text NOT NULL,
      principal_id text NOT NULL,
      PRIMARY KEY (team_id, principal_id)
    )`.execute(db);
  await sql`CREATE INDEX team_members_tenant ON team_members (tenant_id, principal_id)`.execute(db);
  await isolate(db, "team_members");
  await sql`
    CREATE TABLE deleted_teams (
      tenant_id text NOT NULL,
      team_id text PRIMARY KEY
    )`.execute(db);
  await isolate(db, "deleted_teams");
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of [
    "deleted_teams",
    "team_members",
    "members",
    "tenants",
    "access_request_approvals",
    "access_requests",
    "approval_policies",
    "bindings",
    "roles",
    "revisions",
  ]) {
    await sql`DROP TABLE IF EXISTS ${sql.table(t)}`.execute(db);
  }
}
