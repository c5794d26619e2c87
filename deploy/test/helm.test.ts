// The Helm chart, checked with a real helm (v4, from an npm package): lint, render with the
// default values and with every service enabled, assert the rendered objects, and prove the
// values schema rejects bad values.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { parse, parseAllDocuments, stringify } from "yaml";
import { staleCopies, stripSourceInfo } from "../../helm/uab/sync.mjs";
import { serveConfig } from "../../libs/cli/src/serve.js";
import { deployableOf, httpBindings, imageServices, loadRegistry } from "../envoy/generate.mjs";
import { helmBinary } from "./helm-bin.js";

// biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are walked freely
type Any = any;

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const chart = join(root, "helm", "uab");
const values: Any = parse(readFileSync(join(chart, "values.yaml"), "utf8"));
const schema: Any = JSON.parse(readFileSync(join(chart, "values.schema.json"), "utf8"));
const allServices = Object.keys(values.services);

let helm: string;
let work: string;
let rendered = 0;

function run(args: string[]): { status: number; stdout: string; stderr: string } {
  const res = spawnSync(helm, args, {
    cwd: root,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: work,
      HELM_CACHE_HOME: join(work, "cache"),
      HELM_CONFIG_HOME: join(work, "config"),
      HELM_DATA_HOME: join(work, "data"),
    },
  });
  return { status: res.status ?? -1, stdout: res.stdout, stderr: res.stderr };
}

function valuesFile(name: string, v: unknown): string {
  const path = join(work, name);
  writeFileSync(path, stringify(v));
  return path;
}

/** `helm template` → the rendered objects (hooks included). */
function render(overrides?: unknown): Any[] {
  const args = ["template", "uab", chart, "--namespace", "uab"];
  if (overrides) args.push("-f", valuesFile(`values-${++rendered}.yaml`, overrides));
  const res = run(args);
  if (res.status !== 0) throw new Error(`helm template failed: ${res.stderr}`);
  return parseAllDocuments(res.stdout)
    .map((d) => d.toJS())
    .filter(Boolean);
}

const find = (objs: Any[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name);
const envOf = (container: Any) => new Map<string, Any>(container.env.map((e: Any) => [e.name, e]));

/** Asserts one service's Deployment, Service, HPA and PDB. */
function expectService(objs: Any[], name: string, { hpa = true } = {}) {
  const deploy = find(objs, "Deployment", `uab-${name}`);
  expect(deploy).toBeDefined();
  const pod = deploy.spec.template.spec;
  const c = pod.containers[0];
  expect(c.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "http" });
  expect(c.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "http" });
  expect(c.startupProbe.httpGet.path).toBe("/healthz");
  expect(c.ports).toEqual([{ name: "http", containerPort: 8080, protocol: "TCP" }]);
  expect(c.resources.requests.cpu).toBeDefined();
  expect(c.resources.limits.memory).toBeDefined();
  expect(pod.securityContext.runAsNonRoot).toBe(true);
  expect(c.securityContext).toMatchObject({
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ["ALL"] },
  });
  const env = envOf(c);
  expect(env.get("UAB_SERVICE").value).toBe(name);
  expect(env.get("UAB_SERVICES").value).toBe(name); // what `uab serve` reads
  expect(env.get("PORT").value).toBe("8080");
  expect(env.get("UAB_HOST").value).toBe("0.0.0.0");
  expect(env.get("DATABASE_URL").valueFrom.secretKeyRef.key).toBe("DATABASE_URL");
  expect(env.get("NATS_URL").valueFrom.secretKeyRef).toEqual({ name: "uab-env", key: "NATS_URL" });
  expect(c.envFrom).toEqual([{ configMapRef: { name: "uab-config" } }]);
  // The pods' labels are what the Service, PDB (and HPA via the Deployment) select.
  const labels = deploy.spec.template.metadata.labels;
  expect(deploy.spec.selector.matchLabels).toEqual(labels);

  const svc = find(objs, "Service", `uab-${name}`);
  expect(svc.spec.selector).toEqual(labels);
  expect(svc.spec.clusterIP).toBe("None");
  expect(svc.spec.ports[0]).toMatchObject({ port: 8080, targetPort: "http", appProtocol: "kubernetes.io/h2c" });

  const pdb = find(objs, "PodDisruptionBudget", `uab-${name}`);
  expect(pdb.spec.selector.matchLabels).toEqual(labels);

  const autoscaler = find(objs, "HorizontalPodAutoscaler", `uab-${name}`);
  if (hpa) {
    expect(autoscaler.spec.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: `uab-${name}` });
    expect(deploy.spec.replicas).toBeUndefined(); // the HPA owns the count
  } else {
    expect(autoscaler).toBeUndefined();
    expect(deploy.spec.replicas).toBeGreaterThan(0);
  }
}

/** The migration Job's containers in run order. */
function migrationSteps(objs: Any[]): Any[] {
  const job = find(objs, "Job", "uab-migrate");
  expect(job).toBeDefined();
  expect(job.metadata.annotations["helm.sh/hook"]).toBe("pre-install,pre-upgrade");
  expect(job.spec.template.spec.restartPolicy).toBe("Never");
  return [...(job.spec.template.spec.initContainers ?? []), ...job.spec.template.spec.containers];
}

beforeAll(() => {
  helm = helmBinary();
  work = mkdtempSync(join(tmpdir(), "uab-helm-"));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe("helm chart", () => {
  test("helm lint --strict passes", () => {
    const res = run(["lint", "--strict", chart]);
    expect(res.stderr + res.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    expect(res.status).toBe(0);
  });

  test("default values: the implemented services (audit, authorization, tenancy), the migration hook and the gateway", () => {
    const objs = render();
    const implemented = ["audit", "authorization", "identity", "tenancy"];
    for (const name of implemented) expectService(objs, name);
    for (const name of allServices.filter((n) => !implemented.includes(n)))
      expect(find(objs, "Deployment", `uab-${name}`)).toBeUndefined();
    expect(migrationSteps(objs).map((c) => c.command)).toEqual(
      implemented.map((name) => ["node", "libs/cli/dist/bin.js", "migrate", "--service", name]),
    );
    // pre-install: the Job cannot use the release's Secret, so a hook Secret runs first.
    const hookSecret = find(objs, "Secret", "uab-migration");
    expect(Number(hookSecret.metadata.annotations["helm.sh/hook-weight"])).toBeLessThan(0);
    expect(hookSecret.stringData.DATABASE_URL).toBe(values.postgres.url);
    expect(find(objs, "Secret", "uab-env").stringData).toEqual({
      DATABASE_URL: values.postgres.url,
      NATS_URL: values.nats.url,
    });
  });

  test("the encryption key ring: generated once into uab-encryption, or an existing Secret by reference", () => {
    const envOf = (objs: Any[], name: string) =>
      find(objs, "Deployment", `uab-${name}`).spec.template.spec.containers[0].env as Any[];
    const generated = render();
    const secret = find(generated, "Secret", "uab-encryption");
    expect(secret.metadata.annotations["helm.sh/resource-policy"]).toBe("keep");
    const ring = Buffer.from(secret.data.UAB_ENCRYPTION_KEYS, "base64").toString("utf8");
    expect(ring).toMatch(/^k1:[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(ring.slice(3), "base64")).toHaveLength(32);
    for (const name of ["audit", "authorization", "tenancy"]) {
      expect(envOf(generated, name).find((e) => e.name === "UAB_ENCRYPTION_KEYS").valueFrom.secretKeyRef).toEqual({
        name: "uab-encryption",
        key: "UAB_ENCRYPTION_KEYS",
      });
    }
    expect(envOf(generated, "audit").find((e) => e.name === "UAB_AUDIT_SIGNING_KEY")).toBeUndefined();

    const referenced = render({
      encryption: { existingSecret: "my-keys" },
      audit: { signingKeySecret: "my-audit-key" },
    });
    expect(find(referenced, "Secret", "uab-encryption")).toBeUndefined();
    expect(envOf(referenced, "tenancy").find((e) => e.name === "UAB_ENCRYPTION_KEYS").valueFrom.secretKeyRef.name).toBe(
      "my-keys",
    );
    expect(envOf(referenced, "audit").find((e) => e.name === "UAB_AUDIT_SIGNING_KEY").valueFrom.secretKeyRef).toEqual({
      name: "my-audit-key",
      key: "UAB_AUDIT_SIGNING_KEY",
    });
    expect(envOf(referenced, "tenancy").find((e) => e.name === "UAB_AUDIT_SIGNING_KEY")).toBeUndefined();
  });

  test("every service enabled: each has a Deployment, Service, HPA and PDB and is migrated in order", () => {
    const objs = render({ services: Object.fromEntries(allServices.map((n) => [n, { enabled: true }])) });
    for (const name of allServices) expectService(objs, name);
    const sorted = [...allServices].sort();
    expect(migrationSteps(objs).map((c) => c.command.at(-1))).toEqual(sorted);
    expect(objs.filter((o) => o.kind === "Deployment")).toHaveLength(allServices.length + 1);
  });

  test("a service pod gets every variable `uab serve` requires", () => {
    const objs = render({ config: { UAB_BOOTSTRAP_ADMIN_IDS: "usr_admin" } });
    const container = find(objs, "Deployment", "uab-tenancy").spec.template.spec.containers[0];
    const provided = new Set([...envOf(container).keys(), ...Object.keys(find(objs, "ConfigMap", "uab-config").data)]);
    const required = Object.entries(serveConfig)
      .filter(([, field]) => {
        try {
          field.parse(undefined);
          return false;
        } catch {
          return true;
        }
      })
      .map(([name]) => name);
    expect(required).toContain("DATABASE_URL");
    for (const name of required) expect([name, provided.has(name)]).toEqual([name, true]);
    for (const name of Object.keys(serveConfig)) {
      const value = envOf(container).get(name)?.value ?? find(objs, "ConfigMap", "uab-config").data[name];
      if (typeof value === "string")
        expect(() => serveConfig[name as keyof typeof serveConfig].parse(value)).not.toThrow();
    }
  });

  test("services other than authorization ask it over Connect with the service token from a Secret", () => {
    const objs = render({ authorization: { serviceTokenSecret: "uab-service-token" } });
    const tenancy = envOf(find(objs, "Deployment", "uab-tenancy").spec.template.spec.containers[0]);
    expect(tenancy.get("UAB_AUTHORIZATION_URL")?.value).toBe("http://uab-authorization:8080");
    expect(tenancy.get("UAB_SERVICE_TOKEN")?.valueFrom).toEqual({
      secretKeyRef: { name: "uab-service-token", key: "UAB_SERVICE_TOKEN" },
    });
    const authz = envOf(find(objs, "Deployment", "uab-authorization").spec.template.spec.containers[0]);
    expect(authz.has("UAB_AUTHORIZATION_URL")).toBe(false);
    expect(authz.has("UAB_SERVICE_TOKEN")).toBe(false);
  });

  test("per-service overrides beat the defaults, false included", () => {
    const objs = render({
      services: {
        tenancy: {
          enabled: true,
          autoscaling: { enabled: false },
          replicas: 3,
          podDisruptionBudget: { minAvailable: 1 },
          env: { UAB_TENANCY_RESTORE_WINDOW_DAYS: 7 },
        },
      },
    });
    expectService(objs, "tenancy", { hpa: false });
    const deploy = find(objs, "Deployment", "uab-tenancy");
    expect(deploy.spec.replicas).toBe(3);
    expect(envOf(deploy.spec.template.spec.containers[0]).get("UAB_TENANCY_RESTORE_WINDOW_DAYS").value).toBe("7");
    expect(find(objs, "PodDisruptionBudget", "uab-tenancy").spec).not.toHaveProperty("maxUnavailable");
  });

  test("existing Secrets replace URLs in values, for services and the migration", () => {
    const objs = render({
      postgres: { existingSecret: "pg", url: "", migration: { runtimePasswordsSecret: "pw" } },
      nats: { existingSecret: "nats", url: "" },
    });
    const env = envOf(find(objs, "Deployment", "uab-tenancy").spec.template.spec.containers[0]);
    expect(env.get("DATABASE_URL").valueFrom.secretKeyRef).toEqual({ name: "pg", key: "DATABASE_URL" });
    expect(env.get("NATS_URL").valueFrom.secretKeyRef).toEqual({ name: "nats", key: "NATS_URL" });
    expect(find(objs, "Secret", "uab-env")).toBeUndefined();
    expect(find(objs, "Secret", "uab-migration")).toBeUndefined();
    expect(envOf(migrationSteps(objs)[0]).get("DATABASE_URL").valueFrom.secretKeyRef).toEqual({
      name: "pg",
      key: "DATABASE_URL",
    });
  });

  test("the gateway mounts envoy.yaml and the descriptor image from its ConfigMap", () => {
    const objs = render();
    const cm = find(objs, "ConfigMap", "uab-gateway");
    expect(cm.data["envoy.yaml"]).toBe(
      readFileSync(join(root, "deploy", "envoy", "envoy.yaml"), "utf8").replace(/\n$/, ""),
    );
    const image = readFileSync(join(root, "deploy", "uab.binpb"));
    const mounted = Buffer.from(cm.binaryData["uab.binpb"], "base64");
    expect(mounted.equals(stripSourceInfo(image))).toBe(true);
    // Without source info, but the same services and REST routes for the transcoder.
    const full = loadRegistry(image);
    const slim = loadRegistry(mounted);
    expect(imageServices(slim).map((x) => x.typeName)).toEqual(imageServices(full).map((x) => x.typeName));
    const routes = (r: ReturnType<typeof loadRegistry>) =>
      httpBindings(r).map((b) => `${b.verb} ${b.path} ${b.rpc} ${b.body}`);
    expect(routes(slim)).toEqual(routes(full));
    expect([...slim.files].every((f) => f.proto.sourceCodeInfo === undefined)).toBe(true);
    // Kubernetes caps a ConfigMap's data + binaryData at 1 MiB.
    const size = Buffer.byteLength(cm.data["envoy.yaml"]) + mounted.length;
    expect(size).toBeLessThan(1024 * 1024);
    const pod = find(objs, "Deployment", "uab-gateway").spec.template.spec;
    const mounts = new Map(pod.containers[0].volumeMounts.map((m: Any) => [m.mountPath, m.name]));
    expect(mounts.get("/etc/uab")).toBe("descriptor");
    expect(mounts.get("/etc/envoy")).toBe("envoy-config");
    expect(pod.containers[0].args).toContain("/etc/envoy/envoy.yaml");
    expect(pod.containers[0].readinessProbe.httpGet.port).toBe("http");
    expect(find(objs, "Service", "uab-gateway").spec.ports[0].port).toBe(8080);
  });

  test("files/ holds the current envoy.yaml and descriptor image (node helm/uab/sync.mjs)", () => {
    expect(staleCopies().map((s: { to: string }) => s.to)).toEqual([]);
  });

  test("values and schema list every deployable in the contract image", () => {
    const registry = loadRegistry(readFileSync(join(root, "deploy", "uab.binpb")));
    const deployables = [...new Set(imageServices(registry).map((s) => deployableOf(s.typeName)))];
    for (const d of deployables) expect(allServices).toContain(d);
    expect(Object.keys(schema.properties.services.properties).sort()).toEqual([...allServices].sort());
  });

  test("the schema rejects unknown keys and wrong types", () => {
    const bad: [string, unknown, RegExp][] = [
      ["unknown key", { services: { tenancy: { replica: 3 } } }, /replica/],
      ["unknown service", { services: { tenancyy: { enabled: true } } }, /tenancyy/],
      ["unknown top-level key", { postgresql: { url: "postgres://x" } }, /postgresql/],
      ["wrong type", { services: { tenancy: { replicas: "two" } } }, /replicas/],
      ["wrong type (bool)", { gateway: { enabled: "sure" } }, /enabled/],
      ["bad URL", { postgres: { url: "mysql://x" } }, /url/],
    ];
    for (const [what, v, mentions] of bad) {
      const res = run(["template", "uab", chart, "-f", valuesFile("bad.yaml", v)]);
      expect([what, res.status]).toEqual([what, 1]);
      expect(res.stderr).toMatch(/schema/i);
      expect(res.stderr).toMatch(mentions);
    }
  });
});
