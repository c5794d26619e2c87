/**
 * The identity schema: users and their credentials, sessions and refresh-token families,
 * MFA factors and challenges, login and MFA policies, signing keys, SSO connections, SCIM
 * directories, service accounts and impersonations.
 *
 * Every table with `tenant_id` gets the one row-level-security policy (enabled and forced).
 * Tables without it are platform-wide by nature: signing keys (one key set for the
 * installation), login throttles keyed by IP or identifier hash, and the verified-domain
 * index that routes an email to its tenant's SSO connection before any tenant is known.
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

async function run(db: Kysely<unknown>, statements: readonly string[]): Promise<void> {
  for (const s of statements) await sql.raw(s).execute(db);
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await run(db, [
    // Tenants as tenancy's events describe them (status gates sign-in).
    `CREATE TABLE tenants (
      id text PRIMARY KEY,
      tenant_id text GENERATED ALWAYS AS (id) STORED NOT NULL,
      status text NOT NULL CHECK (status IN ('active', 'suspended', 'terminated')),
      authorization_revision text NOT NULL DEFAULT '',
      updated_at timestamptz NOT NULL DEFAULT now()
    )`,
    `CREATE TABLE users (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      email text,
      email_verified boolean NOT NULL DEFAULT false,
      username text,
      profile jsonb NOT NULL DEFAULT '{}',
      status text NOT NULL CHECK (status IN ('active', 'disabled', 'locked')),
      status_reason text NOT NULL DEFAULT '',
      lock_expires_at timestamptz,
      attributes jsonb NOT NULL DEFAULT '{}',
      source text NOT NULL CHECK (source IN ('admin', 'sign_up', 'sso', 'scim')),
      sso_connection_id text,
      scim_directory_id text,
      external_id text,
      password_hash text,
      password_changed_at timestamptz,
      password_change_required boolean NOT NULL DEFAULT false,
      failed_logins integer NOT NULL DEFAULT 0,
      last_login_at timestamptz,
      revision bigint NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      deleted_at timestamptz,
      purge_at timestamptz,
      erased_at timestamptz
    )`,
    // Emails and usernames are unique per tenant among users not deleted (case-insensitive).
    "CREATE UNIQUE INDEX users_email_key ON users (tenant_id, lower(email)) WHERE deleted_at IS NULL AND email IS NOT NULL",
    "CREATE UNIQUE INDEX users_username_key ON users (tenant_id, lower(username)) WHERE deleted_at IS NULL AND username IS NOT NULL",
    "CREATE UNIQUE INDEX users_scim_external_key ON users (tenant_id, scim_directory_id, external_id) WHERE scim_directory_id IS NOT NULL AND external_id IS NOT NULL",
    "CREATE INDEX users_tenant_id ON users (tenant_id, id)",
    "CREATE INDEX users_purge_at ON users (purge_at) WHERE purge_at IS NOT NULL",

    `CREATE TABLE sessions (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      user_id text NOT NULL,
      device jsonb NOT NULL DEFAULT '{}',
      ip_address text NOT NULL DEFAULT '',
      user_agent text NOT NULL DEFAULT '',
      amr text[] NOT NULL DEFAULT '{}',
      sso_connection_id text,
      impersonation_id text,
      auth_time timestamptz NOT NULL DEFAULT now(),
      mfa_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      last_seen_at timestamptz NOT NULL DEFAULT now(),
      idle_expires_at timestamptz NOT NULL,
      absolute_expires_at timestamptz NOT NULL,
      revoked_at timestamptz,
      revoke_reason text
    )`,
    "CREATE INDEX sessions_user ON sessions (tenant_id, user_id, id)",
    "CREATE INDEX sessions_live ON sessions (absolute_expires_at) WHERE revoked_at IS NULL",

    // One row per refresh token ever issued; a session is one rotation family.
    `CREATE TABLE refresh_tokens (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      session_id text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
      secret_hash bytea NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      rotated_at timestamptz,
      replaced_by text
    )`,
    "CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id)",

    `CREATE TABLE mfa_factors (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      user_id text NOT NULL,
      type text NOT NULL CHECK (type IN ('totp', 'recovery_code')),
      state text NOT NULL CHECK (state IN ('pending', 'active')),
      display_name text NOT NULL DEFAULT '',
      secret_sealed text,
      last_used_step bigint,
      created_at timestamptz NOT NULL DEFAULT now(),
      confirmed_at timestamptz,
      last_used_at timestamptz,
      expires_at timestamptz
    )`,
    "CREATE INDEX mfa_factors_user ON mfa_factors (tenant_id, user_id)",
    "CREATE UNIQUE INDEX mfa_factors_one_recovery ON mfa_factors (tenant_id, user_id) WHERE type = 'recovery_code'",
    `CREATE TABLE recovery_codes (
      tenant_id text NOT NULL,
      factor_id text NOT NULL REFERENCES mfa_factors (id) ON DELETE CASCADE,
      code_hash bytea NOT NULL,
      used_at timestamptz,
      PRIMARY KEY (factor_id, code_hash)
    )`,
    `CREATE TABLE mfa_challenges (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      user_id text NOT NULL,
      factor_types text[] NOT NULL,
      attempts_remaining integer NOT NULL,
      login jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      completed_at timestamptz
    )`,

    // Single-use tokens for password reset and email verification (only a hash is kept).
    `CREATE TABLE user_tokens (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      user_id text NOT NULL,
      purpose text NOT NULL CHECK (purpose IN ('password_reset', 'email_verification')),
      secret_hash bytea NOT NULL,
      email text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      used_at timestamptz
    )`,
    "CREATE INDEX user_tokens_user ON user_tokens (tenant_id, user_id, purpose)",

    `CREATE TABLE login_policies (
      tenant_id text PRIMARY KEY,
      policy jsonb NOT NULL,
      revision bigint NOT NULL DEFAULT 1,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`,
    `CREATE TABLE mfa_policies (
      tenant_id text PRIMARY KEY,
      policy jsonb NOT NULL,
      revision bigint NOT NULL DEFAULT 1,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`,

    // The installation's token signing keys: NEXT → ACTIVE → RETIRED → EXPIRED.
    `CREATE TABLE signing_keys (
      id text PRIMARY KEY,
      algorithm text NOT NULL,
      state text NOT NULL CHECK (state IN ('next', 'active', 'retired', 'expired')),
      public_jwk jsonb NOT NULL,
      private_sealed text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      activated_at timestamptz,
      retired_at timestamptz,
      expires_at timestamptz
    )`,
    "CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active'",

    // Throttling of sign-in attempts (token buckets) per IP and per tenant+identifier hash.
    `CREATE TABLE login_throttles (
      key text PRIMARY KEY,
      failures integer NOT NULL DEFAULT 0,
      window_started_at timestamptz NOT NULL DEFAULT now(),
      blocked_until timestamptz
    )`,

    `CREATE TABLE sso_connections (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      display_name text NOT NULL,
      type text NOT NULL CHECK (type IN ('oidc', 'saml')),
      enabled boolean NOT NULL DEFAULT true,
      config jsonb NOT NULL,
      secret_sealed text,
      sp_key_sealed text,
      jit_provisioning boolean NOT NULL DEFAULT false,
      require_sso boolean NOT NULL DEFAULT false,
      group_role_mappings jsonb NOT NULL DEFAULT '[]',
      revision bigint NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`,
    "CREATE INDEX sso_connections_tenant ON sso_connections (tenant_id, id)",
    `CREATE TABLE sso_domains (
      tenant_id text NOT NULL,
      connection_id text NOT NULL REFERENCES sso_connections (id) ON DELETE CASCADE,
      domain text NOT NULL,
      state text NOT NULL CHECK (state IN ('pending', 'verified')),
      verification_value text NOT NULL,
      verified_at timestamptz,
      PRIMARY KEY (connection_id, domain)
    )`,
    // The routing index: a verified domain belongs to one connection in the installation.
    `CREATE TABLE verified_domains (
      domain text PRIMARY KEY,
      tenant_id_ref text NOT NULL,
      connection_id text NOT NULL
    )`,
    // SSO flows in flight (state, nonce, PKCE verifier, SAML request id).
    `CREATE TABLE sso_flows (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      connection_id text NOT NULL,
      flow jsonb NOT NULL,
      return_to text NOT NULL DEFAULT '',
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      used_at timestamptz
    )`,
    // SAML assertion ids seen, kept until the assertion would have expired anyway.
    `CREATE TABLE saml_replays (
      key text PRIMARY KEY,
      tenant_id text NOT NULL,
      expires_at timestamptz NOT NULL
    )`,
    `CREATE TABLE sso_identities (
      tenant_id text NOT NULL,
      connection_id text NOT NULL,
      subject text NOT NULL,
      user_id text NOT NULL,
      groups text[] NOT NULL DEFAULT '{}',
      created_at timestamptz NOT NULL DEFAULT now(),
      last_login_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (connection_id, subject)
    )`,
    "CREATE INDEX sso_identities_user ON sso_identities (tenant_id, user_id)",

    `CREATE TABLE scim_directories (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      display_name text NOT NULL,
      sso_connection_id text,
      deprovision_action text NOT NULL CHECK (deprovision_action IN ('disable', 'delete')),
      group_role_mappings jsonb NOT NULL DEFAULT '[]',
      token_hash bytea NOT NULL,
      token_hint text NOT NULL,
      token_created_at timestamptz NOT NULL DEFAULT now(),
      token_last_used_at timestamptz,
      last_sync_at timestamptz,
      revision bigint NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`,
    `CREATE TABLE scim_groups (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      directory_id text NOT NULL REFERENCES scim_directories (id) ON DELETE CASCADE,
      display_name text NOT NULL,
      external_id text,
      revision bigint NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`,
    "CREATE UNIQUE INDEX scim_groups_name_key ON scim_groups (directory_id, lower(display_name))",
    `CREATE TABLE scim_group_members (
      tenant_id text NOT NULL,
      group_id text NOT NULL REFERENCES scim_groups (id) ON DELETE CASCADE,
      user_id text NOT NULL,
      PRIMARY KEY (group_id, user_id)
    )`,

    `CREATE TABLE service_accounts (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      name text NOT NULL,
      display_name text NOT NULL DEFAULT '',
      description text NOT NULL DEFAULT '',
      disabled boolean NOT NULL DEFAULT false,
      attributes jsonb NOT NULL DEFAULT '{}',
      last_used_at timestamptz,
      revision bigint NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`,
    "CREATE UNIQUE INDEX service_accounts_name_key ON service_accounts (tenant_id, name)",
    `CREATE TABLE service_account_secrets (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      service_account_id text NOT NULL REFERENCES service_accounts (id) ON DELETE CASCADE,
      description text NOT NULL DEFAULT '',
      secret_hash bytea NOT NULL,
      secret_hint text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz,
      last_used_at timestamptz
    )`,
    // The client-credentials lookup needs the tenant of a service account before any tenant
    // is known: an id → tenant index with nothing secret in it.
    `CREATE TABLE service_account_index (
      id text PRIMARY KEY,
      tenant_id_ref text NOT NULL
    )`,

    `CREATE TABLE impersonations (
      id text PRIMARY KEY,
      tenant_id text NOT NULL,
      user_id text NOT NULL,
      impersonator_user_id text NOT NULL,
      impersonator_tenant_id text NOT NULL,
      reason text NOT NULL,
      session_id text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      ended_at timestamptz
    )`,
    "CREATE INDEX impersonations_user ON impersonations (tenant_id, user_id)",

    // Users holding a sensitive role, from authorization's events ("required for admins").
    `CREATE TABLE privileged_bindings (
      binding_id text PRIMARY KEY,
      tenant_id text NOT NULL,
      user_id text NOT NULL
    )`,
    "CREATE INDEX privileged_bindings_user ON privileged_bindings (tenant_id, user_id)",
  ]);
  for (const table of [
    "tenants",
    "users",
    "sessions",
    "refresh_tokens",
    "mfa_factors",
    "recovery_codes",
    "mfa_challenges",
    "user_tokens",
    "login_policies",
    "mfa_policies",
    "sso_connections",
    "sso_domains",
    "sso_flows",
    "saml_replays",
    "sso_identities",
    "scim_directories",
    "scim_groups",
    "scim_group_members",
    "service_accounts",
    "service_account_secrets",
    "impersonations",
    "privileged_bindings",
  ]) {
    await isolate(db, table);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [
    "privileged_bindings",
    "impersonations",
    "service_account_index",
    "service_account_secrets",
    "service_accounts",
    "scim_group_members",
    "scim_groups",
    "scim_directories",
    "sso_identities",
    "saml_replays",
    "sso_flows",
    "verified_domains",
    "sso_domains",
    "sso_connections",
    "login_throttles",
    "signing_keys",
    "mfa_policies",
    "login_policies",
    "user_tokens",
    "mfa_challenges",
    "recovery_codes",
    "mfa_factors",
    "refresh_tokens",
    "sessions",
    "users",
    "tenants",
  ]) {
    await sql`DROP TABLE IF EXISTS ${sql.table(table)}`.execute(db);
  }
}
