import { describe, expect, it } from "@jest/globals";
import type { Principal } from "@uab/core";
import { AllowListAuthorizer } from "@uab/testing";

const scope = { type: "tenant" as const, tenantId: "ten_1" };
const user = (id: string): Principal => ({ id, type: "user", amr: [] });

describe("AllowListAuthorizer", () => {
  it("allows a listed principal", async () => {
    const d = await new AllowListAuthorizer(["usr_a"]).authorize({
      principal: user("usr_a"),
      permission: "tenancy.tenants.get",
      scope,
    });
    expect(d.allowed).toBe(true);
  });

  it.each([
    ["a principal not listed", ["usr_a"]],
    ["anyone when the list is empty", []],
  ])("denies %s with a reason naming the permission", async (_what, ids) => {
    const d = await new AllowListAuthorizer(ids).authorize({
      principal: user("usr_b"),
      permission: "tenancy.tenants.get",
      scope,
    });
    expect(d.allowed).toBe(false);
    expect(d.reason).toContain("usr_b");
    expect(d.reason).toContain("tenancy.tenants.get");
  });
});
