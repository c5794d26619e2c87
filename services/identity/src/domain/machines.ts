/**
 * Service accounts (machine identities of a tenant) with client secrets and the OAuth 2.0
 * client-credentials grant, and impersonation (an authorised user acting as another, with a
 * stated reason, for at most an hour, every action carrying both through the token's `act`).
 */
import { create, type JsonObject as PbJsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  NotFoundError,
  newId,
  PermissionDeniedError,
  type Principal,
  UnauthenticatedError,
} from "@uab/core";
import { decodePageToken, isUniqueViolation, likeContains, pageSize, paginate, withPlatform } from "@uab/db";
import {
  ImpersonationEndedSchema,
  ImpersonationStartedSchema,
  ServiceAccountCreatedSchema,
  ServiceAccountDeletedSchema,
  ServiceAccountSecretCreatedSchema,
  ServiceAccountSecretDeletedSchema,
  ServiceAccountUpdatedSchema,
} from "@uab/proto/gen/uab/identity/v1/events_pb.js";
import type { Impersonation } from "@uab/proto/gen/uab/identity/v1/impersonation_pb.js";
import type { ServiceAccount, ServiceAccountSecret } from "@uab/proto/gen/uab/identity/v1/service_account_pb.js";
import { type Tokens, TokensSchema } from "@uab/proto/gen/uab/identity/v1/token_pb.js";
import { sql } from "kysely";
import { impersonationToProto, serviceAccountSecretToProto, serviceAccountToProto } from "../convert.js";
import type { JsonObject, ServiceAccountRow } from "../storage/tables.js";
import {
  actAs,
  checkEtag,
  clientInfo,
  emit,
  getUserRow,
  type IdentityDeps,
  inTenant,
  nextRevision,
  randomSecret,
  requireActiveTenant,
  sameHash,
  savepoint,
  sha256,
  type Tx,
} from "./common.js";
import { isPrivileged } from "./projection.js";
import { describeDevice, endSessions, startSession } from "./sessions.js";
import { signInState } from "./users.js";

const saResource = (r: Pick<ServiceAccountRow, "id" | "name">) => ({
  type: "identity.service_account",
  id: r.id,
  displayName: r.name,
});

async function saRow(tx: Tx, id: string, lock = false): Promise<ServiceAccountRow> {
  let q = tx.selectFrom("service_accounts").selectAll().where("id", "=", id);
  if (lock) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) throw new NotFoundError("SERVICE_ACCOUNT_NOT_FOUND", `service account ${id} not found`);
  return row;
}

async function saView(tx: Tx, row: ServiceAccountRow): Promise<ServiceAccount> {
  const secrets = await tx
    .selectFrom("service_account_secrets")
    .selectAll()
    .where("service_account_id", "=", row.id)
    .orderBy("id")
    .execute();
  return serviceAccountToProto(row, secrets);
}

/** CreateServiceAccount. */
export function createServiceAccount(
  deps: IdentityDeps,
  req: {
    tenantId: string;
    name: string;
    displayName: string;
    description: string;
    attributes?: PbJsonObject | undefined;
  },
): Promise<ServiceAccount> {
  return inTenant(deps, req.tenantId, async (tx) => {
    await requireActiveTenant(tx, req.tenantId);
    const id = newId("serviceAccount");
    let row: ServiceAccountRow;
    try {
      row = await savepoint(tx, async () =>
        tx
          .insertInto("service_accounts")
          .values({
            id,
            tenant_id: req.tenantId,
            name: req.name,
            display_name: req.displayName,
            description: req.description,
            attributes: JSON.stringify(req.attributes ?? {}),
          })
          .returningAll()
          .executeTakeFirstOrThrow(),
      );
    } catch (e) {
      if (isUniqueViolation(e, "service_accounts_name_key")) {
        throw new AlreadyExistsError(
          "SERVICE_ACCOUNT_NAME_TAKEN",
          `a service account named ${req.name} already exists`,
          {
            violations: [{ field: "name", description: "is already used in this tenant" }],
          },
        );
      }
      throw e;
    }
    await withPlatform(deps.db, (p) =>
      p.insertInto("service_account_index").values({ id, tenant_id_ref: req.tenantId }).execute(),
    );
    const out = serviceAccountToProto(row, []);
    await emit(tx, ServiceAccountCreatedSchema, { serviceAccount: out }, req.tenantId, saResource(row));
    return out;
  });
}

/** GetServiceAccount. */
export function getServiceAccount(deps: IdentityDeps, tenantId: string, id: string): Promise<ServiceAccount> {
  return inTenant(deps, tenantId, async (tx) => saView(tx, await saRow(tx, id)));
}

/** ListServiceAccounts. */
export function listServiceAccounts(
  deps: IdentityDeps,
  req: { tenantId: string; pageSize: number; pageToken: string; query: string; showDisabled: boolean },
): Promise<{ items: ServiceAccount[]; next: string }> {
  const filters = { t: req.tenantId, q: req.query, d: req.showDisabled };
  const after = decodePageToken(req.pageToken, filters);
  const size = pageSize(req.pageSize);
  return inTenant(deps, req.tenantId, async (tx) => {
    let q = tx.selectFrom("service_accounts").selectAll();
    if (!req.showDisabled) q = q.where("disabled", "=", false);
    if (req.query) {
      const like = likeContains(req.query.toLowerCase());
      q = q.where((eb) => eb.or([eb("name", "like", like), eb(sql`lower(display_name)`, "like", like)]));
    }
    if (after) q = q.where("id", "<", after);
    const page = paginate(
      await q
        .orderBy("id", "desc")
        .limit(size + 1)
        .execute(),
      size,
      filters,
    );
    return { items: await Promise.all(page.items.map((r) => saView(tx, r))), next: page.next };
  });
}

/** UpdateServiceAccount. */
export function updateServiceAccount(
  deps: IdentityDeps,
  req: {
    tenantId: string;
    serviceAccountId: string;
    displayName: string;
    description: string;
    disabled: boolean;
    attributes?: PbJsonObject | undefined;
    paths: readonly string[];
    etag: string;
  },
): Promise<ServiceAccount> {
  return inTenant(deps, req.tenantId, async (tx) => {
    await requireActiveTenant(tx, req.tenantId);
    const row = await saRow(tx, req.serviceAccountId, true);
    checkEtag(req.etag, row.revision, `service account ${row.id}`);
    const set: Record<string, unknown> = {};
    for (const p of req.paths) {
      if (p === "display_name") set.display_name = req.displayName;
      if (p === "description") set.description = req.description;
      if (p === "disabled") set.disabled = req.disabled;
      if (p === "attributes") set.attributes = JSON.stringify((req.attributes ?? {}) as JsonObject);
    }
    const updated = await tx
      .updateTable("service_accounts")
      .set({ ...set, revision: nextRevision(row.revision), updated_at: new Date() })
      .where("id", "=", row.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    const out = await saView(tx, updated);
    await emit(
      tx,
      ServiceAccountUpdatedSchema,
      { serviceAccount: out, changedFields: [...req.paths] },
      req.tenantId,
      saResource(updated),
    );
    return out;
  });
}

/** DeleteServiceAccount (its secrets go with it; tokens already issued expire on their own). */
export function deleteServiceAccount(deps: IdentityDeps, tenantId: string, id: string, etag: string): Promise<void> {
  return inTenant(deps, tenantId, async (tx) => {
    const row = await saRow(tx, id, true);
    checkEtag(etag, row.revision, `service account ${row.id}`);
    const out = await saView(tx, row);
    await tx.deleteFrom("service_accounts").where("id", "=", id).execute();
    await withPlatform(deps.db, (p) => p.deleteFrom("service_account_index").where("id", "=", id).execute());
    await emit(tx, ServiceAccountDeletedSchema, { serviceAccount: out }, tenantId, saResource(row));
  });
}

const SECRET_PREFIX = "uabsk_";

/** CreateServiceAccountSecret: the secret is shown once; only its SHA-256 is kept. */
export function createServiceAccountSecret(
  deps: IdentityDeps,
  req: { tenantId: string; serviceAccountId: string; description: string; expireTime?: Date | undefined },
): Promise<{ secret: ServiceAccountSecret; clientSecret: string }> {
  return inTenant(deps, req.tenantId, async (tx) => {
    await requireActiveTenant(tx, req.tenantId);
    const sa = await saRow(tx, req.serviceAccountId, true);
    if (req.expireTime && req.expireTime <= new Date()) {
      const { InvalidArgumentError } = await import("@uab/core");
      throw InvalidArgumentError.field("expire_time", "must be in the future");
    }
    const count = await tx
      .selectFrom("service_account_secrets")
      .select((eb) => eb.fn.countAll<string>().as("n"))
      .where("service_account_id", "=", sa.id)
      .executeTakeFirstOrThrow();
    if (Number(count.n) >= 5) {
      throw new FailedPreconditionError(
        "TOO_MANY_SECRETS",
        "a service account has at most 5 secrets; delete one first",
      );
    }
    const clientSecret = `${SECRET_PREFIX}${randomSecret()}`;
    const row = await tx
      .insertInto("service_account_secrets")
      .values({
        id: newId("serviceAccountSecret"),
        tenant_id: req.tenantId,
        service_account_id: sa.id,
        description: req.description,
        secret_hash: sha256(clientSecret),
        secret_hint: `${clientSecret.slice(0, SECRET_PREFIX.length + 4)}…${clientSecret.slice(-4)}`,
        expires_at: req.expireTime ?? null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const out = serviceAccountSecretToProto(row);
    await emit(tx, ServiceAccountSecretCreatedSchema, { serviceAccountSecret: out }, req.tenantId, saResource(sa));
    return { secret: out, clientSecret };
  });
}

/** DeleteServiceAccountSecret. */
export function deleteServiceAccountSecret(
  deps: IdentityDeps,
  tenantId: string,
  saId: string,
  secretId: string,
): Promise<void> {
  return inTenant(deps, tenantId, async (tx) => {
    const sa = await saRow(tx, saId);
    const row = await tx
      .deleteFrom("service_account_secrets")
      .where("id", "=", secretId)
      .where("service_account_id", "=", saId)
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new NotFoundError("SERVICE_ACCOUNT_SECRET_NOT_FOUND", `secret ${secretId} not found`);
    await emit(
      tx,
      ServiceAccountSecretDeletedSchema,
      { serviceAccountSecret: serviceAccountSecretToProto(row) },
      tenantId,
      saResource(sa),
    );
  });
}

/**
 * ClientCredentialsToken (RFC 6749 §4.4): a service account's secret buys a short-lived
 * access token (`typ` service_account, no session, no refresh token). Wrong id, wrong secret,
 * expired secret and disabled account all answer the same.
 */
export async function clientCredentials(
  deps: IdentityDeps,
  clientId: string,
  clientSecret: string,
  scopes: readonly string[],
): Promise<Tokens> {
  const invalid = () => new UnauthenticatedError("INVALID_CLIENT", "client authentication failed");
  const idx = await withPlatform(deps.db, (tx) =>
    tx.selectFrom("service_account_index").select("tenant_id_ref").where("id", "=", clientId).executeTakeFirst(),
  );
  if (!idx) throw invalid();
  const tenantId = idx.tenant_id_ref;
  const hash = sha256(clientSecret);
  const sa = await inTenant(deps, tenantId, async (tx) => {
    if (
      (await tx.selectFrom("tenants").select("status").where("id", "=", tenantId).executeTakeFirst())?.status ===
      "suspended"
    )
      return undefined;
    const row = await tx.selectFrom("service_accounts").selectAll().where("id", "=", clientId).executeTakeFirst();
    if (!row || row.disabled) return undefined;
    const now = new Date();
    const secrets = await tx
      .selectFrom("service_account_secrets")
      .selectAll()
      .where("service_account_id", "=", clientId)
      .execute();
    const match = secrets.find((s) => sameHash(s.secret_hash, hash) && (s.expires_at === null || s.expires_at > now));
    if (!match) return undefined;
    await tx.updateTable("service_account_secrets").set({ last_used_at: now }).where("id", "=", match.id).execute();
    await tx.updateTable("service_accounts").set({ last_used_at: now }).where("id", "=", row.id).execute();
    const tenant = await tx
      .selectFrom("tenants")
      .select("authorization_revision")
      .where("id", "=", tenantId)
      .executeTakeFirst();
    return { row, rrev: tenant?.authorization_revision ?? "" };
  });
  if (!sa) throw invalid();
  const ttl = deps.settings.clientCredentialsTtlSeconds;
  const access = await deps.keys.sign(
    {
      sub: sa.row.id,
      typ: "service_account",
      tid: tenantId,
      amr: ["client_secret"],
      ...(sa.rrev ? { rrev: sa.rrev } : {}),
      ...(scopes.length > 0 ? { scope: scopes.join(" ") } : {}),
    },
    ttl,
    deps.settings.issuer,
    deps.settings.audience,
  );
  return create(TokensSchema, {
    accessToken: access.token,
    tokenType: "Bearer",
    accessTokenExpireTime: timestampFromDate(new Date(access.expiresAt * 1000)),
    expiresIn: ttl,
    subjectId: sa.row.id,
    tenantId,
    scopes: [...scopes],
  });
}

/** StartImpersonation. */
export async function startImpersonation(
  deps: IdentityDeps,
  caller: Principal,
  req: { tenantId: string; userId: string; reason: string; durationSeconds: number },
): Promise<{ impersonation: Impersonation; tokens: Tokens }> {
  if (caller.type !== "user")
    throw new PermissionDeniedError("IMPERSONATION_NOT_ALLOWED", "only users can impersonate");
  if (caller.impersonatorId)
    throw new PermissionDeniedError("IMPERSONATION_NESTED", "an impersonation cannot start another");
  if (caller.id === req.userId)
    throw new FailedPreconditionError("IMPERSONATION_SELF", "you cannot impersonate yourself");
  const seconds = Math.min(req.durationSeconds, deps.settings.impersonationMaxSeconds);
  return inTenant(deps, req.tenantId, async (tx) => {
    await requireActiveTenant(tx, req.tenantId);
    const user = await getUserRow(tx, req.userId, { live: true });
    if (signInState(user) === "disabled")
      throw new FailedPreconditionError("USER_DISABLED", "a disabled user cannot be impersonated");
    if (await isPrivileged(tx, user.id)) {
      throw new PermissionDeniedError(
        "IMPERSONATION_OF_ADMIN",
        "tenant owners and administrators cannot be impersonated",
      );
    }
    const expiresAt = new Date(Date.now() + seconds * 1000);
    const impId = newId("impersonation");
    const { ip, userAgent } = clientInfo();
    const { session, tokens } = await startSession(deps, tx, user, {
      amr: ["imp"],
      device: describeDevice(userAgent, "impersonation"),
      ip,
      userAgent,
      mfa: false,
      impersonation: {
        id: impId,
        impersonatorUserId: caller.id,
        impersonatorTenantId: caller.tenantId ?? "",
        expiresAt,
      },
    });
    const row = await tx
      .insertInto("impersonations")
      .values({
        id: impId,
        tenant_id: req.tenantId,
        user_id: user.id,
        impersonator_user_id: caller.id,
        impersonator_tenant_id: caller.tenantId ?? "",
        reason: req.reason,
        session_id: session.id,
        expires_at: expiresAt,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    // No refresh token: the access token lives exactly as long as the impersonation.
    await tx.deleteFrom("refresh_tokens").where("session_id", "=", session.id).execute();
    const access = tokens.accessToken;
    const out = impersonationToProto(row);
    await emit(tx, ImpersonationStartedSchema, { impersonation: out }, req.tenantId, {
      type: "identity.user",
      id: user.id,
      displayName: user.email ?? "",
    });
    return {
      impersonation: out,
      tokens: create(TokensSchema, {
        accessToken: access,
        tokenType: "Bearer",
        accessTokenExpireTime: tokens.accessTokenExpireTime,
        expiresIn: tokens.expiresIn,
        sessionId: session.id,
        subjectId: user.id,
        tenantId: req.tenantId,
      }),
    };
  });
}

/** EndImpersonation: by the impersonator, with their own token or the impersonation's. */
export async function endImpersonation(
  deps: IdentityDeps,
  caller: Principal,
  impersonationId: string,
): Promise<Impersonation> {
  const notFound = () => new NotFoundError("IMPERSONATION_NOT_FOUND", `impersonation ${impersonationId} not found`);
  const impersonatorId = caller.impersonatorId ?? caller.id;
  const found = await withPlatform(deps.db, (tx) =>
    tx
      .selectFrom("impersonations")
      .select(["tenant_id", "impersonator_user_id"])
      .where("id", "=", impersonationId)
      .executeTakeFirst(),
  );
  if (!found || found.impersonator_user_id !== impersonatorId) throw notFound();
  return inTenant(deps, found.tenant_id, async (tx) => {
    const row = await tx
      .selectFrom("impersonations")
      .selectAll()
      .where("id", "=", impersonationId)
      .forUpdate()
      .executeTakeFirstOrThrow();
    if (row.ended_at) return impersonationToProto(row);
    actAs({ ...caller, tenantId: caller.tenantId });
    const ended = await tx
      .updateTable("impersonations")
      .set({ ended_at: new Date() })
      .where("id", "=", row.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    const sessions = await tx.selectFrom("sessions").selectAll().where("id", "=", row.session_id).forUpdate().execute();
    await endSessions(tx, sessions, "impersonation_ended");
    const out = impersonationToProto(ended);
    await emit(tx, ImpersonationEndedSchema, { impersonation: out, expired: false }, row.tenant_id, {
      type: "identity.user",
      id: row.user_id,
    });
    return out;
  });
}

/** Marks impersonations past their expiry as ended (the sweeper). */
export async function expireImpersonations(deps: IdentityDeps): Promise<void> {
  const due = await withPlatform(deps.db, (tx) =>
    tx
      .selectFrom("impersonations")
      .select(["id", "tenant_id"])
      .where("ended_at", "is", null)
      .where("expires_at", "<=", new Date())
      .limit(500)
      .execute(),
  );
  for (const d of due) {
    await inTenant(deps, d.tenant_id, async (tx) => {
      const ended = await tx
        .updateTable("impersonations")
        .set({ ended_at: sql`expires_at` })
        .where("id", "=", d.id)
        .where("ended_at", "is", null)
        .returningAll()
        .executeTakeFirst();
      if (!ended) return;
      const sessions = await tx
        .selectFrom("sessions")
        .selectAll()
        .where("id", "=", ended.session_id)
        .forUpdate()
        .execute();
      await endSessions(tx, sessions, "impersonation_ended");
      await emit(
        tx,
        ImpersonationEndedSchema,
        { impersonation: impersonationToProto(ended), expired: true },
        d.tenant_id,
        {
          type: "identity.user",
          id: ended.user_id,
        },
      );
    });
  }
}
