/**
 * The installation's token signing keys. Keys move NEXT → ACTIVE → RETIRED → EXPIRED:
 * the NEXT key is published in the JWKS before it signs anything, so verifiers that cache the
 * key set already know it when rotation promotes it; a RETIRED key stays published until
 * every token it signed has expired. Private keys are sealed at rest (SecretBox, the key id
 * as associated data). Each replica keeps the set in memory and reloads it every
 * `refreshMs`, so a rotation made on one replica reaches the others within that bound
 * (tokens signed meanwhile with the retired key still verify).
 */

import type { AccessTokenClaims } from "@uab/auth";
import { InvalidArgumentError, newId, type SecretBox } from "@uab/core";
import { withPlatform } from "@uab/db";
import { appendEvent } from "@uab/events";
import { SigningKeyRotatedSchema } from "@uab/proto/gen/uab/identity/v1/events_pb.js";
import { exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from "jose";
import type { Kysely, Transaction } from "kysely";
import { sql } from "kysely";
import { signingKeyToProto } from "../convert.js";
import type { IdentityDatabase, SigningKeyRow } from "../storage/tables.js";

/** Algorithms keys can use. EdDSA (Ed25519) is the default: the cheapest to verify per RPC. */
export type KeyAlgorithm = "EdDSA" | "ES256" | "RS256";

const ALGORITHMS: readonly KeyAlgorithm[] = ["EdDSA", "ES256", "RS256"];

type PrivateKey = Parameters<SignJWT["sign"]>[0];

interface LoadedKey {
  readonly row: SigningKeyRow;
  readonly privateKey?: PrivateKey;
}

/** Options of {@link SigningKeys}. */
export interface SigningKeysOptions {
  readonly db: Kysely<IdentityDatabase>;
  readonly box: SecretBox;
  /** How long a retired key stays published (s): at least the access-token lifetime plus clock skew. */
  readonly retiredTtlSeconds: number;
  /** Reload interval (ms). */
  readonly refreshMs?: number;
}

const LOCK = 0x1d_5e_c0_de; // advisory lock serialising key-set changes across replicas

/** The signing-key set; see the module comment. */
export class SigningKeys {
  private keys: LoadedKey[] = [];
  private loadedAt = 0;
  private loading: Promise<void> | undefined;

  constructor(private readonly o: SigningKeysOptions) {}

  private async unseal(row: SigningKeyRow): Promise<PrivateKey> {
    const jwk = JSON.parse(this.o.box.open(row.private_sealed, `signing_key:${row.id}`)) as JWK;
    return (await importJWK(jwk, row.algorithm)) as PrivateKey;
  }

  private static async create(
    tx: Transaction<IdentityDatabase>,
    box: SecretBox,
    algorithm: KeyAlgorithm,
    state: "next" | "active",
  ) {
    const id = newId("signingKey");
    const { privateKey, publicKey } =
      algorithm === "EdDSA"
        ? await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true })
        : algorithm === "ES256"
          ? await generateKeyPair("ES256", { extractable: true })
          : await generateKeyPair("RS256", { modulusLength: 2048, extractable: true });
    const publicJwk = { ...(await exportJWK(publicKey)), kid: id, alg: algorithm, use: "sig" };
    const privateJwk = { ...(await exportJWK(privateKey)), kid: id, alg: algorithm };
    return tx
      .insertInto("signing_keys")
      .values({
        id,
        algorithm,
        state,
        public_jwk: JSON.stringify(publicJwk),
        private_sealed: box.seal(JSON.stringify(privateJwk), `signing_key:${id}`),
        activated_at: state === "active" ? new Date() : null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  /** Makes sure an ACTIVE and a NEXT key exist (first start), expires retired keys past their time, and loads the set. */
  async initialise(algorithm: KeyAlgorithm = "EdDSA"): Promise<void> {
    await withPlatform(this.o.db, async (tx) => {
      await sql`SELECT pg_advisory_xact_lock(${LOCK})`.execute(tx);
      const rows = await tx
        .selectFrom("signing_keys")
        .select(["state"])
        .where("state", "in", ["active", "next"])
        .execute();
      if (!rows.some((r) => r.state === "active")) await SigningKeys.create(tx, this.o.box, algorithm, "active");
      if (!rows.some((r) => r.state === "next")) await SigningKeys.create(tx, this.o.box, algorithm, "next");
      await tx
        .updateTable("signing_keys")
        .set({ state: "expired" })
        .where("state", "=", "retired")
        .where("expires_at", "<=", new Date())
        .execute();
    });
    await this.reload();
  }

  /** Reloads the set from the database. */
  async reload(): Promise<void> {
    const rows = await withPlatform(this.o.db, (tx) =>
      tx.selectFrom("signing_keys").selectAll().where("state", "!=", "expired").orderBy("created_at").execute(),
    );
    const keys: LoadedKey[] = [];
    for (const row of rows) {
      const known = this.keys.find((k) => k.row.id === row.id && k.privateKey);
      keys.push({
        row,
        privateKey: row.state === "active" ? (known?.privateKey ?? (await this.unseal(row))) : undefined,
      });
    }
    this.keys = keys;
    this.loadedAt = Date.now();
  }

  private async fresh(): Promise<void> {
    if (Date.now() - this.loadedAt < (this.o.refreshMs ?? 30_000) && this.keys.length > 0) return;
    this.loading ??= this.reload().finally(() => {
      this.loading = undefined;
    });
    await this.loading;
  }

  /** The published key set: NEXT, ACTIVE and RETIRED public keys. */
  async jwks(): Promise<{ keys: JWK[] }> {
    await this.fresh();
    return { keys: this.keys.map((k) => k.row.public_jwk as JWK) };
  }

  /** Every key not expired (for ListSigningKeys), newest first. */
  async list(): Promise<SigningKeyRow[]> {
    return withPlatform(this.o.db, (tx) => tx.selectFrom("signing_keys").selectAll().orderBy("id", "desc").execute());
  }

  /** Signs an access token with the ACTIVE key. */
  async sign(
    claims: AccessTokenClaims,
    ttlSeconds: number,
    issuer: string,
    audience: string,
  ): Promise<{ token: string; expiresAt: number }> {
    await this.fresh();
    const active = this.keys.find((k) => k.row.state === "active" && k.privateKey);
    if (!active) throw new Error("no active signing key (initialise() was not called)");
    const now = Math.floor(Date.now() / 1000);
    const expiresAt = now + ttlSeconds;
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: active.row.algorithm, kid: active.row.id, typ: "at+jwt" })
      .setIssuer(issuer)
      .setAudience(audience)
      .setIssuedAt(now)
      .setExpirationTime(expiresAt)
      .setJti(newId("request").slice(4))
      .sign(active.privateKey!);
    return { token, expiresAt };
  }

  /**
   * Rotates: NEXT becomes ACTIVE, ACTIVE becomes RETIRED (published for `retiredTtlSeconds`,
   * or expired at once with `revokePrevious`, for a compromised key), and a new NEXT key of
   * `algorithm` is made. Returns the three keys.
   */
  async rotate(algorithm: KeyAlgorithm, revokePrevious: boolean, reason = "") {
    if (!ALGORITHMS.includes(algorithm)) {
      throw new InvalidArgumentError("ALGORITHM_UNSUPPORTED", `algorithm ${algorithm} is not supported`, {
        violations: [{ field: "algorithm", description: `must be one of ${ALGORITHMS.join(", ")}` }],
      });
    }
    const run = async (t: Transaction<IdentityDatabase>) => {
      await sql`SELECT pg_advisory_xact_lock(${LOCK})`.execute(t);
      const now = new Date();
      const previous = await t
        .updateTable("signing_keys")
        .set(
          revokePrevious
            ? { state: "expired", retired_at: now, expires_at: now }
            : {
                state: "retired",
                retired_at: now,
                expires_at: new Date(now.getTime() + this.o.retiredTtlSeconds * 1000),
              },
        )
        .where("state", "=", "active")
        .returningAll()
        .executeTakeFirst();
      let active = await t
        .updateTable("signing_keys")
        .set({ state: "active", activated_at: now })
        .where("state", "=", "next")
        .returningAll()
        .executeTakeFirst();
      // A NEXT key of another algorithm is skipped: the requested algorithm takes effect now.
      if (active && active.algorithm !== algorithm) {
        await t
          .updateTable("signing_keys")
          .set({ state: "expired", expires_at: now })
          .where("id", "=", active.id)
          .execute();
        active = undefined;
      }
      active ??= await SigningKeys.create(t, this.o.box, algorithm, "active");
      const next = await SigningKeys.create(t, this.o.box, algorithm, "next");
      await appendEvent(t, {
        source: "identity",
        schema: SigningKeyRotatedSchema,
        payload: {
          activeKey: signingKeyToProto(active),
          nextKey: signingKeyToProto(next),
          previousKey: previous ? signingKeyToProto(previous) : undefined,
          revokePrevious,
        },
        resource: { type: "identity.signing_key", id: active.id, displayName: reason },
      });
      return { active, next, previous };
    };
    const result = await withPlatform(this.o.db, run);
    this.loadedAt = 0;
    return result;
  }
}
