/**
 * The Idempotency-Key header end to end (real server, real database): concurrent duplicates
 * create exactly one tenant, a reused key with another request is refused, completed
 * requests and client errors are replayed, read-only RPCs ignore the header and malformed
 * keys are refused.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { BadRequestSchema, ErrorInfoSchema } from "@uab/proto/gen/google/rpc/error_details_pb.js";
import { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { bearer, eventually } from "@uab/testing";
import { sql } from "kysely";
import { type Harness, startHarness, userId } from "./harness.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const withKey = (key: string) => h.client(h.adminToken, { "idempotency-key": key });

async function tenantsWithSlug(slug: string): Promise<number> {
  const r = await h.adminDb.selectFrom("tenants").select("id").where("slug", "=", slug).execute();
  return r.length;
}

async function keyRows(key: string): Promise<{ state: string; method: string }[]> {
  const r = await sql<{ state: string; method: string }>`
    SELECT state, method FROM idempotency_keys WHERE key = ${key}`.execute(h.adminDb);
  return r.rows;
}

/** The error a call fails with (a ConnectError), or a failure when it succeeds. */
async function rejection(p: Promise<unknown>): Promise<ConnectError> {
  const r = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (r === undefined) throw new Error("expected the call to fail, it succeeded");
  return ConnectError.from(r);
}

function details(e: ConnectError) {
  return {
    code: e.code,
    message: e.rawMessage,
    reason: e.findDetails(ErrorInfoSchema)[0]?.reason,
    violations: e.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => [v.field, v.description]) ?? [],
  };
}

describe("Idempotency-Key", () => {
  it("50 concurrent CreateTenant calls with one key create exactly one tenant", async () => {
    const body = { slug: "idem-concurrent", displayName: "Idem", ownerUserId: userId() };
    const client = withKey("k-concurrent");
    const replayed: (string | null)[] = [];
    const results = await Promise.all(
      Array.from({ length: 50 }, () =>
        client.createTenant(body, { onHeader: (hd) => replayed.push(hd.get("idempotent-replayed")) }),
      ),
    );
    const ids = new Set(results.map((r) => r.tenant?.id));
    expect(ids.size).toBe(1);
    const [id] = [...ids];
    expect(id).toMatch(/^ten_/);
    for (const r of results) expect(r).toEqual(results[0]);
    expect(await tenantsWithSlug("idem-concurrent")).toBe(1);
    const members = await h.adminDb.selectFrom("memberships").select("id").where("tenant_id", "=", id!).execute();
    expect(members).toHaveLength(1);
    // One request ran; the 49 others were answered from the stored response.
    expect(replayed).toHaveLength(50);
    expect(replayed.filter((v) => v === "true")).toHaveLength(49);
    expect(await keyRows("k-concurrent")).toEqual([
      { state: "completed", method: "uab.tenancy.v1.TenancyService/CreateTenant" },
    ]);
    // And exactly one TenantCreated event left through the outbox.
    await eventually(() => h.events.some((e) => e.event.tenantId === id));
    await new Promise((r) => setTimeout(r, 300));
    expect(h.events.filter((e) => e.event.tenantId === id && e.event.type.endsWith("TenantCreated"))).toHaveLength(1);
  });

  it("replays the stored response after completion, marked idempotent-replayed", async () => {
    const body = { slug: "idem-replay", displayName: "Replay", ownerUserId: userId() };
    const client = withKey("k-replay");
    let firstHeader: string | null = "unset";
    const first = await client.createTenant(body, {
      onHeader: (hd) => {
        firstHeader = hd.get("idempotent-replayed");
      },
    });
    expect(firstHeader).toBeNull();
    // The tenant changes afterwards; the replay still returns what the first call returned.
    await h.adminDb
      .updateTable("tenants")
      .set({ display_name: "Changed since" })
      .where("id", "=", first.tenant!.id)
      .execute();
    let replayHeader: string | null = null;
    const again = await client.createTenant(body, {
      onHeader: (hd) => {
        replayHeader = hd.get("idempotent-replayed");
      },
    });
    expect(replayHeader).toBe("true");
    expect(again).toEqual(first);
    expect(again.tenant?.displayName).toBe("Replay");
    expect(await tenantsWithSlug("idem-replay")).toBe(1);
  });

  it("replays over the gRPC protocol as well", async () => {
    const key = bearer(h.adminToken, { "idempotency-key": "k-grpc" });
    const grpc = createClient(TenancyService, createGrpcTransport({ baseUrl: h.url, interceptors: [key] }));
    const body = { slug: "idem-grpc", displayName: "gRPC", ownerUserId: userId() };
    const first = await grpc.createTenant(body);
    let replayHeader: string | null = null;
    const again = await grpc.createTenant(body, {
      onHeader: (hd) => {
        replayHeader = hd.get("idempotent-replayed");
      },
    });
    expect(replayHeader).toBe("true");
    expect(again).toEqual(first);
    // The same key over the Connect protocol is the same request.
    expect(await withKey("k-grpc").createTenant(body)).toEqual(first);
    expect(await tenantsWithSlug("idem-grpc")).toBe(1);
  });

  it("refuses the same key with a different body or another RPC, naming Idempotency-Key", async () => {
    const owner = userId();
    const client = withKey("k-reuse");
    const created = await client.createTenant({ slug: "idem-reuse", displayName: "Reuse", ownerUserId: owner });
    const other = await rejection(
      client.createTenant({ slug: "idem-reuse", displayName: "Other", ownerUserId: owner }),
    );
    expect(other.code).toBe(Code.InvalidArgument);
    expect(other.rawMessage).toMatch(/Idempotency-Key/);
    expect(details(other).reason).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(details(other).violations.map(([f]) => f)).toEqual(["Idempotency-Key"]);
    const otherRpc = await rejection(
      client.createProject({ tenantId: created.tenant!.id, slug: "p", displayName: "P" }),
    );
    expect(otherRpc.code).toBe(Code.InvalidArgument);
    expect(otherRpc.rawMessage).toMatch(/Idempotency-Key/);
    // Nothing was created by the refused calls.
    expect(await tenantsWithSlug("idem-reuse")).toBe(1);
    const prj = await h.adminDb
      .selectFrom("projects")
      .select("id")
      .where("tenant_id", "=", created.tenant!.id)
      .execute();
    expect(prj).toEqual([]);
  });

  it("replays a client error (slug taken) as the same error, without running again", async () => {
    await h.client(h.adminToken).createTenant({ slug: "idem-taken", displayName: "First", ownerUserId: userId() });
    const body = { slug: "idem-taken", displayName: "Second", ownerUserId: userId() };
    const client = withKey("k-error");
    const first = await rejection(client.createTenant(body));
    expect(first.code).toBe(Code.AlreadyExists);
    expect(details(first).reason).toBe("TENANT_SLUG_TAKEN");
    // Free the slug: running the request again would now succeed, a replay must not.
    await h.adminDb
      .updateTable("tenants")
      .set({ slug: "idem-taken-renamed" })
      .where("slug", "=", "idem-taken")
      .execute();
    const replay = await rejection(client.createTenant(body));
    expect(details(replay)).toEqual(details(first));
    expect(await tenantsWithSlug("idem-taken")).toBe(0);
    // A new key runs it.
    const fresh = await withKey("k-error-2").createTenant(body);
    expect(fresh.tenant?.slug).toBe("idem-taken");
  });

  it("does not keep a transient error (stale etag, ABORTED): the retry runs again", async () => {
    const created = await h
      .client(h.adminToken)
      .createTenant({ slug: "idem-stale", displayName: "Stale", ownerUserId: userId() });
    const id = created.tenant!.id;
    const body = { tenantId: id, displayName: "Renamed", updateMask: { paths: ["display_name"] }, etag: "2" };
    const first = await rejection(withKey("k-transient").updateTenant(body));
    expect(first.code).toBe(Code.Aborted);
    expect(await keyRows("k-transient")).toEqual([]);
    // Once the etag is current the same request with the same key succeeds.
    await h.client(h.adminToken).updateTenant({ tenantId: id, planId: "pro", updateMask: { paths: ["plan_id"] } });
    const retried = await withKey("k-transient").updateTenant(body);
    expect(retried.tenant?.displayName).toBe("Renamed");
  });

  it("read-only RPCs ignore the header (even a malformed one)", async () => {
    const created = await h
      .client(h.adminToken)
      .createTenant({ slug: "idem-read", displayName: "Read", ownerUserId: userId() });
    const tenantId = created.tenant!.id;
    for (const key of ["k-read", "x".repeat(300), "has space"]) {
      const res = await withKey(key).getTenant({ tenantId });
      expect(res.tenant?.id).toBe(tenantId);
      const list = await withKey(key).listTenants({ pageSize: 1000 });
      expect(list.tenants.map((t) => t.id)).toContain(tenantId);
    }
    expect(await keyRows("k-read")).toEqual([]);
    // The key is still free for a mutating call.
    const project = await withKey("k-read").createProject({ tenantId, slug: "p", displayName: "P" });
    expect(project.project?.tenantId).toBe(tenantId);
    expect(await keyRows("k-read")).toHaveLength(1);
  });

  it("refuses a malformed key on a mutating RPC with INVALID_ARGUMENT", async () => {
    for (const key of ["x".repeat(300), "has space", "tab\there", ""]) {
      const err = await rejection(
        withKey(key).createTenant({ slug: "idem-malformed", displayName: "M", ownerUserId: userId() }),
      );
      expect({ key, code: err.code }).toEqual({ key, code: Code.InvalidArgument });
      expect(err.rawMessage).toMatch(/^Idempotency-Key: /);
      expect(details(err).violations.map(([f]) => f)).toEqual(["Idempotency-Key"]);
    }
    // 255 printable characters is the longest accepted key.
    const ok = await withKey("y".repeat(255)).createTenant({
      slug: "idem-malformed",
      displayName: "M",
      ownerUserId: userId(),
    });
    expect(ok.tenant?.slug).toBe("idem-malformed");
    expect(await tenantsWithSlug("idem-malformed")).toBe(1);
  });
});
