/**
 * The session helpers of rls.ts on a database of the real PostgreSQL (as its superuser, so
 * no row-level security is involved: what is checked is the helpers' own behaviour).
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import {
  asRuntime,
  blindWrites,
  createTestDatabase,
  failure,
  sessionRole,
  type TestDatabase,
  tableOwners,
} from "@uab/testing";
import pg from "pg";

let database: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  database = await createTestDatabase();
  pool = new pg.Pool({ connectionString: database.url, max: 1 });
  await pool.query("CREATE SCHEMA s");
  await pool.query("CREATE TABLE s.t (id int PRIMARY KEY CHECK (id > 0), v int)");
  await pool.query("INSERT INTO s.t VALUES (1, 1)");
});

afterAll(async () => {
  await pool?.end();
  await database?.drop();
});

const count = async () => (await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM s.t")).rows[0]!.n;

describe("asRuntime", () => {
  it("sets only the settings given, for the transaction, and rolls back what it wrote", async () => {
    const seen = await asRuntime(pool, { tenant: "ten_1" }, async (c) => {
      await c.query("INSERT INTO s.t VALUES (2, 2)");
      const r = await c.query<{ tenant: string; platform: string | null }>(
        "SELECT current_setting('uab.tenant_id', true) AS tenant, current_setting('uab.platform', true) AS platform",
      );
      return { ...r.rows[0], rows: (await c.query("SELECT 1 FROM s.t")).rowCount };
    });
    // An unset custom setting reads as NULL (never set in the session) or "" (set before, then reset).
    expect({ ...seen, platform: seen.platform || null }).toEqual({ tenant: "ten_1", platform: null, rows: 2 });
    expect(await count()).toBe(1);
    const after = await pool.query<{ tenant: string | null }>(
      "SELECT current_setting('uab.tenant_id', true) AS tenant",
    );
    expect(after.rows[0]!.tenant || null).toBeNull();
  });

  it("rolls back and gives the connection back when fn throws", async () => {
    await expect(
      asRuntime(pool, { platform: "on" }, async (c) => {
        await c.query("INSERT INTO s.t VALUES (3, 3)");
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    // The pool has one connection: this would wait forever had it not been released.
    expect(await count()).toBe(1);
  });
});

describe("failure", () => {
  it("returns the error with its SQLSTATE and leaves the transaction usable", async () => {
    await asRuntime(pool, {}, async (c) => {
      const err = await failure(c, "INSERT INTO s.t VALUES ($1, 0)", [-1]);
      expect(err.code).toBe("23514");
      expect(err.message).toMatch(/check constraint/);
      expect((await c.query("SELECT 1 FROM s.t")).rowCount).toBe(1);
    });
  });

  it("throws when the statement succeeds", async () => {
    await asRuntime(pool, {}, async (c) => {
      await expect(failure(c, "INSERT INTO s.t VALUES (4, 4)")).rejects.toThrow(/to fail, it succeeded/);
      expect((await c.query("SELECT 1 FROM s.t")).rowCount).toBe(2);
    });
    expect(await count()).toBe(1);
  });
});

describe("blindWrites", () => {
  it("reports the rows an unfiltered UPDATE and DELETE touched and how the INSERT failed", async () => {
    await asRuntime(pool, {}, async (c) => {
      const w = await blindWrites(c, "s.t", "v", ["INSERT INTO s.t VALUES ($1, 0)", [-1]]);
      expect({ updated: w.updated, deleted: w.deleted, code: w.inserted.code }).toEqual({
        updated: 1,
        deleted: 1,
        code: "23514",
      });
    });
    expect(await count()).toBe(1);
  });
});

describe("catalogue", () => {
  it("sessionRole and tableOwners", async () => {
    const me = await pool.query<{ u: string }>("SELECT current_user AS u");
    const c = await pool.connect();
    try {
      expect(await sessionRole(c)).toEqual({ user: me.rows[0]!.u, superuser: true });
      expect(await tableOwners(c, "s")).toEqual([me.rows[0]!.u]);
      expect(await tableOwners(c, "no_such_schema")).toEqual([]);
    } finally {
      c.release();
    }
  });
});
