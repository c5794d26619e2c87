/**
 * One-time codes: TOTP (RFC 6238 over RFC 4226 HOTP: HMAC-SHA1, 6 digits, 30 s steps —
 * what every authenticator app implements) and recovery codes (80 random bits each, shown
 * once, stored as salted SHA-256, single use).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** RFC 4648 base32 without padding. */
export function base32Encode(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** Decodes RFC 4648 base32 (case-insensitive, padding and spaces ignored). */
export function base32Decode(text: string): Buffer {
  const clean = text.toUpperCase().replace(/[\s=]/g, "");
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const c of clean) {
    const i = BASE32.indexOf(c);
    if (i < 0) throw new Error("not base32");
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** TOTP parameters (the defaults every authenticator app assumes). */
export const TOTP = { digits: 6, periodSeconds: 30, algorithm: "SHA1" } as const;

/** A new TOTP secret: 160 bits (RFC 4226 recommends at least 128), base32. */
export function newTotpSecret(): string {
  return base32Encode(randomBytes(20));
}

/** The HOTP value of `secret` at `counter`. */
export function hotp(secret: Buffer, counter: number): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac("sha1", secret).update(msg).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** TOTP.digits;
  return code.toString().padStart(TOTP.digits, "0");
}

/** The TOTP time step of `at`. */
export function totpStep(at: Date = new Date()): number {
  return Math.floor(at.getTime() / 1000 / TOTP.periodSeconds);
}

/**
 * Checks a TOTP code against the current step ± `window` steps (clock drift). Returns the
 * step it matched, or undefined. A step at or before `lastUsedStep` never matches, so a code
 * cannot be replayed (RFC 6238 §5.2).
 */
export function verifyTotp(
  secretBase32: string,
  code: string,
  opts: { at?: Date; window?: number; lastUsedStep?: number } = {},
): number | undefined {
  if (!/^\d{6}$/.test(code)) return undefined;
  const secret = base32Decode(secretBase32);
  const now = totpStep(opts.at);
  const window = opts.window ?? 1;
  let matched: number | undefined;
  for (let step = now - window; step <= now + window; step++) {
    // Compare every candidate (no early exit) so timing does not reveal which step matched.
    const ok = timingSafeEqual(Buffer.from(hotp(secret, step)), Buffer.from(code));
    if (ok && matched === undefined && (opts.lastUsedStep === undefined || step > opts.lastUsedStep)) matched = step;
  }
  return matched;
}

/** The `otpauth://` URI authenticator apps scan as a QR code (Key Uri Format). */
export function totpUri(secretBase32: string, issuer: string, account: string): string {
  const label = `${encodeURIComponent(issuer)}:${encodeURIComponent(account)}`;
  const params = new URLSearchParams({
    secret: secretBase32,
    issuer,
    algorithm: TOTP.algorithm,
    digits: String(TOTP.digits),
    period: String(TOTP.periodSeconds),
  });
  return `otpauth://totp/${label}?${params.toString()}`;
}

const RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/** `count` new recovery codes, `xxxx-xxxx-xxxx-xxxx` (80 random bits each). */
export function newRecoveryCodes(count = 10): string[] {
  return Array.from({ length: count }, () => {
    const bytes = randomBytes(16);
    const chars = Array.from(bytes, (b) => RECOVERY_ALPHABET[b & 31]).join("");
    return `${chars.slice(0, 4)}-${chars.slice(4, 8)}-${chars.slice(8, 12)}-${chars.slice(12, 16)}`;
  });
}

/** Normalises a typed recovery code (case, spaces and dashes do not matter). */
export function normaliseRecoveryCode(code: string): string {
  return code.toLowerCase().replace(/[\s-]/g, "");
}

/** The stored hash of a recovery code, salted with its factor id. */
export function recoveryCodeHash(factorId: string, code: string): Buffer {
  return createHash("sha256")
    .update(`${factorId}:${normaliseRecoveryCode(code)}`)
    .digest();
}
