import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { newId, runWithRequestContext, startTelemetry, withSpan } from "@uab/core";
import { createDatabase, migrateService, withPlatform, withTenant } from "@uab/db";
import { contractRegistry } from "@uab/proto";
import { PrincipalType } from "@uab/proto/gen/uab/events/v1/event_pb.js";
import { TenantPurgedSchema } from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import { eventually } from "@uab/testing";
import { sql, type Transaction } from "kysely";
import pg from "pg";
import {
  eventSubject,
  handleOnce,
  InProcessBus,
  OUTBOX_CHANNEL,
  startOutboxRelay,
  subjectMatches,
  unpackPayload,
} from "../src/index.js";
import {
  appendTestEvent,
  countRows,
  outboxCount,
  recordEffect,
  SERVICE,
  setUpDatabase,
  type TestDB,
  type TestEnv,
  testMigrations,
} from "./support.js";

let env: TestEnv;

beforeAll(async () => {
  startTelemetry();
  env = await setUpDatabase();
});

afterAll(async () => {
  await env?.close();
});

describe("migrations", () => {
  it("enable and force row-level security on every table with tenant_id", async () => {
    const r = await sql<{ relname: string; rls: boolean; forced: boolean }>`
      select c.relname, c.relrowsecurity as rls, c.relforcerowsecurity as forced
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
      join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id'
      where n.nspname = ${SERVICE} and c.relkind = 'r' order by c.relname`.execute(env.db);
    expect(r.rows.map((x) => x.relname)).toEqual(["effects", "inbox", "outbox"]);
    for (const row of r.rows) expect([row.relname, row.rls, row.forced]).toEqual([row.relname, true, true]);
  });

  it("go down and up again", async () => {
    const tables = async () => {
      const c = new pg.Client({ connectionString: env.testDb.url });
      await c.connect();
      try {
        const r = await c.query(
          "select tablename from pg_tables where schemaname = $1 and tablename in ('outbox','inbox') order by 1",
          [SERVICE],
        );
        const f = await c.query(
          "select count(*)::int as n from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = $1 and proname = 'uab_events_outbox_notify'",
          [SERVICE],
        );
        return { tables: r.rows.map((x) => x.tablename), functions: f.rows[0].n };
      } finally {
        await c.end();
      }
    };
    await env.database.close();
    await migrateService({ url: env.testDb.url, service: SERVICE, migrations: testMigrations(), direction: "reset" });
    expect(await tables()).toEqual({ tables: [], functions: 0 });
    await migrateService({ url: env.testDb.url, service: SERVICE, migrations: testMigrations() });
    expect(await tables()).toEqual({ tables: ["inbox", "outbox"], functions: 1 });
    env = { ...env, ...(await reopen()) };
  });
});

async function reopen(): Promise<Pick<TestEnv, "database" | "db">> {
  const database = createDatabase<TestDB>({ url: env.testDb.url, schema: SERVICE, role: `uab_${SERVICE}` });
  return { database, db: database.db };
}

describe("outbox row-level security", () => {
  it("hides other tenants' rows and platform rows from a tenant", async () => {
    const a = newId("tenant");
    const b = newId("tenant");
    await withTenant(env.db, a, (tx) => appendTestEvent(tx, "rls", a));
    await withTenant(env.db, b, (tx) => appendTestEvent(tx, "rls", b));
    await withPlatform(env.db, (tx) => appendTestEvent(tx, "rls"));
    const seen = await withTenant(env.db, a, (tx) => tx.selectFrom("outbox").select("tenant_id").execute());
    expect(seen).toEqual([{ tenant_id: a }]);
    const none = await env.db.selectFrom("outbox").select("id").execute();
    expect(none).toEqual([]);
    expect(await outboxCount(env.db)).toBe(3);
    await withPlatform(env.db, (tx) => tx.deleteFrom("outbox").execute());
  });

  it("rejects a platform event or another tenant's event from a tenant transaction", async () => {
    const a = newId("tenant");
    await expect(withTenant(env.db, a, (tx) => appendTestEvent(tx, "rls"))).rejects.toThrow(/row-level security/);
    await expect(withTenant(env.db, a, (tx) => appendTestEvent(tx, "rls", newId("tenant")))).rejects.toThrow(
      /row-level security/,
    );
    expect(await outboxCount(env.db)).toBe(0);
  });

  it("scopes the inbox the same way", async () => {
    const a = newId("tenant");
    await withTenant(env.db, a, (tx) =>
      tx
        .insertInto("inbox")
        .values({ consumer: "rls", event_id: newId("event"), tenant_id: a })
        .execute(),
    );
    await expect(
      withTenant(env.db, a, (tx) =>
        tx
          .insertInto("inbox")
          .values({ consumer: "rls", event_id: newId("event"), tenant_id: null })
          .execute(),
      ),
    ).rejects.toThrow(/row-level security/);
    expect(await withTenant(env.db, newId("tenant"), (tx) => tx.selectFrom("inbox").selectAll().execute())).toEqual([]);
    expect(await countRows(env.db, "inbox", "rls")).toBe(1);
  });

  it("notifies the outbox channel with the schema on commit only", async () => {
    const client = await env.database.pool.connect();
    const payloads: string[] = [];
    client.on("notification", (n) => payloads.push(`${n.channel}:${n.payload}`));
    try {
      await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
      const a = newId("tenant");
      await withTenant(env.db, a, async (tx) => {
        await appendTestEvent(tx, "notify", a);
        await appendTestEvent(tx, "notify", a);
        throw new Error("rollback");
      }).catch(() => undefined);
      await withTenant(env.db, a, async (tx) => {
        await appendTestEvent(tx, "notify", a);
        await appendTestEvent(tx, "notify", a);
      });
      await eventually(() => payloads.length > 0, 3_000);
      // One transaction, one notification; the rolled-back one sent none.
      await new Promise((r) => setTimeout(r, 100));
      expect(payloads).toEqual([`${OUTBOX_CHANNEL}:${SERVICE}`]);
    } finally {
      await client.query(`UNLISTEN ${OUTBOX_CHANNEL}`);
      client.release();
      await withPlatform(env.db, (tx) => tx.deleteFrom("outbox").execute());
    }
  });
});

describe("appendEvent", () => {
  it("builds the envelope from the request context and the active trace", async () => {
    const tenant = newId("tenant");
    let traceId = "";
    const event = await runWithRequestContext(
      {
        requestId: "req_test",
        tenantId: tenant,
        ip: "203.0.113.9",
        userAgent: "jest",
        principal: {
          id: "usr_1",
          type: "user",
          tenantId: tenant,
          sessionId: "ses_1",
          impersonatorId: "usr_admin",
          amr: ["pwd"],
        },
      },
      () =>
        withSpan("request", {}, async (span) => {
          traceId = span.spanContext().traceId;
          return withTenant(env.db, tenant, (tx) => appendTestEvent(tx, "tenancy", tenant));
        }),
    );
    expect(event.id).toMatch(/^evt_/);
    expect(event.type).toBe("uab.tenancy.v1.TenantPurged");
    expect(event.source).toBe("tenancy");
    expect(event.tenantId).toBe(tenant);
    expect(event.requestId).toBe("req_test");
    expect(event.schemaVersion).toBe(1);
    expect(event.resource).toMatchObject({ type: "tenancy.tenant", id: tenant, displayName: "Acme" });
    expect(event.actor).toMatchObject({
      principalId: "usr_1",
      principalType: PrincipalType.USER,
      principalTenantId: tenant,
      sessionId: "ses_1",
      impersonatorId: "usr_admin",
      ipAddress: "203.0.113.9",
      userAgent: "jest",
    });
    expect(event.trace?.traceparent).toContain(traceId);
    expect(unpackPayload(event, TenantPurgedSchema)).toMatchObject({ tenantId: tenant, slug: "slug-tenancy" });
    expect(unpackPayload(event, contractRegistry)?.$typeName).toBe("uab.tenancy.v1.TenantPurged");

    const row = await withPlatform(env.db, (tx) =>
      tx.selectFrom("outbox").selectAll().where("id", "=", event.id).executeTakeFirstOrThrow(),
    );
    expect(row.subject).toBe(`uab.events.tenancy.${tenant}.TenantPurged`);
    expect(row.type).toBe("uab.tenancy.v1.TenantPurged");
    expect(row.headers.traceparent).toBe(event.trace?.traceparent);
    await withPlatform(env.db, (tx) => tx.deleteFrom("outbox").execute());
  });

  it("uses the system actor and the platform subject outside a request", async () => {
    const event = await withPlatform(env.db, (tx) => appendTestEvent(tx, "tenancy"));
    expect(event.actor).toMatchObject({ principalId: "system", principalType: PrincipalType.SYSTEM });
    expect(event.tenantId).toBe("");
    const row = await withPlatform(env.db, (tx) => tx.selectFrom("outbox").select("subject").executeTakeFirstOrThrow());
    expect(row.subject).toBe("uab.events.tenancy.platform.TenantPurged");
    await withPlatform(env.db, (tx) => tx.deleteFrom("outbox").execute());
  });

  it("refuses to run outside a transaction", async () => {
    // Deliberately the wrong executor: a plain Kysely, not a transaction.
    await expect(appendTestEvent(env.db as unknown as Transaction<TestDB>, "tenancy")).rejects.toThrow(
      /inside the transaction/,
    );
  });
});

describe("handleOnce", () => {
  it("applies an event once per consumer, in the event's tenant", async () => {
    const tenant = newId("tenant");
    const event = await withTenant(env.db, tenant, (tx) => appendTestEvent(tx, "once", tenant));
    const delivered = { event, subject: "s", deliveryCount: 1, headers: {} };
    const seenTenants: string[] = [];
    const fn = async (tx: Parameters<typeof recordEffect>[0], e: typeof event) => {
      const r = await sql<{ t: string }>`select current_setting('uab.tenant_id', true) as t`.execute(tx);
      seenTenants.push(r.rows[0]?.t ?? "");
      await recordEffect(tx, "once", e);
    };
    expect(await handleOnce(env.db, "once", delivered, fn)).toBe(true);
    expect(await handleOnce(env.db, "once", { ...delivered, deliveryCount: 2 }, fn)).toBe(false);
    expect(await handleOnce(env.db, "once-other", delivered, async () => undefined)).toBe(true);
    expect(seenTenants).toEqual([tenant]);
    expect(await countRows(env.db, "effects", "once")).toBe(1);
    await withPlatform(env.db, (tx) => tx.deleteFrom("outbox").execute());
  });

  it("rolls the inbox row back with a failing effect", async () => {
    const event = await withPlatform(env.db, (tx) => appendTestEvent(tx, "once"));
    const delivered = { event, subject: "s", deliveryCount: 1, headers: {} };
    await expect(handleOnce(env.db, "fails", delivered, async () => Promise.reject(new Error("boom")))).rejects.toThrow(
      "boom",
    );
    expect(await countRows(env.db, "inbox", "fails")).toBe(0);
    expect(await handleOnce(env.db, "fails", delivered, (tx, e) => recordEffect(tx, "fails", e))).toBe(true);
    expect(await countRows(env.db, "effects", "fails")).toBe(1);
    await withPlatform(env.db, (tx) => tx.deleteFrom("outbox").execute());
  });
});

describe("subjects", () => {
  it("builds subjects and rejects tokens NATS would split", () => {
    expect(eventSubject("tenancy", "ten_1", "uab.tenancy.v1.TenantCreated")).toBe(
      "uab.events.tenancy.ten_1.TenantCreated",
    );
    expect(eventSubject("tenancy", undefined, "uab.tenancy.v1.TenantCreated")).toBe(
      "uab.events.tenancy.platform.TenantCreated",
    );
    expect(() => eventSubject("ten.ancy", "ten_1", "X")).toThrow();
    expect(() => eventSubject("tenancy", "ten_*", "X")).toThrow();
  });

  it("matches NATS wildcards", () => {
    expect(subjectMatches("uab.events.>", "uab.events.tenancy.ten_1.X")).toBe(true);
    expect(subjectMatches("uab.events.>", "uab.events")).toBe(false);
    expect(subjectMatches("uab.events.*.ten_1.*", "uab.events.tenancy.ten_1.X")).toBe(true);
    expect(subjectMatches("uab.events.*.ten_1.*", "uab.events.tenancy.ten_2.X")).toBe(false);
    expect(subjectMatches("uab.events.*", "uab.events.tenancy.ten_1")).toBe(false);
    expect(subjectMatches("uab.events.tenancy.ten_1.X", "uab.events.tenancy.ten_1.X")).toBe(true);
    expect(subjectMatches("uab.events.tenancy.ten_1.X", "uab.events.tenancy.ten_1")).toBe(false);
  });
});

describe("relay wiring", () => {
  it("delivers a platform event through the in-process bus to an inbox consumer", async () => {
    const bus = new InProcessBus();
    const sub = await bus.subscribe({ name: "wiring", filterSubjects: ["uab.events.wiring.platform.*"] }, async (d) => {
      await handleOnce(env.db, "wiring", d, (tx, e) => recordEffect(tx, "wiring", e));
    });
    const relay = await startOutboxRelay({ db: env.db, pool: env.database.pool, bus, pollIntervalMs: 60_000 });
    try {
      await withPlatform(env.db, (tx) => appendTestEvent(tx, "wiring"));
      await eventually(async () => (await countRows(env.db, "effects", "wiring")) === 1, 5_000);
      expect(await outboxCount(env.db)).toBe(0);
    } finally {
      await relay.stop();
      await sub.stop();
    }
  });
});
