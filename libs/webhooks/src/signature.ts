/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): an HMAC-SHA256 over
 * `${msgId}.${timestampSeconds}.${body}`, sent as `webhook-signature: v1,<base64>` next to
 * `webhook-id` and `webhook-timestamp`. Several space-separated signatures may be sent; that
 * is how a secret rotation overlaps: during it, every message is signed with the old and the
 * new secret, and a receiver holding either accepts it.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** The prefix of every webhook secret's text form. */
export const SECRET_PREFIX = "whsec_";

/** The fewest random bytes a secret may hold. */
export const MIN_SECRET_BYTES = 24;

/** The most random bytes a secret may hold. */
export const MAX_SECRET_BYTES = 64;

/** The default tolerance of {@link verifySignature}: 5 minutes either way, as the spec recommends. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/** The names of the three Standard Webhooks headers. */
export const WEBHOOK_HEADERS = {
  id: "webhook-id",
  timestamp: "webhook-timestamp",
  signature: "webhook-signature",
} as const;

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const MESSAGE_ID = /^[\x21-\x7e]+$/;

/** A new secret: `whsec_` and the base64 of 32 random bytes. */
export function generateSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(32).toString("base64")}`;
}

/**
 * The key bytes of a secret in its text form `whsec_<base64>`, with 24 to 64 bytes of key.
 * Padding (`=`) may be omitted. The error never repeats the secret.
 * @throws Error when the secret is malformed, saying what is wrong.
 */
export function parseSecret(secret: string): Buffer {
  if (typeof secret !== "string") throw new TypeError("webhook secret must be a string");
  if (!secret.startsWith(SECRET_PREFIX)) {
    throw new Error(`malformed webhook secret: it must start with "${SECRET_PREFIX}"`);
  }
  const encoded = secret.slice(SECRET_PREFIX.length);
  const unpadded = encoded.replace(/=+$/, "");
  if (!BASE64.test(encoded) || unpadded.length % 4 === 1 || (encoded !== unpadded && encoded.length % 4 !== 0)) {
    throw new Error(`malformed webhook secret: the part after "${SECRET_PREFIX}" must be base64`);
  }
  const key = Buffer.from(unpadded, "base64");
  if (key.length < MIN_SECRET_BYTES || key.length > MAX_SECRET_BYTES) {
    throw new Error(
      `malformed webhook secret: it must hold ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES} bytes of key, not ${key.length}`,
    );
  }
  return key;
}

/**
 * A hint that tells secrets apart in logs and UIs without revealing them: `whsec_…` and the
 * last 4 characters of the key (padding left off), or just `whsec_…` when the secret is too
 * short to show any of it.
 */
export function secretHint(secret: string): string {
  const encoded = (secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret).replace(/=+$/, "");
  return encoded.length < 16 ? `${SECRET_PREFIX}…` : `${SECRET_PREFIX}…${encoded.slice(-4)}`;
}

/** The message a signature covers. */
export interface SignedMessage {
  /** The message id (`webhook-id`): unique per message, the same on every retry of it. */
  readonly id: string;
  /** When the message is sent (`webhook-timestamp`, in whole seconds). */
  readonly timestamp: Date;
  /** The exact bytes of the request body; a string is signed as its UTF-8 encoding. */
  readonly body: string | Uint8Array;
}

function timestampSeconds(timestamp: Date): number {
  // Duck-typed: a Date from another realm (a vm context) fails instanceof.
  const ms = typeof timestamp?.getTime === "function" ? timestamp.getTime() : Number.NaN;
  if (!Number.isFinite(ms)) throw new TypeError("webhook timestamp must be a valid Date");
  return Math.floor(ms / 1000);
}

function sign(key: Buffer, id: string, seconds: number, body: string | Uint8Array): Buffer {
  const hmac = createHmac("sha256", key);
  hmac.update(`${id}.${seconds}.`, "utf8");
  if (typeof body === "string") hmac.update(body, "utf8");
  else hmac.update(body);
  return hmac.digest();
}

/**
 * The three Standard Webhooks headers for a message: `webhook-id`, `webhook-timestamp` and
 * `webhook-signature` with one `v1,<base64>` signature per secret (several during a
 * rotation, in the order given).
 * @throws TypeError when the id is empty or not printable ASCII, the timestamp is invalid or
 * there is no secret; Error when a secret is malformed (see {@link parseSecret}).
 */
export function signatureHeaders(message: SignedMessage, secrets: readonly string[]): Record<string, string> {
  if (typeof message.id !== "string" || !MESSAGE_ID.test(message.id)) {
    throw new TypeError("webhook message id must be non-empty printable ASCII without spaces");
  }
  if (secrets.length === 0) throw new TypeError("signing a webhook needs at least one secret");
  const seconds = timestampSeconds(message.timestamp);
  const signatures = secrets.map(
    (s) => `v1,${sign(parseSecret(s), message.id, seconds, message.body).toString("base64")}`,
  );
  return {
    [WEBHOOK_HEADERS.id]: message.id,
    [WEBHOOK_HEADERS.timestamp]: String(seconds),
    [WEBHOOK_HEADERS.signature]: signatures.join(" "),
  };
}

/**
 * Request headers as {@link verifySignature} accepts them: a fetch `Headers`, Node's
 * `IncomingHttpHeaders`, or any record (names are matched case-insensitively).
 */
export type HeaderSource =
  | { get(name: string): string | null }
  | Readonly<Record<string, string | readonly string[] | undefined>>;

/** Options for {@link verifySignature}. */
export interface VerifyOptions {
  /** How far the timestamp may be from `now`, in seconds, in either direction; default 300. */
  readonly toleranceSeconds?: number;
  /** The current time; defaults to the clock. */
  readonly now?: Date;
}

/** The result of {@link verifySignature}. */
export type SignatureVerification =
  | { readonly valid: true; readonly id: string; readonly timestamp: Date }
  | {
      readonly valid: false;
      /** Why, for logs: a missing header, a timestamp out of tolerance, or no matching signature. */
      readonly reason: string;
    };

function header(headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === "function") {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined;
  }
  for (const [key, value] of Object.entries(headers as Record<string, string | readonly string[] | undefined>)) {
    if (key.toLowerCase() !== name || value === undefined) continue;
    return typeof value === "string" ? value : value.join(" ");
  }
  return undefined;
}

/**
 * Verifies a Standard Webhooks request: the timestamp must be within `toleranceSeconds` of
 * `now` (either way, against replays and clock games) and one of the `v1` signatures must
 * match one of `secrets` (several during a rotation). Signatures are compared in constant
 * time. `body` must be the raw body bytes as received (or their exact UTF-8 text).
 * @throws Error when one of `secrets` is malformed (a configuration error, not a bad request).
 */
export function verifySignature(
  headers: HeaderSource,
  body: string | Uint8Array,
  secrets: readonly string[],
  options: VerifyOptions = {},
): SignatureVerification {
  const keys = secrets.map(parseSecret);
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  if (!(tolerance >= 0)) throw new RangeError("verifySignature: toleranceSeconds must be >= 0");
  const id = header(headers, WEBHOOK_HEADERS.id);
  const timestamp = header(headers, WEBHOOK_HEADERS.timestamp);
  const signature = header(headers, WEBHOOK_HEADERS.signature);
  if (!id) return { valid: false, reason: `missing ${WEBHOOK_HEADERS.id} header` };
  if (!timestamp) return { valid: false, reason: `missing ${WEBHOOK_HEADERS.timestamp} header` };
  if (!signature) return { valid: false, reason: `missing ${WEBHOOK_HEADERS.signature} header` };
  if (!/^\d{1,15}$/.test(timestamp)) return { valid: false, reason: `invalid ${WEBHOOK_HEADERS.timestamp} header` };
  const seconds = Number(timestamp);
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  if (now - seconds > tolerance) return { valid: false, reason: `timestamp too old (${now - seconds} s ago)` };
  if (seconds - now > tolerance) return { valid: false, reason: `timestamp too new (${seconds - now} s ahead)` };
  const given: Buffer[] = [];
  for (const part of signature.split(" ")) {
    const comma = part.indexOf(",");
    if (comma < 0 || part.slice(0, comma) !== "v1") continue;
    const encoded = part.slice(comma + 1);
    if (!BASE64.test(encoded)) continue;
    const bytes = Buffer.from(encoded, "base64");
    if (bytes.length === 32) given.push(bytes);
  }
  for (const key of keys) {
    const expected = sign(key, id, seconds, body);
    for (const candidate of given) {
      if (timingSafeEqual(expected, candidate)) return { valid: true, id, timestamp: new Date(seconds * 1000) };
    }
  }
  return { valid: false, reason: "no matching signature" };
}
