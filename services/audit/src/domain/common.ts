/** What every audit command shares: dependencies, events, etags, the caller. */
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import {
  AbortedError,
  currentRequestContext,
  FailedPreconditionError,
  type Logger,
  type Principal,
  type SecretBox,
} from "@uab/core";
import { withPlatform, withTenant } from "@uab/db";
import { appendEvent } from "@uab/events";
import type { Kysely, Transaction } from "kysely";
import { etagOf } from "../convert.js";
import type { AuditDatabase } from "../storage/tables.js";
import type { KeyRing } from "./checkpoints.js";

/** Settings the domain reads. */
export interface AuditSettings {
  /** The installation's origin prefix of checkpoint origins (`<installation>/<log id>`). */
  readonly installation: string;
  /** Default retention when a tenant set none, in days (0: keep forever). */
  readonly defaultRetainDays: number;
  /** Streams may reach private networks (tests, on-premises SIEMs). */
  readonly allowPrivateNetworks: boolean;
  /** One delivery attempt's time limit. */
  readonly deliveryTimeoutMs: number;
  /** Consecutive failures after which a stream is marked failing. */
  readonly failingAfter: number;
  /** How long an export job's file can be downloaded. */
  readonly exportTtlMs: number;
  /** Base URL prefixed to download links; empty gives links relative to the API. */
  readonly publicUrl: string;
  /** Extra CA certificates trusted for stream endpoints (PEM). */
  readonly streamCa?: string | undefined;
}

/** What the audit domain needs. */
export interface AuditDeps {
  readonly db: Kysely<AuditDatabase>;
  readonly keys: KeyRing;
  readonly box: SecretBox;
  readonly logger: Logger;
  readonly settings: AuditSettings;
}

/** An audit transaction. */
export type Tx = Transaction<AuditDatabase>;

/** Runs `fn` scoped to a log: the tenant's, or the platform's for "platform". */
export function inLog<T>(db: Kysely<AuditDatabase>, logId: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return logId === "platform" ? withPlatform(db, fn) : withTenant(db, logId, fn);
}

/** Records a domain event of the audit service in the outbox, in the caller's transaction. */
export async function emit<D extends DescMessage>(
  tx: Tx,
  schema: D,
  payload: MessageInitShape<D>,
  tenantId: string | null,
  resource: { type: string; id: string; displayName?: string },
): Promise<void> {
  await appendEvent(tx, { source: "audit", schema, payload, tenantId: tenantId ?? undefined, resource });
}

/** Fails with ABORTED when the client's etag is set and differs from the row's. */
export function checkEtag(etag: string, revision: string | number, what: string): void {
  const current = etagOf(revision);
  if (etag && etag !== current && etag !== String(revision)) {
    throw new AbortedError(
      "ETAG_MISMATCH",
      `${what} changed since it was read (etag ${etag}, current ${current}); read it again and retry`,
      { metadata: { current_etag: current } },
    );
  }
}

/** The caller of the current request (the system outside one). */
export function caller(): Principal {
  return currentRequestContext()?.principal ?? { id: "system", type: "system", amr: [] };
}

/** A FAILED_PRECONDITION for a log that has no entries yet. */
export function emptyLog(): FailedPreconditionError {
  return new FailedPreconditionError("LOG_EMPTY", "this log has no entries yet");
}
