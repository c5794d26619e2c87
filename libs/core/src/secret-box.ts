/**
 * Secrets at rest (webhook signing secrets, stream headers holding credentials, TOTP seeds):
 * AES-256-GCM with a key ring, so keys can be rotated without re-encrypting everything at once.
 *
 * The ring comes from `UAB_ENCRYPTION_KEYS`: comma-separated `<key id>:<base64 of 32 bytes>`,
 * the first one sealing, every one opening. A sealed value is
 * `v1.<key id>.<base64url nonce>.<base64url ciphertext‖tag>`; the associated data (the row's
 * id, say) binds it to where it is stored, so a value copied to another row does not open.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import type { ConfigField } from "./config.js";

const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

/** Seals and opens secrets with a key ring. */
export class SecretBox {
  private readonly keys: ReadonlyMap<string, Buffer>;
  private readonly activeId: string;

  /** @param ring keys by id; the first entry seals. */
  constructor(ring: readonly { id: string; key: Uint8Array }[]) {
    if (ring.length === 0) throw new TypeError("SecretBox needs at least one key");
    for (const k of ring) {
      if (!KEY_ID.test(k.id))
        throw new TypeError(`SecretBox: key id ${JSON.stringify(k.id)} is not [A-Za-z0-9_-]{1,32}`);
      if (k.key.length !== 32) throw new TypeError(`SecretBox: key ${k.id} must be 32 bytes`);
    }
    this.keys = new Map(ring.map((k) => [k.id, Buffer.from(k.key)]));
    this.activeId = ring[0]!.id;
  }

  /** Parses a ring written as `id:base64,id:base64` (the first seals). */
  static parse(text: string): SecretBox {
    const ring = text
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean)
      .map((entry) => {
        const colon = entry.indexOf(":");
        if (colon <= 0) throw new TypeError(`"${entry.slice(0, 8)}…" is not <key id>:<base64 key>`);
        const key = Buffer.from(entry.slice(colon + 1), "base64");
        return { id: entry.slice(0, colon), key };
      });
    return new SecretBox(ring);
  }

  /** A new ring text with one random key (for development and first installs). */
  static generate(id = "k1"): string {
    return `${id}:${randomBytes(32).toString("base64")}`;
  }

  /** Encrypts `plaintext`, bound to `context` (for example the owning row's id). */
  seal(plaintext: string, context: string): string {
    const nonce = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.keys.get(this.activeId)!, nonce);
    cipher.setAAD(Buffer.from(context, "utf8"));
    const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
    return `v1.${this.activeId}.${nonce.toString("base64url")}.${body.toString("base64url")}`;
  }

  /**
   * Decrypts a sealed value.
   * @throws Error when the format is wrong, the key id is not in the ring, or the value or
   * its context were altered.
   */
  open(sealed: string, context: string): string {
    const parts = sealed.split(".");
    if (parts.length !== 4 || parts[0] !== "v1") throw new Error("not a sealed secret");
    const key = this.keys.get(parts[1]!);
    if (!key) throw new Error(`sealed with key ${parts[1]}, which is not in UAB_ENCRYPTION_KEYS`);
    const nonce = Buffer.from(parts[2]!, "base64url");
    const body = Buffer.from(parts[3]!, "base64url");
    if (nonce.length !== 12 || body.length < 16) throw new Error("not a sealed secret");
    const decipher = createDecipheriv("aes-256-gcm", key, nonce);
    decipher.setAAD(Buffer.from(context, "utf8"));
    decipher.setAuthTag(body.subarray(body.length - 16));
    try {
      return Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]).toString("utf8");
    } catch {
      throw new Error("the sealed secret does not open: altered, or sealed for another record");
    }
  }

  /**
   * A MAC of `data` (signed links, say) with a key derived from the active key for `purpose`:
   * `<key id>.<base64url HMAC-SHA256>`.
   */
  mac(data: string, purpose: string): string {
    return `${this.activeId}.${this.macWith(this.activeId, data, purpose)}`;
  }

  /** Whether `mac` is a MAC of `data` for `purpose` by any key of the ring (constant time). */
  verifyMac(data: string, purpose: string, mac: string): boolean {
    const dot = mac.indexOf(".");
    const id = mac.slice(0, dot);
    if (dot <= 0 || !this.keys.has(id)) return false;
    const expected = Buffer.from(this.macWith(id, data, purpose));
    const given = Buffer.from(mac.slice(dot + 1));
    return expected.length === given.length && timingSafeEqual(expected, given);
  }

  private macWith(id: string, data: string, purpose: string): string {
    const key = Buffer.from(hkdfSync("sha256", this.keys.get(id)!, Buffer.alloc(0), `uab-mac:${purpose}`, 32));
    return createHmac("sha256", key).update(data, "utf8").digest("base64url");
  }

  /** Whether `sealed` was sealed with a key other than the active one (re-seal it). */
  isStale(sealed: string): boolean {
    return sealed.split(".")[1] !== this.activeId;
  }
}

/** A config field for a key ring (`UAB_ENCRYPTION_KEYS`); required. */
export function secretBoxField(description: string): ConfigField<SecretBox> {
  return {
    description,
    parse(raw) {
      if (raw === undefined) {
        throw new Error(
          "is required: comma-separated <key id>:<base64 of 32 random bytes>, e.g. k1:$(openssl rand -base64 32)",
        );
      }
      return SecretBox.parse(raw);
    },
  };
}
