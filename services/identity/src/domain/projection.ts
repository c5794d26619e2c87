/**
 * What identity keeps from other services' events, applied once per event through the inbox:
 * from tenancy, each tenant's status (a suspended or terminated tenant's users cannot sign
 * in, and a purged tenant's users go); from authorization, the tenant's latest revision
 * (stamped into access tokens as `rrev`, so a service can demand decisions at least that
 * fresh) and which users hold a sensitive role (MFA "required for admins").
 */
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { Logger } from "@uab/core";
import { type EventBus, handleOnce, type Subscription, unpackPayload } from "@uab/events";
import {
  BindingCreatedSchema,
  BindingDeletedSchema,
  BindingExpiredSchema,
  RoleCreatedSchema,
  RoleDeletedSchema,
  RoleUpdatedSchema,
  SensitiveRoleGrantedSchema,
} from "@uab/proto/gen/uab/authorization/v1/events_pb.js";
import { PrincipalType } from "@uab/proto/gen/uab/authorization/v1/principal_pb.js";
import type { Event } from "@uab/proto/gen/uab/events/v1/event_pb.js";
import {
  TenantCreatedSchema,
  TenantDeletedSchema,
  TenantPurgedSchema,
  TenantRestoredSchema,
  TenantResumedSchema,
  TenantSuspendedSchema,
} from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import type { IdentityDeps, Tx } from "./common.js";
import { endUserSessions } from "./sessions.js";

/** The durable consumer name. */
export const PROJECTION_CONSUMER = "identity-projection";

/** Roles that make their holder an administrator for the MFA policy, besides any sensitive role. */
const ADMIN_ROLES = new Set(
  ["platform-admin", "tenant-owner", "admin", "security-admin"].map(
    (s) => `role_${s.replace(/-/g, "").padStart(26, "0")}`,
  ),
);

function payload<D extends DescMessage>(event: Event, schema: D): MessageShape<D> | undefined {
  return event.type === schema.typeName ? unpackPayload(event, schema) : undefined;
}

async function setStatus(tx: Tx, tenantId: string, status: "active" | "suspended" | "terminated"): Promise<void> {
  await tx
    .insertInto("tenants")
    .values({ id: tenantId, status })
    .onConflict((oc) => oc.column("id").doUpdateSet({ status, updated_at: new Date() }))
    .execute();
}

async function setRevision(tx: Tx, tenantId: string, revision: string): Promise<void> {
  if (!revision) return;
  await tx
    .insertInto("tenants")
    .values({ id: tenantId, status: "active", authorization_revision: revision })
    .onConflict((oc) => oc.column("id").doUpdateSet({ authorization_revision: revision }))
    .execute();
}

/** Applies one event in the inbox transaction (scoped to the event's tenant). */
export async function applyEvent(tx: Tx, event: Event): Promise<void> {
  const tenantId = event.tenantId;
  if (!tenantId) return;
  const of = <D extends DescMessage>(schema: D) => payload(event, schema);
  switch (event.type) {
    case TenantCreatedSchema.typeName:
    case TenantResumedSchema.typeName:
    case TenantRestoredSchema.typeName:
      return setStatus(tx, tenantId, "active");
    case TenantSuspendedSchema.typeName:
      return setStatus(tx, tenantId, "suspended");
    case TenantDeletedSchema.typeName: {
      await setStatus(tx, tenantId, "terminated");
      const users = await tx.selectFrom("users").select("id").where("tenant_id", "=", tenantId).execute();
      for (const u of users) await endUserSessions(tx, u.id, "user_deactivated");
      return;
    }
    case TenantPurgedSchema.typeName: {
      for (const table of [
        "refresh_tokens",
        "sessions",
        "recovery_codes",
        "mfa_factors",
        "mfa_challenges",
        "user_tokens",
        "login_policies",
        "mfa_policies",
        "sso_identities",
        "sso_flows",
        "saml_replays",
        "sso_domains",
        "sso_connections",
        "scim_group_members",
        "scim_groups",
        "scim_directories",
        "service_account_secrets",
        "service_accounts",
        "impersonations",
        "privileged_bindings",
        "users",
      ] as const) {
        await tx.deleteFrom(table).where("tenant_id", "=", tenantId).execute();
      }
      return setStatus(tx, tenantId, "terminated");
    }
    case SensitiveRoleGrantedSchema.typeName: {
      const b = of(SensitiveRoleGrantedSchema)?.binding;
      if (b?.principal?.type === PrincipalType.USER && b.principal.id) {
        await tx
          .insertInto("privileged_bindings")
          .values({ binding_id: b.id, tenant_id: tenantId, user_id: b.principal.id })
          .onConflict((oc) => oc.column("binding_id").doNothing())
          .execute();
      }
      return;
    }
    case BindingCreatedSchema.typeName: {
      const p = of(BindingCreatedSchema);
      const b = p?.binding;
      if (b?.principal?.type === PrincipalType.USER && b.principal.id && ADMIN_ROLES.has(b.roleId)) {
        await tx
          .insertInto("privileged_bindings")
          .values({ binding_id: b.id, tenant_id: tenantId, user_id: b.principal.id })
          .onConflict((oc) => oc.column("binding_id").doNothing())
          .execute();
      }
      return setRevision(tx, tenantId, p?.revision ?? "");
    }
    case BindingDeletedSchema.typeName:
    case BindingExpiredSchema.typeName: {
      const p = of(BindingDeletedSchema) ?? of(BindingExpiredSchema);
      if (p?.binding) await tx.deleteFrom("privileged_bindings").where("binding_id", "=", p.binding.id).execute();
      return setRevision(tx, tenantId, p?.revision ?? "");
    }
    case RoleCreatedSchema.typeName:
    case RoleUpdatedSchema.typeName:
    case RoleDeletedSchema.typeName: {
      const p = of(RoleCreatedSchema) ?? of(RoleUpdatedSchema) ?? of(RoleDeletedSchema);
      return setRevision(tx, tenantId, p?.revision ?? "");
    }
  }
}

/** Starts the durable consumer of tenancy's and authorization's events. */
export async function startProjection(deps: IdentityDeps, bus: EventBus, logger: Logger): Promise<Subscription> {
  return bus.subscribe(
    { name: PROJECTION_CONSUMER, filterSubjects: ["uab.events.tenancy.>", "uab.events.authorization.>"] },
    async (delivered) => {
      const ran = await handleOnce(deps.db, PROJECTION_CONSUMER, delivered, applyEvent);
      if (ran) logger.debug({ event: delivered.event.type, tenant: delivered.event.tenantId }, "projection applied");
    },
  );
}

/** Whether the user holds a sensitive role in its tenant. */
export async function isPrivileged(tx: Tx, userId: string): Promise<boolean> {
  const row = await tx
    .selectFrom("privileged_bindings")
    .select("binding_id")
    .where("user_id", "=", userId)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}
