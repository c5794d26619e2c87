/**
 * A fixture {@link Authorizer} for tests of the libraries (the server stack, the auth
 * primitives) that need an enforcement decision without the authorization service.
 * Services' tests enforce with the real authorization service instead.
 */
import type { AuthorizationRequest, Authorizer, Decision } from "@uab/auth";

/**
 * Allows the listed principal ids everything and denies everyone else everything, with a
 * reason naming the principal and the permission. An empty list denies every request.
 */
export class AllowListAuthorizer implements Authorizer {
  private readonly allowed: ReadonlySet<string>;

  /** @param principalIds ids of the principals to allow */
  constructor(principalIds: Iterable<string>) {
    this.allowed = new Set(principalIds);
  }

  /** {@inheritDoc Authorizer.authorize} */
  async authorize(request: AuthorizationRequest): Promise<Decision> {
    const id = request.principal.id;
    if (this.allowed.has(id)) {
      return { allowed: true, reason: `${id} is on the test allow list`, code: "GRANTED" };
    }
    return {
      allowed: false,
      reason: `${id} is not on the test allow list: ${request.permission} denied`,
      code: "NO_BINDING",
    };
  }
}
