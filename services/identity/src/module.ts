import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  env as field,
  InvalidArgumentError,
  loadConfig,
  secretBoxField,
  UnavailableError,
} from "@uab/core";
import { createDatabase, serviceRoles, withPlatform } from "@uab/db";
import { startOutboxRelay } from "@uab/events";
import { AuthenticationService } from "@uab/proto/gen/uab/identity/v1/authentication_service_pb.js";
import { IdentityService } from "@uab/proto/gen/uab/identity/v1/identity_service_pb.js";
import { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import {
  type HttpRoute,
  purgeExpiredIdempotencyKeys,
  type ServiceModule,
  type ServiceRegistration,
  type TokenAuthority,
} from "@uab/server";
import { sql } from "kysely";
import CircuitBreaker from "opossum";
import { migrations } from "../migrations/index.js";
import type { IdentityDeps, IdentitySettings, TenantProvisioner } from "./domain/common.js";
import { expireImpersonations } from "./domain/machines.js";
import { PasswordHasher } from "./domain/passwords.js";
import { startProjection } from "./domain/projection.js";
import { SigningKeys } from "./domain/signing-keys.js";
import { createSsoHandlers, sweepSso } from "./domain/sso.js";
import { sweepThrottles } from "./domain/throttle.js";
import { purgeUsers } from "./domain/users.js";
import { authenticationHandlers } from "./handlers/authentication.js";
import { identityHandlers } from "./handlers/identity.js";
import type { IdentityDatabase } from "./storage/tables.js";

/** The principal identity acts as towards other services (tenant creation at sign-up). */
export const IDENTITY_PRINCIPAL_ID = `sa_${"identityservice".padStart(26, "0")}`;

/** Identity's own settings. */
export const identityConfig = {
  UAB_ENCRYPTION_KEYS: secretBoxField("key ring sealing signing keys, TOTP secrets and SSO client secrets"),
  UAB_TOKEN_ISSUER: field.string("`iss` of the access tokens identity issues", "uab"),
  UAB_TOKEN_AUDIENCE: field.string("`aud` of the access tokens identity issues", "uab"),
  UAB_PUBLIC_URL: field.string(
    "public base URL of UAB (SSO callbacks, SCIM endpoints, links in password-reset and verification e-mails)",
    "http://127.0.0.1:8080",
  ),
  UAB_IDENTITY_ACCESS_TOKEN_TTL_SECONDS: field.int(
    "access-token lifetime; also how long a revoked session's last token keeps working in other services",
    300,
    30,
    3600,
  ),
  UAB_IDENTITY_REFRESH_TOKEN_TTL_SECONDS: field.int("refresh-token lifetime", 30 * 86_400, 300, 365 * 86_400),
  UAB_IDENTITY_REFRESH_REUSE_GRACE_SECONDS: field.int(
    "how long a rotated refresh token may be presented again by a client that lost the response",
    10,
    0,
    120,
  ),
  UAB_IDENTITY_ALLOW_TENANT_SIGN_UP: field.bool("whether SignUp may create a new tenant", false),
  UAB_IDENTITY_IP_ATTEMPTS_PER_MINUTE: field.int(
    "failed sign-ins per client IP per minute before throttling",
    30,
    1,
    100_000,
  ),
  UAB_IDENTITY_IDENTIFIER_ATTEMPTS: field.int(
    "failed sign-ins per identifier per 15 minutes before throttling",
    20,
    1,
    10_000,
  ),
  UAB_IDENTITY_HASH_CONCURRENCY: field.int("argon2id hashes computed at once (each takes 19 MiB)", 4, 1, 256),
  UAB_IDENTITY_SSO_ALLOW_HTTP: field.bool("allow http:// OIDC issuers (local development and tests only)", false),
  UAB_IDENTITY_DNS_SERVERS: field.optionalString(
    "comma-separated DNS servers (host or host:port) for SSO domain verification; unset uses the system resolver",
  ),
  UAB_TENANCY_URL: field.optionalUrl("tenancy service URL, when this process does not host it", ["http", "https"]),
  UAB_IDENTITY_SWEEP_INTERVAL_SECONDS: field.int("how often expired state is swept", 60, 1, 86_400),
};

/** The identity service module. */
export const identityModule: ServiceModule = {
  name: "identity",
  migrations,
  async start(ctx) {
    const config = loadConfig(identityConfig, ctx.env);
    const logger = ctx.logger.child({ module: "identity" });
    const database = createDatabase<IdentityDatabase>({
      url: ctx.databaseUrl,
      schema: "identity",
      role: ctx.databaseRole,
      max: ctx.poolSize ?? 10,
      logger,
    });
    const settings: IdentitySettings = {
      issuer: config.UAB_TOKEN_ISSUER,
      audience: config.UAB_TOKEN_AUDIENCE,
      accessTokenTtlSeconds: config.UAB_IDENTITY_ACCESS_TOKEN_TTL_SECONDS,
      refreshTokenTtlSeconds: config.UAB_IDENTITY_REFRESH_TOKEN_TTL_SECONDS,
      refreshReuseGraceSeconds: config.UAB_IDENTITY_REFRESH_REUSE_GRACE_SECONDS,
      userTokenTtlSeconds: 3600,
      publicUrl: config.UAB_PUBLIC_URL.replace(/\/$/, ""),
      mfaChallengeTtlSeconds: 300,
      mfaChallengeAttempts: 5,
      ipAttemptsPerMinute: config.UAB_IDENTITY_IP_ATTEMPTS_PER_MINUTE,
      identifierAttemptsPer15Minutes: config.UAB_IDENTITY_IDENTIFIER_ATTEMPTS,
      restoreWindowMs: 30 * 86_400_000,
      impersonationMaxSeconds: 3600,
      clientCredentialsTtlSeconds: 900,
      allowInsecureSso: config.UAB_IDENTITY_SSO_ALLOW_HTTP,
      dnsServers: (config.UAB_IDENTITY_DNS_SERVERS ?? "")
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
    };
    const keys = new SigningKeys({
      db: database.db,
      box: config.UAB_ENCRYPTION_KEYS,
      retiredTtlSeconds: settings.accessTokenTtlSeconds + 3600,
    });
    await keys.initialise();
    const tenancyUrl = () => config.UAB_TENANCY_URL ?? ctx.selfUrl?.() ?? "";
    const breaker = new CircuitBreaker(
      async (input: { slug: string; displayName: string; ownerUserId: string }) => {
        const client = createClient(
          TenancyService,
          createConnectTransport({ baseUrl: tenancyUrl(), httpVersion: "2" }),
        );
        const token = await keys.sign(
          { sub: IDENTITY_PRINCIPAL_ID, typ: "service_account", amr: ["service"] },
          60,
          settings.issuer,
          settings.audience,
        );
        const res = await client.createTenant(
          { slug: input.slug, displayName: input.displayName, ownerUserId: input.ownerUserId },
          { headers: { authorization: `Bearer ${token.token}` }, timeoutMs: 10_000 },
        );
        return res.tenant!.id;
      },
      {
        timeout: 15_000,
        errorThresholdPercentage: 50,
        resetTimeout: 10_000,
        volumeThreshold: 5,
        // A client error from tenancy (slug taken, invalid) is the caller's error, not an outage.
        errorFilter: (e: unknown) => isClientError(e),
      },
    );
    const provisioner: TenantProvisioner = {
      async createTenant(input) {
        try {
          return await breaker.fire(input);
        } catch (e) {
          if (isClientError(e)) throw translateTenancyError(e);
          logger.error({ err: e }, "tenancy unreachable for sign-up");
          throw new UnavailableError("TENANCY_UNAVAILABLE", "tenants cannot be created right now; retry shortly");
        }
      },
    };
    const deps: IdentityDeps = {
      db: database.db,
      box: config.UAB_ENCRYPTION_KEYS,
      hasher: new PasswordHasher({ maxConcurrent: config.UAB_IDENTITY_HASH_CONCURRENCY }),
      keys,
      settings,
      provisioner,
      logger,
    };
    const sso = createSsoHandlers(deps);
    const relay = await startOutboxRelay({ db: database.db, pool: database.pool, bus: ctx.bus, logger });
    const projection = await startProjection(deps, ctx.bus, logger);
    const sweep = async () => {
      await purgeUsers(deps);
      await expireImpersonations(deps);
      await sweepThrottles(deps);
      await sweepSso(deps);
      await keys.initialise();
      await withPlatform(database.db, async (tx) => {
        const old = sql<Date>`now() - interval '1 day'`;
        await tx.deleteFrom("mfa_challenges").where("expires_at", "<", old).execute();
        await tx.deleteFrom("user_tokens").where("expires_at", "<", old).execute();
        await tx.deleteFrom("refresh_tokens").where("expires_at", "<", old).execute();
        await tx
          .deleteFrom("sessions")
          .where("absolute_expires_at", "<", sql<Date>`now() - interval '90 days'`)
          .execute();
      });
      await purgeExpiredIdempotencyKeys(database.db as never);
    };
    const sweeper = setInterval(() => {
      sweep().catch((err) => logger.error({ err }, "identity sweep failed"));
    }, config.UAB_IDENTITY_SWEEP_INTERVAL_SECONDS * 1000);
    sweeper.unref();
    const tokens: TokenAuthority = {
      issuer: settings.issuer,
      audience: settings.audience,
      jwks: () => keys.jwks(),
      async issuePlatformToken(subject, ttlSeconds) {
        return (
          await keys.sign(
            { sub: subject, typ: "user", amr: ["bootstrap"] },
            ttlSeconds,
            settings.issuer,
            settings.audience,
          )
        ).token;
      },
    };
    const jwksRoute: HttpRoute = async (req, res) => {
      const path = (req.url ?? "").split("?")[0];
      if (path !== "/.well-known/jwks.json") return false;
      res.writeHead(200, { "content-type": "application/jwk-set+json", "cache-control": "max-age=60" });
      res.end(JSON.stringify(await keys.jwks()));
      return true;
    };
    const totpIssuer = new URL(settings.publicUrl).hostname || "UAB";
    return {
      services: [
        {
          service: AuthenticationService,
          impl: authenticationHandlers(deps, sso, config.UAB_IDENTITY_ALLOW_TENANT_SIGN_UP),
          db: database.db,
        } as unknown as ServiceRegistration,
        {
          service: IdentityService,
          impl: identityHandlers(deps, sso, totpIssuer === "127.0.0.1" ? "UAB" : totpIssuer),
          db: database.db,
        } as unknown as ServiceRegistration,
      ],
      readiness: [
        async () => {
          await sql`select 1`.execute(database.db);
        },
      ],
      tokens,
      routes: [jwksRoute],
      async close() {
        clearInterval(sweeper);
        breaker.shutdown();
        await projection.stop();
        await relay.stop();
        await database.close();
      },
    };
  },
};

function isClientError(e: unknown): boolean {
  const code = (e as { code?: number }).code;
  // Connect codes: 3 invalid argument, 5 not found, 6 already exists, 7 permission denied, 9 failed precondition.
  return code === 3 || code === 6 || code === 9;
}

function translateTenancyError(e: unknown): Error {
  const code = (e as { code?: number }).code;
  const message = (e as { rawMessage?: string }).rawMessage ?? "tenant could not be created";
  if (code === 6) {
    return new AlreadyExistsError("TENANT_SLUG_TAKEN", message, {
      violations: [{ field: "new_tenant.slug", description: "is already taken" }],
    });
  }
  if (code === 3) return InvalidArgumentError.field("new_tenant", message);
  return new FailedPreconditionError("TENANT_NOT_CREATED", message);
}

/** The runtime role name of the identity service. */
export const identityRoles = serviceRoles("identity");
