import { createHash } from "node:crypto";
import { type DescMessage, type DescService, fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import { Code, createContextKey, type HandlerContext, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { AbortedError, DomainError, InvalidArgumentError, type Logger } from "@uab/core";
import { type Kysely, sql } from "kysely";
import type { Migration } from "kysely/migration";
import { kPrincipal } from "./context-values.js";
import { accessFor } from "./interceptors.js";

/** How long a key is remembered. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * The frozen migrations of the idempotency table, merged into every service's migrations.
 * Keys are scoped by principal (like Stripe scopes them by account), so the table carries
 * no tenant and needs no RLS: a principal only ever sees its own replays.
 */
export function idempotencyMigrations(): Record<string, Migration> {
  return {
    "2026_11_22_000010_uab_idempotency_keys": {
      async up(db) {
        await sql`
          CREATE TABLE idempotency_keys (
            principal_id text NOT NULL,
            key text NOT NULL,
            method text NOT NULL,
            request_hash bytea NOT NULL,
            state text NOT NULL CHECK (state IN ('pending', 'completed')),
            response bytea,
            error jsonb,
            locked_until timestamptz NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            PRIMARY KEY (principal_id, key)
          )`.execute(db);
        await sql`CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at)`.execute(db);
      },
      async down(db) {
        await sql`DROP TABLE idempotency_keys`.execute(db);
      },
    },
  };
}

interface KeyRow {
  method: string;
  request_hash: Buffer;
  state: "pending" | "completed";
  response: Buffer | null;
  error: {
    code: number;
    reason: string;
    message: string;
    metadata: Record<string, string>;
    violations?: { field: string; description: string }[];
  } | null;
  locked_until: Date;
  expires_at: Date;
}

/** Options for {@link idempotencyInterceptor}. */
export interface IdempotencyOptions {
  /** The database holding `idempotency_keys`, per service type name (`uab.tenancy.v1.TenancyService`). */
  readonly stores: ReadonlyMap<string, Kysely<unknown>>;
  /** How long a concurrent duplicate waits for the first request to finish (default 10 s). */
  readonly waitMs?: number;
  /** After this long a pending key whose request died may be taken over (default 60 s). */
  readonly lockMs?: number;
  /** Where failures to record a result are logged. */
  readonly logger: Logger;
}

const TRANSIENT: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.Aborted,
  Code.ResourceExhausted,
  Code.DeadlineExceeded,
]);

const KEY_SHAPE = /^[\x21-\x7e]{1,255}$/;

/** The stored response the idempotency interceptor replays; read by {@link replayableImpl}. */
const kReplay = createContextKey<Message | undefined>(undefined, { description: "uab idempotent replay" });

/** Services whose implementation went through {@link replayableImpl}. */
const replayable = new WeakSet<DescService>();

/**
 * Wraps a service implementation so that the idempotency interceptor can replay a stored
 * response: the replay still goes through the framework's normal response path, which keeps
 * the response headers the protocol set up (content type, encodings). A response made up by
 * the interceptor itself would replace them and clients would reject it. `startServer`
 * registers every service that has an idempotency store with this wrapper.
 */
export function replayableImpl<S extends DescService>(service: S, impl: ServiceImpl<S>): ServiceImpl<S> {
  const source = impl as unknown as Record<string, unknown>;
  const wrapped: Record<string, unknown> = { ...source };
  for (const method of service.methods) {
    const fn = source[method.localName];
    if (typeof fn !== "function" || method.methodKind !== "unary") continue;
    wrapped[method.localName] = (req: unknown, ctx: HandlerContext) => {
      const replay = ctx.values.get(kReplay);
      return replay !== undefined ? replay : fn.call(impl, req, ctx);
    };
  }
  replayable.add(service);
  return wrapped as unknown as ServiceImpl<S>;
}

/**
 * Honours the `Idempotency-Key` header on every mutating RPC for 24 hours. The first
 * request with a key claims it (an insert that only one of any number of concurrent
 * requests wins) and runs; its response, or its client error, is stored and replayed to
 * every later request with the same key; concurrent duplicates wait for it. The same key
 * with a different request (another RPC or other fields) is INVALID_ARGUMENT. An internal
 * failure releases the key so the client can retry.
 */
export function idempotencyInterceptor(options: IdempotencyOptions): Interceptor {
  const waitMs = options.waitMs ?? 10_000;
  const lockMs = options.lockMs ?? 60_000;
  return (next) => async (req) => {
    const key = req.header.get("idempotency-key");
    if (key === null || req.stream) return next(req);
    const access = accessFor(req.method);
    if (access.readOnly) return next(req);
    const db = options.stores.get(req.service.typeName);
    if (!db) return next(req);
    if (!KEY_SHAPE.test(key)) {
      throw InvalidArgumentError.field("Idempotency-Key", "must be 1 to 255 printable ASCII characters");
    }
    // Keys are scoped by principal. Anonymous (public) calls get no replay: a shared
    // anonymous namespace would hand one caller's response (tokens) to another.
    const principalId = req.contextValues.get(kPrincipal)?.id;
    if (!principalId) return next(req);
    const method = `${req.service.typeName}/${req.method.name}`;
    const hash = createHash("sha256")
      .update(method)
      .update(toBinary(req.method.input as DescMessage, req.message as Message))
      .digest();
    const output = req.method.output as DescMessage;

    const run = async () => {
      try {
        const res = await next(req);
        if (res.stream) return res;
        await sql`UPDATE idempotency_keys SET state = 'completed', response = ${Buffer.from(toBinary(output, res.message as Message))}
                  WHERE principal_id = ${principalId} AND key = ${key}`.execute(db);
        return res;
      } catch (e) {
        // A definitive answer (the request itself was wrong or conflicted) is replayed; a
        // transient one (unavailable, aborted, exhausted, timed out) releases the key so the
        // retry it invites can succeed.
        if (e instanceof DomainError && !TRANSIENT.has(e.code)) {
          const error = {
            code: e.code,
            reason: e.reason,
            message: e.message,
            metadata: e.metadata,
            violations: e.violations,
          };
          await sql`UPDATE idempotency_keys SET state = 'completed', error = ${JSON.stringify(error)}::jsonb
                    WHERE principal_id = ${principalId} AND key = ${key}`
            .execute(db)
            .catch((err) => options.logger.error({ err }, "recording an idempotent error failed"));
        } else {
          await sql`DELETE FROM idempotency_keys WHERE principal_id = ${principalId} AND key = ${key}`
            .execute(db)
            .catch((err) => options.logger.error({ err }, "releasing an idempotency key failed"));
        }
        throw e;
      }
    };

    const deadline = Date.now() + waitMs;
    for (;;) {
      const claimed = await sql<{ key: string }>`
        INSERT INTO idempotency_keys (principal_id, key, method, request_hash, state, locked_until, expires_at)
        VALUES (${principalId}, ${key}, ${method}, ${hash}, 'pending', now() + ${`${lockMs} milliseconds`}::interval,
                now() + ${`${IDEMPOTENCY_TTL_MS} milliseconds`}::interval)
        ON CONFLICT (principal_id, key) DO UPDATE
          SET method = EXCLUDED.method, request_hash = EXCLUDED.request_hash, state = 'pending', response = NULL,
              error = NULL, locked_until = EXCLUDED.locked_until, created_at = now(), expires_at = EXCLUDED.expires_at
          WHERE idempotency_keys.expires_at < now()
             OR (idempotency_keys.state = 'pending' AND idempotency_keys.locked_until < now()
                 AND idempotency_keys.request_hash = EXCLUDED.request_hash)
        RETURNING key`.execute(db);
      if (claimed.rows.length === 1) return run();

      const existing = await sql<KeyRow>`
        SELECT method, request_hash, state, response, error, locked_until, expires_at
        FROM idempotency_keys WHERE principal_id = ${principalId} AND key = ${key}`.execute(db);
      const row = existing.rows[0];
      if (!row) continue; // released between our insert and select: try again
      if (row.method !== method || !row.request_hash.equals(hash)) {
        throw new InvalidArgumentError(
          "IDEMPOTENCY_KEY_REUSED",
          "Idempotency-Key: this key was already used for a different request",
          { violations: [{ field: "Idempotency-Key", description: "already used for a different request" }] },
        );
      }
      if (row.state === "completed") {
        if (row.error) {
          throw new DomainError(row.error.code as Code, row.error.reason, row.error.message, {
            metadata: row.error.metadata,
            violations: row.error.violations ?? [],
          });
        }
        // Answered by the implementation wrapper (replayableImpl), not by running the handler.
        if (!replayable.has(req.service)) {
          throw new Error(`${req.service.typeName} is not registered with replayableImpl: cannot replay`);
        }
        req.contextValues.set(kReplay, fromBinary(output, row.response ?? new Uint8Array()));
        const res = await next(req);
        res.header.set("idempotent-replayed", "true");
        return res;
      }
      if (Date.now() > deadline) {
        throw new AbortedError(
          "IDEMPOTENCY_KEY_IN_USE",
          "a request with this Idempotency-Key is still in progress; retry later",
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  };
}

/** Deletes expired keys; services call it periodically. */
export async function purgeExpiredIdempotencyKeys(db: Kysely<unknown>): Promise<number> {
  const res = await sql`DELETE FROM idempotency_keys WHERE expires_at < now()`.execute(db);
  return Number(res.numAffectedRows ?? 0);
}
