/**
 * Per-tenant SSO: connections (OIDC or SAML) with their e-mail domains, domain verification
 * by a DNS TXT record, routing a sign-in by verified domain, the sign-in flows (OIDC
 * authorization code + PKCE, SAML HTTP-POST), just-in-time provisioning and the link between
 * an upstream subject and a UAB user. A verified domain belongs to one connection in the
 * whole installation, so routing by e-mail needs no tenant.
 */
import { Resolver } from "node:dns/promises";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  newId,
  UnauthenticatedError,
} from "@uab/core";
import { decodePageToken, isUniqueViolation, pageSize, paginate, withPlatform } from "@uab/db";
import { HttpBodySchema } from "@uab/proto/gen/google/api/httpbody_pb.js";
import {
  LoginFailedSchema,
  LoginFailureReason,
  SsoConnectionCreatedSchema,
  SsoConnectionDeletedSchema,
  SsoConnectionUpdatedSchema,
  SsoDomainVerifiedSchema,
} from "@uab/proto/gen/uab/identity/v1/events_pb.js";
import type {
  AttributeMappingInput,
  CreateSsoConnectionRequest,
  UpdateSsoConnectionRequest,
} from "@uab/proto/gen/uab/identity/v1/identity_service_pb.js";
import {
  type SsoConnection,
  SsoConnectionSchema,
  SsoConnectionType,
  SsoDomainState,
} from "@uab/proto/gen/uab/identity/v1/sso_connection_pb.js";
import { sql } from "kysely";
import { scimHandlers } from "../scim/directories.js";
import type { AttributeMapping, MappedIdentity } from "../sso/mapping.js";
import { type OidcConnectionSettings, type OidcFlowState, OidcRelyingParty } from "../sso/oidc.js";
import { normalizeCertificates, type SamlConnectionSettings, SamlServiceProvider } from "../sso/saml.js";
import type { JsonObject, SsoConnectionRow, SsoDomainRow, UserRow } from "../storage/tables.js";
import {
  checkEtag,
  clientInfo,
  emit,
  type IdentityDeps,
  inTenant,
  nextRevision,
  randomSecret,
  requireActiveTenant,
  type Tx,
} from "./common.js";
import { finishSignIn, type SignInResult } from "./login.js";
import { describeDevice } from "./sessions.js";
import type { SsoHandlers } from "./sso-port.js";
import { insertUser, signInState } from "./users.js";

/** Stored OIDC settings (the secret is sealed separately). */
interface OidcStored {
  issuer: string;
  clientId: string;
  scopes: string[];
  mapping: AttributeMapping;
  secretHint: string;
}
/** Stored SAML settings. */
interface SamlStored {
  idpEntityId: string;
  idpSsoUrl: string;
  idpCertificates: string[];
  spEntityId: string;
  signAuthnRequests: boolean;
  mapping: AttributeMapping;
}

const FLOW_TTL_MS = 10 * 60_000;
const VERIFY_PREFIX = "uab-domain-verification=";

function mappingFrom(m: AttributeMappingInput | undefined): AttributeMapping {
  if (!m) return {};
  const out: Record<string, unknown> = {};
  for (const k of [
    "subject",
    "email",
    "emailVerified",
    "givenName",
    "familyName",
    "displayName",
    "username",
    "locale",
    "groups",
  ] as const) {
    if (m[k]) out[k] = m[k];
  }
  if (Object.keys(m.attributes).length > 0) out.attributes = { ...m.attributes };
  return out as AttributeMapping;
}

function mappingTo(m: AttributeMapping) {
  return {
    subject: m.subject ?? "",
    email: m.email ?? "",
    emailVerified: m.emailVerified ?? "",
    givenName: m.givenName ?? "",
    familyName: m.familyName ?? "",
    displayName: m.displayName ?? "",
    username: m.username ?? "",
    locale: m.locale ?? "",
    groups: m.groups ?? "",
    attributes: { ...(m.attributes ?? {}) },
  };
}

/** The URLs of a connection as UAB serves them. */
function urls(deps: IdentityDeps, id: string) {
  const base = deps.settings.publicUrl;
  return {
    redirectUri: `${base}/sso/oidc/callback`,
    acsUrl: `${base}/v1/auth/sso/${id}/saml:acs`,
    metadataUrl: `${base}/v1/auth/sso/${id}/saml/metadata`,
    spEntityId: `${base}/sso/${id}`,
  };
}

function toProto(deps: IdentityDeps, row: SsoConnectionRow, domains: readonly SsoDomainRow[]): SsoConnection {
  const u = urls(deps, row.id);
  const cfg = row.config as unknown;
  const config =
    row.type === "oidc"
      ? {
          case: "oidc" as const,
          value: {
            issuer: (cfg as OidcStored).issuer,
            clientId: (cfg as OidcStored).clientId,
            clientSecretSet: row.secret_sealed !== null,
            clientSecretHint: (cfg as OidcStored).secretHint,
            scopes: (cfg as OidcStored).scopes,
            claimMapping: mappingTo((cfg as OidcStored).mapping),
            redirectUri: u.redirectUri,
          },
        }
      : {
          case: "saml" as const,
          value: {
            idpEntityId: (cfg as SamlStored).idpEntityId,
            idpSsoUrl: (cfg as SamlStored).idpSsoUrl,
            idpCertificates: (cfg as SamlStored).idpCertificates,
            spEntityId: (cfg as SamlStored).spEntityId || u.spEntityId,
            acsUrl: u.acsUrl,
            spMetadataUrl: u.metadataUrl,
            signAuthnRequests: (cfg as SamlStored).signAuthnRequests,
            attributeMapping: mappingTo((cfg as SamlStored).mapping),
          },
        };
  return create(SsoConnectionSchema, {
    id: row.id,
    tenantId: row.tenant_id,
    displayName: row.display_name,
    type: row.type === "oidc" ? SsoConnectionType.OIDC : SsoConnectionType.SAML,
    enabled: row.enabled,
    config,
    domains: domains.map((d) => ({
      domain: d.domain,
      state: d.state === "verified" ? SsoDomainState.VERIFIED : SsoDomainState.PENDING,
      verificationRecordName: `_uab-verification.${d.domain}`,
      verificationRecordValue: `${VERIFY_PREFIX}${d.verification_value}`,
      verifyTime: d.verified_at ? timestampFromDate(d.verified_at) : undefined,
    })),
    jitProvisioning: row.jit_provisioning,
    requireSso: row.require_sso,
    groupRoleMappings: row.group_role_mappings.map((g) => ({ group: g.group, roleId: g.roleId })),
    createTime: timestampFromDate(row.created_at),
    updateTime: timestampFromDate(row.updated_at),
    etag: row.revision,
  });
}

const resource = (r: Pick<SsoConnectionRow, "id" | "display_name">) => ({
  type: "identity.sso_connection",
  id: r.id,
  displayName: r.display_name,
});

async function connectionRow(tx: Tx, id: string, lock = false): Promise<SsoConnectionRow> {
  let q = tx.selectFrom("sso_connections").selectAll().where("id", "=", id);
  if (lock) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) throw new NotFoundError("SSO_CONNECTION_NOT_FOUND", `SSO connection ${id} not found`);
  return row;
}

async function view(deps: IdentityDeps, tx: Tx, row: SsoConnectionRow): Promise<SsoConnection> {
  const domains = await tx
    .selectFrom("sso_domains")
    .selectAll()
    .where("connection_id", "=", row.id)
    .orderBy("domain")
    .execute();
  return toProto(deps, row, domains);
}

async function setDomains(tx: Tx, row: SsoConnectionRow, domains: readonly string[]): Promise<void> {
  const wanted = new Set(domains.map((d) => d.toLowerCase()));
  const existing = await tx.selectFrom("sso_domains").selectAll().where("connection_id", "=", row.id).execute();
  for (const d of existing) {
    if (!wanted.has(d.domain)) {
      await tx.deleteFrom("sso_domains").where("connection_id", "=", row.id).where("domain", "=", d.domain).execute();
    }
  }
  const have = new Set(existing.map((d) => d.domain));
  for (const d of wanted) {
    if (have.has(d)) continue;
    await tx
      .insertInto("sso_domains")
      .values({
        tenant_id: row.tenant_id,
        connection_id: row.id,
        domain: d,
        state: "pending",
        verification_value: randomSecret(18),
      })
      .execute();
  }
}

/** Removes routing entries of domains no longer verified on a connection. */
async function syncRouting(deps: IdentityDeps, connectionId: string, verified: readonly string[]): Promise<void> {
  await withPlatform(deps.db, async (p) => {
    let q = p.deleteFrom("verified_domains").where("connection_id", "=", connectionId);
    if (verified.length > 0) q = q.where("domain", "not in", verified);
    await q.execute();
  });
}

/** The OIDC settings of a connection for the relying party. */
function oidcSettings(deps: IdentityDeps, row: SsoConnectionRow): OidcConnectionSettings {
  const c = row.config as unknown as OidcStored;
  return {
    connectionId: row.id,
    issuer: c.issuer,
    clientId: c.clientId,
    clientSecret: row.secret_sealed ? deps.box.open(row.secret_sealed, `sso_connection:${row.id}`) : undefined,
    scopes: c.scopes.length > 0 ? c.scopes : ["openid", "email", "profile"],
    redirectUri: urls(deps, row.id).redirectUri,
    mapping: c.mapping,
  };
}

/** The SAML settings of a connection for the service provider. */
function samlSettings(deps: IdentityDeps, row: SsoConnectionRow): SamlConnectionSettings {
  const c = row.config as unknown as SamlStored;
  const u = urls(deps, row.id);
  const sp = row.sp_key_sealed
    ? (JSON.parse(deps.box.open(row.sp_key_sealed, `sso_sp_key:${row.id}`)) as { key: string; cert: string })
    : undefined;
  return {
    connectionId: row.id,
    idpEntityId: c.idpEntityId,
    idpSsoUrl: c.idpSsoUrl,
    idpCertificates: c.idpCertificates,
    spEntityId: c.spEntityId || u.spEntityId,
    acsUrl: u.acsUrl,
    signAuthnRequests: c.signAuthnRequests,
    spPrivateKeyPem: sp?.key,
    spCertificatePem: sp?.cert,
    mapping: c.mapping,
  };
}

async function spKeyPair(): Promise<{ key: string; cert: string }> {
  const selfsigned = (await import("selfsigned")) as unknown as {
    generate: (
      attrs: { name: string; value: string }[],
      opts: Record<string, unknown>,
    ) => Promise<{ private: string; cert: string }> | { private: string; cert: string };
  };
  const pems = await selfsigned.generate([{ name: "commonName", value: "UAB SAML service provider" }], {
    keySize: 2048,
    days: 3650,
    algorithm: "sha256",
  });
  return { key: pems.private, cert: pems.cert };
}

/** The SSO and SCIM RPCs. */
export function createSsoHandlers(deps: IdentityDeps): SsoHandlers {
  const oidc = new OidcRelyingParty({ allowInsecureRequests: deps.settings.allowInsecureSso });
  const saml = new SamlServiceProvider();

  async function configure(
    row: Pick<SsoConnectionRow, "id"> & { type?: "oidc" | "saml" },
    req: Pick<CreateSsoConnectionRequest, "config">,
    previous?: SsoConnectionRow,
  ): Promise<{ type: "oidc" | "saml"; config: JsonObject; secretSealed: string | null; spKeySealed: string | null }> {
    if (req.config.case === "oidc") {
      const o = req.config.value;
      const secret =
        o.clientSecret ||
        (previous?.type === "oidc" && previous.secret_sealed
          ? deps.box.open(previous.secret_sealed, `sso_connection:${row.id}`)
          : "");
      if (!secret) throw InvalidArgumentError.field("oidc.client_secret", "is required");
      const stored: OidcStored = {
        issuer: o.issuer,
        clientId: o.clientId,
        scopes: o.scopes,
        mapping: mappingFrom(o.claimMapping),
        secretHint: `${secret.slice(0, 2)}…${secret.slice(-2)}`,
      };
      await oidc.check({
        connectionId: row.id,
        issuer: stored.issuer,
        clientId: stored.clientId,
        clientSecret: secret,
        scopes: stored.scopes,
        redirectUri: urls(deps, row.id).redirectUri,
        mapping: stored.mapping,
      });
      return {
        type: "oidc",
        config: stored as unknown as JsonObject,
        secretSealed: deps.box.seal(secret, `sso_connection:${row.id}`),
        spKeySealed: null,
      };
    }
    const s = req.config.value!;
    const stored: SamlStored = {
      idpEntityId: s.idpEntityId,
      idpSsoUrl: s.idpSsoUrl,
      idpCertificates: normalizeCertificates(s.idpCertificates, "saml.idp_certificates"),
      spEntityId: s.spEntityId,
      signAuthnRequests: s.signAuthnRequests,
      mapping: mappingFrom(s.attributeMapping),
    };
    const spKeySealed =
      previous?.sp_key_sealed ??
      (s.signAuthnRequests ? deps.box.seal(JSON.stringify(await spKeyPair()), `sso_sp_key:${row.id}`) : null);
    return { type: "saml", config: stored as unknown as JsonObject, secretSealed: null, spKeySealed };
  }

  async function findFlow(state: string) {
    return withPlatform(deps.db, (tx) =>
      tx.selectFrom("sso_flows").select(["id", "tenant_id"]).where(sql`flow->>'state'`, "=", state).executeTakeFirst(),
    );
  }

  /** Links or provisions the user of an upstream identity, then finishes the sign-in. */
  async function signIn(row: SsoConnectionRow, identity: MappedIdentity, returnTo: string): Promise<SignInResult> {
    return inTenant(deps, row.tenant_id, async (tx) => {
      await requireActiveTenant(tx, row.tenant_id);
      const fail = async (reason: LoginFailureReason, user?: UserRow) => {
        await emit(
          tx,
          LoginFailedSchema,
          { userId: user?.id ?? "", identifier: identity.email ?? identity.subject, reason, ssoConnectionId: row.id },
          row.tenant_id,
          { type: "identity.user", id: user?.id ?? "", displayName: identity.email ?? identity.subject },
        );
      };
      const link = await tx
        .selectFrom("sso_identities")
        .selectAll()
        .where("connection_id", "=", row.id)
        .where("subject", "=", identity.subject)
        .executeTakeFirst();
      let user: UserRow | undefined = link
        ? await tx
            .selectFrom("users")
            .selectAll()
            .where("id", "=", link.user_id)
            .where("deleted_at", "is", null)
            .executeTakeFirst()
        : undefined;
      let provisioned = false;
      if (!user && identity.email && identity.emailVerified) {
        // An existing account with the same verified address in a domain this connection owns.
        const domain = identity.email.split("@")[1] ?? "";
        const owns = await tx
          .selectFrom("sso_domains")
          .select("domain")
          .where("connection_id", "=", row.id)
          .where("domain", "=", domain)
          .where("state", "=", "verified")
          .executeTakeFirst();
        if (owns) {
          user = await tx
            .selectFrom("users")
            .selectAll()
            .where(sql`lower(email)`, "=", identity.email)
            .where("deleted_at", "is", null)
            .executeTakeFirst();
        }
      }
      if (!user) {
        if (!row.jit_provisioning) {
          await fail(LoginFailureReason.SSO_USER_NOT_PROVISIONED);
          return {
            error: new FailedPreconditionError(
              "SSO_USER_NOT_PROVISIONED",
              "no account is linked to this identity and the connection does not create accounts",
            ),
          };
        }
        user = await insertUser(tx, {
          tenantId: row.tenant_id,
          email: identity.email,
          emailVerified: identity.emailVerified,
          username: undefined,
          profile: {
            ...(identity.givenName ? { givenName: identity.givenName } : {}),
            ...(identity.familyName ? { familyName: identity.familyName } : {}),
            ...(identity.displayName ? { displayName: identity.displayName } : {}),
            ...(identity.locale ? { locale: identity.locale } : {}),
          },
          attributes: identity.attributes as JsonObject,
          source: "sso",
          ssoConnectionId: row.id,
        });
        provisioned = true;
      }
      const state = signInState(user);
      if (state !== "active") {
        await fail(state === "locked" ? LoginFailureReason.USER_LOCKED : LoginFailureReason.USER_DISABLED, user);
        return {
          error: new FailedPreconditionError("USER_DISABLED", "this account cannot sign in; contact an administrator"),
        };
      }
      await tx
        .insertInto("sso_identities")
        .values({
          tenant_id: row.tenant_id,
          connection_id: row.id,
          subject: identity.subject,
          user_id: user.id,
          groups: [...identity.groups],
        })
        .onConflict((oc) =>
          oc
            .columns(["connection_id", "subject"])
            .doUpdateSet({ groups: [...identity.groups], last_login_at: new Date(), user_id: user!.id }),
        )
        .execute();
      const { ip, userAgent } = clientInfo();
      const result = await finishSignIn(deps, tx, user, {
        device: describeDevice(userAgent, ""),
        ip,
        userAgent,
        amr: ["fed"],
        ssoConnectionId: row.id,
        userProvisioned: provisioned,
        returnTo,
      });
      return { result };
    }).then((o) => {
      if ("error" in o) throw o.error;
      if (!o.result.tokens && !o.result.challenge) {
        throw new FailedPreconditionError(
          "MFA_ENROLLMENT_REQUIRED",
          "this tenant requires a second factor and the enrolment grace period is over",
        );
      }
      return o.result;
    });
  }

  const signInReply = (r: SignInResult) => ({
    result: r.tokens
      ? { case: "tokens" as const, value: r.tokens }
      : { case: "mfaChallenge" as const, value: r.challenge! },
    userProvisioned: r.userProvisioned,
    returnTo: r.returnTo,
  });

  return {
    ...scimHandlers(deps),
    async createSsoConnection(req) {
      const id = newId("ssoConnection");
      const configured = await configure({ id }, req);
      return inTenant(deps, req.tenantId, async (tx) => {
        await requireActiveTenant(tx, req.tenantId);
        const row = await tx
          .insertInto("sso_connections")
          .values({
            id,
            tenant_id: req.tenantId,
            display_name: req.displayName,
            type: configured.type,
            enabled: req.enabled,
            config: JSON.stringify(configured.config),
            secret_sealed: configured.secretSealed,
            sp_key_sealed: configured.spKeySealed,
            jit_provisioning: req.jitProvisioning,
            require_sso: req.requireSso,
            group_role_mappings: JSON.stringify(
              req.groupRoleMappings.map((g) => ({ group: g.group, roleId: g.roleId })),
            ),
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        await setDomains(tx, row, req.domains);
        const out = await view(deps, tx, row);
        await emit(tx, SsoConnectionCreatedSchema, { ssoConnection: out }, req.tenantId, resource(row));
        return { ssoConnection: out };
      });
    },
    async getSsoConnection(req) {
      return inTenant(deps, req.tenantId, async (tx) => ({
        ssoConnection: await view(deps, tx, await connectionRow(tx, req.ssoConnectionId)),
      }));
    },
    async listSsoConnections(req) {
      const filters = { t: req.tenantId, y: req.type, d: req.domain };
      const after = decodePageToken(req.pageToken, filters);
      const size = pageSize(req.pageSize);
      return inTenant(deps, req.tenantId, async (tx) => {
        let q = tx.selectFrom("sso_connections").selectAll();
        if (req.type === SsoConnectionType.OIDC) q = q.where("type", "=", "oidc");
        if (req.type === SsoConnectionType.SAML) q = q.where("type", "=", "saml");
        if (req.domain) {
          q = q.where(
            "id",
            "in",
            tx.selectFrom("sso_domains").select("connection_id").where("domain", "=", req.domain.toLowerCase()),
          );
        }
        if (after) q = q.where("id", ">", after);
        const page = paginate(
          await q
            .orderBy("id")
            .limit(size + 1)
            .execute(),
          size,
          filters,
        );
        return {
          ssoConnections: await Promise.all(page.items.map((r) => view(deps, tx, r))),
          nextPageToken: page.next,
        };
      });
    },
    async updateSsoConnection(req: UpdateSsoConnectionRequest) {
      const paths = req.updateMask!.paths;
      const current = await inTenant(deps, req.tenantId, (tx) => connectionRow(tx, req.ssoConnectionId));
      checkEtag(req.etag, current.revision, `SSO connection ${current.id}`);
      let configured: Awaited<ReturnType<typeof configure>> | undefined;
      if (paths.includes("oidc") || paths.includes("saml")) {
        if (
          (paths.includes("oidc") && current.type !== "oidc") ||
          (paths.includes("saml") && current.type !== "saml")
        ) {
          throw InvalidArgumentError.field(
            "update_mask",
            "cannot change the connection's protocol; create a new connection",
          );
        }
        configured = await configure(current, req, current);
      }
      return inTenant(deps, req.tenantId, async (tx) => {
        const row = await connectionRow(tx, req.ssoConnectionId, true);
        checkEtag(req.etag, row.revision, `SSO connection ${row.id}`);
        const set: Record<string, unknown> = {};
        if (paths.includes("display_name")) set.display_name = req.displayName;
        if (paths.includes("enabled")) set.enabled = req.enabled;
        if (paths.includes("jit_provisioning")) set.jit_provisioning = req.jitProvisioning;
        if (paths.includes("require_sso")) set.require_sso = req.requireSso;
        if (paths.includes("group_role_mappings")) {
          set.group_role_mappings = JSON.stringify(
            req.groupRoleMappings.map((g) => ({ group: g.group, roleId: g.roleId })),
          );
        }
        if (configured) {
          set.config = JSON.stringify(configured.config);
          set.secret_sealed = configured.secretSealed;
          set.sp_key_sealed = configured.spKeySealed;
        }
        const updated = await tx
          .updateTable("sso_connections")
          .set({ ...set, revision: nextRevision(row.revision), updated_at: new Date() })
          .where("id", "=", row.id)
          .returningAll()
          .executeTakeFirstOrThrow();
        if (paths.includes("domains")) {
          await setDomains(tx, updated, req.domains);
          const verified = await tx
            .selectFrom("sso_domains")
            .select("domain")
            .where("connection_id", "=", row.id)
            .where("state", "=", "verified")
            .execute();
          await syncRouting(
            deps,
            row.id,
            verified.map((d) => d.domain),
          );
        }
        const out = await view(deps, tx, updated);
        await emit(
          tx,
          SsoConnectionUpdatedSchema,
          { ssoConnection: out, changedFields: paths },
          req.tenantId,
          resource(updated),
        );
        return { ssoConnection: out };
      });
    },
    async deleteSsoConnection(req) {
      await inTenant(deps, req.tenantId, async (tx) => {
        const row = await connectionRow(tx, req.ssoConnectionId, true);
        checkEtag(req.etag, row.revision, `SSO connection ${row.id}`);
        const out = await view(deps, tx, row);
        await tx.deleteFrom("sso_identities").where("connection_id", "=", row.id).execute();
        await tx.deleteFrom("sso_flows").where("connection_id", "=", row.id).execute();
        await tx.deleteFrom("sso_connections").where("id", "=", row.id).execute();
        await syncRouting(deps, row.id, []);
        await emit(tx, SsoConnectionDeletedSchema, { ssoConnection: out }, req.tenantId, resource(row));
      });
      return {};
    },
    async verifySsoDomain(req) {
      const domain = req.domain.toLowerCase();
      const pending = await inTenant(deps, req.tenantId, async (tx) => {
        await connectionRow(tx, req.ssoConnectionId);
        const d = await tx
          .selectFrom("sso_domains")
          .selectAll()
          .where("connection_id", "=", req.ssoConnectionId)
          .where("domain", "=", domain)
          .executeTakeFirst();
        if (!d) throw new NotFoundError("SSO_DOMAIN_NOT_FOUND", `domain ${domain} is not on this connection`);
        return d;
      });
      if (pending.state !== "verified") {
        const resolver = new Resolver({ timeout: 5000, tries: 2 });
        if (deps.settings.dnsServers.length > 0) resolver.setServers(deps.settings.dnsServers);
        const records = await resolver.resolveTxt(`_uab-verification.${domain}`).catch(() => [] as string[][]);
        const expected = `${VERIFY_PREFIX}${pending.verification_value}`;
        if (!records.some((parts) => parts.join("") === expected)) {
          throw new FailedPreconditionError(
            "SSO_DOMAIN_NOT_VERIFIED",
            `no TXT record _uab-verification.${domain} with value ${expected} was found; add it and retry (DNS changes can take a while to appear)`,
          );
        }
      }
      return inTenant(deps, req.tenantId, async (tx) => {
        const row = await connectionRow(tx, req.ssoConnectionId, true);
        if (pending.state !== "verified") {
          try {
            await withPlatform(deps.db, (p) =>
              p
                .insertInto("verified_domains")
                .values({ domain, tenant_id_ref: req.tenantId, connection_id: row.id })
                .execute(),
            );
          } catch (e) {
            if (isUniqueViolation(e)) {
              throw new AlreadyExistsError(
                "SSO_DOMAIN_TAKEN",
                `domain ${domain} is already verified by another SSO connection`,
              );
            }
            throw e;
          }
          await tx
            .updateTable("sso_domains")
            .set({ state: "verified", verified_at: new Date() })
            .where("connection_id", "=", row.id)
            .where("domain", "=", domain)
            .execute();
          const out = await view(deps, tx, row);
          await emit(tx, SsoDomainVerifiedSchema, { ssoConnection: out, domain }, req.tenantId, resource(row));
          return { ssoConnection: out };
        }
        return { ssoConnection: await view(deps, tx, row) };
      });
    },
    async startSsoLogin(req) {
      let target: { tenantId: string; connectionId: string } | undefined;
      if (req.target.case === "email") {
        const domain = req.target.value.toLowerCase().split("@")[1] ?? "";
        const route = await withPlatform(deps.db, (tx) =>
          tx.selectFrom("verified_domains").selectAll().where("domain", "=", domain).executeTakeFirst(),
        );
        if (!route) throw new NotFoundError("SSO_NOT_CONFIGURED", `no SSO connection serves ${domain}`);
        target = { tenantId: route.tenant_id_ref, connectionId: route.connection_id };
      } else {
        const id = req.target.value!;
        const row = await withPlatform(deps.db, (tx) =>
          tx.selectFrom("sso_connections").select(["id", "tenant_id"]).where("id", "=", id).executeTakeFirst(),
        );
        if (!row) throw new NotFoundError("SSO_CONNECTION_NOT_FOUND", `SSO connection ${id} not found`);
        target = { tenantId: row.tenant_id, connectionId: row.id };
      }
      const { tenantId, connectionId } = target;
      const row = await inTenant(deps, tenantId, async (tx) => {
        await requireActiveTenant(tx, tenantId);
        return connectionRow(tx, connectionId);
      });
      if (!row.enabled) throw new FailedPreconditionError("SSO_CONNECTION_DISABLED", "this SSO connection is disabled");
      const flowId = newId("authFlow");
      let authorizationUrl: string;
      let flow: Record<string, unknown>;
      if (row.type === "oidc") {
        const started = await oidc.start(
          oidcSettings(deps, row),
          req.target.case === "email" ? { loginHint: req.target.value } : {},
        );
        authorizationUrl = started.authorizationUrl;
        flow = { ...started.flow };
      } else {
        const state = randomSecret();
        const started = await saml.authorizeUrl(samlSettings(deps, row), state);
        authorizationUrl = started.url;
        flow = { state, requestId: started.requestId };
      }
      await inTenant(deps, tenantId, (tx) =>
        tx
          .insertInto("sso_flows")
          .values({
            id: flowId,
            tenant_id: tenantId,
            connection_id: row.id,
            flow: JSON.stringify(flow),
            return_to: req.returnTo,
            expires_at: new Date(Date.now() + FLOW_TTL_MS),
          })
          .execute(),
      );
      return {
        authorizationUrl,
        ssoConnectionId: row.id,
        tenantId,
        type: row.type === "oidc" ? SsoConnectionType.OIDC : SsoConnectionType.SAML,
      };
    },
    async completeOidcLogin(req) {
      const invalid = () =>
        new UnauthenticatedError("SSO_STATE_INVALID", "this sign-in is unknown or expired; start it again");
      const found = await findFlow(req.state);
      if (!found) throw invalid();
      const claimed = await inTenant(deps, found.tenant_id, async (tx) => {
        const f = await tx
          .selectFrom("sso_flows")
          .selectAll()
          .where("id", "=", found.id)
          .forUpdate()
          .executeTakeFirst();
        if (!f || f.used_at || f.expires_at <= new Date()) return undefined;
        await tx.updateTable("sso_flows").set({ used_at: new Date() }).where("id", "=", f.id).execute();
        return { flow: f, row: await connectionRow(tx, f.connection_id) };
      });
      if (claimed?.row.type !== "oidc") throw invalid();
      let identity: MappedIdentity;
      try {
        identity = (
          await oidc.complete(oidcSettings(deps, claimed.row), claimed.flow.flow as unknown as OidcFlowState, {
            code: req.code || undefined,
            state: req.state,
            error: req.error || undefined,
            errorDescription: req.errorDescription || undefined,
          })
        ).identity;
      } catch (e) {
        await inTenant(deps, claimed.row.tenant_id, (tx) =>
          emit(
            tx,
            LoginFailedSchema,
            { reason: LoginFailureReason.SSO_ERROR, ssoConnectionId: claimed.row.id },
            claimed.row.tenant_id,
            {
              type: "identity.sso_connection",
              id: claimed.row.id,
            },
          ),
        );
        throw e;
      }
      return signInReply(await signIn(claimed.row, identity, claimed.flow.return_to));
    },
    async completeSamlLogin(req) {
      const found = await withPlatform(deps.db, (tx) =>
        tx
          .selectFrom("sso_connections")
          .select(["id", "tenant_id"])
          .where("id", "=", req.ssoConnectionId)
          .executeTakeFirst(),
      );
      if (!found)
        throw new NotFoundError("SSO_CONNECTION_NOT_FOUND", `SSO connection ${req.ssoConnectionId} not found`);
      const row = await inTenant(deps, found.tenant_id, (tx) => connectionRow(tx, found.id));
      if (row.type !== "saml")
        throw new FailedPreconditionError("SSO_CONNECTION_NOT_SAML", "this connection is not a SAML connection");
      if (!row.enabled) throw new FailedPreconditionError("SSO_CONNECTION_DISABLED", "this SSO connection is disabled");
      // SP-initiated sign-ins carry our RelayState; IdP-initiated ones have none.
      const flow = req.relayState
        ? await inTenant(deps, row.tenant_id, async (tx) => {
            const f = await tx
              .selectFrom("sso_flows")
              .selectAll()
              .where("connection_id", "=", row.id)
              .where(sql`flow->>'state'`, "=", req.relayState)
              .forUpdate()
              .executeTakeFirst();
            if (!f || f.used_at || f.expires_at <= new Date()) return undefined;
            await tx.updateTable("sso_flows").set({ used_at: new Date() }).where("id", "=", f.id).execute();
            return f;
          })
        : undefined;
      if (req.relayState && !flow)
        throw new UnauthenticatedError("SSO_STATE_INVALID", "this sign-in is unknown or expired; start it again");
      const replayGuard = {
        remember: (key: string, expiresAt: Date) =>
          inTenant(deps, row.tenant_id, async (tx) => {
            const inserted = await tx
              .insertInto("saml_replays")
              .values({ key, tenant_id: row.tenant_id, expires_at: expiresAt })
              .onConflict((oc) => oc.column("key").doNothing())
              .returning("key")
              .executeTakeFirst();
            return inserted !== undefined;
          }),
      };
      let identity: MappedIdentity;
      try {
        identity = (
          await saml.validate(samlSettings(deps, row), req.samlResponse, {
            replayGuard,
            expectedRequestId: (flow?.flow as { requestId?: string } | undefined)?.requestId,
          })
        ).identity;
      } catch (e) {
        await inTenant(deps, row.tenant_id, (tx) =>
          emit(
            tx,
            LoginFailedSchema,
            { reason: LoginFailureReason.SSO_ERROR, ssoConnectionId: row.id },
            row.tenant_id,
            {
              type: "identity.sso_connection",
              id: row.id,
            },
          ),
        );
        throw e;
      }
      return signInReply(await signIn(row, identity, flow?.return_to ?? ""));
    },
    async getSamlServiceProviderMetadata(req) {
      const found = await withPlatform(deps.db, (tx) =>
        tx
          .selectFrom("sso_connections")
          .select(["id", "tenant_id"])
          .where("id", "=", req.ssoConnectionId)
          .executeTakeFirst(),
      );
      if (!found)
        throw new NotFoundError("SSO_CONNECTION_NOT_FOUND", `SSO connection ${req.ssoConnectionId} not found`);
      const row = await inTenant(deps, found.tenant_id, (tx) => connectionRow(tx, found.id));
      if (row.type !== "saml")
        throw new FailedPreconditionError("SSO_CONNECTION_NOT_SAML", "this connection is not a SAML connection");
      const settings = samlSettings(deps, row);
      const xml = saml.metadata(settings);
      return {
        metadata: create(HttpBodySchema, { contentType: "application/samlmetadata+xml", data: Buffer.from(xml) }),
        entityId: settings.spEntityId,
        acsUrl: settings.acsUrl,
        signingCertificate: settings.spCertificatePem ?? "",
      };
    },
  };
}

/** Drops finished SSO flows and expired replay records (the sweeper). */
export async function sweepSso(deps: IdentityDeps): Promise<void> {
  await withPlatform(deps.db, async (tx) => {
    await tx
      .deleteFrom("sso_flows")
      .where("expires_at", "<", new Date(Date.now() - 3600_000))
      .execute();
    await tx.deleteFrom("saml_replays").where("expires_at", "<", new Date()).execute();
  });
}
