import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { eventually } from "@uab/testing";
import { type Harness, startHarness, userId } from "./harness.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

describe("tenancy smoke", () => {
  it("provisions a tenant with its owner and emits TenantCreated", async () => {
    const owner = userId();
    const res = await h.client(h.adminToken).createTenant({ slug: "smoke", displayName: "Smoke", ownerUserId: owner });
    expect(res.tenant?.slug).toBe("smoke");
    expect(res.ownerMembership?.userId).toBe(owner);
    const e = await eventually(() => h.events.find((x) => x.event.type === "uab.tenancy.v1.TenantCreated"));
    expect(e.event.tenantId).toBe(res.tenant?.id);
    expect(e.event.actor?.principalId).toBe(h.adminId);
  });

  it("rejects a call without a token", async () => {
    await expect(h.client().listTenants({})).rejects.toMatchObject({ code: Code.Unauthenticated });
  });

  it("denies a principal that is not the bootstrap admin", async () => {
    const t = await h.token({ sub: userId() });
    const err = await h
      .client(t)
      .listTenants({})
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
  });
});
