import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { type Harness, startHarness, userId } from "./harness.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

async function rest(method: string, path: string, body?: unknown, token: string | null = h.adminToken) {
  const res = await fetch(`${h.url}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> & { [k: string]: never } };
}

describe("REST gateway (google.api.http routes)", () => {
  it("creates, reads, lists, patches and deletes through REST routes", async () => {
    const created = await rest("POST", "/v1/tenants", {
      slug: "rest-co",
      displayName: "REST Co",
      ownerUserId: userId(),
    });
    expect(created.status).toBe(200);
    const id = (created.json.tenant as unknown as { id: string }).id;
    expect((await rest("GET", `/v1/tenants/${id}`)).json.tenant).toMatchObject({ id, slug: "rest-co" });
    const list = await rest("GET", "/v1/tenants?page_size=1&query=rest-co");
    expect(list.json.tenants).toHaveLength(1);
    const patched = await rest("PATCH", `/v1/tenants/${id}`, { displayName: "Renamed", updateMask: "displayName" });
    expect(patched.status).toBe(200);
    expect(patched.json.tenant).toMatchObject({ displayName: "Renamed", etag: "2" });
    const project = await rest("POST", `/v1/tenants/${id}/projects`, { slug: "api", displayName: "API" });
    const projectId = (project.json.project as unknown as { id: string }).id;
    const deleted = await rest("DELETE", `/v1/tenants/${id}/projects/${projectId}`);
    expect(deleted.json.project).toHaveProperty("deleteTime");
    expect((await rest("POST", `/v1/tenants/${id}/projects/${projectId}:restore`, {})).status).toBe(200);
    expect((await rest("GET", `/v1/tenants/${id}/projects?show_deleted=false`)).json.projects).toHaveLength(1);
  });

  it("maps errors to HTTP statuses with the field named", async () => {
    const invalid = await rest("POST", "/v1/tenants", { slug: "X" });
    expect(invalid.status).toBe(400);
    // google.rpc.Status, as Envoy's transcoder answers in production.
    expect(invalid.json.code).toBe(3);
    expect(String(invalid.json.message)).toContain("slug");
    expect(JSON.stringify(invalid.json.details)).toContain("type.googleapis.com/google.rpc.BadRequest");
    expect((await rest("GET", "/v1/tenants", undefined, null)).status).toBe(401);
    expect((await rest("GET", "/v1/tenants", undefined, await h.token({ sub: userId() }))).status).toBe(403);
    expect((await rest("GET", `/v1/tenants/ten_${"0".repeat(26)}`)).status).toBe(404);
    expect((await rest("GET", "/v1/nothing-here")).status).toBe(404);
    const bad = await fetch(`${h.url}/v1/tenants`, {
      method: "POST",
      headers: { authorization: `Bearer ${h.adminToken}` },
      body: "{not json",
    });
    expect(bad.status).toBe(400);
  });
});
