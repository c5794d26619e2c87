/**
 * The tenant setting never leaks through a connection pool: many concurrent transactions for
 * many tenants over a tiny pool, with failures injected in the middle of transactions (an
 * exception after set_config and a read, an SQL error, a write then an error), interleaved
 * with bare queries that set no tenant. Every read sees only its own tenant's rows; bare
 * queries, during and after the storm, see nothing. Done twice: with withTenant/withPlatform
 * directly on a 3-connection runtime-role pool, and through the full server stack over a
 * tenancy module whose pool has 3 connections (one of them held by the outbox relay's LISTEN).
 */
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { TokenVerifier } from "@uab/auth";
import { createLogger } from "@uab/core";
import { createDatabase, type Database, pgErrorCode, withPlatform, withTenant } from "@uab/db";
import { contractRegistry } from "@uab/proto";
import { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { type RunningServer, type StartedModule, startServer } from "@uab/server";
import { bearer } from "@uab/testing";
import { type Kysely, sql } from "kysely";
import { tenancyModule } from "../src/index.js";
import type { TenancyDatabase } from "../src/storage/tables.js";
import { AUDIENCE, type Harness, ISSUER, startHarness, userId } from "./harness.js";

const TENANTS = 20;
const REQUESTS = 400;
const PROJECTS_PER_TENANT = 2;

let h: Harness;
/** Tenant id → its project ids. */
const projects = new Map<string, string[]>();
let tenantIds: string[] = [];

class Injected extends Error {}

const pause = () => new Promise((r) => setTimeout(r, Math.floor(Math.random() * 3)));

interface Bare {
  pid: number;
  tenant: string | null;
  platform: string | null;
  tenants: number;
  projects: number;
  user: string;
}

/** A query outside any tenant transaction: what a pooled connection carries by itself. */
async function bare(db: Kysely<unknown>, holdMs = 0): Promise<Bare> {
  const r = await sql<Bare>`
    SELECT pg_backend_pid() AS pid,
           current_setting('uab.tenant_id', true) AS tenant,
           current_setting('uab.platform', true) AS platform,
           (SELECT count(*)::int FROM tenants) AS tenants,
           (SELECT count(*)::int FROM projects) AS projects,
           current_user AS user,
           pg_sleep(${holdMs / 1000}) IS NULL AS slept`.execute(db);
  const { pid, tenant, platform, tenants, projects, user } = r.rows[0]!;
  return { pid, tenant, platform, tenants, projects, user };
}

function expectClean(b: Bare): void {
  expect(["", null]).toContain(b.tenant);
  expect(["", null]).toContain(b.platform);
  expect({ tenants: b.tenants, projects: b.projects, user: b.user }).toEqual({
    tenants: 0,
    projects: 0,
    user: "uab_tenancy",
  });
}

/** Runs enough concurrent bare queries, each holding its connection a while, to visit every pooled connection. */
async function visitEveryConnection(db: Kysely<unknown>, n: number): Promise<Set<number>> {
  const seen = await Promise.all(Array.from({ length: n }, () => bare(db, 150)));
  for (const b of seen) expectClean(b);
  return new Set(seen.map((b) => b.pid));
}

beforeAll(async () => {
  h = await startHarness();
  const admin = h.client(h.adminToken);
  const created = await Promise.all(
    Array.from({ length: TENANTS }, (_, i) =>
      admin.createTenant({ slug: `leak-${i}`, displayName: `Leak ${i}`, ownerUserId: userId() }),
    ),
  );
  tenantIds = created.map((c) => c.tenant!.id);
  await Promise.all(
    tenantIds.map(async (t) => {
      const ids: string[] = [];
      for (let p = 0; p < PROJECTS_PER_TENANT; p++) {
        const res = await admin.createProject({ tenantId: t, slug: `p${p}`, displayName: `P${p}` });
        ids.push(res.project!.id);
      }
      projects.set(t, ids);
    }),
  );
});

afterAll(async () => {
  await h?.close();
});

describe("withTenant over a 3-connection runtime-role pool", () => {
  let rt: Database<TenancyDatabase>;
  beforeAll(() => {
    rt = createDatabase<TenancyDatabase>({ url: h.database.url, schema: "tenancy", role: "uab_tenancy", max: 3 });
  });
  afterAll(async () => {
    await rt?.close();
  });

  it(`${REQUESTS} concurrent transactions for ${TENANTS} tenants with injected failures never mix tenants`, async () => {
    const outcomes = { ok: 0, injected: 0, sqlError: 0, bare: 0 };
    const readOwn = async (tx: Kysely<TenancyDatabase>, t: string) => {
      const setting = await sql<{ s: string }>`select current_setting('uab.tenant_id', true) as s`.execute(tx);
      expect(setting.rows[0]!.s).toBe(t);
      const ten = await tx.selectFrom("tenants").select(["id", "tenant_id"]).execute();
      await pause();
      const prj = await tx.selectFrom("projects").select(["id", "tenant_id"]).orderBy("id").execute();
      expect(ten).toEqual([{ id: t, tenant_id: t }]);
      expect(prj.map((p) => p.tenant_id)).toEqual(Array(PROJECTS_PER_TENANT).fill(t));
      expect(prj.map((p) => p.id).sort()).toEqual([...projects.get(t)!].sort());
    };
    const task = async (i: number) => {
      const t = tenantIds[i % TENANTS]!;
      switch (i % 6) {
        case 0:
          await withTenant(rt.db, t, (tx) => readOwn(tx, t));
          outcomes.ok++;
          return;
        case 1: {
          // An exception after set_config and a read.
          const e = await withTenant(rt.db, t, async (tx) => {
            await readOwn(tx, t);
            throw new Injected(`boom ${i}`);
          }).catch((err: unknown) => err);
          expect(e).toBeInstanceOf(Injected);
          outcomes.injected++;
          return;
        }
        case 2: {
          // An SQL error after set_config and a read: the transaction is aborted server-side.
          const e = await withTenant(rt.db, t, async (tx) => {
            await readOwn(tx, t);
            await sql`select 1 / 0`.execute(tx);
          }).catch((err: unknown) => err);
          expect(pgErrorCode(e)).toBe("22012");
          outcomes.sqlError++;
          return;
        }
        case 3: {
          // A write, then an SQL error on a missing table: everything rolls back.
          const e = await withTenant(rt.db, t, async (tx) => {
            await tx
              .updateTable("projects")
              .set({ display_name: `changed ${i}` })
              .execute();
            await readOwn(tx, t);
            await sql`select * from no_such_table`.execute(tx);
          }).catch((err: unknown) => err);
          expect(pgErrorCode(e)).toBe("42P01");
          outcomes.sqlError++;
          return;
        }
        case 4: {
          // Platform scope, then a failure: the platform flag must not survive either.
          const e = await withPlatform(rt.db, async (tx) => {
            const all = await tx.selectFrom("tenants").select("id").execute();
            expect(all.length).toBe(TENANTS);
            await pause();
            throw new Injected("platform boom");
          }).catch((err: unknown) => err);
          expect(e).toBeInstanceOf(Injected);
          outcomes.injected++;
          return;
        }
        default:
          // A query with no tenant, on whatever connection the pool hands out right now.
          expectClean(await bare(rt.db as Kysely<unknown>));
          outcomes.bare++;
      }
    };
    const results = await Promise.allSettled(Array.from({ length: REQUESTS }, (_, i) => task(i)));
    const failures = results.filter((r) => r.status === "rejected");
    expect(failures.map((f) => String((f as PromiseRejectedResult).reason))).toEqual([]);
    expect(outcomes.ok + outcomes.injected + outcomes.sqlError + outcomes.bare).toBe(REQUESTS);
    expect(outcomes.injected).toBeGreaterThan(0);
    expect(outcomes.sqlError).toBeGreaterThan(0);

    // Afterwards no connection of the pool carries a tenant (or the platform flag).
    expect(rt.pool.totalCount).toBeLessThanOrEqual(3);
    const pids = await visitEveryConnection(rt.db as Kysely<unknown>, 6);
    expect(pids.size).toBe(3);
    // The failed writes were rolled back.
    const changed = await h.adminDb
      .selectFrom("projects")
      .select("id")
      .where("display_name", "like", "changed%")
      .execute();
    expect(changed).toEqual([]);
  });
});

describe("through the server over a tenancy module with a 3-connection pool", () => {
  let module: StartedModule;
  let server: RunningServer;
  let client: Client<typeof TenancyService>;

  beforeAll(async () => {
    const logger = createLogger({ service: "pool-leak", level: "silent" });
    module = await tenancyModule.start({
      databaseUrl: h.database.url,
      databaseRole: "uab_tenancy",
      poolSize: 3,
      bus: h.bus,
      logger,
      env: { UAB_TENANCY_PURGE_INTERVAL_SECONDS: "3600" },
    });
    server = await startServer({
      logger,
      port: 0,
      services: module.services,
      verifier: new TokenVerifier({ keys: { jwks: { keys: [h.key.publicJwk] } }, issuer: ISSUER, audience: AUDIENCE }),
      authorizer: h.authorizer,
      registry: contractRegistry,
    });
    client = createClient(
      TenancyService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "2", interceptors: [bearer(h.adminToken)] }),
    );
  });
  afterAll(async () => {
    await server?.close(1000);
    await module?.close();
  });

  it(`${REQUESTS} concurrent RPCs for ${TENANTS} tenants with failing transactions stay isolated`, async () => {
    const codes = new Map<string, number>();
    const count = (k: string) => codes.set(k, (codes.get(k) ?? 0) + 1);
    const task = async (i: number) => {
      const t = tenantIds[i % TENANTS]!;
      const other = tenantIds[(i + 1) % TENANTS]!;
      switch (i % 5) {
        case 0: {
          const res = await client.listProjects({ tenantId: t, pageSize: 100 });
          expect(res.projects.map((p) => p.tenantId)).toEqual(Array(PROJECTS_PER_TENANT).fill(t));
          expect(res.projects.map((p) => p.id).sort()).toEqual([...projects.get(t)!].sort());
          count("ok");
          return;
        }
        case 1: {
          const res = await client.getTenant({ tenantId: t });
          expect(res.tenant?.id).toBe(t);
          count("ok");
          return;
        }
        case 2: {
          // The tenant is read and locked, then the etag check throws inside the transaction.
          const e = await client
            .updateTenant({ tenantId: t, displayName: "x", etag: "999999", updateMask: { paths: ["display_name"] } })
            .catch((err: unknown) => err);
          expect(ConnectError.from(e).code).toBe(Code.Aborted);
          count("aborted");
          return;
        }
        case 3: {
          // A unique violation: an SQL error in the middle of the transaction.
          const e = await client
            .createProject({ tenantId: t, slug: "p0", displayName: "dup" })
            .catch((err: unknown) => err);
          expect(ConnectError.from(e).code).toBe(Code.AlreadyExists);
          count("exists");
          return;
        }
        default: {
          // Another tenant's project, asked for under this tenant: invisible.
          const e = await client
            .getProject({ tenantId: t, projectId: projects.get(other)![0]! })
            .catch((err: unknown) => err);
          expect(ConnectError.from(e).code).toBe(Code.NotFound);
          count("notFound");
        }
      }
    };
    const results = await Promise.allSettled(Array.from({ length: REQUESTS }, (_, i) => task(i)));
    const failures = results.filter((r) => r.status === "rejected");
    expect(failures.map((f) => String((f as PromiseRejectedResult).reason))).toEqual([]);
    expect(Object.fromEntries(codes)).toEqual({
      ok: (REQUESTS * 2) / 5,
      aborted: REQUESTS / 5,
      exists: REQUESTS / 5,
      notFound: REQUESTS / 5,
    });

    // The module's own pool: every connection not held by the relay's LISTEN is clean.
    const db = module.services[0]!.db!;
    const pids = await visitEveryConnection(db, 6);
    expect(pids.size).toBeGreaterThanOrEqual(2);
    // And the service still works afterwards.
    expect((await client.listProjects({ tenantId: tenantIds[0]! })).projects).toHaveLength(PROJECTS_PER_TENANT);
  });
});
