/**
 * The SAML 2.0 service-provider side of per-tenant SSO: SP-initiated login (AuthnRequest over
 * the HTTP-Redirect binding, signed when configured), validation of the IdP's `SAMLResponse`
 * (HTTP-POST binding), and SP metadata.
 *
 * Signature checking is node-saml's (over xml-crypto): it verifies the XML signature with the
 * configured IdP certificates only (never a key from the message's KeyInfo), rejects the known
 * signature-wrapping shapes (several assertions, a signature not enveloped in the element it
 * references, duplicate IDs) and hands back only the bytes the signature covers, canonicalized
 * (so comments, which exclusive c14n drops, cannot split a NameID). Everything node-saml 5.1
 * does not check for a login response is checked here, on that signed content: the issuer,
 * the Response's Destination and the bearer confirmation's Recipient, the time window (with
 * an injectable clock), InResponseTo, the status, and one-time use of the assertion.
 */
import { createHash, createSign, randomBytes, X509Certificate } from "node:crypto";
import { generateServiceProviderMetadata, SAML, ValidateInResponseTo } from "@node-saml/node-saml";
// node-saml's own DOM parser (xmldom), so the envelope checks read the same tree it verifies.
import { getVerifiedXml, parseDomFromString } from "@node-saml/node-saml/lib/xml.js";
import { type DomainError, FailedPreconditionError, InvalidArgumentError, UnauthenticatedError } from "@uab/core";
import { type AttributeMapping, type MappedIdentity, mapIdentity, SAML_DEFAULTS } from "./mapping.js";

/** One SAML connection's settings, as the service stores them per tenant. */
export interface SamlConnectionSettings {
  /** The connection's id (scopes replay keys). */
  readonly connectionId: string;
  /** The IdP's entity id: the Issuer every response and assertion must carry. */
  readonly idpEntityId: string;
  /** The IdP's SingleSignOnService URL (HTTP-Redirect binding). */
  readonly idpSsoUrl: string;
  /**
   * The IdP's signing certificates, PEM or bare base64 DER. Several are allowed (IdP
   * certificate rotation): a response signed by any of them is accepted.
   */
  readonly idpCertificates: readonly string[];
  /** This SP's entity id: the Audience required in assertions, the Issuer of requests. */
  readonly spEntityId: string;
  /** This SP's AssertionConsumerService URL (HTTP-POST): the required Destination and Recipient. */
  readonly acsUrl: string;
  /** Sign AuthnRequests (RSA-SHA256 over the redirect query, SAML bindings §3.4.4.1). */
  readonly signAuthnRequests: boolean;
  /** The SP's request-signing key (PEM); needed when `signAuthnRequests`. */
  readonly spPrivateKeyPem?: string;
  /** The SP's signing certificate (PEM), published in metadata when requests are signed. */
  readonly spCertificatePem?: string;
  /** How assertion attributes become user fields. */
  readonly mapping: AttributeMapping;
  /** Tolerated clock difference with the IdP, in ms (default 60 s). */
  readonly clockSkewMs?: number;
  /** Accept IdP-initiated (unsolicited) responses when no request is pending (default false). */
  readonly allowIdpInitiated?: boolean;
}

/**
 * Remembers assertion ids until they expire; returns false when the id was already seen (a
 * replay). Implemented over PostgreSQL by the service; tests may pass a simple in-memory
 * implementation defined in the test file.
 */
export interface SamlReplayGuard {
  /** Records `key` until `expiresAt`; false when it is already recorded. */
  remember(key: string, expiresAt: Date): Promise<boolean>;
}

/** What a valid SAML response says about the user. */
export interface SamlLoginResult {
  /** The user as mapped by the connection's {@link AttributeMapping}. */
  identity: MappedIdentity;
  /** The Subject's NameID. */
  nameId: string;
  /** The NameID's Format, when given. */
  nameIdFormat?: string;
  /** The AuthnStatement's SessionIndex (for single logout). */
  sessionIndex?: string;
  /** The assertion's ID (already recorded by the replay guard). */
  assertionId: string;
  /** The assertion's Issuer (the IdP entity id). */
  issuer: string;
  /** When the assertion stops being valid (the earliest NotOnOrAfter it carries). */
  notOnOrAfter?: Date;
  /** All attributes of the assertion, by Name; several values become an array. */
  attributes: Record<string, string | string[]>;
  /** The AuthnRequest id this responds to (absent for IdP-initiated logins). */
  inResponseTo?: string;
}

/**
 * The `reason`s of the errors {@link SamlServiceProvider.validate} throws. `SAML_MALFORMED` is
 * an {@link InvalidArgumentError}; the others are {@link UnauthenticatedError}s.
 */
export const SAML_ERROR_REASONS = {
  /** Not base64, not UTF-8, not well-formed XML, or carries a DTD. */
  malformed: "SAML_MALFORMED",
  /** Well-formed but not an acceptable SAML response (no assertion, no NameID, encrypted, ...). */
  invalid: "SAML_INVALID",
  /** Not signed, signed by an unknown key, or the signed part is not what would be read (XSW). */
  signatureInvalid: "SAML_SIGNATURE_INVALID",
  /** The IdP answered with a status other than Success. */
  statusError: "SAML_STATUS_ERROR",
  /** The Issuer is not the connection's IdP. */
  issuerMismatch: "SAML_ISSUER_MISMATCH",
  /** The Response's Destination or the bearer confirmation's Recipient is not the ACS URL. */
  destinationMismatch: "SAML_DESTINATION_MISMATCH",
  /** The assertion's Audience is not this SP. */
  audienceMismatch: "SAML_AUDIENCE_MISMATCH",
  /** A NotOnOrAfter has passed (beyond the clock skew). */
  expired: "SAML_ASSERTION_EXPIRED",
  /** A NotBefore is still ahead (beyond the clock skew). */
  notYetValid: "SAML_ASSERTION_NOT_YET_VALID",
  /** InResponseTo does not match the pending request (or is set when none is pending). */
  inResponseToMismatch: "SAML_IN_RESPONSE_TO_MISMATCH",
  /** An IdP-initiated response while the connection does not allow them. */
  unsolicited: "SAML_UNSOLICITED_RESPONSE",
  /** The assertion was already used. */
  replayed: "SAML_REPLAYED",
} as const;

const R = SAML_ERROR_REASONS;

const NS_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol";
const NS_ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion";
const NS_DSIG = "http://www.w3.org/2000/09/xmldsig#";
const STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success";
const CM_BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
const NAMEID_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
/** Default tolerated clock difference. */
const DEFAULT_CLOCK_SKEW_MS = 60_000;
/** Largest accepted `SAMLResponse` (base64 characters); real ones are a few KiB. */
const MAX_RESPONSE_CHARS = 1 << 20;
/** SAML bindings §3.4.3: RelayState MUST NOT exceed 80 bytes. */
const MAX_RELAY_STATE_BYTES = 80;

// ---------------------------------------------------------------------------------------------
// Certificates

function certificateError(field: string, description: string): InvalidArgumentError {
  return InvalidArgumentError.field(field, description, "SAML_CERTIFICATE_INVALID");
}

function normalizeCertificate(text: string, field: string): string {
  const trimmed = text.trim();
  const labels = [...trimmed.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]);
  if (labels.length > 1) return failCert(field, "holds more than one PEM block; give one certificate per entry");
  if (labels.length === 1 && labels[0] !== "CERTIFICATE") {
    return failCert(field, `is a PEM "${labels[0]}", not a CERTIFICATE`);
  }
  let body = trimmed;
  if (labels.length === 1) {
    const m = /^-----BEGIN CERTIFICATE-----([\s\S]*)-----END CERTIFICATE-----$/.exec(trimmed);
    if (!m) return failCert(field, "is not a well-formed PEM certificate");
    body = m[1]!;
  }
  body = body.replace(/\s+/g, "");
  if (body === "" || body.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) {
    return failCert(field, "is neither a PEM certificate nor base64 DER");
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(body, "base64"));
  } catch {
    return failCert(field, "is not a valid X.509 certificate");
  }
  // xml-crypto verifies RSA signatures only (rsa-sha1/-sha256/-sha512).
  if (cert.publicKey.asymmetricKeyType !== "rsa") {
    return failCert(field, `has a ${cert.publicKey.asymmetricKeyType ?? "unknown"} key; only RSA is supported`);
  }
  return cert.toString();
}

function failCert(field: string, description: string): never {
  throw certificateError(field, description);
}

/**
 * Parses and checks admin-supplied IdP certificates (PEM or base64 DER, one certificate per
 * entry, RSA keys). Throws an {@link InvalidArgumentError} (reason `SAML_CERTIFICATE_INVALID`)
 * naming `field` with the entry's index (e.g. `saml.idp_certificates[1]`) for a bad one, or
 * `field` itself when the list is empty. Returns the certificates as normalized PEM. Expired
 * certificates are accepted: XML signature validation does not use the validity period, and
 * IdPs commonly keep signing with an expired self-signed certificate.
 */
export function normalizeCertificates(certs: readonly string[], field: string): string[] {
  if (certs.length === 0) throw certificateError(field, "at least one IdP signing certificate is required");
  return certs.map((cert, i) => normalizeCertificate(cert, `${field}[${i}]`));
}

// ---------------------------------------------------------------------------------------------
// Reading XML: the raw DOM (for the Response envelope) and xml2js (node-saml's signed assertion)

/** The parts of an xmldom node this module reads. */
interface DomNode {
  readonly nodeType: number;
  readonly localName?: string | null;
  readonly namespaceURI?: string | null;
  readonly textContent: string | null;
  readonly childNodes: { readonly length: number; readonly [index: number]: DomNode };
  getAttribute?(name: string): string | null;
  hasAttribute?(name: string): boolean;
}

interface DomDocument {
  readonly documentElement: DomNode | null;
  readonly doctype: unknown;
}

function domChildren(node: DomNode, ns: string, localName: string): DomNode[] {
  const out: DomNode[] = [];
  for (let i = 0; i < node.childNodes.length; i++) {
    const n = node.childNodes[i]!;
    if (n.nodeType === 1 && n.namespaceURI === ns && n.localName === localName) out.push(n);
  }
  return out;
}

function domAttr(node: DomNode, name: string): string | undefined {
  return node.hasAttribute?.(name) ? (node.getAttribute?.(name) ?? undefined) : undefined;
}

/** An element as node-saml's xml2js options parse it (prefixes stripped, text under `_`). */
type JsNode =
  | string
  | { readonly $?: Readonly<Record<string, string>>; readonly _?: string; readonly [k: string]: unknown };

function jsChildren(node: JsNode | undefined, name: string): JsNode[] {
  if (node === undefined || typeof node === "string") return [];
  const value = node[name];
  return Array.isArray(value) ? (value as JsNode[]) : [];
}

function jsAttr(node: JsNode | undefined, name: string): string | undefined {
  if (node === undefined || typeof node === "string") return undefined;
  return node.$?.[name];
}

function jsText(node: JsNode | undefined): string | undefined {
  if (node === undefined) return undefined;
  if (typeof node === "string") return node;
  return typeof node._ === "string" ? node._ : "";
}

// ---------------------------------------------------------------------------------------------
// Errors

function malformed(description: string, cause?: unknown): InvalidArgumentError {
  return new InvalidArgumentError(R.malformed, `SAMLResponse ${description}`, cause === undefined ? {} : { cause });
}

function rejected(reason: string, message: string, options?: ConstructorParameters<typeof UnauthenticatedError>[2]) {
  return new UnauthenticatedError(reason, message, options);
}

/** Truncates an untrusted value for an error message. */
function quote(value: string): string {
  // JSON.stringify escapes quotes and control characters.
  return JSON.stringify(value.length > 120 ? `${value.slice(0, 117)}...` : value);
}

/** Maps what node-saml throws to a domain error (node-saml 5.1's messages; unknown → SAML_INVALID). */
function fromNodeSaml(err: unknown, settings: SamlConnectionSettings): DomainError {
  const message = err instanceof Error ? err.message : String(err);
  if (/decrypt|EncryptedAssertion/i.test(message)) {
    return rejected(R.invalid, "encrypted assertions are not supported", { cause: err });
  }
  if (/audience/i.test(message)) {
    const description = `the assertion is not addressed to this service provider ${quote(settings.spEntityId)}`;
    return rejected(R.audienceMismatch, description, { cause: err });
  }
  if (/signature|signed|reference/i.test(message)) return signatureInvalid(err);
  if (/Missing SAML assertion/.test(message)) {
    return rejected(R.invalid, "the SAML response has no assertion", { cause: err });
  }
  return rejected(R.invalid, "the SAML response could not be validated", { cause: err });
}

function signatureInvalid(cause?: unknown): UnauthenticatedError {
  return rejected(
    R.signatureInvalid,
    "the SAML response is not validly signed by the identity provider (unsigned, signed by an unknown key, or altered)",
    cause === undefined ? {} : { cause },
  );
}

// ---------------------------------------------------------------------------------------------
// Time

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;

function parseInstant(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = DATE_TIME.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) throw rejected(R.invalid, `${what} is not a valid xs:dateTime: ${quote(value)}`);
  return ms;
}

function checkWindow(node: JsNode, what: string, nowMs: number, skewMs: number): number | undefined {
  const notBefore = parseInstant(jsAttr(node, "NotBefore"), `${what} NotBefore`);
  const notOnOrAfter = parseInstant(jsAttr(node, "NotOnOrAfter"), `${what} NotOnOrAfter`);
  if (notBefore !== undefined && nowMs + skewMs < notBefore) {
    throw rejected(R.notYetValid, `the assertion is not valid before ${new Date(notBefore).toISOString()} (${what})`);
  }
  if (notOnOrAfter !== undefined && nowMs - skewMs >= notOnOrAfter) {
    throw rejected(R.expired, `the assertion expired at ${new Date(notOnOrAfter).toISOString()} (${what})`);
  }
  return notOnOrAfter;
}

// ---------------------------------------------------------------------------------------------

/** Checks one bearer confirmation; returns its NotOnOrAfter (ms) or throws why it does not fit. */
function checkConfirmation(
  confirmation: JsNode,
  settings: SamlConnectionSettings,
  expected: string | undefined,
  nowMs: number,
  skewMs: number,
): number {
  const data = jsChildren(confirmation, "SubjectConfirmationData")[0];
  const recipient = jsAttr(data, "Recipient");
  if (recipient !== settings.acsUrl) {
    throw rejected(
      R.destinationMismatch,
      recipient === undefined
        ? "the bearer SubjectConfirmationData has no Recipient"
        : `the assertion's Recipient is ${quote(recipient)}, not ${quote(settings.acsUrl)}`,
    );
  }
  if (data === undefined || jsAttr(data, "NotOnOrAfter") === undefined) {
    throw rejected(R.invalid, "the bearer SubjectConfirmationData has no NotOnOrAfter");
  }
  const end = checkWindow(data, "SubjectConfirmationData", nowMs, skewMs)!;
  const irt = jsAttr(data, "InResponseTo");
  if (expected === undefined ? irt !== undefined : irt !== expected) {
    throw rejected(
      R.inResponseToMismatch,
      expected === undefined
        ? "the assertion answers an AuthnRequest this login did not send"
        : "the assertion does not answer the pending AuthnRequest",
    );
  }
  return end;
}

function requireSigningKey(settings: SamlConnectionSettings): { key: string; cert?: string } {
  if (!settings.spPrivateKeyPem) {
    throw new FailedPreconditionError(
      "SAML_CONNECTION_MISCONFIGURED",
      `SAML connection ${settings.connectionId} signs AuthnRequests but has no SP private key`,
    );
  }
  return settings.spCertificatePem === undefined
    ? { key: settings.spPrivateKeyPem }
    : { key: settings.spPrivateKeyPem, cert: settings.spCertificatePem };
}

const RSA_SHA256_URI = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/**
 * Signs an HTTP-Redirect URL (SAML bindings §3.4.4.1): RSA-SHA256 over
 * `SAMLRequest=…&RelayState=…&SigAlg=…` exactly as those parameters appear in the URL. Not
 * node-saml's signing: it signs `querystring` encoding but writes URLSearchParams encoding,
 * which differ for space, `!`, `~`, `'`, `(` and `)`, so IdPs (which verify over the query
 * as received) reject such relay states. URLSearchParams encoding is also what a browser
 * sends unchanged.
 */
function signRedirectUrl(unsignedUrl: string, privateKeyPem: string): string {
  const url = new URL(unsignedUrl);
  url.searchParams.delete("SigAlg");
  url.searchParams.delete("Signature");
  url.searchParams.append("SigAlg", RSA_SHA256_URI);
  const octets = ["SAMLRequest", "RelayState", "SigAlg"]
    .flatMap((name) => {
      const value = url.searchParams.get(name);
      return value === null ? [] : [new URLSearchParams([[name, value]]).toString()];
    })
    .join("&");
  let signature: string;
  try {
    signature = createSign("RSA-SHA256").update(octets).sign(privateKeyPem, "base64");
  } catch (err) {
    throw new FailedPreconditionError("SAML_CONNECTION_MISCONFIGURED", "the SP private key cannot sign requests", {
      cause: err,
    });
  }
  url.searchParams.append("Signature", signature);
  return url.toString();
}

function newRequestId(): string {
  // An xs:ID (NCName): must not start with a digit.
  return `_${randomBytes(20).toString("hex")}`;
}

/**
 * The SAML 2.0 service provider. Stateless: every call takes the connection's settings; the
 * caller keeps the pending AuthnRequest id (with the relay state) and provides the replay
 * guard.
 */
export class SamlServiceProvider {
  /**
   * SP-initiated login: returns the IdP redirect URL (HTTP-Redirect binding, DEFLATEd
   * AuthnRequest, signed with RSA-SHA256 when configured) and the AuthnRequest id to remember
   * for the InResponseTo check. The request asks for no particular NameID format or
   * authentication context, so the IdP's configuration decides. `relayState` must be at most
   * 80 bytes (SAML bindings §3.4.3).
   */
  async authorizeUrl(
    settings: SamlConnectionSettings,
    relayState: string,
  ): Promise<{ url: string; requestId: string }> {
    if (Buffer.byteLength(relayState, "utf8") > MAX_RELAY_STATE_BYTES) {
      throw InvalidArgumentError.field("relay_state", `must be at most ${MAX_RELAY_STATE_BYTES} bytes`);
    }
    const requestId = newRequestId();
    const signing = settings.signAuthnRequests ? requireSigningKey(settings) : undefined;
    const saml = new SAML({
      entryPoint: settings.idpSsoUrl,
      issuer: settings.spEntityId,
      callbackUrl: settings.acsUrl,
      // Required by the constructor, unused for requests.
      idpCert: [...settings.idpCertificates],
      generateUniqueId: () => requestId,
      identifierFormat: null,
      disableRequestedAuthnContext: true,
      validateInResponseTo: ValidateInResponseTo.never,
    });
    const url = await saml.getAuthorizeUrlAsync(relayState, undefined, {});
    return { url: signing ? signRedirectUrl(url, signing.key) : url, requestId };
  }

  /**
   * Validates a base64 `SAMLResponse` (HTTP-POST binding) and records its assertion as used.
   * Checks, in order: well-formedness (no DTD); Success status; a signature by one of the
   * IdP certificates over the Response or the Assertion (only the signed assertion is read;
   * a second signature, when present, must verify too);
   * the Audience; the Issuer of the Response (when present) and of the Assertion; the
   * Response's Destination (when present) and a bearer SubjectConfirmation whose Recipient is
   * the ACS URL; Conditions and confirmation NotBefore/NotOnOrAfter, with the clock skew; the
   * InResponseTo. With `expectedRequestId`, the Response's InResponseTo (when present) and the
   * confirmation's (required) must equal it; without, the response must be unsolicited (no
   * InResponseTo) and the connection must allow IdP-initiated logins. Last, the assertion id
   * goes through the replay guard (key `${connectionId}:${assertionId}`, kept until the
   * assertion's NotOnOrAfter plus the skew).
   *
   * @throws InvalidArgumentError `SAML_MALFORMED` for input that is not base64 XML.
   * @throws UnauthenticatedError with a reason from {@link SAML_ERROR_REASONS} otherwise.
   */
  async validate(
    settings: SamlConnectionSettings,
    samlResponse: string,
    options: { replayGuard: SamlReplayGuard; expectedRequestId?: string; now?: Date },
  ): Promise<SamlLoginResult> {
    const nowMs = (options.now ?? new Date()).getTime();
    const skewMs = Math.max(0, settings.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS);
    let idpCerts: string[];
    try {
      idpCerts = normalizeCertificates(settings.idpCertificates, "saml.idp_certificates");
    } catch (err) {
      throw new FailedPreconditionError(
        "SAML_CONNECTION_MISCONFIGURED",
        `SAML connection ${settings.connectionId} has no usable IdP certificate`,
        { cause: err },
      );
    }

    // 1. Decode and parse (strictly: node-saml's Buffer.from would skip non-base64 bytes).
    if (typeof samlResponse !== "string" || samlResponse.length > MAX_RESPONSE_CHARS) {
      throw malformed(typeof samlResponse === "string" ? "is too large" : "is not base64");
    }
    const compact = samlResponse.replace(/[\r\n\t ]+/g, "");
    if (compact === "" || compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) {
      throw malformed("is not base64");
    }
    let xml: string;
    try {
      xml = new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(compact, "base64"));
    } catch (err) {
      throw malformed("is not UTF-8 text", err);
    }
    let doc: DomDocument;
    try {
      doc = (await parseDomFromString(xml)) as unknown as DomDocument;
    } catch (err) {
      throw malformed("is not well-formed XML", err);
    }
    if (doc.doctype) throw malformed("must not contain a DTD");
    const root = doc.documentElement;
    if (!root) throw malformed("is not well-formed XML");
    if (root.localName !== "Response" || root.namespaceURI !== NS_PROTOCOL) {
      throw rejected(R.invalid, "the message is not a SAML 2.0 Response");
    }

    // 2. Status, before the signature: IdPs often do not sign error responses, and a
    //    non-Success status can only lead to a rejection.
    const status = domChildren(root, NS_PROTOCOL, "Status");
    const code = status.length === 1 ? domChildren(status[0]!, NS_PROTOCOL, "StatusCode") : [];
    if (code.length !== 1) throw rejected(R.invalid, "the SAML response has no (single) Status");
    const statusValue = domAttr(code[0]!, "Value") ?? "";
    if (statusValue !== STATUS_SUCCESS) {
      const sub = domChildren(code[0]!, NS_PROTOCOL, "StatusCode")[0];
      const subValue = sub ? (domAttr(sub, "Value") ?? "") : "";
      const short = (v: string) => quote(v.replace(/^urn:oasis:names:tc:SAML:2\.0:status:/, ""));
      throw rejected(
        R.statusError,
        `the identity provider did not authenticate the user: status ${short(statusValue)}${subValue ? ` / ${short(subValue)}` : ""}`,
        {
          metadata: { status: statusValue.slice(0, 200), ...(subValue ? { sub_status: subValue.slice(0, 200) } : {}) },
        },
      );
    }

    // 3. Signature (and audience) by node-saml; timestamps and InResponseTo are checked below.
    const saml = new SAML({
      idpCert: idpCerts,
      issuer: settings.spEntityId,
      audience: settings.spEntityId,
      callbackUrl: settings.acsUrl,
      // Either the Response or the Assertion must be signed; node-saml then reads only the signed assertion.
      wantAuthnResponseSigned: false,
      wantAssertionsSigned: false,
      // -1 turns node-saml's timestamp checks off: they use the real clock, ours use options.now.
      acceptedClockSkewMs: -1,
      validateInResponseTo: ValidateInResponseTo.never,
    });
    let assertion: JsNode | undefined;
    try {
      const { profile } = await saml.validatePostResponseAsync({
        SAMLResponse: Buffer.from(xml, "utf8").toString("base64"),
      });
      const parsed = profile?.getAssertion?.() as { Assertion?: JsNode } | undefined;
      assertion = parsed?.Assertion;
    } catch (err) {
      throw fromNodeSaml(err, settings);
    }
    if (assertion === undefined || typeof assertion === "string") {
      throw rejected(R.invalid, "the SAML response has no assertion");
    }
    // node-saml is content with one valid signature (Response or Assertion) and ignores a
    // failing one on the other; a signature that is present must verify.
    for (const signed of [root, ...domChildren(root, NS_ASSERTION, "Assertion")]) {
      if (domChildren(signed, NS_DSIG, "Signature").length === 0) continue;
      let verified: string | null;
      try {
        verified = getVerifiedXml(xml, signed as unknown as Parameters<typeof getVerifiedXml>[1], idpCerts);
      } catch (err) {
        throw signatureInvalid(err);
      }
      if (verified === null) throw signatureInvalid();
    }

    // 4. Issuer.
    const expectedIssuer = settings.idpEntityId.trim();
    const responseIssuers = domChildren(root, NS_ASSERTION, "Issuer");
    if (responseIssuers.length > 1) throw rejected(R.invalid, "the SAML response has several Issuers");
    const responseIssuer = responseIssuers[0]?.textContent?.trim();
    if (responseIssuer !== undefined && responseIssuer !== expectedIssuer) {
      throw rejected(
        R.issuerMismatch,
        `the response was issued by ${quote(responseIssuer)}, not ${quote(expectedIssuer)}`,
      );
    }
    const issuerNodes = jsChildren(assertion, "Issuer");
    const issuer = issuerNodes.length === 1 ? (jsText(issuerNodes[0]) ?? "").trim() : "";
    if (issuer !== expectedIssuer) {
      throw rejected(R.issuerMismatch, `the assertion was issued by ${quote(issuer)}, not ${quote(expectedIssuer)}`);
    }

    // 5. Destination.
    const destination = domAttr(root, "Destination");
    if (destination !== undefined && destination !== settings.acsUrl) {
      throw rejected(
        R.destinationMismatch,
        `the response is addressed to ${quote(destination)}, not ${quote(settings.acsUrl)}`,
      );
    }

    // 6. InResponseTo on the Response.
    const expected = options.expectedRequestId;
    const responseIrt = domAttr(root, "InResponseTo");
    if (expected === undefined) {
      if (!settings.allowIdpInitiated) {
        throw rejected(R.unsolicited, "IdP-initiated login is not enabled for this SAML connection");
      }
      if (responseIrt !== undefined) {
        throw rejected(R.inResponseToMismatch, "the response answers an AuthnRequest this login did not send");
      }
    } else if (responseIrt !== undefined && responseIrt !== expected) {
      throw rejected(R.inResponseToMismatch, "the response does not answer the pending AuthnRequest");
    }

    // 7. Conditions (node-saml rejects more than one).
    const conditions = jsChildren(assertion, "Conditions")[0];
    const conditionsEnd = conditions === undefined ? undefined : checkWindow(conditions, "Conditions", nowMs, skewMs);

    // 8. A bearer SubjectConfirmation that fits (SAML profiles §4.1.4.2).
    const subject = jsChildren(assertion, "Subject")[0];
    const bearers = jsChildren(subject, "SubjectConfirmation").filter((c) => jsAttr(c, "Method") === CM_BEARER);
    if (bearers.length === 0) throw rejected(R.invalid, "the assertion has no bearer SubjectConfirmation");
    let confirmationEnd: number | undefined;
    let firstError: unknown;
    for (const confirmation of bearers) {
      try {
        confirmationEnd = checkConfirmation(confirmation, settings, expected, nowMs, skewMs);
        break;
      } catch (err) {
        firstError ??= err;
      }
    }
    if (confirmationEnd === undefined) throw firstError;

    // 9. Subject and attributes.
    const nameIdNode = jsChildren(subject, "NameID")[0];
    const nameId = (jsText(nameIdNode) ?? "").trim();
    if (nameId === "") throw rejected(R.invalid, "the assertion has no NameID");
    const nameIdFormat = jsAttr(nameIdNode, "Format");
    const attributes = readAttributes(assertion);
    const identity = mapIdentity(attributes, settings.mapping, SAML_DEFAULTS, nameId);
    if (!identity) throw rejected(R.invalid, "the assertion has no value for the mapped subject attribute");

    const assertionId = jsAttr(assertion, "ID");
    if (!assertionId) throw rejected(R.invalid, "the assertion has no ID");
    const sessionIndex = jsAttr(jsChildren(assertion, "AuthnStatement")[0], "SessionIndex");
    const validUntil = conditionsEnd === undefined ? confirmationEnd : Math.min(conditionsEnd, confirmationEnd);

    // 10. One-time use, last, so rejected responses do not consume ids.
    const fresh = await options.replayGuard.remember(
      `${settings.connectionId}:${assertionId}`,
      new Date(validUntil + skewMs),
    );
    if (!fresh) throw rejected(R.replayed, "this SAML assertion was already used");

    const inResponseTo = expected;
    return {
      identity,
      nameId,
      ...(nameIdFormat === undefined ? {} : { nameIdFormat }),
      ...(sessionIndex === undefined ? {} : { sessionIndex }),
      assertionId,
      issuer,
      notOnOrAfter: new Date(validUntil),
      attributes,
      ...(inResponseTo === undefined ? {} : { inResponseTo }),
    };
  }

  /**
   * SP metadata XML: an EntityDescriptor whose SPSSODescriptor has the ACS (HTTP-POST), the
   * NameID formats emailAddress and persistent, WantAssertionsSigned, and, when AuthnRequests
   * are signed, AuthnRequestsSigned and the signing certificate. The descriptor's ID is
   * derived from the connection, so the document is stable.
   */
  metadata(settings: SamlConnectionSettings): string {
    let signing: { privateKey: string; publicCerts: string[] } | undefined;
    if (settings.signAuthnRequests) {
      const { key, cert } = requireSigningKey(settings);
      if (cert === undefined) {
        throw new FailedPreconditionError(
          "SAML_CONNECTION_MISCONFIGURED",
          `SAML connection ${settings.connectionId} signs AuthnRequests but has no SP certificate to publish`,
        );
      }
      signing = { privateKey: key, publicCerts: [cert] };
    }
    const id = `_${createHash("sha256").update(`${settings.connectionId}\n${settings.spEntityId}`).digest("hex").slice(0, 40)}`;
    return generateServiceProviderMetadata({
      issuer: settings.spEntityId,
      callbackUrl: settings.acsUrl,
      // xmlbuilder renders an array as repeated elements; node-saml types this as a single string.
      identifierFormat: [NAMEID_EMAIL, NAMEID_PERSISTENT] as unknown as string,
      wantAssertionsSigned: true,
      generateUniqueId: () => id,
      ...(signing ?? {}),
    });
  }
}

/** The assertion's attributes by Name (values merged across repeated Attribute elements). */
function readAttributes(assertion: JsNode): Record<string, string | string[]> {
  const values = new Map<string, string[]>();
  for (const statement of jsChildren(assertion, "AttributeStatement")) {
    for (const attribute of jsChildren(statement, "Attribute")) {
      const name = jsAttr(attribute, "Name");
      if (!name) continue;
      const list = values.get(name) ?? [];
      for (const value of jsChildren(attribute, "AttributeValue")) {
        // Values with element content (e.g. a NameID) have no plain string form: skipped.
        const hasElements = typeof value !== "string" && Object.keys(value).some((k) => k !== "_" && k !== "$");
        if (!hasElements) list.push(jsText(value) ?? "");
      }
      values.set(name, list);
    }
  }
  // Object.fromEntries defines own properties, so a Name like "__proto__" stays a plain key.
  return Object.fromEntries(
    [...values].filter(([, v]) => v.length > 0).map(([name, v]) => [name, v.length === 1 ? v[0]! : v]),
  );
}
