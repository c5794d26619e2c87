import { randomBytes } from "node:crypto";

/**
 * Every id prefix UAB uses, in one table so that two resources never share one and a
 * reader can tell what an id names at a glance (`ten_01jx…` is a tenant).
 */
export const ID_PREFIXES = {
  tenant: "ten",
  project: "prj",
  team: "team",
  membership: "mem",
  user: "usr",
  event: "evt",
  request: "req",
  session: "ses",
  serviceAccount: "sa",
  apiKey: "key",
  role: "role",
  binding: "bind",
  accessRequest: "areq",
  approvalPolicy: "apol",
  secret: "sec",
  auditEntry: "aud",
  checkpoint: "chk",
  exportJob: "exp",
  auditStream: "ast",
  auditStreamDelivery: "asd",
  webhookEndpoint: "whe",
  delivery: "dlv",
  plan: "plan",
  subscription: "sub",
  invoice: "inv",
  meter: "mtr",
  mfaChallenge: "chl",
  mfaFactor: "mfa",
  impersonation: "imp",
  serviceAccountSecret: "sak",
  scimDirectory: "scim",
  ssoConnection: "sso",
  scimGroup: "grp",
  signingKey: "jwk",
  refreshToken: "rt",
  authFlow: "flw",
} as const;

/** A resource kind that has an id prefix. */
export type IdKind = keyof typeof ID_PREFIXES;

// Crockford base32, lower case: sortable as plain strings, no ambiguous letters.
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const TIME_CHARS = 10;
const RANDOM_CHARS = 16;

let lastTime = -1;
let lastRandom: number[] = [];

function encodeTime(ms: number): string {
  let out = "";
  let t = ms;
  for (let i = 0; i < TIME_CHARS; i++) {
    out = ALPHABET[t % 32] + out;
    t = Math.floor(t / 32);
  }
  return out;
}

function freshRandom(): number[] {
  const bytes = randomBytes(RANDOM_CHARS);
  return Array.from(bytes, (b) => b % 32);
}

function incrementRandom(r: number[]): number[] {
  const next = r.slice();
  for (let i = next.length - 1; i >= 0; i--) {
    if (next[i]! < 31) {
      next[i]! += 1;
      return next;
    }
    next[i] = 0;
  }
  // 80 bits overflowed within one millisecond: practically impossible; start fresh.
  return freshRandom();
}

/**
 * Creates a new id for `kind`: the kind's prefix, `_`, then 26 characters of a ULID-style
 * value (48-bit millisecond time + 80 random bits) in lower-case Crockford base32. Ids made
 * by one process are strictly increasing, so they sort by creation time and serve as
 * keyset-pagination cursors.
 */
export function newId(kind: IdKind): string {
  const now = Date.now();
  if (now <= lastTime) {
    lastRandom = incrementRandom(lastRandom);
  } else {
    lastTime = now;
    lastRandom = freshRandom();
  }
  return `${ID_PREFIXES[kind]}_${encodeTime(lastTime)}${lastRandom.map((n) => ALPHABET[n]).join("")}`;
}

const ID_SHAPE = /^([a-z]+)_[0-9a-hjkmnp-tv-z]{26}$/;

/** True when `value` is a well-formed id of `kind`. */
export function isId(kind: IdKind, value: string): boolean {
  const m = ID_SHAPE.exec(value);
  return m !== null && m[1] === ID_PREFIXES[kind];
}
