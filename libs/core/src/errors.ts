import { Code } from "@connectrpc/connect";

/** A field that failed validation, named by its proto path (`update_mask.paths`, `attributes.tier`). */
export interface FieldViolation {
  /** The field path, in the request's proto field names. */
  readonly field: string;
  /** What is wrong with it, for a person. */
  readonly description: string;
}

/** Options every domain error accepts. */
export interface DomainErrorOptions {
  /** The underlying error, logged but never sent to the client. */
  readonly cause?: unknown;
  /** Extra facts for the client, sent in the `google.rpc.ErrorInfo` metadata. */
  readonly metadata?: Record<string, string>;
  /** Field violations (for invalid arguments). */
  readonly violations?: readonly FieldViolation[];
}

/**
 * The base of every error a domain function may throw on purpose. It carries a stable,
 * machine-readable `reason` (`TENANT_NOT_FOUND`) and the Connect code it maps to; the one
 * error interceptor turns it into a Connect error with a `google.rpc.ErrorInfo` detail.
 * Anything that is not a DomainError reaches clients only as `INTERNAL`.
 */
export class DomainError extends Error {
  /** The Connect code this error maps to. */
  readonly code: Code;
  /** Stable upper-snake reason, documented for clients. */
  readonly reason: string;
  /** Extra facts for the client. */
  readonly metadata: Record<string, string>;
  /** Field violations, if any. */
  readonly violations: readonly FieldViolation[];

  constructor(code: Code, reason: string, message: string, options: DomainErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.reason = reason;
    this.metadata = options.metadata ?? {};
    this.violations = options.violations ?? [];
  }
}

/** The resource does not exist, or belongs to another tenant (never tell which). */
export class NotFoundError extends DomainError {
  constructor(reason: string, message: string, options?: DomainErrorOptions) {
    super(Code.NotFound, reason, message, options);
  }
}

/** A resource with the same unique key already exists. */
export class AlreadyExistsError extends DomainError {
  constructor(reason: string, message: string, options?: DomainErrorOptions) {
    super(Code.AlreadyExists, reason, message, options);
  }
}

/** The request is malformed; `violations` name the fields. */
export class InvalidArgumentError extends DomainError {
  constructor(reason: string, message: string, options?: DomainErrorOptions) {
    super(Code.InvalidArgument, reason, message, options);
  }

  /** An invalid-argument error about one field, whose message names the field. */
  static field(field: string, description: string, reason = "INVALID_FIELD"): InvalidArgumentError {
    return new InvalidArgumentError(reason, `${field}: ${description}`, { violations: [{ field, description }] });
  }
}

/** The system is not in a state that allows the operation (suspended tenant, last owner). */
export class FailedPreconditionError extends DomainError {
  constructor(reason: string, message: string, options?: DomainErrorOptions) {
    super(Code.FailedPrecondition, reason, message, options);
  }
}

/** Optimistic concurrency failed: the etag is stale, or the same idempotency key is in flight. */
export class AbortedError extends DomainError {
  constructor(reason: string, message: string, options?: DomainErrorOptions) {
    super(Code.Aborted, reason, message, options);
  }
}

/** The caller is known but not allowed. */
export class PermissionDeniedError extends DomainError {
  constructor(reason: string, message: string, options?: DomainErrorOptions) {
    super(Code.PermissionDenied, reason, message, options);
  }
}

/** The caller could not be authenticated. */
export class UnauthenticatedError extends DomainError {
  constructor(reason: string, message: string, options?: DomainErrorOptions) {
    super(Code.Unauthenticated, reason, message, options);
  }
}

/** A quota or rate limit is exhausted. */
export class ResourceExhaustedError extends DomainError {
  constructor(reason: string, message: string, options?: DomainErrorOptions) {
    super(Code.ResourceExhausted, reason, message, options);
  }
}

/** A dependency is unavailable (breaker open, database down); the client may retry. */
export class UnavailableError extends DomainError {
  constructor(reason: string, message: string, options?: DomainErrorOptions) {
    super(Code.Unavailable, reason, message, options);
  }
}

/** True for errors whose code means "the caller did something wrong" (logged at info, not error). */
export function isClientError(code: Code): boolean {
  return (
    code === Code.InvalidArgument ||
    code === Code.NotFound ||
    code === Code.AlreadyExists ||
    code === Code.PermissionDenied ||
    code === Code.Unauthenticated ||
    code === Code.FailedPrecondition ||
    code === Code.Aborted ||
    code === Code.ResourceExhausted ||
    code === Code.OutOfRange ||
    code === Code.Canceled
  );
}
