/**
 * What authorization needs from tenancy, kept from tenancy's events: tenant status,
 * memberships (a member holds the `member` role, an owner also `tenant-owner`; leaving the
 * tenant removes every binding the user held there), team members (team grants) and
 * deleted teams, projects and tenants (their bindings go). Applied once per event through
 * the inbox; each change bumps the tenant's revision like any authorization write.
 *
 * The bootstrap administrators of the installation are ordinary platform-admin bindings,
 * reconciled with `UAB_BOOTSTRAP_ADMIN_IDS` at start-up.
 */
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { type Logger, newId } from "@uab/core";
import { withPlatform } from "@uab/db";
import { type EventBus, handleOnce, type Subscription, unpackPayload } from "@uab/events";
import { BindingCreatedSchema } from "@uab/proto/gen/uab/authorization/v1/events_pb.js";
import type { Event } from "@uab/proto/gen/uab/events/v1/event_pb.js";
import {
  MembershipCreatedSchema,
  MembershipDeletedSchema,
  MembershipUpdatedSchema,
  ProjectPurgedSchema,
  TeamDeletedSchema,
  TeamMemberAddedSchema,
  TeamMemberRemovedSchema,
  TeamPurgedSchema,
  TeamRestoredSchema,
  TenantCreatedSchema,
  TenantDeletedSchema,
  TenantPurgedSchema,
  TenantRestoredSchema,
  TenantResumedSchema,
  TenantSuspendedSchema,
} from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import type { Membership } from "@uab/proto/gen/uab/tenancy/v1/membership_pb.js";
import { bindingToProto } from "../convert.js";
import { revisionKey, revisionToken } from "../engine/model.js";
import { SYSTEM_ROLE } from "../engine/system-roles.js";
import { emitDeleted } from "./bindings.js";
import { type AuthorizationDeps, bumpRevision, change, emit, type Tx } from "./common.js";

/** The durable consumer name. */
export const PROJECTION_CONSUMER = "authorization-tenancy";

function payload<D extends DescMessage>(event: Event, schema: D): MessageShape<D> | undefined {
  return event.type === schema.typeName ? unpackPayload(event, schema) : undefined;
}

async function managedBinding(
  tx: Tx,
  tenantId: string,
  userId: string,
  roleId: string,
  revision: string,
): Promise<void> {
  const row = await tx
    .insertInto("bindings")
    .values({
      id: newId("binding"),
      tenant_id: tenantId,
      principal_type: "user",
      principal_id: userId,
      principal_tenant_id: tenantId,
      role_id: roleId,
      scope_type: "tenant",
      description:
        roleId === SYSTEM_ROLE.tenantOwner ? "tenant owner (tenancy membership)" : "tenant member (tenancy membership)",
      source: "membership",
      creator_id: "system",
    })
    .onConflict((oc) =>
      oc.columns(["tenant_id", "principal_id", "role_id"]).where("source", "=", "membership").doNothing(),
    )
    .returningAll()
    .executeTakeFirst();
  if (row) {
    await emit(tx, BindingCreatedSchema, { binding: bindingToProto(row), revision }, tenantId, {
      type: "authorization.binding",
      id: row.id,
    });
  }
}

async function removeManaged(
  tx: Tx,
  tenantId: string,
  userId: string,
  roleId: string,
  revision: string,
): Promise<void> {
  const rows = await tx
    .deleteFrom("bindings")
    .where("tenant_id", "=", tenantId)
    .where("principal_id", "=", userId)
    .where("role_id", "=", roleId)
    .where("source", "=", "membership")
    .returningAll()
    .execute();
  await emitDeleted(tx, rows, "tenant ownership ended", revision);
}

async function joined(tx: Tx, m: Membership, revision: string): Promise<void> {
  await tx
    .insertInto("members")
    .values({
      tenant_id: m.tenantId,
      user_id: m.userId,
      owner: m.owner,
      attributes: JSON.stringify(m.attributes ?? {}),
    })
    .onConflict((oc) =>
      oc
        .columns(["tenant_id", "user_id"])
        .doUpdateSet({ owner: m.owner, attributes: JSON.stringify(m.attributes ?? {}) }),
    )
    .execute();
  await managedBinding(tx, m.tenantId, m.userId, SYSTEM_ROLE.member, revision);
  if (m.owner) await managedBinding(tx, m.tenantId, m.userId, SYSTEM_ROLE.tenantOwner, revision);
  else await removeManaged(tx, m.tenantId, m.userId, SYSTEM_ROLE.tenantOwner, revision);
}

async function setStatus(tx: Tx, tenantId: string, status: "active" | "suspended" | "terminated"): Promise<void> {
  await tx
    .insertInto("tenants")
    .values({ id: tenantId, status })
    .onConflict((oc) => oc.column("id").doUpdateSet({ status, updated_at: new Date() }))
    .execute();
}

/** The tenancy events decisions depend on; others change nothing here. */
const RELEVANT: ReadonlySet<string> = new Set<string>(
  [
    TenantCreatedSchema,
    TenantSuspendedSchema,
    TenantResumedSchema,
    TenantRestoredSchema,
    TenantDeletedSchema,
    TenantPurgedSchema,
    MembershipCreatedSchema,
    MembershipUpdatedSchema,
    MembershipDeletedSchema,
    TeamMemberAddedSchema,
    TeamMemberRemovedSchema,
    TeamDeletedSchema,
    TeamRestoredSchema,
    TeamPurgedSchema,
    ProjectPurgedSchema,
  ].map((s) => s.typeName),
);

/** Applies one tenancy event in the inbox transaction (scoped to the event's tenant). */
export async function applyTenancyEvent(tx: Tx, event: Event): Promise<void> {
  const tenantId = event.tenantId;
  if (!tenantId || !RELEVANT.has(event.type)) return;
  const revision = revisionToken(revisionKey(tenantId), await bumpRevision(tx, tenantId));
  const of = <D extends DescMessage>(schema: D) => payload(event, schema);
  switch (event.type) {
    case TenantCreatedSchema.typeName: {
      await setStatus(tx, tenantId, "active");
      const owner = of(TenantCreatedSchema)?.ownerMembership;
      if (owner) await joined(tx, owner, revision);
      return;
    }
    case TenantSuspendedSchema.typeName:
      return setStatus(tx, tenantId, "suspended");
    case TenantResumedSchema.typeName:
    case TenantRestoredSchema.typeName:
      return setStatus(tx, tenantId, "active");
    case TenantDeletedSchema.typeName:
      return setStatus(tx, tenantId, "terminated");
    case TenantPurgedSchema.typeName: {
      const gone = await tx.deleteFrom("bindings").where("tenant_id", "=", tenantId).returningAll().execute();
      await emitDeleted(tx, gone, "tenant purged", revision);
      for (const table of [
        "access_request_approvals",
        "access_requests",
        "approval_policies",
        "roles",
        "members",
        "team_members",
        "deleted_teams",
      ] as const) {
        await tx.deleteFrom(table).where("tenant_id", "=", tenantId).execute();
      }
      return setStatus(tx, tenantId, "terminated");
    }
    case MembershipCreatedSchema.typeName:
    case MembershipUpdatedSchema.typeName: {
      const m = (of(MembershipCreatedSchema) ?? of(MembershipUpdatedSchema))?.membership;
      if (m) await joined(tx, m, revision);
      return;
    }
    case MembershipDeletedSchema.typeName: {
      const m = of(MembershipDeletedSchema)?.membership;
      if (!m) return;
      await tx.deleteFrom("members").where("tenant_id", "=", tenantId).where("user_id", "=", m.userId).execute();
      await tx
        .deleteFrom("team_members")
        .where("tenant_id", "=", tenantId)
        .where("principal_id", "=", m.userId)
        .execute();
      const gone = await tx
        .deleteFrom("bindings")
        .where("tenant_id", "=", tenantId)
        .where("principal_id", "=", m.userId)
        .where("principal_tenant_id", "=", tenantId)
        .returningAll()
        .execute();
      return emitDeleted(tx, gone, "membership ended", revision);
    }
    case TeamMemberAddedSchema.typeName: {
      const m = of(TeamMemberAddedSchema)?.member;
      if (!m) return;
      await tx
        .insertInto("team_members")
        .values({ tenant_id: tenantId, team_id: m.teamId, principal_id: m.userId })
        .onConflict((oc) => oc.columns(["team_id", "principal_id"]).doNothing())
        .execute();
      return;
    }
    case TeamMemberRemovedSchema.typeName: {
      const m = of(TeamMemberRemovedSchema)?.member;
      if (m) {
        await tx
          .deleteFrom("team_members")
          .where("team_id", "=", m.teamId)
          .where("principal_id", "=", m.userId)
          .execute();
      }
      return;
    }
    case TeamDeletedSchema.typeName: {
      const team = of(TeamDeletedSchema)?.team;
      if (team) {
        await tx
          .insertInto("deleted_teams")
          .values({ tenant_id: tenantId, team_id: team.id })
          .onConflict((oc) => oc.column("team_id").doNothing())
          .execute();
      }
      return;
    }
    case TeamRestoredSchema.typeName: {
      const team = of(TeamRestoredSchema)?.team;
      if (team) await tx.deleteFrom("deleted_teams").where("team_id", "=", team.id).execute();
      return;
    }
    case TeamPurgedSchema.typeName: {
      const teamId = of(TeamPurgedSchema)?.teamId;
      if (!teamId) return;
      const gone = await tx
        .deleteFrom("bindings")
        .where("tenant_id", "=", tenantId)
        .where((eb) => eb.or([eb("principal_id", "=", teamId), eb("team_id", "=", teamId)]))
        .returningAll()
        .execute();
      await emitDeleted(tx, gone, `team ${teamId} purged`, revision);
      await tx.deleteFrom("team_members").where("team_id", "=", teamId).execute();
      await tx.deleteFrom("deleted_teams").where("team_id", "=", teamId).execute();
      return;
    }
    case ProjectPurgedSchema.typeName: {
      const projectId = of(ProjectPurgedSchema)?.projectId;
      if (!projectId) return;
      const gone = await tx
        .deleteFrom("bindings")
        .where("tenant_id", "=", tenantId)
        .where("project_id", "=", projectId)
        .returningAll()
        .execute();
      return emitDeleted(tx, gone, `project ${projectId} purged`, revision);
    }
    default:
      return;
  }
}

/** Subscribes the projection to tenancy's events. */
export async function startProjection(deps: AuthorizationDeps, bus: EventBus, logger: Logger): Promise<Subscription> {
  return bus.subscribe({ name: PROJECTION_CONSUMER, filterSubjects: ["uab.events.tenancy.>"] }, async (delivered) => {
    const ran = await handleOnce(deps.db, PROJECTION_CONSUMER, delivered, applyTenancyEvent);
    if (ran && delivered.event.tenantId) {
      deps.store.invalidate(delivered.event.tenantId);
      logger.debug({ event: delivered.event.type, tenant: delivered.event.tenantId }, "tenancy change applied");
    }
  });
}

/**
 * Makes the configured principals' managed platform bindings (source `bootstrap`) match the
 * configuration: bootstrap administrators hold platform-admin, UAB's own service accounts
 * hold authorization-checker. Bootstrap bindings no longer configured are removed.
 */
export async function reconcileBootstrapBindings(
  deps: AuthorizationDeps,
  wanted: readonly { principalId: string; roleId: string }[],
): Promise<void> {
  const existing = await withPlatform(deps.db, (tx) =>
    tx.selectFrom("bindings").select(["id", "principal_id", "role_id"]).where("source", "=", "bootstrap").execute(),
  );
  const key = (p: string, r: string) => `${p}|${r}`;
  const want = new Set(wanted.map((w) => key(w.principalId, w.roleId)));
  const have = new Set(existing.map((e) => key(e.principal_id, e.role_id)));
  const add = wanted.filter((w) => !have.has(key(w.principalId, w.roleId)));
  // An empty configuration leaves existing bootstrap bindings alone: a replica started
  // without the setting must not strip the installation of its administrators.
  const remove = wanted.length === 0 ? [] : existing.filter((e) => !want.has(key(e.principal_id, e.role_id)));
  if (add.length === 0 && remove.length === 0) return;
  await change(deps, null, async (tx, revision) => {
    for (const w of add) {
      const row = await tx
        .insertInto("bindings")
        .values({
          id: newId("binding"),
          tenant_id: null,
          principal_type: w.principalId.startsWith("sa_") ? "service_account" : "user",
          principal_id: w.principalId,
          principal_tenant_id: null,
          role_id: w.roleId,
          scope_type: "platform",
          description:
            w.roleId === SYSTEM_ROLE.platformAdmin
              ? "bootstrap administrator (UAB_BOOTSTRAP_ADMIN_IDS)"
              : "UAB service account (UAB_SERVICE_ACCOUNT_IDS)",
          source: "bootstrap",
          creator_id: "system",
        })
        .onConflict((oc) =>
          oc
            .columns(["principal_id", "role_id"])
            .where("source", "=", "bootstrap")
            .where("tenant_id", "is", null)
            .doNothing(),
        )
        .returningAll()
        .executeTakeFirst();
      if (row) {
        await emit(tx, BindingCreatedSchema, { binding: bindingToProto(row), revision }, null, {
          type: "authorization.binding",
          id: row.id,
        });
      }
    }
    if (remove.length > 0) {
      const gone = await tx
        .deleteFrom("bindings")
        .where(
          "id",
          "in",
          remove.map((r) => r.id),
        )
        .returningAll()
        .execute();
      await emitDeleted(tx, gone, "no longer configured", revision);
    }
  });
}
