/**
 * Turning what an upstream identity provider says about a user (OIDC claims, SAML attributes)
 * into UAB's user fields, with a per-connection mapping. Shared by OIDC and SAML so both map
 * the same way.
 */

/** Which upstream claim or attribute feeds each user field (empty = the protocol's default). */
export interface AttributeMapping {
  readonly subject?: string;
  readonly email?: string;
  readonly emailVerified?: string;
  readonly givenName?: string;
  readonly familyName?: string;
  readonly displayName?: string;
  readonly username?: string;
  readonly locale?: string;
  readonly groups?: string;
  /** UAB custom attribute name → upstream claim or attribute. */
  readonly attributes?: Readonly<Record<string, string>>;
}

/** A user as the upstream provider describes it, after mapping. */
export interface MappedIdentity {
  /** The stable upstream id (OIDC `sub`, SAML NameID unless mapped otherwise). */
  readonly subject: string;
  readonly email?: string | undefined;
  readonly emailVerified: boolean;
  readonly givenName?: string | undefined;
  readonly familyName?: string | undefined;
  readonly displayName?: string | undefined;
  readonly username?: string | undefined;
  readonly locale?: string | undefined;
  readonly groups: readonly string[];
  readonly attributes: Readonly<Record<string, string | string[]>>;
}

/** Default claim names for OIDC (OpenID Connect Core §5.1). */
export const OIDC_DEFAULTS: Required<Omit<AttributeMapping, "attributes">> = {
  subject: "sub",
  email: "email",
  emailVerified: "email_verified",
  givenName: "given_name",
  familyName: "family_name",
  displayName: "name",
  username: "preferred_username",
  locale: "locale",
  groups: "groups",
};

/**
 * Default attribute names for SAML: the common short names and the OASIS/Microsoft URIs that
 * Okta, Entra ID and ADFS send. The subject defaults to the NameID (`""` here).
 */
export const SAML_DEFAULTS: Readonly<Record<keyof Omit<AttributeMapping, "attributes">, readonly string[]>> = {
  subject: [],
  email: [
    "email",
    "mail",
    "urn:oid:0.9.2342.19200300.100.1.3",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
  ],
  emailVerified: ["email_verified"],
  givenName: [
    "firstName",
    "givenName",
    "urn:oid:2.5.4.42",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
  ],
  familyName: [
    "lastName",
    "sn",
    "surname",
    "urn:oid:2.5.4.4",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
  ],
  displayName: [
    "displayName",
    "name",
    "urn:oid:2.16.840.1.113730.3.1.241",
    "http://schemas.microsoft.com/identity/claims/displayname",
  ],
  username: ["username", "uid", "urn:oid:0.9.2342.19200300.100.1.1"],
  locale: ["locale", "preferredLanguage"],
  groups: ["groups", "memberOf", "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"],
};

function first(value: unknown): string | undefined {
  if (Array.isArray(value)) return first(value[0]);
  if (typeof value === "string") return value.trim() === "" ? undefined : value.trim();
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return undefined;
}

function list(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(list);
  const v = first(value);
  return v === undefined ? [] : [v];
}

function truthy(value: unknown): boolean {
  const v = first(value);
  return v === "true" || v === "1";
}

/** Reads a dotted path (`address.country`) from claims; a key containing dots is tried whole first. */
function read(claims: Readonly<Record<string, unknown>>, name: string): unknown {
  if (name in claims) return claims[name];
  let current: unknown = claims;
  for (const part of name.split(".")) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

/**
 * Maps upstream claims (OIDC) or attributes (SAML) to a {@link MappedIdentity}. `defaults`
 * lists the names tried, in order, for each field the mapping leaves empty; `subject` is the
 * protocol's own subject (OIDC `sub`, SAML NameID) used unless the mapping names another.
 * Returns undefined when no subject can be found.
 */
export function mapIdentity(
  claims: Readonly<Record<string, unknown>>,
  mapping: AttributeMapping,
  defaults: Readonly<Record<keyof Omit<AttributeMapping, "attributes">, readonly string[]>>,
  subject?: string,
): MappedIdentity | undefined {
  const pick = (field: keyof Omit<AttributeMapping, "attributes">): unknown => {
    const named = mapping[field];
    if (named) return read(claims, named);
    for (const name of defaults[field]) {
      const v = read(claims, name);
      if (v !== undefined && v !== null && v !== "") return v;
    }
    return undefined;
  };
  const sub = mapping.subject ? first(read(claims, mapping.subject)) : (subject ?? first(pick("subject")));
  if (!sub) return undefined;
  const email = first(pick("email"))?.toLowerCase();
  const attributes: Record<string, string | string[]> = {};
  for (const [name, source] of Object.entries(mapping.attributes ?? {})) {
    const values = list(read(claims, source));
    if (values.length === 1) attributes[name] = values[0]!;
    else if (values.length > 1) attributes[name] = values;
  }
  return {
    subject: sub,
    email,
    emailVerified: truthy(pick("emailVerified")),
    givenName: first(pick("givenName")),
    familyName: first(pick("familyName")),
    displayName: first(pick("displayName")),
    username: first(pick("username")),
    locale: first(pick("locale")),
    groups: [...new Set(list(pick("groups")))],
    attributes,
  };
}

/** {@link OIDC_DEFAULTS} in the shape {@link mapIdentity} takes. */
export const OIDC_DEFAULT_NAMES: Readonly<Record<keyof Omit<AttributeMapping, "attributes">, readonly string[]>> =
  Object.fromEntries(Object.entries(OIDC_DEFAULTS).map(([k, v]) => [k, [v]])) as unknown as Record<
    keyof Omit<AttributeMapping, "attributes">,
    readonly string[]
  >;
