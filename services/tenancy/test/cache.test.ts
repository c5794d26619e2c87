import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { TenantCache } from "../src/domain/tenant-cache.js";
import type { TenantRow } from "../src/storage/tables.js";
import { type Harness, startHarness, userId } from "./harness.js";

const row = (id: string, name: string) => ({ id, display_name: name }) as unknown as TenantRow;

describe("TenantCache", () => {
  it("serves a cached row until it expires", async () => {
    const c = new TenantCache(50);
    c.set("t", row("t", "a"), c.generation("t"));
    expect(c.get("t")?.display_name).toBe("a");
    await new Promise((r) => setTimeout(r, 70));
    expect(c.get("t")).toBeUndefined();
  });

  it("does not cache a read that raced a write", () => {
    const c = new TenantCache(10_000);
    const before = c.generation("t");
    c.invalidate("t"); // a write committed while the read was in flight
    c.set("t", row("t", "old"), before);
    expect(c.get("t")).toBeUndefined();
    c.set("t", row("t", "new"), c.generation("t"));
    expect(c.get("t")?.display_name).toBe("new");
  });

  it("is off with a TTL of 0 and bounded in size", () => {
    expect(
      (() => {
        const c = new TenantCache(0);
        c.set("t", row("t", "a"), 0);
        return c.get("t");
      })(),
    ).toBeUndefined();
    const c = new TenantCache(10_000, 2);
    for (const id of ["a", "b", "c"]) c.set(id, row(id, id), 0);
    expect(c.get("a")).toBeUndefined();
    expect(c.get("c")?.display_name).toBe("c");
  });
});

describe("GetTenant with the cache on", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ env: { UAB_TENANCY_TENANT_CACHE_TTL_MS: "300" } });
  });
  afterAll(async () => {
    await h.close();
  });

  it("is fresh after this process's own writes and at most the TTL stale after anyone else's", async () => {
    const admin = h.client(h.adminToken);
    const { tenant } = await admin.createTenant({ slug: "cached", displayName: "Cached", ownerUserId: userId() });
    const id = tenant!.id;
    expect((await admin.getTenant({ tenantId: id })).tenant?.displayName).toBe("Cached");
    // Own writes invalidate at once.
    await admin.updateTenant({ tenantId: id, displayName: "Renamed", updateMask: { paths: ["display_name"] } });
    expect((await admin.getTenant({ tenantId: id })).tenant?.displayName).toBe("Renamed");
    await admin.suspendTenant({ tenantId: id, reason: "unpaid" });
    expect((await admin.getTenant({ tenantId: id })).tenant?.statusReason).toBe("unpaid");
    // A write this process did not make (another replica) shows within the TTL.
    await h.adminDb.updateTable("tenants").set({ display_name: "Elsewhere" }).where("id", "=", id).execute();
    expect((await admin.getTenant({ tenantId: id })).tenant?.displayName).toBe("Renamed");
    await new Promise((r) => setTimeout(r, 350));
    expect((await admin.getTenant({ tenantId: id })).tenant?.displayName).toBe("Elsewhere");
  });

  it("still enforces access before answering from the cache", async () => {
    const admin = h.client(h.adminToken);
    const { tenant } = await admin.createTenant({ slug: "cached-guarded", displayName: "G", ownerUserId: userId() });
    await admin.getTenant({ tenantId: tenant!.id });
    const outsider = h.client(await h.token({ sub: userId(), tid: `ten_${"1".repeat(26)}` }));
    await expect(outsider.getTenant({ tenantId: tenant!.id })).rejects.toMatchObject({ code: 5 });
    await expect(h.client().getTenant({ tenantId: tenant!.id })).rejects.toMatchObject({ code: 16 });
  });
});
