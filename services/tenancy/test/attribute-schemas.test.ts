/**
 * Attribute schema RPCs: GetAttributeSchema, ListAttributeSchemas, UpdateAttributeSchema,
 * one test per outcome, then custom attributes validated against the schema on create and
 * update of every resource kind, each violation naming `attributes.<key>`.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { AttributeResourceType, AttributeType } from "@uab/proto/gen/uab/tenancy/v1/attribute_schema_pb.js";
import { AttributeSchemaUpdatedSchema } from "@uab/proto/gen/uab/tenancy/v1/events_pb.js";
import type { AttributeDefinitionInputSchema } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { type Harness, startHarness, userId } from "./harness.js";
import {
  createTenant,
  describeAccess,
  expectCode,
  expectEvent,
  expectInvalid,
  type TenancyClient,
  unknown,
} from "./support.js";

type Definition = MessageInitShape<typeof AttributeDefinitionInputSchema>;

const { PROJECT, TEAM, MEMBERSHIP, TENANT } = AttributeResourceType;
const { STRING, NUMBER, BOOLEAN, STRING_LIST } = AttributeType;

/** The project schema most tests validate against. */
const PROJECT_SCHEMA: Definition[] = [
  { key: "cost_center", type: STRING, required: true, pattern: "^CC-[0-9]{4}$", description: "Finance code" },
  { key: "tier", type: STRING, allowedValues: ["gold", "silver"] },
  { key: "budget", type: NUMBER, minimum: 0, maximum: 1000 },
  { key: "public", type: BOOLEAN },
  { key: "tags", type: STRING_LIST, pattern: "^[a-z]+$" },
];

let h: Harness;
let admin: TenancyClient;
/** Tenant A, whose project schema is PROJECT_SCHEMA. */
let a: string;
/** Tenant B, with a team schema of its own. */
let b: string;

beforeAll(async () => {
  h = await startHarness();
  admin = h.client(h.adminToken);
  a = (await createTenant(h, "a")).tenant.id;
  b = (await createTenant(h, "b")).tenant.id;
  await admin.updateAttributeSchema({ tenantId: a, resourceType: PROJECT, attributes: PROJECT_SCHEMA });
  await admin.updateAttributeSchema({
    tenantId: b,
    resourceType: TEAM,
    attributes: [{ key: "b_only", type: STRING }],
  });
});
afterAll(async () => {
  await h.close();
});

describe("GetAttributeSchema", () => {
  it("returns the schema's definitions", async () => {
    const res = await admin.getAttributeSchema({ tenantId: a, resourceType: PROJECT });
    const s = res.schema!;
    expect(s).toMatchObject({ tenantId: a, resourceType: PROJECT, etag: "1" });
    expect(s.updateTime).toBeDefined();
    expect(s.attributes.map((d) => d.key)).toEqual(["cost_center", "tier", "budget", "public", "tags"]);
    expect(s.attributes[0]).toMatchObject({
      type: STRING,
      required: true,
      pattern: "^CC-[0-9]{4}$",
      description: "Finance code",
    });
    expect(s.attributes[1]?.allowedValues).toEqual(["gold", "silver"]);
    expect(s.attributes[2]).toMatchObject({ type: NUMBER, minimum: 0, maximum: 1000 });
    expect(s.attributes[3]?.minimum).toBeUndefined();
  });

  it("returns an empty schema (etag 0) for a type that has none", async () => {
    const res = await admin.getAttributeSchema({ tenantId: a, resourceType: MEMBERSHIP });
    expect(res.schema).toMatchObject({ tenantId: a, resourceType: MEMBERSHIP, attributes: [], etag: "0" });
  });

  it.each([
    ["resource_type", { resourceType: AttributeResourceType.UNSPECIFIED }],
    ["resource_type", { resourceType: 99 as AttributeResourceType }],
    ["tenant_id", { tenantId: "ten" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    await expectInvalid(admin.getAttributeSchema({ tenantId: a, resourceType: PROJECT, ...patch }), field);
  });

  it("answers NOT_FOUND for an unknown tenant", async () => {
    await expectCode(admin.getAttributeSchema({ tenantId: unknown.tenant(), resourceType: PROJECT }), Code.NotFound, {
      reason: "TENANT_NOT_FOUND",
    });
  });

  it("never shows another tenant's schema", async () => {
    const res = await admin.getAttributeSchema({ tenantId: a, resourceType: TEAM });
    expect(res.schema).toMatchObject({ tenantId: a, attributes: [], etag: "0" });
  });
});

describe("ListAttributeSchemas", () => {
  it("lists the tenant's schemas, not another tenant's", async () => {
    const res = await admin.listAttributeSchemas({ tenantId: a });
    expect(res.schemas.map((s) => [s.tenantId, s.resourceType])).toEqual([[a, PROJECT]]);
    expect(res.nextPageToken).toBe("");
    const inB = await admin.listAttributeSchemas({ tenantId: b });
    expect(inB.schemas.map((s) => [s.tenantId, s.resourceType, s.attributes.map((d) => d.key)])).toEqual([
      [b, TEAM, ["b_only"]],
    ]);
  });

  it.each([
    ["page_size", { pageSize: 1001 }],
    ["page_token", { pageToken: "p".repeat(513) }],
    ["tenant_id", { tenantId: "" }],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, patch) => {
    await expectInvalid(admin.listAttributeSchemas({ tenantId: a, ...patch }), field);
  });

  it("answers NOT_FOUND for an unknown tenant", async () => {
    await expectCode(admin.listAttributeSchemas({ tenantId: unknown.tenant() }), Code.NotFound, {
      reason: "TENANT_NOT_FOUND",
    });
  });
});

describe("UpdateAttributeSchema", () => {
  it("creates then replaces a schema, bumping the etag, and emits AttributeSchemaUpdated", async () => {
    const tenantId = (await createTenant(h, "upd")).tenant.id;
    const created = await admin.updateAttributeSchema({
      tenantId,
      resourceType: TEAM,
      attributes: [{ key: "channel", type: STRING }],
      etag: "0",
    });
    expect(created.schema).toMatchObject({ tenantId, resourceType: TEAM, etag: "1" });
    expect(created.schema?.attributes.map((d) => d.key)).toEqual(["channel"]);
    const first = await expectEvent(h, AttributeSchemaUpdatedSchema, {
      type: "tenancy.attribute_schema",
      id: `${tenantId}/team`,
      tenantId,
    });
    expect(first.schema?.attributes.map((d) => d.key)).toEqual(["channel"]);

    const replaced = await admin.updateAttributeSchema({
      tenantId,
      resourceType: TEAM,
      attributes: [{ key: "oncall", type: BOOLEAN, required: true }],
      etag: "1",
    });
    expect(replaced.schema).toMatchObject({ etag: "2" });
    expect(replaced.schema?.attributes.map((d) => d.key)).toEqual(["oncall"]);
    await expectEvent(
      h,
      AttributeSchemaUpdatedSchema,
      { type: "tenancy.attribute_schema", id: `${tenantId}/team`, tenantId },
      (p) => p.schema?.etag === "2",
    );
  });

  it("fails with ABORTED on a stale etag and changes nothing", async () => {
    await expectCode(
      admin.updateAttributeSchema({ tenantId: a, resourceType: PROJECT, attributes: [], etag: "0" }),
      Code.Aborted,
      { reason: "ETAG_MISMATCH" },
    );
    const s = (await admin.getAttributeSchema({ tenantId: a, resourceType: PROJECT })).schema!;
    expect(s.etag).toBe("1");
    expect(s.attributes).toHaveLength(PROJECT_SCHEMA.length);
  });

  it.each<[string, Definition[]]>([
    ["attributes[0].key", [{ key: "CamelCase", type: STRING }]],
    ["attributes[0].key", [{ key: "", type: STRING }]],
    ["attributes[0].type", [{ key: "untyped" }]],
    ["attributes[0].allowed_values", [{ key: "dup", type: STRING, allowedValues: ["a", "a"] }]],
    ["attributes[0].allowed_values[0]", [{ key: "empty", type: STRING, allowedValues: [""] }]],
    ["attributes[0].pattern", [{ key: "long", type: STRING, pattern: "x".repeat(501) }]],
    ["attributes", Array.from({ length: 101 }, (_, i) => ({ key: `k${i}`, type: STRING }))],
  ])("rejects an invalid %s (INVALID_ARGUMENT)", async (field, attributes) => {
    await expectInvalid(admin.updateAttributeSchema({ tenantId: a, resourceType: PROJECT, attributes }), field);
  });

  it.each<[string, string, Definition[]]>([
    [
      "a duplicate key",
      "attributes[1].key",
      [
        { key: "region", type: STRING },
        { key: "region", type: NUMBER },
      ],
    ],
    ["an invalid RE2 pattern", "attributes[0].pattern", [{ key: "code", type: STRING, pattern: "([a-z]" }]],
    ["a backreference (not RE2)", "attributes[0].pattern", [{ key: "code", type: STRING, pattern: "(a)\\1" }]],
    ["allowed values on a number", "attributes[0].allowed_values", [{ key: "n", type: NUMBER, allowedValues: ["1"] }]],
    ["a pattern on a boolean", "attributes[0].pattern", [{ key: "b", type: BOOLEAN, pattern: "^t" }]],
    ["a minimum on a string", "attributes[0].minimum", [{ key: "s", type: STRING, minimum: 1 }]],
    ["a maximum on a string list", "attributes[0].maximum", [{ key: "l", type: STRING_LIST, maximum: 3 }]],
    ["minimum above maximum", "attributes[0].minimum", [{ key: "n", type: NUMBER, minimum: 5, maximum: 1 }]],
  ])("rejects a schema with %s (INVALID_ARGUMENT naming %s) and keeps the old one", async (_, field, attributes) => {
    await expectInvalid(admin.updateAttributeSchema({ tenantId: a, resourceType: PROJECT, attributes }), field);
    expect((await admin.getAttributeSchema({ tenantId: a, resourceType: PROJECT })).schema?.etag).toBe("1");
  });

  it("answers NOT_FOUND for an unknown tenant", async () => {
    await expectCode(
      admin.updateAttributeSchema({ tenantId: unknown.tenant(), resourceType: PROJECT, attributes: [] }),
      Code.NotFound,
      { reason: "TENANT_NOT_FOUND" },
    );
  });

  it("changes only its own tenant's schema", async () => {
    const tenantId = (await createTenant(h, "own")).tenant.id;
    await admin.updateAttributeSchema({ tenantId, resourceType: TEAM, attributes: [{ key: "x", type: STRING }] });
    const inB = (await admin.getAttributeSchema({ tenantId: b, resourceType: TEAM })).schema!;
    expect(inB).toMatchObject({ etag: "1" });
    expect(inB.attributes.map((d) => d.key)).toEqual(["b_only"]);
  });
});

describe("access", () => {
  describeAccess(
    () => ({ h, tenantId: a, otherTenantId: b }),
    [
      { rpc: "GetAttributeSchema", call: (c) => c.getAttributeSchema({ tenantId: a, resourceType: PROJECT }) },
      { rpc: "ListAttributeSchemas", call: (c) => c.listAttributeSchemas({ tenantId: a }) },
      {
        rpc: "UpdateAttributeSchema",
        call: (c) => c.updateAttributeSchema({ tenantId: a, resourceType: PROJECT, attributes: [] }),
      },
    ],
  );

  it("left the schema untouched", async () => {
    const s = (await admin.getAttributeSchema({ tenantId: a, resourceType: PROJECT })).schema!;
    expect(s.etag).toBe("1");
    expect(s.attributes).toHaveLength(PROJECT_SCHEMA.length);
  });
});

describe("custom attributes", () => {
  const valid = { cost_center: "CC-1234", tier: "gold", budget: 250.5, public: false, tags: ["web", "api"] };
  let seq = 0;
  const create = (attributes: Record<string, unknown>) =>
    admin.createProject({
      tenantId: a,
      slug: `attr-${++seq}`,
      displayName: "Attributed",
      attributes: attributes as never,
    });

  it("accepts attributes the schema allows, and returns them", async () => {
    const res = await create(valid);
    expect(res.project?.attributes).toEqual(valid);
    const minimal = await create({ cost_center: "CC-0000", budget: 0 });
    expect(minimal.project?.attributes).toEqual({ cost_center: "CC-0000", budget: 0 });
    const bounds = await create({ cost_center: "CC-0001", budget: 1000, tags: [] });
    expect(bounds.project?.attributes?.budget).toBe(1000);
  });

  it.each<[string, string, string, Record<string, unknown>]>([
    ["an undeclared key", "attributes.color", "ATTRIBUTE_NOT_DECLARED", { color: "red" }],
    ["a required key missing", "attributes.cost_center", "ATTRIBUTE_REQUIRED", { cost_center: undefined }],
    ["a number for a string", "attributes.cost_center", "INVALID_FIELD", { cost_center: 1234 }],
    ["a string for a number", "attributes.budget", "INVALID_FIELD", { budget: "100" }],
    ["a string for a boolean", "attributes.public", "INVALID_FIELD", { public: "yes" }],
    ["a string for a string list", "attributes.tags", "INVALID_FIELD", { tags: "web" }],
    ["a value not allowed", "attributes.tier", "INVALID_FIELD", { tier: "bronze" }],
    ["a string not matching the pattern", "attributes.cost_center", "INVALID_FIELD", { cost_center: "CC-12" }],
    ["a list item not matching the pattern", "attributes.tags[1]", "INVALID_FIELD", { tags: ["web", "API"] }],
    ["a number below the minimum", "attributes.budget", "INVALID_FIELD", { budget: -0.01 }],
    ["a number above the maximum", "attributes.budget", "INVALID_FIELD", { budget: 1000.5 }],
  ])("rejects %s on create, naming %s", async (_, field, reason, patch) => {
    const attributes = Object.fromEntries(Object.entries({ ...valid, ...patch }).filter(([, v]) => v !== undefined));
    await expectInvalid(create(attributes), field, reason);
    const rows = await h.adminDb.selectFrom("projects").select("id").where("slug", "=", `attr-${seq}`).execute();
    expect(rows).toEqual([]);
  });

  it.each<[string, string, Record<string, unknown>]>([
    ["an undeclared key", "attributes.color", { ...valid, color: "red" }],
    ["a required key missing", "attributes.cost_center", { tier: "gold" }],
    ["a wrong type", "attributes.public", { ...valid, public: 1 }],
    ["a value not allowed", "attributes.tier", { ...valid, tier: "platinum" }],
    ["a pattern mismatch", "attributes.cost_center", { ...valid, cost_center: "cc-1234" }],
    ["a number out of range", "attributes.budget", { ...valid, budget: 5000 }],
  ])("rejects %s on update, naming %s, and keeps the stored attributes", async (_, field, attributes) => {
    const p = (await create(valid)).project!;
    await expectInvalid(
      admin.updateProject({
        tenantId: a,
        projectId: p.id,
        attributes: attributes as never,
        updateMask: { paths: ["attributes"] },
      }),
      field,
    );
    expect((await admin.getProject({ tenantId: a, projectId: p.id })).project).toMatchObject({
      attributes: valid,
      etag: "1",
    });
  });

  it("replaces attributes whole on update when they are valid", async () => {
    const p = (await create(valid)).project!;
    const res = await admin.updateProject({
      tenantId: a,
      projectId: p.id,
      attributes: { cost_center: "CC-9999", public: true },
      updateMask: { paths: ["attributes"] },
    });
    expect(res.project?.attributes).toEqual({ cost_center: "CC-9999", public: true });
  });

  it("validates teams, memberships and tenants against their own schemas", async () => {
    const { tenant } = await createTenant(h, "kinds");
    const tenantId = tenant.id;
    for (const resourceType of [TEAM, MEMBERSHIP, TENANT]) {
      await admin.updateAttributeSchema({
        tenantId,
        resourceType,
        attributes: [{ key: "level", type: NUMBER, required: true, minimum: 1, maximum: 3 }],
      });
    }
    // A project schema was not declared here: the team schema does not leak into projects.
    await expectInvalid(
      admin.createProject({ tenantId, slug: "p", displayName: "P", attributes: { level: 1 } }),
      "attributes.level",
    );

    const team = await admin.createTeam({ tenantId, slug: "t", displayName: "T", attributes: { level: 2 } });
    expect(team.team?.attributes).toEqual({ level: 2 });
    await expectInvalid(
      admin.createTeam({ tenantId, slug: "t2", displayName: "T2", attributes: { level: 4 } }),
      "attributes.level",
    );
    await expectInvalid(
      admin.updateTeam({
        tenantId,
        teamId: team.team!.id,
        attributes: {},
        updateMask: { paths: ["attributes"] },
      }),
      "attributes.level",
      "ATTRIBUTE_REQUIRED",
    );

    const m = await admin.createMembership({ tenantId, userId: userId(), attributes: { level: 1 } });
    expect(m.membership?.attributes).toEqual({ level: 1 });
    await expectInvalid(
      admin.createMembership({ tenantId, userId: userId() }),
      "attributes.level",
      "ATTRIBUTE_REQUIRED",
    );
    await expectInvalid(
      admin.updateMembership({
        tenantId,
        membershipId: m.membership!.id,
        attributes: { level: "1" },
        updateMask: { paths: ["attributes"] },
      }),
      "attributes.level",
    );

    const t = await admin.updateTenant({ tenantId, attributes: { level: 3 }, updateMask: { paths: ["attributes"] } });
    expect(t.tenant?.attributes).toEqual({ level: 3 });
    await expectInvalid(
      admin.updateTenant({ tenantId, attributes: { level: 0 }, updateMask: { paths: ["attributes"] } }),
      "attributes.level",
    );
    expect((await admin.getTenant({ tenantId })).tenant?.attributes).toEqual({ level: 3 });
  });
});
