/**
 * The root token of every logical event subject. Code always speaks logical subjects
 * (`uab.events.tenancy.ten_….TenantCreated`); a bus may map the root to another prefix on
 * the wire (tests isolate themselves that way) without any caller noticing.
 */
export const SUBJECT_ROOT = "uab";

/** The tenant token of platform-level events, which belong to no tenant. */
export const PLATFORM_TOKEN = "platform";

// One subject token: no separators, wildcards or whitespace (NATS would split or match on them).
const TOKEN = /^[A-Za-z0-9_-]+$/;

/** Throws unless `value` can be used as one subject token. */
export function assertToken(what: string, value: string): void {
  if (!TOKEN.test(value)) throw new Error(`${what} ${JSON.stringify(value)} is not a valid subject token`);
}

/** The short name of a fully qualified message type: `uab.tenancy.v1.TenantCreated` → `TenantCreated`. */
export function shortTypeName(typeName: string): string {
  const dot = typeName.lastIndexOf(".");
  return dot < 0 ? typeName : typeName.slice(dot + 1);
}

/**
 * The subject of an event: `uab.events.<source>.<tenant_id | platform>.<short type>`, so
 * consumers can filter by service, tenant or type with NATS wildcards.
 */
export function eventSubject(source: string, tenantId: string | undefined, typeName: string): string {
  assertToken("source", source);
  const tenant = tenantId || PLATFORM_TOKEN;
  assertToken("tenant id", tenant);
  const type = shortTypeName(typeName);
  assertToken("event type", type);
  return `${SUBJECT_ROOT}.events.${source}.${tenant}.${type}`;
}

/**
 * True when `subject` matches the NATS subject `filter`: `*` matches exactly one token and
 * a trailing `>` one or more tokens. The in-process bus relies on it to route exactly
 * like JetStream consumer filters do.
 */
export function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split(".");
  const s = subject.split(".");
  for (let i = 0; i < f.length; i++) {
    const token = f[i];
    if (token === ">") return i === f.length - 1 && s.length > i;
    if (i >= s.length) return false;
    if (token !== "*" && token !== s[i]) return false;
  }
  return f.length === s.length;
}
