// The SSRF guard: which addresses are refused (IPv4 and IPv6, IPv4-mapped and NAT64 forms),
// and that deliver() refuses them before connecting, whether the URL names the address or a
// host name that resolves to it. A receiver listening on every local address (:: with IPv4
// mapped) counts connections; with the guard off the same URLs do reach it, so a refusal
// below is the guard's doing and not an unreachable address.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import {
  type AddressClass,
  checkEndpointUrl,
  classifyAddress,
  type DeliveryOptions,
  deliver,
  generateSecret,
} from "@uab/webhooks";
import { startServer, type TestServer, testCertificate } from "./server.js";

describe("classifyAddress", () => {
  it.each<[string, AddressClass]>([
    ["8.8.8.8", "public"],
    ["1.1.1.1", "public"],
    ["100.63.255.255", "public"],
    ["100.128.0.0", "public"],
    ["172.15.255.255", "public"],
    ["172.32.0.0", "public"],
    ["192.169.0.1", "public"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["169.254.1.1", "link-local"],
    ["169.254.169.254", "cloud metadata"],
    ["168.63.129.16", "cloud metadata"],
    ["100.100.100.200", "cloud metadata"],
    ["100.64.0.1", "carrier-grade NAT"],
    ["100.127.255.255", "carrier-grade NAT"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["0.0.0.0", "unspecified"],
    ["0.1.2.3", "unspecified"],
    ["240.0.0.1", "reserved"],
    ["255.255.255.255", "reserved"],
    ["192.0.2.1", "reserved"],
    ["198.18.0.1", "reserved"],
    ["2606:4700:4700::1111", "public"],
    ["2001:4860:4860::8888", "public"],
    ["::1", "loopback"],
    ["[::1]", "loopback"],
    ["0:0:0:0:0:0:0:1", "loopback"],
    ["::", "unspecified"],
    ["fc00::1", "private"],
    ["fd12:3456:789a::1", "private"],
    ["fe80::1", "link-local"],
    ["fe80::1%eth0", "link-local"],
    ["febf::1", "link-local"],
    ["fec0::1", "private"],
    ["ff02::1", "multicast"],
    ["fd00:ec2::254", "cloud metadata"],
    ["2001:db8::1", "reserved"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::FFFF:10.0.0.1", "private"],
    ["::ffff:169.254.169.254", "cloud metadata"],
    ["::ffff:8.8.8.8", "public"],
    ["64:ff9b::10.0.0.1", "private"],
    ["64:ff9b::808:808", "public"],
    ["2002:7f00:1::", "loopback"],
    ["2002:808:808::1", "public"],
    ["::127.0.0.1", "reserved"],
  ])("%s is %s", (address, cls) => {
    expect(classifyAddress(address)).toBe(cls);
  });

  it("rejects what is not an IP address", () => {
    expect(() => classifyAddress("localhost")).toThrow(TypeError);
    expect(() => classifyAddress("1.2.3")).toThrow(/not an IP address/);
    expect(() => classifyAddress("::g")).toThrow(/not an IP address/);
  });
});

describe("checkEndpointUrl", () => {
  it("accepts https URLs with a public or named host", () => {
    expect(checkEndpointUrl("https://siem.example.com:8088/services/collector")).toMatchObject({ ok: true });
    expect(checkEndpointUrl("https://8.8.8.8/x")).toMatchObject({ ok: true });
    expect(checkEndpointUrl("https://[2606:4700:4700::1111]/x")).toMatchObject({ ok: true });
  });

  it.each([
    ["http://siem.example.com/", /must use https:/, false],
    ["ftp://siem.example.com/", /unsupported URL scheme ftp:/, false],
    ["file:///etc/passwd", /unsupported URL scheme file:/, false],
    ["https://user:secret@siem.example.com/", /credentials in the URL/, false],
    ["siem.example.com", /invalid URL/, false],
    ["https://127.0.0.1/", /^blocked: 127\.0\.0\.1 is a loopback address$/, true],
    ["https://0x7f.1/", /^blocked: 127\.0\.0\.1 is a loopback address$/, true],
    ["https://2130706433/", /^blocked: 127\.0\.0\.1 is a loopback address$/, true],
    ["https://[::ffff:127.0.0.1]/", /^blocked: ::ffff:7f00:1 is a loopback address$/, true],
    ["https://169.254.169.254/latest/meta-data/", /^blocked: 169\.254\.169\.254 is a cloud metadata address$/, true],
    ["https://10.1.2.3/", /^blocked: 10\.1\.2\.3 is a private address$/, true],
    ["https://[fe80::1]/", /is a link-local address$/, true],
    ["https://0.0.0.0/", /is an unspecified address$/, true],
  ])("refuses %s", (url, reason, blocked) => {
    const check = checkEndpointUrl(url);
    expect(check).toMatchObject({ ok: false, blocked });
    if (!check.ok) expect(check.reason).toMatch(reason);
  });

  it("allows http: and private addresses only with allowPrivateNetworks", () => {
    expect(checkEndpointUrl("http://127.0.0.1:8080/", { allowPrivateNetworks: true })).toMatchObject({ ok: true });
    expect(checkEndpointUrl("https://10.1.2.3/", { allowPrivateNetworks: true })).toMatchObject({ ok: true });
    expect(checkEndpointUrl("ftp://127.0.0.1/", { allowPrivateNetworks: true })).toMatchObject({ ok: false });
  });
});

describe("deliver() behind the guard", () => {
  let server: TestServer;
  let trusted: DeliveryOptions;
  const secret = generateSecret();
  const send = (url: string, allowPrivateNetworks: boolean) =>
    deliver(
      { url, id: "msg_ssrf", body: "{}", contentType: "application/json", secrets: [secret] },
      { ...trusted, allowPrivateNetworks },
    );

  beforeAll(async () => {
    server = await startServer((_received, res) => res.writeHead(204).end());
    trusted = { ca: (await testCertificate()).cert, timeoutMs: 5000 };
  });

  afterAll(async () => {
    await server.close();
  });

  const local = (): [string, RegExp][] => [
    [`https://127.0.0.1:${server.port}/hook`, /^blocked: 127\.0\.0\.1 is a loopback address$/],
    [
      `https://localhost:${server.port}/hook`,
      /^blocked: localhost resolves to (127\.0\.0\.1|::1), a loopback address$/,
    ],
    [`https://[::1]:${server.port}/hook`, /^blocked: ::1 is a loopback address$/],
    [`https://[::ffff:127.0.0.1]:${server.port}/hook`, /^blocked: ::ffff:7f00:1 is a loopback address$/],
    [`https://0x7f000001:${server.port}/hook`, /^blocked: 127\.0\.0\.1 is a loopback address$/],
  ];

  it("refuses loopback targets, by address or by name, without connecting", async () => {
    const before = server.connections();
    for (const [url, reason] of local()) {
      const result = await send(url, false);
      expect(result).toMatchObject({ ok: false, outcome: "blocked", retryable: false, gone: false });
      expect(result.error).toMatch(reason);
      expect(result.statusCode).toBeUndefined();
    }
    expect(server.connections()).toBe(before);
    expect(server.requests).toHaveLength(0);
  });

  it("the same targets are reachable with allowPrivateNetworks (so the refusal above is the guard's)", async () => {
    const before = server.requests.length;
    for (const [url] of local()) {
      const result = await send(url, true);
      expect({ url, ...result }).toMatchObject({ url, ok: true, statusCode: 204 });
    }
    expect(server.requests.length - before).toBe(local().length);
  });

  it("refuses http: to loopback, the cloud metadata endpoint and private addresses", async () => {
    const before = server.connections();
    const cases: [string, RegExp][] = [
      [`http://[::1]:${server.port}/hook`, /must use https:/],
      [`http://127.0.0.1:${server.port}/hook`, /must use https:/],
      ["https://169.254.169.254/latest/meta-data/", /^blocked: 169\.254\.169\.254 is a cloud metadata address$/],
      ["https://[::ffff:a9fe:a9fe]/latest/meta-data/", /is a cloud metadata address$/],
      ["https://[fd00:ec2::254]/latest/meta-data/", /is a cloud metadata address$/],
      ["https://10.1.2.3/", /^blocked: 10\.1\.2\.3 is a private address$/],
      ["https://192.168.0.10/", /is a private address$/],
      ["https://100.64.0.1/", /is a carrier-grade NAT address$/],
      ["https://[fd00::1]/", /is a private address$/],
      ["https://224.0.0.1/", /is a multicast address$/],
      ["https://0.0.0.0/", /is an unspecified address$/],
    ];
    for (const [url, reason] of cases) {
      const result = await send(url, false);
      expect(result).toMatchObject({ ok: false, retryable: false });
      expect(result.outcome).toMatch(/^(blocked|invalid-request)$/);
      expect(result.error).toMatch(reason);
    }
    expect(server.connections()).toBe(before);
  });

  it("an http: URL is refused even for a public host, and allowed only with allowPrivateNetworks", async () => {
    const refused = await send("http://siem.example.com/collector", false);
    expect(refused).toMatchObject({
      ok: false,
      outcome: "invalid-request",
      retryable: false,
      error: "refused: endpoint URLs must use https:",
    });
    const before = server.requests.length;
    const allowed = await deliver(
      {
        url: `http://127.0.0.1:${server.port}/hook`,
        id: "msg_http",
        body: "{}",
        contentType: "application/json",
        secrets: [secret],
      },
      { allowPrivateNetworks: true, timeoutMs: 2000 },
    );
    // Plain HTTP to a TLS server fails, but it did connect: the guard let it through.
    expect(allowed.outcome).not.toBe("blocked");
    expect(allowed.outcome).not.toBe("invalid-request");
    expect(server.requests.length).toBe(before);
  });
});
