import { getOption, hasOption } from "@bufbuild/protobuf";
import { describe, expect, it } from "@jest/globals";
import { accessOf, contractFiles, contractServices, Scope } from "@uab/proto";
import { http } from "@uab/proto/gen/google/api/annotations_pb.js";

const services = contractServices();
const methods = services.flatMap((s) =>
  s.methods.map((m) => ({ service: s, method: m, name: `${s.typeName}/${m.name}` })),
);

describe("contracts", () => {
  it("cover all seven services", () => {
    const packages = new Set(services.map((s) => s.typeName.split(".")[1]));
    expect([...packages].sort()).toEqual([
      "audit",
      "authorization",
      "billing",
      "credentials",
      "identity",
      "notification",
      "tenancy",
    ]);
    expect(contractFiles.length).toBeGreaterThan(60);
  });

  it.each(methods.map((m) => [m.name, m]))("%s has an HTTP route and exactly one access kind", (_name, { method }) => {
    expect(hasOption(method, http)).toBe(true);
    const rule = getOption(method, http);
    expect(rule.pattern.case).toBeDefined();
    const access = accessOf(method);
    const kinds = [access.permission !== "", access.public, access.authenticated].filter(Boolean);
    expect(kinds).toHaveLength(1);
    if (access.permission) {
      const service = method.parent.typeName.split(".")[1];
      expect(access.permission).toMatch(/^[a-z]+(\.[a-z_]+)+$/);
      expect(access.permission.split(".")[0]).toBe(service);
      expect(access.scope).not.toBe(Scope.UNSPECIFIED);
    }
  });

  it.each(methods.map((m) => [m.name, m]))("%s carries the fields its scope needs", (_name, { method }) => {
    const access = accessOf(method);
    const fields = method.input.fields.map((f) => f.name);
    if (access.permission && access.scope !== Scope.PLATFORM) expect(fields).toContain("tenant_id");
    if (access.scope === Scope.PROJECT) expect(fields).toContain("project_id");
    if (access.scope === Scope.TEAM) expect(fields).toContain("team_id");
  });

  it("never routes two RPCs to the same verb and path", () => {
    const seen = new Map<string, string>();
    for (const { method, name } of methods) {
      const rule = getOption(method, http);
      const key = `${rule.pattern.case} ${String(rule.pattern.value)}`;
      expect(seen.get(key)).toBeUndefined();
      seen.set(key, name);
    }
    expect(seen.size).toBe(methods.length);
  });

  it("paginates every List RPC and takes a mask and etag on every Update RPC", () => {
    for (const { method } of methods) {
      const fields = method.input.fields.map((f) => f.name);
      if (method.name.startsWith("List") && method.methodKind === "unary") {
        expect([method.name, fields]).toEqual([method.name, expect.arrayContaining(["page_size", "page_token"])]);
        expect(method.output.fields.map((f) => f.name)).toContain("next_page_token");
      }
      if (/^Update[A-Z]/.test(method.name) && fields.includes("update_mask")) {
        expect([method.name, fields]).toEqual([method.name, expect.arrayContaining(["etag"])]);
      }
    }
  });
});
