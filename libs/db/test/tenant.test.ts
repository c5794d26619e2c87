import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createDatabase, type Database, withPlatform, withTenant } from "@uab/db";
import { createTestDatabase, type TestDatabase } from "@uab/testing";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";

let tdb: TestDatabase;
let scoped: Database<unknown>;
let plain: Kysely<unknown>;

beforeAll(async () => {
  tdb = await createTestDatabase();
  scoped = createDatabase({ url: tdb.url, schema: "public", max: 1 });
  plain = new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: tdb.url, max: 1 }) }) });
});
afterAll(async () => {
  await scoped.close();
  await plain.destroy();
  await tdb.drop();
});

const setting = async (db: Kysely<unknown>, name: string) =>
  (await sql<{ v: string | null }>`select current_setting(${name}, true) as v`.execute(db)).rows[0]?.v ?? null;

describe.each([
  ["the scoped dialect (BEGIN and set_config in one round trip)", () => scoped.db],
  ["a plain Kysely (set_config as its own query)", () => plain],
])("withTenant / withPlatform with %s", (_name, db) => {
  it("sets the tenant for the transaction only", async () => {
    const inside = await withTenant(db(), "ten_abc", (tx) => setting(tx, "uab.tenant_id"));
    expect(inside).toBe("ten_abc");
    // One pooled connection: the next statement runs on it, outside any transaction.
    expect([null, ""]).toContain(await setting(db(), "uab.tenant_id"));
  });

  it("does not leak the tenant after a rollback", async () => {
    await expect(
      withTenant(db(), "ten_rolled", async () => {
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect([null, ""]).toContain(await setting(db(), "uab.tenant_id"));
  });

  it("binds an id that is not plain instead of inlining it", async () => {
    const odd = "x'); select pg_sleep(5); --";
    expect(await withTenant(db(), odd, (tx) => setting(tx, "uab.tenant_id"))).toBe(odd);
  });

  it("sets platform scope for the transaction only", async () => {
    expect(await withPlatform(db(), (tx) => setting(tx, "uab.platform"))).toBe("on");
    expect([null, ""]).toContain(await setting(db(), "uab.platform"));
  });
});
