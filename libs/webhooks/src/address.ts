/**
 * The SSRF guard's address rules: which IP addresses a webhook may be delivered to, and which
 * URLs may be delivery endpoints at all. A tenant chooses the URL, so without these rules a
 * delivery could reach the cluster's own services, the node's loopback or the cloud metadata
 * endpoint. deliver.ts applies them to the address a connection is actually made to (after
 * DNS), so a public name that resolves to a private address is refused as well.
 */
import { isIPv4, isIPv6 } from "node:net";

/**
 * What kind of address an IP address is, for the SSRF guard: `public` may be connected to;
 * every other class is refused unless private networks are allowed.
 */
export type AddressClass =
  | "public"
  | "private"
  | "loopback"
  | "link-local"
  | "carrier-grade NAT"
  | "multicast"
  | "unspecified"
  | "cloud metadata"
  | "reserved";

interface Rule {
  readonly prefix: Uint8Array;
  readonly bits: number;
  /** The class of matching addresses, or `embedded` to classify the IPv4 address inside. */
  readonly class: AddressClass | "embedded";
  /** Where the embedded IPv4 address starts (in bytes), for `embedded` rules. */
  readonly offset?: number;
}

// Most specific rules first: the first match decides.
const V4_RULES: readonly Rule[] = [
  v4("169.254.169.254/32", "cloud metadata"), // AWS, GCP, Azure, OpenStack, DigitalOcean...
  v4("168.63.129.16/32", "cloud metadata"), // Azure's platform endpoint (a public address)
  v4("100.100.100.200/32", "cloud metadata"), // Alibaba Cloud
  v4("0.0.0.0/8", "unspecified"), // "this network": 0.0.0.0 reaches the local host on Linux
  v4("10.0.0.0/8", "private"),
  v4("100.64.0.0/10", "carrier-grade NAT"),
  v4("127.0.0.0/8", "loopback"),
  v4("169.254.0.0/16", "link-local"),
  v4("172.16.0.0/12", "private"),
  v4("192.0.0.0/24", "reserved"), // IETF protocol assignments
  v4("192.0.2.0/24", "reserved"), // documentation
  v4("192.88.99.0/24", "reserved"), // 6to4 relay anycast
  v4("192.168.0.0/16", "private"),
  v4("198.18.0.0/15", "reserved"), // benchmarking
  v4("198.51.100.0/24", "reserved"), // documentation
  v4("203.0.113.0/24", "reserved"), // documentation
  v4("224.0.0.0/4", "multicast"),
  v4("240.0.0.0/4", "reserved"), // includes the broadcast address 255.255.255.255
];

const V6_RULES: readonly Rule[] = [
  v6("::/128", "unspecified"),
  v6("::1/128", "loopback"),
  v6("::ffff:0:0/96", "embedded", 12), // IPv4-mapped: ::ffff:127.0.0.1 is 127.0.0.1
  v6("::ffff:0:0:0/96", "embedded", 12), // IPv4-translated (RFC 2765)
  v6("64:ff9b::/96", "embedded", 12), // NAT64 well-known prefix: reaches the IPv4 address
  v6("2002::/16", "embedded", 2), // 6to4
  v6("::/96", "reserved"), // IPv4-compatible (deprecated)
  v6("64:ff9b:1::/48", "private"), // local-use NAT64
  v6("100::/64", "reserved"), // discard-only
  v6("2001:db8::/32", "reserved"), // documentation
  v6("fd00:ec2::254/128", "cloud metadata"), // AWS IPv6 metadata endpoint
  v6("fc00::/7", "private"), // unique local
  v6("fe80::/10", "link-local"),
  v6("fec0::/10", "private"), // site-local (deprecated)
  v6("ff00::/8", "multicast"),
];

function v4(cidr: string, cls: AddressClass): Rule {
  const [address, bits] = cidr.split("/") as [string, string];
  return { prefix: parseIPv4(address), bits: Number(bits), class: cls };
}

function v6(cidr: string, cls: AddressClass | "embedded", offset?: number): Rule {
  const [address, bits] = cidr.split("/") as [string, string];
  return { prefix: parseIPv6(address), bits: Number(bits), class: cls, ...(offset === undefined ? {} : { offset }) };
}

function parseIPv4(address: string): Uint8Array {
  return Uint8Array.from(address.split(".").map(Number));
}

// Expects an address that net.isIPv6 accepted (no brackets, no zone).
function parseIPv6(address: string): Uint8Array {
  let text = address;
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".", lastColon)) {
    // A trailing dotted quad stands for the last two groups: rewrite it in hex.
    const q = parseIPv4(text.slice(lastColon + 1));
    const hi = (((q[0] as number) << 8) | (q[1] as number)).toString(16);
    const lo = (((q[2] as number) << 8) | (q[3] as number)).toString(16);
    text = `${text.slice(0, lastColon + 1)}${hi}:${lo}`;
  }
  const split = text.indexOf("::");
  const parse = (part: string): number[] => (part === "" ? [] : part.split(":").map((g) => Number.parseInt(g, 16)));
  let groups: number[];
  if (split < 0) {
    groups = parse(text);
  } else {
    const head = parse(text.slice(0, split));
    const tail = parse(text.slice(split + 2));
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

function matches(bytes: Uint8Array, rule: Rule): boolean {
  const whole = rule.bits >> 3;
  for (let i = 0; i < whole; i++) if (bytes[i] !== rule.prefix[i]) return false;
  const rest = rule.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((bytes[whole] as number) & mask) === ((rule.prefix[whole] as number) & mask);
}

function classifyBytes(bytes: Uint8Array, rules: readonly Rule[]): AddressClass {
  for (const rule of rules) {
    if (!matches(bytes, rule)) continue;
    if (rule.class !== "embedded") return rule.class;
    const offset = rule.offset ?? 12;
    return classifyBytes(bytes.subarray(offset, offset + 4), V4_RULES);
  }
  return "public";
}

/**
 * Classifies an IP address (IPv4, or IPv6 with or without brackets and zone id). IPv6 forms
 * that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4
 * `2002::/16`) are classified by that IPv4 address, so `::ffff:127.0.0.1` is `loopback`.
 * @throws TypeError when `address` is not an IP address.
 */
export function classifyAddress(address: string): AddressClass {
  let text = address.startsWith("[") && address.endsWith("]") ? address.slice(1, -1) : address;
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  if (isIPv4(text)) return classifyBytes(parseIPv4(text), V4_RULES);
  if (isIPv6(text)) return classifyBytes(parseIPv6(text), V6_RULES);
  throw new TypeError(`classifyAddress: ${JSON.stringify(address)} is not an IP address`);
}

/** The sentence a refused address is reported with: `10.0.0.5 is a private address`. */
export function blockedAddressReason(address: string, cls: AddressClass, hostname?: string): string {
  const article = /^[aeiou]/i.test(cls) ? "an" : "a";
  return hostname === undefined || hostname === address
    ? `${address} is ${article} ${cls} address`
    : `${hostname} resolves to ${address}, ${article} ${cls} address`;
}

/** Options for {@link checkEndpointUrl}. */
export interface EndpointUrlOptions {
  /**
   * Allow private, loopback and other non-public addresses, and plain `http:` URLs. Only for
   * tests and local development; defaults to false.
   */
  readonly allowPrivateNetworks?: boolean;
}

/** The result of {@link checkEndpointUrl}. */
export type EndpointUrlCheck =
  | { readonly ok: true; readonly url: URL }
  | {
      readonly ok: false;
      /** A sentence for a person: why the URL cannot be used. */
      readonly reason: string;
      /** True when the URL names a refused IP address (the SSRF guard), false when it is malformed. */
      readonly blocked: boolean;
    };

/**
 * Checks that a URL can be a webhook endpoint before anything is sent: it must parse, use
 * `https:` (or `http:` when private networks are allowed), carry no credentials, and, when
 * its host is an IP address, that address must be public. A host name passes here; its
 * resolved addresses are checked at connection time by {@link deliver}. Use it to validate
 * an endpoint when it is configured, so a tenant learns about a bad URL at once.
 */
export function checkEndpointUrl(url: string, options: EndpointUrlOptions = {}): EndpointUrlCheck {
  const allowPrivate = options.allowPrivateNetworks === true;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { ok: false, reason: "invalid URL", blocked: false };
  }
  if (parsed.protocol === "http:" && !allowPrivate) {
    return { ok: false, reason: "refused: endpoint URLs must use https:", blocked: false };
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    return { ok: false, reason: `refused: unsupported URL scheme ${parsed.protocol}, use https:`, blocked: false };
  }
  if (parsed.username !== "" || parsed.password !== "") {
    return {
      ok: false,
      reason: "refused: credentials in the URL are not supported; send them in a header",
      blocked: false,
    };
  }
  const host = hostOf(parsed);
  if (!allowPrivate && (isIPv4(host) || isIPv6(host))) {
    const cls = classifyAddress(host);
    if (cls !== "public") return { ok: false, reason: `blocked: ${blockedAddressReason(host, cls)}`, blocked: true };
  }
  return { ok: true, url: parsed };
}

/** The host of a URL as a connection needs it: IPv6 literals without their brackets. */
export function hostOf(url: URL): string {
  const host = url.hostname;
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}
