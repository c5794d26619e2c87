import type { Principal } from "@uab/core";

/** Where a permission is checked. */
export interface AuthorizationScope {
  /** The level. */
  readonly type: "platform" | "tenant" | "project" | "team";
  /** The tenant, for every level but platform. */
  readonly tenantId?: string | undefined;
  /** The project, at project level. */
  readonly projectId?: string | undefined;
  /** The team, at team level. */
  readonly teamId?: string | undefined;
}

/** One question: may `principal` do `permission` at `scope`? */
export interface AuthorizationRequest {
  /** Who asks. */
  readonly principal: Principal;
  /** `service.resource.action`. */
  readonly permission: string;
  /** Where. */
  readonly scope: AuthorizationScope;
  /**
   * Decide on authorization data at least as fresh as this revision token (what a write
   * to the authorization service returned; clients send it as `uab-min-revision`).
   */
  readonly minRevision?: string | undefined;
  /** Request attributes conditions may use. */
  readonly attributes?: { readonly ip?: string | undefined; readonly userAgent?: string | undefined } | undefined;
}

/** The answer, with the reason a person can read in an audit log. */
export interface Decision {
  /** Allowed or not. */
  readonly allowed: boolean;
  /** Why: which grant allowed it, or why nothing did. */
  readonly reason: string;
  /** The reason as a code (`GRANTED`, `NO_BINDING`, `CONDITION_NOT_MET`…), when known. */
  readonly code?: string | undefined;
}

/**
 * The port the enforcement interceptor asks. The authorization service answers it
 * (`@uab/authorization`): `LocalAuthorizer` in process, from its own snapshots, when it is
 * hosted beside the service; `RemoteAuthorizer` over Connect otherwise. Every
 * implementation decides from real bindings.
 */
export interface Authorizer {
  /** Decides one request. Must not throw for a denial: return `allowed: false`. */
  authorize(request: AuthorizationRequest): Promise<Decision>;
}
