/** Kysely table types of the identity schema (see migrations/). */
import type { ColumnType, Generated, Selectable } from "kysely";

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
type Json<T> = ColumnType<T, string, string>;
type Revision = ColumnType<string, never, string>;

/** JSON object values as stored in `attributes`. */
export type JsonObject = { [key: string]: unknown };

/** A user's profile as stored. */
export interface ProfileJson {
  givenName?: string;
  familyName?: string;
  displayName?: string;
  locale?: string;
  timeZone?: string;
  avatarUrl?: string;
}

/** User status values. */
export type UserStatus = "active" | "disabled" | "locked";
/** Where a user came from. */
export type UserSource = "admin" | "sign_up" | "sso" | "scim";

export interface TenantsTable {
  id: string;
  tenant_id: ColumnType<string, never, never>;
  status: "active" | "suspended" | "terminated";
  authorization_revision: Generated<string>;
  updated_at: Timestamp;
}

export interface UsersTable {
  id: string;
  tenant_id: string;
  email: string | null;
  email_verified: Generated<boolean>;
  username: string | null;
  profile: Json<ProfileJson>;
  status: UserStatus;
  status_reason: Generated<string>;
  lock_expires_at: NullableTimestamp;
  attributes: Json<JsonObject>;
  source: UserSource;
  sso_connection_id: string | null;
  scim_directory_id: string | null;
  external_id: string | null;
  password_hash: string | null;
  password_changed_at: NullableTimestamp;
  password_change_required: Generated<boolean>;
  failed_logins: Generated<number>;
  last_login_at: NullableTimestamp;
  revision: Revision;
  created_at: Timestamp;
  updated_at: Timestamp;
  deleted_at: NullableTimestamp;
  purge_at: NullableTimestamp;
  erased_at: NullableTimestamp;
}

/** A device as stored on a session. */
export interface DeviceJson {
  name?: string;
  os?: string;
  browser?: string;
}

export interface SessionsTable {
  id: string;
  tenant_id: string;
  user_id: string;
  device: Json<DeviceJson>;
  ip_address: Generated<string>;
  user_agent: Generated<string>;
  amr: ColumnType<string[], string[], string[]>;
  sso_connection_id: string | null;
  impersonation_id: string | null;
  auth_time: Timestamp;
  mfa_at: NullableTimestamp;
  created_at: Timestamp;
  last_seen_at: Timestamp;
  idle_expires_at: Timestamp;
  absolute_expires_at: Timestamp;
  revoked_at: NullableTimestamp;
  revoke_reason: string | null;
}

export interface RefreshTokensTable {
  id: string;
  tenant_id: string;
  session_id: string;
  secret_hash: Buffer;
  created_at: Timestamp;
  expires_at: Timestamp;
  rotated_at: NullableTimestamp;
  replaced_by: string | null;
}

export interface MfaFactorsTable {
  id: string;
  tenant_id: string;
  user_id: string;
  type: "totp" | "recovery_code";
  state: "pending" | "active";
  display_name: Generated<string>;
  secret_sealed: string | null;
  last_used_step: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: Timestamp;
  confirmed_at: NullableTimestamp;
  last_used_at: NullableTimestamp;
  expires_at: NullableTimestamp;
}

export interface RecoveryCodesTable {
  tenant_id: string;
  factor_id: string;
  code_hash: Buffer;
  used_at: NullableTimestamp;
}

/** What a pending login carries until its second factor is verified. */
export interface PendingLoginJson {
  device?: DeviceJson;
  ip?: string;
  userAgent?: string;
  amr: string[];
  ssoConnectionId?: string;
  userProvisioned?: boolean;
  returnTo?: string;
  passwordChangeRequired?: boolean;
}

export interface MfaChallengesTable {
  id: string;
  tenant_id: string;
  user_id: string;
  factor_types: ColumnType<string[], string[], string[]>;
  attempts_remaining: number;
  login: Json<PendingLoginJson>;
  created_at: Timestamp;
  expires_at: Timestamp;
  completed_at: NullableTimestamp;
}

export interface UserTokensTable {
  id: string;
  tenant_id: string;
  user_id: string;
  purpose: "password_reset" | "email_verification";
  secret_hash: Buffer;
  email: string;
  created_at: Timestamp;
  expires_at: Timestamp;
  used_at: NullableTimestamp;
}

export interface PolicyTable<P> {
  tenant_id: string;
  policy: Json<P>;
  revision: Revision;
  updated_at: Timestamp;
}

/** Login policy as stored (durations in seconds). */
export interface LoginPolicyJson {
  lockoutThreshold: number;
  lockoutDurationSeconds: number;
  sessionIdleTimeoutSeconds: number;
  sessionAbsoluteTimeoutSeconds: number;
  allowSignUp: boolean;
  signUpEmailDomains: string[];
  passwordLoginEnabled: boolean;
  passwordMinLength: number;
}

/** MFA policy as stored (durations in seconds). */
export interface MfaPolicyJson {
  enforcement: "off" | "required_for_admins" | "required_for_all";
  stepUpMaxAgeSeconds: number;
  enrollmentGracePeriodSeconds: number;
  allowedFactorTypes: ("totp" | "recovery_code")[];
}

export interface SigningKeysTable {
  id: string;
  algorithm: string;
  state: "next" | "active" | "retired" | "expired";
  public_jwk: Json<JsonObject>;
  private_sealed: string;
  created_at: Timestamp;
  activated_at: NullableTimestamp;
  retired_at: NullableTimestamp;
  expires_at: NullableTimestamp;
}

export interface LoginThrottlesTable {
  key: string;
  failures: Generated<number>;
  window_started_at: Timestamp;
  blocked_until: NullableTimestamp;
}

export interface SsoConnectionsTable {
  id: string;
  tenant_id: string;
  display_name: string;
  type: "oidc" | "saml";
  enabled: Generated<boolean>;
  config: Json<JsonObject>;
  secret_sealed: string | null;
  sp_key_sealed: string | null;
  jit_provisioning: Generated<boolean>;
  require_sso: Generated<boolean>;
  group_role_mappings: Json<{ group: string; roleId: string }[]>;
  revision: Revision;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface SsoDomainsTable {
  tenant_id: string;
  connection_id: string;
  domain: string;
  state: "pending" | "verified";
  verification_value: string;
  verified_at: NullableTimestamp;
}

export interface VerifiedDomainsTable {
  domain: string;
  tenant_id_ref: string;
  connection_id: string;
}

export interface SsoFlowsTable {
  id: string;
  tenant_id: string;
  connection_id: string;
  flow: Json<JsonObject>;
  return_to: Generated<string>;
  created_at: Timestamp;
  expires_at: Timestamp;
  used_at: NullableTimestamp;
}

export interface SamlReplaysTable {
  key: string;
  tenant_id: string;
  expires_at: Timestamp;
}

export interface SsoIdentitiesTable {
  tenant_id: string;
  connection_id: string;
  subject: string;
  user_id: string;
  groups: ColumnType<string[], string[] | undefined, string[]>;
  created_at: Timestamp;
  last_login_at: Timestamp;
}

export interface ScimDirectoriesTable {
  id: string;
  tenant_id: string;
  display_name: string;
  sso_connection_id: string | null;
  deprovision_action: "disable" | "delete";
  group_role_mappings: Json<{ group: string; roleId: string }[]>;
  token_hash: Buffer;
  token_hint: string;
  token_created_at: Timestamp;
  token_last_used_at: NullableTimestamp;
  last_sync_at: NullableTimestamp;
  revision: Revision;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface ScimGroupsTable {
  id: string;
  tenant_id: string;
  directory_id: string;
  display_name: string;
  external_id: string | null;
  revision: Revision;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface ScimGroupMembersTable {
  tenant_id: string;
  group_id: string;
  user_id: string;
}

export interface ServiceAccountsTable {
  id: string;
  tenant_id: string;
  name: string;
  display_name: Generated<string>;
  description: Generated<string>;
  disabled: Generated<boolean>;
  attributes: Json<JsonObject>;
  last_used_at: NullableTimestamp;
  revision: Revision;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface ServiceAccountSecretsTable {
  id: string;
  tenant_id: string;
  service_account_id: string;
  description: Generated<string>;
  secret_hash: Buffer;
  secret_hint: string;
  created_at: Timestamp;
  expires_at: NullableTimestamp;
  last_used_at: NullableTimestamp;
}

export interface ServiceAccountIndexTable {
  id: string;
  tenant_id_ref: string;
}

export interface ImpersonationsTable {
  id: string;
  tenant_id: string;
  user_id: string;
  impersonator_user_id: string;
  impersonator_tenant_id: string;
  reason: string;
  session_id: string;
  created_at: Timestamp;
  expires_at: Timestamp;
  ended_at: NullableTimestamp;
}

export interface PrivilegedBindingsTable {
  binding_id: string;
  tenant_id: string;
  user_id: string;
}

/** The library-owned tables the service also sees (outbox, inbox). */
export interface IdentityDatabase {
  tenants: TenantsTable;
  users: UsersTable;
  sessions: SessionsTable;
  refresh_tokens: RefreshTokensTable;
  mfa_factors: MfaFactorsTable;
  recovery_codes: RecoveryCodesTable;
  mfa_challenges: MfaChallengesTable;
  user_tokens: UserTokensTable;
  login_policies: PolicyTable<LoginPolicyJson>;
  mfa_policies: PolicyTable<MfaPolicyJson>;
  signing_keys: SigningKeysTable;
  login_throttles: LoginThrottlesTable;
  sso_connections: SsoConnectionsTable;
  sso_domains: SsoDomainsTable;
  verified_domains: VerifiedDomainsTable;
  sso_flows: SsoFlowsTable;
  saml_replays: SamlReplaysTable;
  sso_identities: SsoIdentitiesTable;
  scim_directories: ScimDirectoriesTable;
  scim_groups: ScimGroupsTable;
  scim_group_members: ScimGroupMembersTable;
  service_accounts: ServiceAccountsTable;
  service_account_secrets: ServiceAccountSecretsTable;
  service_account_index: ServiceAccountIndexTable;
  impersonations: ImpersonationsTable;
  privileged_bindings: PrivilegedBindingsTable;
}

export type UserRow = Selectable<UsersTable>;
export type SessionRow = Selectable<SessionsTable>;
export type MfaFactorRow = Selectable<MfaFactorsTable>;
export type SsoConnectionRow = Selectable<SsoConnectionsTable>;
export type SsoDomainRow = Selectable<SsoDomainsTable>;
export type ScimDirectoryRow = Selectable<ScimDirectoriesTable>;
export type ScimGroupRow = Selectable<ScimGroupsTable>;
export type ServiceAccountRow = Selectable<ServiceAccountsTable>;
export type ServiceAccountSecretRow = Selectable<ServiceAccountSecretsTable>;
export type SigningKeyRow = Selectable<SigningKeysTable>;
export type ImpersonationRow = Selectable<ImpersonationsTable>;
