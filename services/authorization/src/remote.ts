/**
 * The enforcement port for a service deployed apart from authorization: asks the
 * authorization service's Check (or CheckPlatform) over Connect with the service's own
 * credentials, behind a circuit breaker, and fails closed. Decisions are cached for a
 * short, stated time (`cacheMs`); a request that demands a revision (`uab-min-revision`)
 * always asks, so a revoke is effective at once for whoever holds the revoke's revision.
 */
import { create } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { AuthorizationRequest, Authorizer, Decision } from "@uab/auth";
import type { Logger } from "@uab/core";
import { Scope } from "@uab/proto";
import { AuthorizationService } from "@uab/proto/gen/uab/authorization/v1/authorization_service_pb.js";
import { DecisionReason } from "@uab/proto/gen/uab/authorization/v1/decision_pb.js";
import { PrincipalSchema, PrincipalType } from "@uab/proto/gen/uab/authorization/v1/principal_pb.js";
import CircuitBreaker from "opossum";

/** Options of {@link RemoteAuthorizer}. */
export interface RemoteAuthorizerOptions {
  /** Base URL of the authorization service. */
  readonly url: string;
  /** This service's access token (a service account bound to `authorization-checker`). */
  readonly token: () => string;
  /** How long a decision may be reused (ms); 0 disables the cache. */
  readonly cacheMs: number;
  /** Per-call timeout (ms). */
  readonly timeoutMs?: number;
  readonly logger: Logger;
}

const TYPES: Record<string, PrincipalType> = {
  user: PrincipalType.USER,
  service_account: PrincipalType.SERVICE_ACCOUNT,
  api_key: PrincipalType.API_KEY,
};

const SCOPES = { platform: Scope.PLATFORM, tenant: Scope.TENANT, project: Scope.PROJECT, team: Scope.TEAM } as const;

/** Asks a remote authorization service; see the module comment. */
export class RemoteAuthorizer implements Authorizer {
  private readonly client: Client<typeof AuthorizationService>;
  private readonly breaker: CircuitBreaker<[AuthorizationRequest], Decision>;
  private readonly cache = new Map<string, { decision: Decision; until: number }>();

  constructor(private readonly options: RemoteAuthorizerOptions) {
    this.client = createClient(
      AuthorizationService,
      createConnectTransport({ baseUrl: options.url, httpVersion: "2" }),
    );
    this.breaker = new CircuitBreaker((r: AuthorizationRequest) => this.ask(r), {
      timeout: options.timeoutMs ?? 2000,
      errorThresholdPercentage: 50,
      resetTimeout: 5000,
      volumeThreshold: 10,
    });
    this.breaker.on("open", () => options.logger.error("authorization service unreachable: denying until it answers"));
  }

  /** {@inheritDoc Authorizer.authorize} */
  async authorize(r: AuthorizationRequest): Promise<Decision> {
    const key = `${r.principal.id}|${r.principal.tenantId ?? ""}|${r.permission}|${r.scope.type}|${r.scope.tenantId ?? ""}|${r.scope.projectId ?? ""}|${r.scope.teamId ?? ""}`;
    const now = Date.now();
    if (!r.minRevision && this.options.cacheMs > 0) {
      const hit = this.cache.get(key);
      if (hit && hit.until > now) return hit.decision;
    }
    let decision: Decision;
    try {
      decision = await this.breaker.fire(r);
    } catch (err) {
      this.options.logger.warn({ err }, "authorization check failed; denying");
      return { allowed: false, reason: "the authorization service could not be asked; denied", code: "UNAVAILABLE" };
    }
    if (this.options.cacheMs > 0) {
      if (this.cache.size > 100_000) this.cache.clear();
      this.cache.set(key, { decision, until: now + this.options.cacheMs });
    }
    return decision;
  }

  /** Forgets cached decisions (of one tenant, or all). */
  forget(tenantId?: string): void {
    if (!tenantId) this.cache.clear();
    else for (const k of this.cache.keys()) if (k.includes(`|${tenantId}|`)) this.cache.delete(k);
  }

  private async ask(r: AuthorizationRequest): Promise<Decision> {
    const principal = create(PrincipalSchema, {
      type: TYPES[r.principal.type] ?? PrincipalType.USER,
      id: r.principal.id,
      tenantId: r.principal.tenantId ?? "",
    });
    const attributes = {
      ...(r.attributes?.ip ? { ip: r.attributes.ip } : {}),
      ...(r.attributes?.userAgent ? { user_agent: r.attributes.userAgent } : {}),
      ...(r.principal.mfaTime !== undefined ? { mfa_time: r.principal.mfaTime } : {}),
      amr: [...r.principal.amr],
    };
    const headers = { authorization: `Bearer ${this.options.token()}` };
    const res =
      r.scope.type === "platform"
        ? await this.client.checkPlatform(
            { principal, permission: r.permission, attributes, minRevision: r.minRevision ?? "" },
            { headers },
          )
        : await this.client.check(
            {
              tenantId: r.scope.tenantId ?? "",
              principal,
              permission: r.permission,
              scope: {
                type: SCOPES[r.scope.type],
                tenantId: r.scope.tenantId ?? "",
                projectId: r.scope.projectId ?? "",
                teamId: r.scope.teamId ?? "",
              },
              attributes,
              minRevision: r.minRevision ?? "",
            },
            { headers },
          );
    const result = res.result;
    return {
      allowed: result?.allowed === true,
      reason: result?.message ?? "no decision",
      code: DecisionReason[result?.reason ?? DecisionReason.UNSPECIFIED],
    };
  }
}
