/**
 * The tenancy schema: tenants and what lives directly inside them.
 *
 * Every table carries `tenant_id` and a row-level-security policy (enabled and forced, so
 * the owner is bound too): a transaction sees only the tenant named by
 * `set_config('uab.tenant_id', …, true)`, or every tenant under `uab.platform = on`. The
 * tenants table gets `tenant_id` as a generated copy of its id so the same policy applies.
 * Frozen in time: never import application code here.
 */
import { type Kysely, sql } from "kysely";

const POLICY = sql.raw(
  "tenant_id = NULLIF(current_setting('uab.tenant_id', true), '') OR current_setting('uab.platform', true) = 'on'",
);

async function isolate(db: Kysely<unknown>, table: string): Promise<void> {
  await sql`ALTER TABLE ${sql.table(table)} ENABLE ROW LEVEL SECURITY`.execute(db);
  await sql`ALTER TABLE ${sql.table(table)} FORCE ROW LEVEL SECURITY`.execute(db);
  await sql`CREATE POLICY tenant_isolation ON ${sql.table(table)} USING (${POLICY}) WITH CHECK (${POLICY})`.execute(db);
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE tenants (
      id text PRIMARY KEY,
      tenant_id text GENERATED ALWAYS AS (id) STORED NOT NULL,
      slug text NOT NULL,
      display_name text NOT NULL,
      status text NOT NULL CHECK (status IN ('active', 'suspended', 'terminated')),
      status_reason text NOT NULL DEFAULT '',
      plan_id text NOT NULL DEFAULT '',
      branding jsonb NOT NULL DEFAULT '{}',
      custom_domain text,
      attributes jsonb NOT NULL DEFAULT '{}',
      revision bigint NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      deleted_at timestamptz,
      purge_at timestamptz
    )`.execute(db);
  // Slugs stay reserved while a terminated tenant can still be restored.
  await sql`CREATE UNIQUE INDEX tenants_slug_key ON tenants (slug)`.execute(db);
  await sql`CREATE UNIQUE INDEX tenants_custom_domain_key ON tenants (lower(custom_domain)) WHERE custom_domain IS NOT NULL`.execute(
    db,
  );
  await sql`CREATE INDEX tenants_purge_at ON tenants (purge_at) WHERE purge_at IS NOT NULL`.execute(db);
  await isolate(db, "tenants");

  for (const table of ["projects", "teams"]) {
    await sql`
      CREATE TABLE ${sql.table(table)} (
        id text PRIMARY KEY,
        tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        slug text NOT NULL,
        display_name text NOT NULL,
        description text NOT NULL DEFAULT '',
        attributes jsonb NOT NULL DEFAULT '{}',
        revision bigint NOT NULL DEFAULT 1,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        deleted_at timestamptz,
        purge_at timestamptz
      )`.execute(db);
    // Live slugs are unique per tenant; a deleted resource frees its slug.
    await sql`CREATE UNIQUE INDEX ${sql.raw(`${table}_slug_key`)} ON ${sql.table(table)} (tenant_id, slug) WHERE deleted_at IS NULL`.execute(
      db,
    );
    await sql`CREATE INDEX ${sql.raw(`${table}_tenant_id`)} ON ${sql.table(table)} (tenant_id, id)`.execute(db);
    await isolate(db, table);
  }
  await sql`ALTER TABLE teams ADD COLUMN member_count integer NOT NULL DEFAULT 0`.execute(db);

  await sql`
    CREATE TABLE memberships (
      id text PRIMARY KEY,
      tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
      user_id text NOT NULL,
      owner boolean NOT NULL DEFAULT false,
      attributes jsonb NOT NULL DEFAULT '{}',
      revision bigint NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (tenant_id, user_id)
    )`.execute(db);
  await sql`CREATE INDEX memberships_user_id ON memberships (user_id)`.execute(db);
  await isolate(db, "memberships");

  await sql`
    CREATE TABLE team_members (
      tenant_id text NOT NULL,
      team_id text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
      user_id text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (team_id, user_id),
      -- Leaving the tenant removes the user from every team of it.
      FOREIGN KEY (tenant_id, user_id) REFERENCES memberships (tenant_id, user_id) ON DELETE CASCADE
    )`.execute(db);
  await sql`CREATE INDEX team_members_user ON team_members (tenant_id, user_id)`.execute(db);
  await isolate(db, "team_members");

  await sql`
    CREATE TABLE attribute_schemas (
      tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
      resource_type text NOT NULL CHECK (resource_type IN ('tenant', 'project', 'team', 'membership')),
      definitions jsonb NOT NULL DEFAULT '[]',
      revision bigint NOT NULL DEFAULT 1,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, resource_type)
    )`.execute(db);
  await isolate(db, "attribute_schemas");
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ["attribute_schemas", "team_members", "memberships", "teams", "projects", "tenants"]) {
    await sql`DROP TABLE ${sql.table(table)}`.execute(db);
  }
}
