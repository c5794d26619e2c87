#!/usr/bin/env node
// Writes deploy/envoy/envoy.yaml, the static bootstrap of the Envoy gateway, from the
// compiled contracts in deploy/uab.binpb. Nothing in the output is listed by hand: services,
// routes, clusters and retry policies all come from the image, so adding a service's proto,
// running `node scripts/proto.mjs generate` and then this script is all a new service needs.
//
//   node deploy/envoy/generate.mjs                 regenerate deploy/envoy/envoy.yaml
//   node deploy/envoy/generate.mjs --check         fail if envoy.yaml is out of date
//   node deploy/envoy/generate.mjs --image x.binpb --out y.yaml
//
// What the gateway does, in filter order: answers its own /healthz and /readyz (health_check),
// applies CORS, turns gRPC-Web into gRPC (grpc_web), turns REST calls into gRPC by the
// `google.api.http` rules in the image (grpc_json_transcoder), then routes by gRPC service
// prefix to one cluster per deployable (`uab-<name>:8080`, HTTP/2 cleartext). gRPC and
// Connect calls pass through untouched.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createFileRegistry, fromBinary, getOption, hasOption } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Document, isScalar, visit } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));

/**
 * Which deployables (`tenancy`) or gRPC services (`uab.tenancy.v1.TenancyService`) the gateway
 * exposes. Empty means every `uab.*` service in the image, the default: a service whose proto
 * exists is routed, and until it is deployed its calls fail with UNAVAILABLE (no healthy host).
 */
export const ENABLED_SERVICES = [];

/** Browser origins allowed by CORS; set your admin console's origin here. */
export const CORS_ALLOWED_ORIGINS = [{ safe_regex: { regex: "^https?://(localhost|127\\.0\\.0\\.1)(:[0-9]+)?$" } }];

/** Port every UAB service listens on, and the gateway's own listener port. */
export const SERVICE_PORT = 8080;

/** Where the Helm chart (and docker compose) mount the descriptor image inside the gateway. */
export const DESCRIPTOR_PATH = "/etc/uab/uab.binpb";

/** Default image and output of this script. */
export const DEFAULT_IMAGE = resolve(here, "..", "uab.binpb");
export const DEFAULT_OUTPUT = join(here, "envoy.yaml");

// Limits mirror the services' own (libs/server: readMaxBytes 4 MiB, writeMaxBytes 16 MiB): the
// transcoder has to buffer a whole unary message to convert it, so it must allow as much.
const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
const UNARY_TIMEOUT = "15s";
const MAX_GRPC_TIMEOUT = "60s";

/** Reads a descriptor image (FileDescriptorSet with imports) into a registry. */
export function loadRegistry(bytes) {
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));
}

/** The deployable that serves a gRPC service: `uab.tenancy.v1.TenancyService` → `tenancy`. */
export function deployableOf(serviceTypeName) {
  const m = /^uab\.([a-z][a-z0-9_]*)\.v[0-9]+[a-z0-9]*\./.exec(serviceTypeName);
  if (!m) throw new Error(`${serviceTypeName}: not in a uab.<service>.vN package`);
  return m[1];
}

/** Every `uab.*` gRPC service in the image, sorted by name. */
export function imageServices(registry) {
  const out = [];
  for (const file of registry.files) {
    for (const service of file.services) if (service.typeName.startsWith("uab.")) out.push(service);
  }
  // Code-unit order, not locale order: the output must not depend on the machine.
  return out.sort((a, b) => (a.typeName < b.typeName ? -1 : a.typeName > b.typeName ? 1 : 0));
}

/** The services the gateway exposes: {@link imageServices} narrowed by `enabled` when not empty. */
export function gatewayServices(registry, enabled = ENABLED_SERVICES) {
  const all = imageServices(registry);
  if (enabled.length === 0) return all;
  return all.filter((s) => enabled.includes(s.typeName) || enabled.includes(deployableOf(s.typeName)));
}

/** Every REST binding (`google.api.http`, additional bindings too) of the given services. */
export function httpBindings(registry, services = imageServices(registry)) {
  const ext = registry.getExtension("google.api.http");
  if (!ext) throw new Error("google.api.http is not in the image (build it with imports)");
  const out = [];
  for (const service of services) {
    for (const method of service.methods) {
      if (!hasOption(method, ext)) continue;
      const rule = getOption(method, ext);
      for (const r of [rule, ...rule.additionalBindings]) {
        const { verb, path } =
          r.pattern.case === "custom"
            ? { verb: r.pattern.value.kind, path: r.pattern.value.path }
            : { verb: r.pattern.case, path: r.pattern.value };
        out.push({
          rpc: `${service.typeName}/${method.name}`,
          method,
          verb: String(verb).toUpperCase(),
          path,
          body: r.body,
          responseBody: r.responseBody,
        });
      }
    }
  }
  return out;
}

/**
 * Whether an RPC may be retried: declared side-effect free or idempotent
 * (`idempotency_level`), marked `read_only` in its UAB access option, or bound to HTTP GET.
 */
export function isIdempotent(registry, method) {
  const level = method.idempotency;
  if (level === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS || level === MethodOptions_IdempotencyLevel.IDEMPOTENT)
    return true;
  const access = registry.getExtension("uab.options.v1.access");
  if (access && hasOption(method, access) && getOption(method, access).readOnly) return true;
  const http = registry.getExtension("google.api.http");
  return Boolean(http && hasOption(method, http) && getOption(method, http).pattern.case === "get");
}

const clusterName = (deployable) => `uab-${deployable}`;

const typed = (type, body = {}) => ({ "@type": `type.googleapis.com/${type}`, ...body });

const ACCESS_LOG = [
  {
    name: "envoy.access_loggers.stdout",
    typed_config: typed("envoy.extensions.access_loggers.stream.v3.StdoutAccessLog", {
      log_format: {
        json_format: {
          time: "%START_TIME%",
          request_id: "%REQ(X-REQUEST-ID)%",
          traceparent: "%REQ(TRACEPARENT)%",
          method: "%REQ(:METHOD)%",
          path: "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH):512%",
          protocol: "%PROTOCOL%",
          content_type: "%REQ(CONTENT-TYPE)%",
          status: "%RESPONSE_CODE%",
          grpc_status: "%GRPC_STATUS%",
          response_flags: "%RESPONSE_FLAGS%",
          response_code_details: "%RESPONSE_CODE_DETAILS%",
          bytes_received: "%BYTES_RECEIVED%",
          bytes_sent: "%BYTES_SENT%",
          duration_ms: "%DURATION%",
          upstream_service_time_ms: "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
          upstream_cluster: "%UPSTREAM_CLUSTER%",
          upstream_host: "%UPSTREAM_HOST%",
          route: "%ROUTE_NAME%",
          client: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
          user_agent: "%REQ(USER-AGENT)%",
        },
      },
    }),
  },
];

// Retries are for calls that are safe to repeat: a server that is going away answers
// UNAVAILABLE (gRPC) or 503 (Connect) before or after doing the work, so only idempotent
// RPCs are retried, on another host, with a budget so retries cannot amplify an outage.
const RETRY_POLICY = {
  retry_on: "unavailable,connect-failure,refused-stream,retriable-status-codes",
  retriable_status_codes: [503],
  num_retries: 2,
  per_try_timeout: "5s",
  retry_back_off: { base_interval: "0.025s", max_interval: "0.25s" },
  retry_host_predicate: [
    {
      name: "envoy.retry_host_predicates.previous_hosts",
      typed_config: typed("envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"),
    },
  ],
  host_selection_retry_max_attempts: 3,
};

function routeAction(cluster, { streaming, retry }) {
  const action = { cluster };
  if (streaming) {
    // Streams live as long as the client wants; idle ones are cut instead.
    action.timeout = "0s";
    action.idle_timeout = "300s";
  } else {
    action.timeout = UNARY_TIMEOUT;
    // Honour the client's grpc-timeout up to a ceiling.
    action.max_stream_duration = { grpc_timeout_header_max: MAX_GRPC_TIMEOUT };
  }
  if (retry) action.retry_policy = RETRY_POLICY;
  return action;
}

function routes(registry, services) {
  const out = [];
  const deployables = [...new Set(services.map((s) => deployableOf(s.typeName)))].sort();
  // Health passthrough: /healthz/<service> and /readyz/<service> reach one (any) host of that
  // service, so an operator can probe each service through the gateway.
  for (const d of deployables) {
    for (const probe of ["healthz", "readyz"]) {
      out.push({
        name: `${d}-${probe}`,
        match: { path: `/${probe}/${d}` },
        route: { cluster: clusterName(d), prefix_rewrite: `/${probe}`, timeout: "2s" },
      });
    }
  }
  const escapeRegex = (v) => v.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  for (const service of services) {
    const cluster = clusterName(deployableOf(service.typeName));
    // Methods that differ from the service default (retried, or streaming) get one regex
    // route per group ahead of the service prefix, which takes everything else.
    const groups = { idempotent: [], streaming: [] };
    for (const method of service.methods) {
      if (method.methodKind !== "unary") groups.streaming.push(method.name);
      else if (isIdempotent(registry, method)) groups.idempotent.push(method.name);
    }
    for (const [group, methods] of Object.entries(groups)) {
      if (methods.length === 0) continue;
      out.push({
        name: `${service.typeName}/${group}`,
        match: { safe_regex: { regex: `^/${escapeRegex(service.typeName)}/(${methods.map(escapeRegex).join("|")})$` } },
        route: routeAction(cluster, { streaming: group === "streaming", retry: group === "idempotent" }),
      });
    }
    out.push({
      name: service.typeName,
      match: { prefix: `/${service.typeName}/` },
      route: routeAction(cluster, { streaming: false, retry: false }),
    });
  }
  return out;
}

function cluster(deployable) {
  const name = clusterName(deployable);
  return {
    name,
    type: "STRICT_DNS",
    // The Helm chart makes uab-<name> a headless Service: DNS returns every ready pod, and
    // Envoy balances each request (not each long-lived HTTP/2 connection) across them.
    dns_lookup_family: "V4_PREFERRED",
    dns_refresh_rate: "5s",
    connect_timeout: "2s",
    lb_policy: "LEAST_REQUEST",
    load_assignment: {
      cluster_name: name,
      endpoints: [
        { lb_endpoints: [{ endpoint: { address: { socket_address: { address: name, port_value: SERVICE_PORT } } } }] },
      ],
    },
    typed_extension_protocol_options: {
      "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": typed(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        {
          common_http_protocol_options: { idle_timeout: "300s" },
          explicit_http_config: {
            http2_protocol_options: {
              max_concurrent_streams: 1000,
              initial_stream_window_size: 1048576,
              initial_connection_window_size: 4194304,
              connection_keepalive: { interval: "30s", timeout: "5s" },
            },
          },
        },
      ),
    },
    circuit_breakers: {
      thresholds: [
        {
          priority: "DEFAULT",
          max_connections: 1024,
          max_pending_requests: 1024,
          max_requests: 4096,
          retry_budget: { budget_percent: { value: 20 }, min_retry_concurrency: 3 },
          track_remaining: true,
        },
      ],
    },
    outlier_detection: {
      consecutive_5xx: 5,
      consecutive_gateway_failure: 3,
      enforcing_consecutive_gateway_failure: 100,
      interval: "10s",
      base_ejection_time: "30s",
      max_ejection_time: "300s",
      max_ejection_percent: 50,
    },
    // Same signal as the Kubernetes readiness probe, but seen within seconds.
    health_checks: [
      {
        timeout: "1s",
        interval: "5s",
        interval_jitter: "1s",
        unhealthy_threshold: 2,
        healthy_threshold: 1,
        no_traffic_interval: "30s",
        http_health_check: { path: "/readyz" },
      },
    ],
    upstream_connection_options: { tcp_keepalive: { keepalive_time: 60, keepalive_interval: 10, keepalive_probes: 3 } },
  };
}

/** Builds the Envoy bootstrap (as a plain object) for the given registry. */
export function buildEnvoyConfig(registry, { enabled = ENABLED_SERVICES } = {}) {
  const services = gatewayServices(registry, enabled);
  if (services.length === 0) throw new Error("no uab.* service in the image: nothing to route");
  const deployables = [...new Set(services.map((s) => deployableOf(s.typeName)))].sort();
  const hcm = typed("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", {
    stat_prefix: "uab_gateway",
    // AUTO: HTTP/1.1 (REST, gRPC-Web, Connect) and HTTP/2 cleartext (gRPC) on one port.
    codec_type: "AUTO",
    use_remote_address: true,
    xff_num_trusted_hops: 0,
    generate_request_id: true,
    normalize_path: true,
    merge_slashes: true,
    path_with_escaped_slashes_action: "UNESCAPE_AND_REDIRECT",
    request_timeout: "300s",
    request_headers_timeout: "10s",
    stream_idle_timeout: "300s",
    drain_timeout: "10s",
    common_http_protocol_options: { idle_timeout: "3600s", headers_with_underscores_action: "REJECT_REQUEST" },
    http2_protocol_options: {
      max_concurrent_streams: 100,
      initial_stream_window_size: 65536,
      initial_connection_window_size: 1048576,
    },
    access_log: ACCESS_LOG,
    route_config: {
      name: "uab",
      validate_clusters: true,
      virtual_hosts: [
        {
          name: "uab",
          domains: ["*"],
          routes: routes(registry, services),
          typed_per_filter_config: {
            "envoy.filters.http.cors": typed("envoy.extensions.filters.http.cors.v3.CorsPolicy", {
              allow_origin_string_match: CORS_ALLOWED_ORIGINS,
              allow_methods: "GET, POST, PUT, PATCH, DELETE, OPTIONS",
              allow_headers: [
                "authorization",
                "content-type",
                "accept",
                "idempotency-key",
                "traceparent",
                "tracestate",
                "x-request-id",
                "x-user-agent",
                "x-grpc-web",
                "grpc-timeout",
                "connect-protocol-version",
                "connect-timeout-ms",
              ].join(","),
              expose_headers: [
                "grpc-status",
                "grpc-message",
                "grpc-status-details-bin",
                "x-request-id",
                "idempotent-replayed",
              ].join(","),
              max_age: "600",
            }),
          },
        },
      ],
    },
    http_filters: [
      {
        name: "envoy.filters.http.health_check",
        // The gateway's own probes: Envoy answers 200, or 503 once it is draining.
        typed_config: typed("envoy.extensions.filters.http.health_check.v3.HealthCheck", {
          pass_through_mode: false,
          headers: [{ name: ":path", string_match: { safe_regex: { regex: "^/(healthz|readyz)$" } } }],
        }),
      },
      { name: "envoy.filters.http.cors", typed_config: typed("envoy.extensions.filters.http.cors.v3.Cors") },
      { name: "envoy.filters.http.grpc_web", typed_config: typed("envoy.extensions.filters.http.grpc_web.v3.GrpcWeb") },
      {
        name: "envoy.filters.http.grpc_json_transcoder",
        typed_config: typed("envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder", {
          proto_descriptor: DESCRIPTOR_PATH,
          services: services.map((s) => s.typeName),
          // Canonical proto3 JSON, as Connect and the embedded dev gateway answer: lowerCamel
          // names, enum names, default values left out.
          print_options: {
            add_whitespace: false,
            always_print_primitive_fields: false,
            always_print_enums_as_ints: false,
            preserve_proto_field_names: false,
          },
          // gRPC errors become HTTP status + a google.rpc.Status JSON body.
          convert_grpc_status: true,
          // Only the declared google.api.http routes; POST /pkg.Service/Method stays Connect's.
          auto_mapping: false,
          ignore_unknown_query_parameters: false,
          query_param_unescape_plus: true,
          max_request_body_size: MAX_REQUEST_BYTES,
          max_response_body_size: MAX_RESPONSE_BYTES,
        }),
      },
      { name: "envoy.filters.http.router", typed_config: typed("envoy.extensions.filters.http.router.v3.Router") },
    ],
  });
  return {
    node: { id: "uab-gateway", cluster: "uab-gateway" },
    admin: {
      address: { socket_address: { address: "127.0.0.1", port_value: 9901 } },
    },
    static_resources: {
      listeners: [
        {
          name: "uab_http",
          address: { socket_address: { address: "0.0.0.0", port_value: SERVICE_PORT } },
          per_connection_buffer_limit_bytes: 1048576,
          filter_chains: [{ filters: [{ name: "envoy.filters.network.http_connection_manager", typed_config: hcm }] }],
        },
      ],
      clusters: deployables.map(cluster),
    },
    overload_manager: {
      resource_monitors: [
        {
          name: "envoy.resource_monitors.global_downstream_max_connections",
          typed_config: typed(
            "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
            {
              max_active_downstream_connections: 50000,
            },
          ),
        },
      ],
    },
  };
}

/** Renders envoy.yaml for a descriptor image (bytes). Deterministic: same image, same text. */
export function renderEnvoyYaml(imageBytes, options) {
  const config = buildEnvoyConfig(loadRegistry(imageBytes), options);
  const header = [
    "# Generated by deploy/envoy/generate.mjs from deploy/uab.binpb. DO NOT EDIT.",
    "# Regenerate: node scripts/proto.mjs generate && node deploy/envoy/generate.mjs",
    "",
  ].join("\n");
  const doc = new Document(config, { aliasDuplicateObjects: false });
  // Pseudo-header names (":path") are valid plain YAML, but quoted they read unambiguously
  // in every parser.
  visit(doc, {
    Scalar(_, node) {
      if (isScalar(node) && typeof node.value === "string" && node.value.startsWith(":")) node.type = "QUOTE_DOUBLE";
    },
  });
  return header + doc.toString({ lineWidth: 0, minContentWidth: 0 });
}

function main(argv) {
  const arg = (flag, fallback) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? resolve(argv[i + 1]) : fallback;
  };
  const image = arg("--image", DEFAULT_IMAGE);
  const out = arg("--out", DEFAULT_OUTPUT);
  const text = renderEnvoyYaml(readFileSync(image));
  if (argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(out, "utf8");
    } catch {}
    if (current !== text) {
      console.error(`${out} is out of date: run node deploy/envoy/generate.mjs`);
      process.exit(1);
    }
    console.log(`${out} is up to date`);
    return;
  }
  writeFileSync(out, text);
  console.log(`wrote ${out}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main(process.argv.slice(2));
