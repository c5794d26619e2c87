/**
 * The SAML 2.0 service provider (src/sso/saml.ts) against the test IdP fixture: accepted
 * responses (assertion-, response- or both-signed, IdP certificate rotation, IdP-initiated,
 * clock skew, attribute mapping), and every rejection the SP must make: unsigned, wrongly
 * signed, HMAC key confusion, XML signature wrapping, comment-truncated NameIDs, expired or
 * not-yet-valid assertions, wrong audience, issuer, recipient or destination, non-Success
 * status, InResponseTo mismatches, replays and malformed input. Also the AuthnRequest
 * redirect URL (signed and not), SP metadata and IdP certificate normalization.
 */
import { createVerify, X509Certificate } from "node:crypto";
import { inflateRawSync } from "node:zlib";
import { beforeAll, describe, expect, it } from "@jest/globals";
import { FailedPreconditionError, InvalidArgumentError, UnauthenticatedError } from "@uab/core";
import { DOMParser, type Element } from "@xmldom/xmldom";
import { generate } from "selfsigned";
import {
  normalizeCertificates,
  type SamlConnectionSettings,
  type SamlReplayGuard,
  SamlServiceProvider,
} from "../src/sso/saml.js";
import {
  type AssertionOptions,
  createTestIdp,
  createTestKeyPair,
  encodeSamlResponse,
  hmacKeyConfusionResponse,
  NAMEID_FORMAT,
  SAML_STATUS,
  samlResponse,
  samlResponseXml,
  signElement,
  type TestIdp,
  type TestKeyPair,
  XSW_ATTACKS,
  xswResponse,
} from "./fixtures/saml-idp.js";

/** An in-memory replay guard (the service's is over PostgreSQL). */
class MemoryReplayGuard implements SamlReplayGuard {
  readonly seen = new Map<string, Date>();
  async remember(key: string, expiresAt: Date): Promise<boolean> {
    if (this.seen.has(key)) return false;
    this.seen.set(key, expiresAt);
    return true;
  }
}

const SP_ENTITY_ID = "https://uab.example.test/sso/saml/conn_1";
const ACS_URL = "https://uab.example.test/sso/saml/conn_1/acs";
const REQUEST_ID = "_request0123456789abcdef";
const sp = new SamlServiceProvider();

let idp: TestIdp;
let rotatedIdp: TestIdp;
let attacker: TestKeyPair;
let spKeys: TestKeyPair;

beforeAll(async () => {
  [idp, rotatedIdp, attacker, spKeys] = await Promise.all([
    createTestIdp("https://idp.example.test/saml/metadata"),
    createTestIdp("https://idp.example.test/saml/metadata"),
    createTestKeyPair("attacker.example.test"),
    createTestKeyPair("uab.example.test"),
  ]);
});

function settings(overrides: Partial<SamlConnectionSettings> = {}): SamlConnectionSettings {
  return {
    connectionId: "conn_1",
    idpEntityId: idp.entityId,
    idpSsoUrl: idp.ssoUrl,
    idpCertificates: [idp.certificatePem],
    spEntityId: SP_ENTITY_ID,
    acsUrl: ACS_URL,
    signAuthnRequests: false,
    mapping: {},
    ...overrides,
  };
}

function legit(overrides: Partial<AssertionOptions> = {}): AssertionOptions {
  return {
    nameId: "ada@example.com",
    audience: SP_ENTITY_ID,
    recipient: ACS_URL,
    inResponseTo: REQUEST_ID,
    attributes: {
      email: "Ada@Example.com",
      firstName: "Ada",
      lastName: "Lovelace",
      groups: ["engineering", "admins"],
      department: "R&D",
    },
    ...overrides,
  };
}

function validate(
  response: string,
  options: { expectedRequestId?: string | null; now?: Date; guard?: SamlReplayGuard } = {},
  connection: SamlConnectionSettings = settings(),
) {
  const expectedRequestId = options.expectedRequestId === null ? undefined : (options.expectedRequestId ?? REQUEST_ID);
  return sp.validate(connection, response, {
    replayGuard: options.guard ?? new MemoryReplayGuard(),
    ...(expectedRequestId === undefined ? {} : { expectedRequestId }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
}

/** Awaits a rejection and checks its class and reason; messages stay short and never echo the XML. */
async function rejection(
  promise: Promise<unknown>,
  errorClass: typeof UnauthenticatedError | typeof InvalidArgumentError | typeof FailedPreconditionError,
  reason: string,
) {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(errorClass);
  const domainError = err as UnauthenticatedError;
  expect(domainError.reason).toBe(reason);
  expect(domainError.message.length).toBeLessThan(300);
  expect(domainError.message).not.toMatch(/<\w+:|Assertion ID=|PHNhbWxw/);
  return domainError;
}

describe("SamlServiceProvider.validate: accepted responses", () => {
  it("accepts a response with a signed assertion and returns the mapped identity", async () => {
    const guard = new MemoryReplayGuard();
    const notOnOrAfter = new Date(Date.now() + 240_000);
    notOnOrAfter.setMilliseconds(0);
    const result = await validate(
      samlResponse(idp, legit({ assertionId: "_assertion1", sessionIndex: "_session1", notOnOrAfter })),
      { guard },
    );
    expect(result).toEqual({
      identity: {
        subject: "ada@example.com",
        email: "ada@example.com",
        emailVerified: false,
        givenName: "Ada",
        familyName: "Lovelace",
        displayName: undefined,
        username: undefined,
        locale: undefined,
        groups: ["engineering", "admins"],
        attributes: {},
      },
      nameId: "ada@example.com",
      nameIdFormat: NAMEID_FORMAT.email,
      sessionIndex: "_session1",
      assertionId: "_assertion1",
      issuer: idp.entityId,
      notOnOrAfter,
      attributes: {
        email: "Ada@Example.com",
        firstName: "Ada",
        lastName: "Lovelace",
        groups: ["engineering", "admins"],
        department: "R&D",
      },
      inResponseTo: REQUEST_ID,
    });
    // Remembered until NotOnOrAfter plus the default 60 s skew.
    expect([...guard.seen]).toEqual([["conn_1:_assertion1", new Date(notOnOrAfter.getTime() + 60_000)]]);
  });

  it.each(["response", "both"] as const)("accepts a response with the signature on: %s", async (sign) => {
    const result = await validate(samlResponse(idp, legit({ sign })));
    expect(result.nameId).toBe("ada@example.com");
  });

  it("accepts a response signed by the second configured IdP certificate (rotation), PEM or bare base64", async () => {
    const response = samlResponse(rotatedIdp, legit());
    const bareBase64 = rotatedIdp.certificatePem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, "").trim();
    for (const second of [rotatedIdp.certificatePem, bareBase64]) {
      const result = await validate(response, {}, settings({ idpCertificates: [idp.certificatePem, second] }));
      expect(result.nameId).toBe("ada@example.com");
    }
    // Without the rotated certificate, the same response is refused.
    await rejection(validate(response), UnauthenticatedError, "SAML_SIGNATURE_INVALID");
  });

  it("accepts an IdP-initiated response when the connection allows it", async () => {
    const result = await validate(
      samlResponse(idp, legit({ inResponseTo: undefined })),
      { expectedRequestId: null },
      settings({ allowIdpInitiated: true }),
    );
    expect(result.nameId).toBe("ada@example.com");
    expect(result.inResponseTo).toBeUndefined();
  });

  it("accepts a response without Destination when the assertion's Recipient is the ACS URL", async () => {
    const result = await validate(samlResponse(idp, legit({ destination: "" })));
    expect(result.nameId).toBe("ada@example.com");
  });

  it("tolerates the configured clock skew, and no more", async () => {
    const t = new Date("2030-01-01T12:00:00.000Z");
    const at = (ms: number) => new Date(t.getTime() + ms);
    // Expired 30 s ago / valid only from 30 s ahead: within the default 60 s.
    await validate(samlResponse(idp, legit({ issueInstant: at(-300_000), notOnOrAfter: at(-30_000) })), { now: t });
    await validate(samlResponse(idp, legit({ issueInstant: t, notBefore: at(30_000) })), { now: t });
    // The same with a 10 s skew.
    const strict = settings({ clockSkewMs: 10_000 });
    await rejection(
      validate(samlResponse(idp, legit({ issueInstant: at(-300_000), notOnOrAfter: at(-30_000) })), { now: t }, strict),
      UnauthenticatedError,
      "SAML_ASSERTION_EXPIRED",
    );
    await rejection(
      validate(samlResponse(idp, legit({ issueInstant: t, notBefore: at(30_000) })), { now: t }, strict),
      UnauthenticatedError,
      "SAML_ASSERTION_NOT_YET_VALID",
    );
  });

  it("judges time by options.now, not the wall clock", async () => {
    const then = new Date("2031-06-01T08:00:00.000Z");
    const response = samlResponse(idp, legit({ issueInstant: then }));
    expect((await validate(response, { now: then })).nameId).toBe("ada@example.com");
    await rejection(validate(response), UnauthenticatedError, "SAML_ASSERTION_NOT_YET_VALID");
  });

  it("applies the connection's attribute mapping", async () => {
    const result = await validate(
      samlResponse(
        idp,
        legit({
          nameId: "opaque-0001",
          nameIdFormat: NAMEID_FORMAT.persistent,
          attributes: { mail: "grace@example.com", uid: "grace", roles: ["a", "b"], emp: "42", verified: "true" },
        }),
      ),
      {},
      settings({
        mapping: { username: "uid", groups: "roles", emailVerified: "verified", attributes: { employee: "emp" } },
      }),
    );
    expect(result.nameId).toBe("opaque-0001");
    expect(result.nameIdFormat).toBe(NAMEID_FORMAT.persistent);
    expect(result.identity).toMatchObject({
      subject: "opaque-0001",
      email: "grace@example.com",
      emailVerified: true,
      username: "grace",
      groups: ["a", "b"],
      attributes: { employee: "42" },
    });
  });
});

describe("SamlServiceProvider.validate: signatures", () => {
  it("rejects an unsigned response", async () => {
    await rejection(
      validate(samlResponse(idp, legit({ sign: "none" }))),
      UnauthenticatedError,
      "SAML_SIGNATURE_INVALID",
    );
  });

  it.each(["assertion", "response", "both"] as const)(
    "rejects a response signed by another key, its certificate in KeyInfo (signed: %s)",
    async (sign) => {
      await rejection(
        validate(samlResponse(idp, legit({ sign, signWith: attacker }))),
        UnauthenticatedError,
        "SAML_SIGNATURE_INVALID",
      );
    },
  );

  it("rejects a response with one good and one bad signature, either way round", async () => {
    // Assertion signed by the IdP, Response by another key.
    const goodInner = signElement(
      samlResponseXml(idp, legit({ sign: "assertion", responseId: "_outer1" })),
      "_outer1",
      attacker,
    );
    // Assertion signed by another key, Response by the IdP.
    const goodOuter = signElement(
      samlResponseXml(idp, legit({ sign: "assertion", signWith: attacker, responseId: "_outer2" })),
      "_outer2",
      idp,
    );
    for (const xml of [goodInner, goodOuter]) {
      expect(xml.match(/<ds:Signature /g)).toHaveLength(2);
      await rejection(validate(encodeSamlResponse(xml)), UnauthenticatedError, "SAML_SIGNATURE_INVALID");
    }
  });

  it("rejects an HMAC signature keyed with the IdP's certificate (key confusion)", async () => {
    await rejection(validate(hmacKeyConfusionResponse(idp, legit())), UnauthenticatedError, "SAML_SIGNATURE_INVALID");
  });

  it.each(["assertion", "response"] as const)("rejects a response altered after signing (signed: %s)", async (sign) => {
    const xml = samlResponseXml(idp, legit({ sign }));
    const altered = xml.replace(">ada@example.com</saml:NameID>", ">root@example.com</saml:NameID>");
    expect(altered).not.toBe(xml);
    await rejection(validate(encodeSamlResponse(altered)), UnauthenticatedError, "SAML_SIGNATURE_INVALID");
  });

  it("accepts the legitimate half of the XSW attacks below on its own", async () => {
    // The legitimate half of every attack below validates on its own.
    expect((await validate(samlResponse(idp, legit({ sign: "assertion" })))).nameId).toBe("ada@example.com");
    expect((await validate(samlResponse(idp, legit({ sign: "response" })))).nameId).toBe("ada@example.com");
  });

  const cases = XSW_ATTACKS.flatMap((attack) => [
    [attack, false],
    [attack, true],
  ]) as [(typeof XSW_ATTACKS)[number], boolean][];
  it.each(cases)(
    "rejects XML signature wrapping: %s (evil element reuses the signed ID: %s)",
    async (attack, sameId) => {
      const response = xswResponse(idp, attack, {
        legit: legit(),
        evil: { nameId: "admin@example.com", attributes: { email: "admin@example.com", groups: ["admins"] } },
        sameId,
      });
      await rejection(validate(response), UnauthenticatedError, "SAML_SIGNATURE_INVALID");
    },
  );

  it.each(["assertion", "response"] as const)(
    "does not let a comment in the NameID truncate the identity (%s signed)",
    async (sign) => {
      const xml = samlResponseXml(
        idp,
        legit({ sign, nameId: "user@evil.com.example.com", attributes: { email: "user@evil.com.example.com" } }),
      );
      const commented = xml
        .replace(">user@evil.com.example.com</saml:NameID>", ">user@evil.com<!---->.example.com</saml:NameID>")
        .replace(
          ">user@evil.com.example.com</saml:AttributeValue>",
          ">user@evil.com<!-- x -->.example.com</saml:AttributeValue>",
        );
      expect(commented.match(/<!--/g)).toHaveLength(2);
      // Exclusive c14n drops comments, so the signature still verifies...
      const result = await validate(encodeSamlResponse(commented));
      // ...and the whole value is read, not the text before the comment.
      expect(result.nameId).toBe("user@evil.com.example.com");
      expect(result.identity.subject).toBe("user@evil.com.example.com");
      expect(result.identity.email).toBe("user@evil.com.example.com");
      expect(result.attributes.email).toBe("user@evil.com.example.com");
    },
  );
});

describe("SamlServiceProvider.validate: conditions", () => {
  it("rejects an expired assertion", async () => {
    const now = Date.now();
    await rejection(
      validate(
        samlResponse(idp, legit({ issueInstant: new Date(now - 600_000), notOnOrAfter: new Date(now - 120_000) })),
      ),
      UnauthenticatedError,
      "SAML_ASSERTION_EXPIRED",
    );
  });

  it("rejects an assertion whose NotBefore is in the future", async () => {
    await rejection(
      validate(samlResponse(idp, legit({ notBefore: new Date(Date.now() + 120_000) }))),
      UnauthenticatedError,
      "SAML_ASSERTION_NOT_YET_VALID",
    );
  });

  it("rejects an assertion for another audience", async () => {
    await rejection(
      validate(samlResponse(idp, legit({ audience: "https://other-sp.example.test" }))),
      UnauthenticatedError,
      "SAML_AUDIENCE_MISMATCH",
    );
  });

  it("rejects a response from another issuer", async () => {
    await rejection(
      validate(samlResponse(idp, legit({ sign: "response", issuer: "https://evil-idp.example.test" }))),
      UnauthenticatedError,
      "SAML_ISSUER_MISMATCH",
    );
  });

  it("rejects an assertion from another issuer, even in a response naming the right one", async () => {
    const xml = samlResponseXml(idp, legit({ sign: "assertion", issuer: "https://evil-idp.example.test" }));
    // The Response (unsigned here) is made to name the connection's IdP; the signed assertion still does not.
    const envelopeFixed = xml.replace(
      "<saml:Issuer>https://evil-idp.example.test</saml:Issuer>",
      `<saml:Issuer>${idp.entityId}</saml:Issuer>`,
    );
    expect(envelopeFixed.split("https://evil-idp.example.test")).toHaveLength(2);
    const err = await rejection(
      validate(encodeSamlResponse(envelopeFixed)),
      UnauthenticatedError,
      "SAML_ISSUER_MISMATCH",
    );
    expect(err.message).toContain("the assertion was issued by");
  });

  it("rejects an assertion whose Recipient is another ACS URL", async () => {
    await rejection(
      validate(samlResponse(idp, legit({ recipient: "https://other-sp.example.test/acs", destination: ACS_URL }))),
      UnauthenticatedError,
      "SAML_DESTINATION_MISMATCH",
    );
  });

  it("rejects a response whose Destination is another ACS URL", async () => {
    await rejection(
      validate(samlResponse(idp, legit({ destination: "https://other-sp.example.test/acs" }))),
      UnauthenticatedError,
      "SAML_DESTINATION_MISMATCH",
    );
  });

  it("rejects a non-Success status, with or without an assertion", async () => {
    const failed = { statusCode: SAML_STATUS.responder, subStatusCode: SAML_STATUS.authnFailed };
    const err = await rejection(
      validate(samlResponse(idp, legit({ ...failed, omitAssertion: true, sign: "none" }))),
      UnauthenticatedError,
      "SAML_STATUS_ERROR",
    );
    expect(err.message).toContain("AuthnFailed");
    expect(err.metadata).toEqual({ status: SAML_STATUS.responder, sub_status: SAML_STATUS.authnFailed });
    // node-saml ignores the status when there is a signed assertion; the SP does not.
    for (const sign of ["assertion", "response"] as const) {
      await rejection(
        validate(samlResponse(idp, legit({ sign, statusCode: SAML_STATUS.requester }))),
        UnauthenticatedError,
        "SAML_STATUS_ERROR",
      );
    }
  });

  it("rejects a Success response without an assertion, and one with an encrypted assertion", async () => {
    await rejection(
      validate(samlResponse(idp, legit({ omitAssertion: true, sign: "response" }))),
      UnauthenticatedError,
      "SAML_INVALID",
    );
    const xml = samlResponseXml(idp, legit({ sign: "response" }));
    const encrypted = xml.replace(
      /<saml:Assertion [\s\S]*<\/saml:Assertion>/,
      '<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#"/></saml:EncryptedAssertion>',
    );
    expect(encrypted).toContain("EncryptedAssertion");
    const err = await rejection(validate(encodeSamlResponse(encrypted)), UnauthenticatedError, "SAML_INVALID");
    expect(err.message).toContain("encrypted assertions are not supported");
  });

  it("rejects a response to another AuthnRequest", async () => {
    await rejection(
      validate(samlResponse(idp, legit({ inResponseTo: "_someOtherRequest" }))),
      UnauthenticatedError,
      "SAML_IN_RESPONSE_TO_MISMATCH",
    );
    // An unsolicited assertion where a request is pending.
    await rejection(
      validate(samlResponse(idp, legit({ inResponseTo: undefined }))),
      UnauthenticatedError,
      "SAML_IN_RESPONSE_TO_MISMATCH",
    );
  });

  it("rejects IdP-initiated responses unless allowed, and solicited ones when no request is pending", async () => {
    await rejection(
      validate(samlResponse(idp, legit({ inResponseTo: undefined })), { expectedRequestId: null }),
      UnauthenticatedError,
      "SAML_UNSOLICITED_RESPONSE",
    );
    await rejection(
      validate(samlResponse(idp, legit()), { expectedRequestId: null }, settings({ allowIdpInitiated: true })),
      UnauthenticatedError,
      "SAML_IN_RESPONSE_TO_MISMATCH",
    );
  });

  it("rejects a replayed assertion, per connection, and only after the first use succeeded", async () => {
    const guard = new MemoryReplayGuard();
    const response = samlResponse(idp, legit({ assertionId: "_once" }));
    // A rejected attempt does not consume the assertion id.
    await rejection(
      validate(response, { guard, expectedRequestId: "_wrong" }),
      UnauthenticatedError,
      "SAML_IN_RESPONSE_TO_MISMATCH",
    );
    expect(guard.seen.size).toBe(0);
    await validate(response, { guard });
    await rejection(validate(response, { guard }), UnauthenticatedError, "SAML_REPLAYED");
    // Another connection trusting the same IdP keeps its own ids.
    expect((await validate(response, { guard }, settings({ connectionId: "conn_2" }))).assertionId).toBe("_once");
    expect([...guard.seen.keys()]).toEqual(["conn_1:_once", "conn_2:_once"]);
  });
});

describe("SamlServiceProvider.validate: malformed input", () => {
  it.each([
    ["not base64", "%%% not base64 %%%"],
    ["truncated base64", "PHNhbWxwOlJlc3BvbnNl="],
    ["base64 of plain text", Buffer.from("hello, world").toString("base64")],
    [
      "base64 of truncated XML",
      encodeSamlResponse('<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"'),
    ],
    ["base64 of XML with a repeated attribute", encodeSamlResponse('<a x="1" x="2"/>')],
    ["base64 of XML with an undefined entity", encodeSamlResponse("<a>&foo;</a>")],
    ["base64 of two root elements", encodeSamlResponse("<a/><b/>")],
    ["base64 of invalid UTF-8", Buffer.from([0x3c, 0x61, 0xff, 0xfe, 0x3e]).toString("base64")],
    ["empty", ""],
  ])("rejects %s as SAML_MALFORMED", async (_name, input) => {
    await rejection(validate(input), InvalidArgumentError, "SAML_MALFORMED");
  });

  it("rejects a document with a DTD (entity expansion) as SAML_MALFORMED", async () => {
    const xml = samlResponseXml(idp, legit());
    const withDtd = `<!DOCTYPE samlp:Response [<!ENTITY x "ada@example.com">]>${xml}`;
    await rejection(validate(encodeSamlResponse(withDtd)), InvalidArgumentError, "SAML_MALFORMED");
  });

  it("accepts a base64 SAMLResponse with line breaks (as some IdPs post it)", async () => {
    const wrapped = samlResponse(idp, legit()).replace(/.{76}/g, "$&\r\n");
    expect((await validate(wrapped)).nameId).toBe("ada@example.com");
  });

  it("rejects well-formed XML that is not a SAML Response as SAML_INVALID", async () => {
    await rejection(
      validate(encodeSamlResponse('<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x"/>')),
      UnauthenticatedError,
      "SAML_INVALID",
    );
  });

  it("refuses to validate with a stored certificate that does not parse", async () => {
    await rejection(
      validate(samlResponse(idp, legit()), {}, settings({ idpCertificates: ["not a certificate"] })),
      FailedPreconditionError,
      "SAML_CONNECTION_MISCONFIGURED",
    );
  });
});

function queryOf(url: string): Map<string, string> {
  const raw = url.slice(url.indexOf("?") + 1);
  return new Map(raw.split("&").map((pair) => pair.split("=", 2) as [string, string]));
}

function authnRequestOf(url: string): Element {
  const encoded = new URL(url).searchParams.get("SAMLRequest")!;
  const xml = inflateRawSync(Buffer.from(encoded, "base64")).toString("utf8");
  return new DOMParser().parseFromString(xml, "text/xml").documentElement!;
}

describe("SamlServiceProvider.authorizeUrl", () => {
  it("redirects to the IdP with an unsigned AuthnRequest whose id it returns", async () => {
    const { url, requestId } = await sp.authorizeUrl(settings(), "state-123");
    expect(url.startsWith(`${idp.ssoUrl}?`)).toBe(true);
    const params = new URL(url).searchParams;
    expect(params.get("RelayState")).toBe("state-123");
    expect(params.has("Signature")).toBe(false);
    expect(params.has("SigAlg")).toBe(false);
    const request = authnRequestOf(url);
    expect(request.localName).toBe("AuthnRequest");
    expect(request.getAttribute("ID")).toBe(requestId);
    expect(request.getAttribute("Destination")).toBe(idp.ssoUrl);
    expect(request.getAttribute("AssertionConsumerServiceURL")).toBe(ACS_URL);
    expect(request.getAttribute("ProtocolBinding")).toBe("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST");
    expect(request.getElementsByTagNameNS("urn:oasis:names:tc:SAML:2.0:assertion", "Issuer")[0]?.textContent).toBe(
      SP_ENTITY_ID,
    );
    expect(requestId).toMatch(/^_[0-9a-f]{40}$/);
    expect((await sp.authorizeUrl(settings(), "state-123")).requestId).not.toBe(requestId);
  });

  it("signs the redirect with RSA-SHA256 when configured, verifiable with the SP certificate", async () => {
    const signed = settings({
      // An SSO URL with its own query parameter (as Google's has), kept and not signed.
      idpSsoUrl: `${idp.ssoUrl}?idpid=C0abc`,
      signAuthnRequests: true,
      spPrivateKeyPem: spKeys.privateKeyPem,
      spCertificatePem: spKeys.certificatePem,
    });
    // node-saml alone gets the signature wrong for relay states with space ! ~ ' ( ).
    const relayState = "state 4~5!6'(x)";
    const { url } = await sp.authorizeUrl(signed, relayState);
    expect(new URL(url).searchParams.get("RelayState")).toBe(relayState);
    // A browser following the redirect sends the query unchanged.
    expect(new URL(url).href).toBe(url);
    const query = queryOf(url);
    expect([...query.keys()]).toEqual(["idpid", "SAMLRequest", "RelayState", "SigAlg", "Signature"]);
    expect(decodeURIComponent(query.get("SigAlg")!)).toBe("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256");
    // SAML bindings §3.4.4.1: the signature covers the URL-encoded parameters as sent.
    const octets = `SAMLRequest=${query.get("SAMLRequest")}&RelayState=${query.get("RelayState")}&SigAlg=${query.get("SigAlg")}`;
    const signature = Buffer.from(decodeURIComponent(query.get("Signature")!), "base64");
    const verifier = createVerify("RSA-SHA256").update(octets);
    expect(verifier.verify(new X509Certificate(spKeys.certificatePem).publicKey, signature)).toBe(true);
  });

  it("answers a round trip: the request id is what the response must be in response to", async () => {
    const { requestId } = await sp.authorizeUrl(settings(), "s");
    const response = samlResponse(idp, legit({ inResponseTo: requestId }));
    expect((await validate(response, { expectedRequestId: requestId })).inResponseTo).toBe(requestId);
  });

  it("refuses to sign without an SP key, and relay states over 80 bytes", async () => {
    await rejection(
      sp.authorizeUrl(settings({ signAuthnRequests: true }), "s"),
      FailedPreconditionError,
      "SAML_CONNECTION_MISCONFIGURED",
    );
    await rejection(sp.authorizeUrl(settings(), "x".repeat(81)), InvalidArgumentError, "INVALID_FIELD");
  });
});

describe("SamlServiceProvider.metadata", () => {
  function parse(xml: string): Element {
    return new DOMParser().parseFromString(xml, "text/xml").documentElement!;
  }
  const MD = "urn:oasis:names:tc:SAML:2.0:metadata";

  it("describes the SP: entity id, ACS (HTTP-POST), NameID formats, no signing key when unsigned", () => {
    const xml = sp.metadata(settings());
    const root = parse(xml);
    expect(root.localName).toBe("EntityDescriptor");
    expect(root.getAttribute("entityID")).toBe(SP_ENTITY_ID);
    const descriptor = root.getElementsByTagNameNS(MD, "SPSSODescriptor")[0]!;
    expect(descriptor.getAttribute("AuthnRequestsSigned")).toBe("false");
    expect(descriptor.getAttribute("WantAssertionsSigned")).toBe("true");
    expect(descriptor.getAttribute("protocolSupportEnumeration")).toBe("urn:oasis:names:tc:SAML:2.0:protocol");
    const acs = descriptor.getElementsByTagNameNS(MD, "AssertionConsumerService")[0]!;
    expect(acs.getAttribute("Binding")).toBe("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST");
    expect(acs.getAttribute("Location")).toBe(ACS_URL);
    expect(Array.from(descriptor.getElementsByTagNameNS(MD, "NameIDFormat")).map((n) => n.textContent)).toEqual([
      NAMEID_FORMAT.email,
      NAMEID_FORMAT.persistent,
    ]);
    expect(descriptor.getElementsByTagNameNS(MD, "KeyDescriptor")).toHaveLength(0);
    // Stable for a connection.
    expect(sp.metadata(settings())).toBe(xml);
  });

  it("publishes the signing certificate when AuthnRequests are signed", () => {
    const root = parse(
      sp.metadata(
        settings({
          signAuthnRequests: true,
          spPrivateKeyPem: spKeys.privateKeyPem,
          spCertificatePem: spKeys.certificatePem,
        }),
      ),
    );
    const descriptor = root.getElementsByTagNameNS(MD, "SPSSODescriptor")[0]!;
    expect(descriptor.getAttribute("AuthnRequestsSigned")).toBe("true");
    const key = descriptor.getElementsByTagNameNS(MD, "KeyDescriptor")[0]!;
    expect(key.getAttribute("use")).toBe("signing");
    const published = key.getElementsByTagNameNS("http://www.w3.org/2000/09/xmldsig#", "X509Certificate")[0]!;
    const der = Buffer.from(published.textContent!.replace(/\s+/g, ""), "base64");
    expect(new X509Certificate(der).fingerprint256).toBe(new X509Certificate(spKeys.certificatePem).fingerprint256);
  });
});

describe("normalizeCertificates", () => {
  it("accepts PEM and bare base64 DER, with any line breaks, and returns normalized PEM", () => {
    const pem = idp.certificatePem;
    const der64 = new X509Certificate(pem).raw.toString("base64");
    const [a, b, c] = normalizeCertificates(
      [`\r\n  ${pem.replace(/\n/g, "\r\n")}  `, der64, der64.replace(/.{64}/g, "$&\n")],
      "saml.idp_certificates",
    );
    expect(a).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\n$/);
    expect(b).toBe(a);
    expect(c).toBe(a);
    expect(new X509Certificate(a!).fingerprint256).toBe(new X509Certificate(pem).fingerprint256);
  });

  it.each([
    ["garbage", "not a certificate"],
    ["base64 that is not a certificate", Buffer.from("hello world!").toString("base64")],
    ["two certificates in one entry", "CERTS_TWICE"],
    ["a private key", "PRIVATE_KEY"],
  ])("rejects %s, naming the entry", async (_name, value) => {
    const input =
      value === "CERTS_TWICE"
        ? `${idp.certificatePem}\n${rotatedIdp.certificatePem}`
        : value === "PRIVATE_KEY"
          ? idp.privateKeyPem
          : value;
    let err: unknown;
    try {
      normalizeCertificates([idp.certificatePem, input], "saml.idp_certificates");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    const error = err as InvalidArgumentError;
    expect(error.reason).toBe("SAML_CERTIFICATE_INVALID");
    expect(error.violations.map((v) => v.field)).toEqual(["saml.idp_certificates[1]"]);
    expect(error.message.startsWith("saml.idp_certificates[1]: ")).toBe(true);
    // Never echoes key material.
    expect(error.message).not.toContain(idp.privateKeyPem.split("\n")[1]!);
  });

  it("rejects a non-RSA certificate (xml-crypto verifies RSA only) and an empty list", async () => {
    const ec = await generate([{ name: "commonName", value: "ec.example.test" }], {
      keyType: "ec",
      algorithm: "sha256",
    });
    expect(() => normalizeCertificates([ec.cert], "certs")).toThrow(/certs\[0\]: .*only RSA/);
    expect(() => normalizeCertificates([], "certs")).toThrow(InvalidArgumentError);
  });
});
