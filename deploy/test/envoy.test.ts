// The Envoy gateway config, checked without an Envoy binary: strictly against Envoy's own
// API protos (every typed_config included), for coverage of every service in the contract
// image, and for being what generate.mjs makes of the current image.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, test } from "@jest/globals";
import { parse } from "yaml";
import {
  buildEnvoyConfig,
  DEFAULT_IMAGE,
  DEFAULT_OUTPUT,
  DESCRIPTOR_PATH,
  deployableOf,
  ENABLED_SERVICES,
  gatewayServices,
  httpBindings,
  imageServices,
  isIdempotent,
  loadRegistry,
  renderEnvoyYaml,
} from "../envoy/generate.mjs";
import { EnvoySchema } from "./envoy-schema.js";

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML is walked freely below
type Any = any;

const imageBytes = readFileSync(DEFAULT_IMAGE);
const registry = loadRegistry(imageBytes);
const yamlText = readFileSync(DEFAULT_OUTPUT, "utf8");
const config: Any = parse(yamlText);
const BOOTSTRAP = "envoy.config.bootstrap.v3.Bootstrap";

let schema: EnvoySchema;
beforeAll(() => {
  schema = new EnvoySchema();
});

const hcm = (c: Any) => c.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
const filter = (c: Any, name: string) => hcm(c).http_filters.find((f: Any) => f.name === name)?.typed_config;
const routesOf = (c: Any): Any[] => hcm(c).route_config.virtual_hosts.flatMap((v: Any) => v.routes);
const clone = (v: unknown): Any => structuredClone(v);

describe("envoy.yaml against Envoy's schema", () => {
  test("is a valid envoy.config.bootstrap.v3.Bootstrap, typed_configs included", () => {
    expect(schema.check(BOOTSTRAP, config)).toEqual([]);
  });

  test("every typed_config names a type the checker resolved", () => {
    const urls = new Set<string>();
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === "object") {
        for (const [k, x] of Object.entries(v)) {
          if (k === "@type") urls.add(String(x));
          else walk(x);
        }
      }
    };
    walk(config);
    expect(urls.size).toBeGreaterThanOrEqual(10);
    for (const url of urls) expect(schema.lookupType(url.split("/").pop()!)).toBeDefined();
  });

  test("rejects an unknown field, also inside a nested typed_config", () => {
    const top = clone(config);
    top.admin.bogus = 1;
    expect(schema.check(BOOTSTRAP, top)).toEqual(["admin.bogus: unknown field of envoy.config.bootstrap.v3.Admin"]);

    const nested = clone(config);
    filter(nested, "envoy.filters.http.grpc_json_transcoder").print_options.pretty = true;
    const errors = schema.check(BOOTSTRAP, nested);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(
      /print_options\.pretty: unknown field of envoy\.extensions\.filters\.http\.grpc_json_transcoder\.v3\.GrpcJsonTranscoder\.PrintOptions/,
    );
  });

  test("rejects wrong types, bad enums, bad durations, unknown @types and broken rules", () => {
    const cases: [(c: Any) => void, RegExp][] = [
      [
        (c) => (filter(c, "envoy.filters.http.grpc_json_transcoder").convert_grpc_status = "yes"),
        /convert_grpc_status: expected true or false/,
      ],
      [(c) => (c.admin.address.socket_address.port_value = "http"), /port_value: expected an integer/],
      [(c) => (c.admin.address.socket_address.port_value = 70000), /port_value: 70000 violates lte 65535/],
      [(c) => (c.static_resources.clusters[0].lb_policy = "FASTEST"), /lb_policy: "FASTEST" is not a value/],
      [(c) => (c.static_resources.clusters[0].connect_timeout = "2 seconds"), /connect_timeout: expected a duration/],
      [(c) => (c.static_resources.clusters[0].outlier_detection = [1]), /outlier_detection: expected an object/],
      [
        (c) =>
          (filter(c, "envoy.filters.http.grpc_web")["@type"] =
            "type.googleapis.com/envoy.extensions.filters.http.nope.v3.Nope"),
        /unknown @type/,
      ],
      [(c) => delete c.static_resources.clusters[0].name, /clusters\[0\]\.name: required/],
      [
        (c) => delete filter(c, "envoy.filters.http.grpc_json_transcoder").proto_descriptor,
        /oneof descriptor_set is required/,
      ],
      [(c) => (c.static_resources.clusters[0].http2_protocol_options = {}), /http2_protocol_options: deprecated field/],
      [
        (c) =>
          (c.static_resources.clusters[0].typed_extension_protocol_options[
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
          ].explicit_http_config.http3 = {}),
        /explicit_http_config\.http3: unknown field/,
      ],
      [
        (c) => (hcm(c).route_config.virtual_hosts[0].typed_per_filter_config["envoy.filters.http.cors"].max_age = 600),
        /max_age: expected a string/,
      ],
      [(c) => (routesOf(c)[0].route.timeout = 15), /timeout: expected a duration/],
    ];
    for (const [mutate, expected] of cases) {
      const c = clone(config);
      mutate(c);
      const errors = schema.check(BOOTSTRAP, c);
      expect(errors.join("\n")).toMatch(expected);
    }
  });
});

describe("envoy.yaml covers the contract image", () => {
  const services = gatewayServices(registry);
  const names = services.map((s) => s.typeName);

  test("ENABLED_SERVICES only names services or deployables that exist", () => {
    const known = new Set(imageServices(registry).flatMap((s) => [s.typeName, deployableOf(s.typeName)]));
    for (const e of ENABLED_SERVICES as string[]) expect(known).toContain(e);
    expect(names.length).toBeGreaterThan(0);
  });

  test("the transcoder serves exactly the image's uab services, from the mounted image", () => {
    const t = filter(config, "envoy.filters.http.grpc_json_transcoder");
    expect(t.services).toEqual(names);
    expect(t.proto_descriptor).toBe(DESCRIPTOR_PATH);
    expect(t).toMatchObject({ convert_grpc_status: true, auto_mapping: false, ignore_unknown_query_parameters: false });
    expect(t.print_options).toBeDefined();
  });

  test("the filter chain is health check, CORS, gRPC-Web, transcoder, router", () => {
    expect(hcm(config).http_filters.map((f: Any) => f.name)).toEqual([
      "envoy.filters.http.health_check",
      "envoy.filters.http.cors",
      "envoy.filters.http.grpc_web",
      "envoy.filters.http.grpc_json_transcoder",
      "envoy.filters.http.router",
    ]);
    expect(config.admin.address.socket_address).toEqual({ address: "127.0.0.1", port_value: 9901 });
    expect(config.static_resources.listeners[0].address.socket_address.port_value).toBe(8080);
  });

  test("every service has a prefix route to its deployable's HTTP/2 cluster", () => {
    const routes = routesOf(config);
    const clusters = new Map<string, Any>(config.static_resources.clusters.map((c: Any) => [c.name, c]));
    for (const s of services) {
      const cluster = `uab-${deployableOf(s.typeName)}`;
      const route = routes.find((r) => r.match.prefix === `/${s.typeName}/`);
      expect(route?.route.cluster).toBe(cluster);
      expect(route?.route.timeout).toBeDefined();
      const c = clusters.get(cluster);
      expect(c).toBeDefined();
      expect(c.type).toBe("STRICT_DNS");
      expect(c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address).toEqual({
        address: cluster,
        port_value: 8080,
      });
      const http = c.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
      expect(http.explicit_http_config.http2_protocol_options).toBeDefined();
      expect(c.circuit_breakers.thresholds.length).toBeGreaterThan(0);
      expect(c.outlier_detection).toBeDefined();
    }
    for (const r of routes) expect(clusters.has(r.route.cluster)).toBe(true);
    expect(clusters.size).toBe(new Set(services.map((s) => deployableOf(s.typeName))).size);
  });

  test("only idempotent unary methods are retried", () => {
    const routes = routesOf(config);
    let retried = 0;
    for (const s of services) {
      for (const m of s.methods) {
        const path = `/${s.typeName}/${m.name}`;
        const route = routes.find(
          (r) =>
            r.match.path === path ||
            (r.match.safe_regex && new RegExp(r.match.safe_regex.regex).test(path)) ||
            (r.match.prefix !== undefined && path.startsWith(r.match.prefix)),
        );
        expect(route).toBeDefined();
        const expectRetry = m.methodKind === "unary" && isIdempotent(registry, m);
        expect([path, Boolean(route.route.retry_policy)]).toEqual([path, expectRetry]);
        if (expectRetry) {
          retried++;
          expect(route.route.retry_policy.retry_on).toContain("unavailable");
        }
      }
    }
    expect(retried).toBeGreaterThan(0);
  });

  test("every RPC has a REST route for the transcoder", () => {
    const routed = new Set(httpBindings(registry).map((b) => b.rpc));
    const missing = imageServices(registry).flatMap((s: Any) =>
      s.methods.map((m: Any) => `${s.typeName}/${m.name}`).filter((rpc: string) => !routed.has(rpc)),
    );
    expect(missing).toEqual([]);
  });

  test("every REST route (verb + path template) is unique across the image", () => {
    const bindings = httpBindings(registry);
    expect(bindings.length).toBeGreaterThan(0);
    // {tenant_id} and {name=tenants/*} match like the segments they stand for.
    const normalise = (path: string) => path.replace(/\{[^}=]+=([^}]+)\}/g, "$1").replace(/\{[^}]+\}/g, "*");
    const seen = new Map<string, string>();
    const clashes: string[] = [];
    for (const b of bindings) {
      const key = `${b.verb} ${normalise(b.path)}`;
      const other = seen.get(key);
      if (other && other !== b.rpc) clashes.push(`${key}: ${other} and ${b.rpc}`);
      seen.set(key, b.rpc);
    }
    expect(clashes).toEqual([]);
  });

  test("every REST path variable and body names a field the transcoder can bind", () => {
    const problems: string[] = [];
    for (const b of httpBindings(registry)) {
      const input = b.method.input;
      for (const m of b.path.matchAll(/\{([^}=]+)(?:=[^}]+)?\}/g)) {
        let message: Any = input;
        let field: Any;
        for (const part of m[1]!.split(".")) {
          field = message?.fields.find((f: Any) => f.name === part);
          message = field?.message;
        }
        if (!field) problems.push(`${b.rpc} ${b.path}: ${input.typeName} has no field ${m[1]}`);
        else if (field.fieldKind !== "scalar" && field.fieldKind !== "enum")
          problems.push(`${b.rpc} ${b.path}: ${m[1]} is not a scalar`);
      }
      if (b.body && b.body !== "*" && !input.fields.some((f: Any) => f.name === b.body))
        problems.push(`${b.rpc}: body ${b.body} is not a field of ${input.typeName}`);
      if (b.responseBody && !b.method.output.fields.some((f: Any) => f.name === b.responseBody))
        problems.push(`${b.rpc}: response_body ${b.responseBody} is not a field`);
      if (b.body && (b.verb === "GET" || b.verb === "DELETE")) problems.push(`${b.rpc}: ${b.verb} with a body`);
    }
    expect(problems).toEqual([]);
  });

  test("is up to date with deploy/uab.binpb (regenerated in memory)", () => {
    expect(yamlText === renderEnvoyYaml(imageBytes)).toBe(true);
  });

  test("narrowing ENABLED_SERVICES narrows services, routes and clusters alike", () => {
    const one = buildEnvoyConfig(registry, { enabled: ["tenancy"] }) as Any;
    const svc = filter(one, "envoy.filters.http.grpc_json_transcoder").services as string[];
    expect(svc.length).toBeGreaterThan(0);
    expect(svc.every((s) => s.startsWith("uab.tenancy."))).toBe(true);
    expect(one.static_resources.clusters.map((c: Any) => c.name)).toEqual(["uab-tenancy"]);
    expect(schema.check(BOOTSTRAP, one)).toEqual([]);
  });
});
