/**
 * Entries, exports, the platform log and the signing keys over RPC: SearchAuditEntries,
 * GetAuditEntry, ExportAuditEntries, SearchPlatformAuditEntries, ExportPlatformAuditEntries,
 * GetLatestPlatformCheckpoint, GetPublicKeys and RotateSigningKey — success, invalid input
 * naming the field, unknown ids and one tenant's ids under another. Exports are checked with
 * the offline verifier (verifyExport and the published key), their header and trailer against
 * the bytes. And the point of it all: every change made through any service shows up in its
 * tenant's log within a second, with the caller as actor, denials included.
 */
import { createHash } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { newId } from "@uab/core";
import { Scope } from "@uab/proto";
import { type AuditEntry, AuditOutcome } from "@uab/proto/gen/uab/audit/v1/audit_entry_pb.js";
import {
  AuditEntryOrder,
  type ExportAuditEntriesResponse,
  type ExportHeader,
  type ExportPlatformAuditEntriesResponse,
  type ExportTrailer,
} from "@uab/proto/gen/uab/audit/v1/audit_service_pb.js";
import { ExportFormat } from "@uab/proto/gen/uab/audit/v1/export_job_pb.js";
import { SigningKeyStatus } from "@uab/proto/gen/uab/audit/v1/signing_key_pb.js";
import { PrincipalType } from "@uab/proto/gen/uab/events/v1/event_pb.js";
import { eventually, expectCode, expectInvalid } from "@uab/testing";
import { openCheckpoint, verifyExport } from "@uab/tlog";
import { collect, type Harness, ORIGIN, startHarness, type TestTenant, type TestUser } from "./harness.js";

let h: Harness;
let a: TestTenant;
let b: TestTenant;
let member: TestUser;
/** A project of tenant A with a name to search for. */
let project: { id: string; name: string };

let slugs = 0;
async function makeProject(t: TestTenant, name = `Project ${++slugs}`) {
  const res = await h
    .tenancy(t.ownerToken)
    .createProject({ tenantId: t.tenantId, slug: `p-${++slugs}`, displayName: name });
  return res.project!;
}

beforeAll(async () => {
  h = await startHarness();
  [a, b] = await Promise.all([h.tenant("entries-a"), h.tenant("entries-b")]);
  member = await h.member(a.tenantId);
  const p = await makeProject(a, "Searchable Zebra");
  project = { id: p.id, name: p.displayName };
  await makeProject(a);
  await makeProject(b);
  await h.waitForEntries(a.tenantId, 7);
});
afterAll(async () => {
  await h?.close();
});

async function verifierKeys(): Promise<string[]> {
  return (await h.audit().getPublicKeys({ includeRetired: true })).keys.map((k) => k.verifierKey);
}

/** Splits an export stream into its header, its bytes and its trailer (asserting the framing). */
function assemble(parts: (ExportAuditEntriesResponse | ExportPlatformAuditEntriesResponse)[]): {
  header: ExportHeader;
  bytes: Buffer;
  trailer: ExportTrailer;
} {
  expect(parts[0]?.part.case).toBe("header");
  expect(parts[parts.length - 1]?.part.case).toBe("trailer");
  expect(parts.slice(1, -1).every((p) => p.part.case === "data")).toBe(true);
  const bytes = Buffer.concat(parts.slice(1, -1).map((p) => p.part.value as Uint8Array));
  return {
    header: parts[0]!.part.value as ExportHeader,
    bytes,
    trailer: parts[parts.length - 1]!.part.value as ExportTrailer,
  };
}

/** The trailer agrees with the bytes. */
function checkTrailer(bytes: Buffer, trailer: ExportTrailer, entryCount: number) {
  expect(trailer.byteCount).toBe(BigInt(bytes.length));
  expect(Buffer.from(trailer.sha256).toString("hex")).toBe(createHash("sha256").update(bytes).digest("hex"));
  expect(trailer.entryCount).toBe(BigInt(entryCount));
}

function ndjsonLines(bytes: Buffer): Record<string, unknown>[] {
  const text = bytes.toString("utf8");
  expect(text.endsWith("\n")).toBe(true);
  return text
    .slice(0, -1)
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function searchAll(t: TestTenant, filter: Record<string, unknown> = {}): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  let pageToken = "";
  do {
    const res = await h
      .audit(t.ownerToken)
      .searchAuditEntries({ tenantId: t.tenantId, filter, pageSize: 1000, pageToken });
    out.push(...res.entries);
    pageToken = res.nextPageToken;
  } while (pageToken);
  return out;
}

describe("every change through any service", () => {
  /** Polls the log for one entry for at most a second from now. */
  async function withinASecond(t: TestTenant, eventType: string, resourceId: string, timeoutMs = 1000) {
    const token = t.ownerToken;
    return eventually(
      async () => {
        const res = await h.audit(token).searchAuditEntries({
          tenantId: t.tenantId,
          filter: { eventTypes: [eventType], resourceId },
        });
        return res.entries[0];
      },
      timeoutMs,
      20,
    );
  }

  it("shows up in its tenant's log within a second, with the caller as actor and the resource", async () => {
    // The tenant, by the platform administrator.
    const ownerId = newId("user");
    const created = await h.tenancy(h.adminToken).createTenant({
      slug: `every-${newId("request").slice(-8)}`,
      displayName: "Every change",
      ownerUserId: ownerId,
    });
    const tenantId = created.tenant!.id;
    const t: TestTenant = { tenantId, ownerId, ownerToken: await h.token({ sub: ownerId, tid: tenantId }) };
    const auditorOfAll = { ...t, ownerToken: await h.token({ sub: h.adminId }) };
    const tenant = await withinASecond(auditorOfAll, "uab.tenancy.v1.TenantCreated", tenantId);
    expect(tenant).toMatchObject({
      tenantId,
      source: "tenancy",
      action: "tenancy.tenant.created",
      outcome: AuditOutcome.SUCCESS,
      actor: { principalId: h.adminId, principalType: PrincipalType.USER },
      resource: { type: "tenancy.tenant", id: tenantId, displayName: "Every change" },
    });
    // Wait until authorization knows the owner, then change things as the owner.
    await eventually(() =>
      h
        .audit(t.ownerToken)
        .getRetentionPolicy({ tenantId })
        .then(() => true),
    );
    const changes: { type: string; resource: { type: string; id: string } }[] = [];
    const p = (await h.tenancy(t.ownerToken).createProject({ tenantId, slug: "every-p", displayName: "Every P" }))
      .project!;
    changes.push({ type: "uab.tenancy.v1.ProjectCreated", resource: { type: "tenancy.project", id: p.id } });
    const team = (await h.tenancy(t.ownerToken).createTeam({ tenantId, slug: "every-t", displayName: "Every T" }))
      .team!;
    changes.push({ type: "uab.tenancy.v1.TeamCreated", resource: { type: "tenancy.team", id: team.id } });
    const m = (await h.tenancy(t.ownerToken).createMembership({ tenantId, userId: newId("user") })).membership!;
    changes.push({ type: "uab.tenancy.v1.MembershipCreated", resource: { type: "tenancy.membership", id: m.id } });
    const role = (
      await h.authz(t.ownerToken).createRole({
        tenantId,
        slug: "every-role",
        displayName: "Every role",
        permissions: ["tenancy.projects.get"],
        assignableScopes: [Scope.TENANT],
      })
    ).role!;
    changes.push({ type: "uab.authorization.v1.RoleCreated", resource: { type: "authorization.role", id: role.id } });
    // Each was recorded within a second of the call returning (the last call returned just now).
    for (const c of changes) {
      const e = await withinASecond(t, c.type, c.resource.id);
      expect(e).toMatchObject({
        tenantId,
        outcome: AuditOutcome.SUCCESS,
        actor: { principalId: ownerId, principalType: PrincipalType.USER, principalTenantId: tenantId },
        resource: c.resource,
      });
      expect(e.actor?.ipAddress).toBe("127.0.0.1");
      expect(e.requestId).toMatch(/^req_/);
    }
  });

  it("records a denied call as AccessDenied with outcome DENIED (denials are flushed once a second)", async () => {
    await expectCode(h.audit(member.token).createCheckpoint({ tenantId: a.tenantId }), Code.PermissionDenied);
    const e = await eventually(
      async () => {
        const res = await h.audit(a.ownerToken).searchAuditEntries({
          tenantId: a.tenantId,
          filter: { outcome: AuditOutcome.DENIED, actorId: member.userId },
        });
        return res.entries[0];
      },
      2500,
      20,
    );
    expect(e).toMatchObject({
      eventType: "uab.authorization.v1.AccessDenied",
      outcome: AuditOutcome.DENIED,
      actor: { principalId: member.userId },
      resource: { type: "authorization.decision", id: "audit.checkpoints.create" },
    });
    expect(e.outcomeReason).toContain("audit.checkpoints.create");
  });
});

describe("SearchAuditEntries", () => {
  it("returns the tenant's entries newest first, and oldest first when asked", async () => {
    const newest = await h.audit(a.ownerToken).searchAuditEntries({ tenantId: a.tenantId, pageSize: 1000 });
    const size = await h.logSize(a.tenantId);
    expect(newest.entries.length).toBeGreaterThanOrEqual(7);
    expect(newest.entries.map((e) => e.index)).toEqual(
      Array.from({ length: newest.entries.length }, (_, i) => BigInt(newest.entries.length - 1 - i)),
    );
    expect(newest.entries.length).toBeLessThanOrEqual(size);
    expect(newest.entries.every((e) => e.tenantId === a.tenantId && e.id.startsWith("aud_"))).toBe(true);
    const oldest = await h.audit(a.ownerToken).searchAuditEntries({
      tenantId: a.tenantId,
      order: AuditEntryOrder.OLDEST_FIRST,
      pageSize: 1000,
      filter: { endIndex: BigInt(newest.entries.length) },
    });
    expect(oldest.entries.map((e) => e.id)).toEqual([...newest.entries].reverse().map((e) => e.id));
    // The chain links each entry to the one before.
    for (let i = 1; i < oldest.entries.length; i++) {
      expect(Buffer.from(oldest.entries[i]!.previousChainHash)).toEqual(Buffer.from(oldest.entries[i - 1]!.chainHash));
    }
  });

  it("pages with a cursor: every entry once", async () => {
    const all = await searchAll(a);
    const seen: string[] = [];
    let pageToken = "";
    do {
      const res = await h.audit(a.ownerToken).searchAuditEntries({
        tenantId: a.tenantId,
        filter: { endIndex: BigInt(all.length) },
        pageSize: 3,
        pageToken,
      });
      expect(res.entries.length).toBeLessThanOrEqual(3);
      seen.push(...res.entries.map((e) => e.id));
      pageToken = res.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual(all.map((e) => e.id));
  });

  it("filters by actor, resource, event type prefix, IP range, outcome and free text", async () => {
    const byActor = await searchAll(a, { actorId: a.ownerId });
    expect(byActor.length).toBeGreaterThan(0);
    expect(byActor.every((e) => e.actor?.principalId === a.ownerId)).toBe(true);
    const byResource = await searchAll(a, { resourceType: "tenancy.project", resourceId: project.id });
    expect(byResource.map((e) => e.eventType)).toEqual(["uab.tenancy.v1.ProjectCreated"]);
    const byPrefix = await searchAll(a, { eventTypes: ["uab.tenancy.v1.*"] });
    expect(byPrefix.length).toBeGreaterThan(0);
    expect(byPrefix.every((e) => e.eventType.startsWith("uab.tenancy.v1."))).toBe(true);
    const loopback = await searchAll(a, { ipAddress: "127.0.0.0/8" });
    expect(loopback.length).toBeGreaterThan(0);
    expect(loopback.every((e) => e.actor?.ipAddress === "127.0.0.1")).toBe(true);
    expect(await searchAll(a, { ipAddress: "10.0.0.0/8" })).toEqual([]);
    expect(await searchAll(a, { ipAddress: "127.0.0.1" })).toHaveLength(loopback.length);
    const text = await searchAll(a, { query: "searchable zeb" });
    expect(text.map((e) => e.resource?.id)).toEqual([project.id]);
    const failures = await searchAll(a, { outcome: AuditOutcome.FAILURE });
    expect(failures).toEqual([]);
    const future = await searchAll(a, { startTime: timestampFromDate(new Date(Date.now() + 86_400_000)) });
    expect(future).toEqual([]);
  });

  it("never shows another tenant's entries, nor accepts its page tokens", async () => {
    expect(await searchAll(b, { resourceId: project.id })).toEqual([]);
    const bs = await searchAll(b);
    expect(bs.length).toBeGreaterThan(0);
    expect(bs.every((e) => e.tenantId === b.tenantId)).toBe(true);
    const page = await h.audit(a.ownerToken).searchAuditEntries({ tenantId: a.tenantId, pageSize: 1 });
    expect(page.nextPageToken).not.toBe("");
    await expectInvalid(
      h.audit(b.ownerToken).searchAuditEntries({ tenantId: b.tenantId, pageSize: 1, pageToken: page.nextPageToken }),
      "page_token",
    );
  });

  it("rejects invalid input naming the field", async () => {
    const owner = h.audit(a.ownerToken);
    const t = a.tenantId;
    await expectInvalid(owner.searchAuditEntries({ tenantId: "ten_x" }), "tenant_id");
    await expectInvalid(owner.searchAuditEntries({ tenantId: t, filter: { ipAddress: "nope" } }), "filter.ip_address");
    await expectInvalid(owner.searchAuditEntries({ tenantId: t, pageSize: 1001 }), "page_size");
    await expectInvalid(owner.searchAuditEntries({ tenantId: t, order: 7 as AuditEntryOrder }), "order");
    await expectInvalid(owner.searchAuditEntries({ tenantId: t, pageToken: "garbage" }), "page_token");
    await expectInvalid(
      owner.searchAuditEntries({ tenantId: t, filter: { eventTypes: ["not a type"] } }),
      "filter.event_types[0]",
    );
    await expectInvalid(
      owner.searchAuditEntries({ tenantId: t, filter: { actions: ["tenancy.project.created", "Bad"] } }),
      "filter.actions[1]",
    );
    await expectInvalid(
      owner.searchAuditEntries({ tenantId: t, filter: { outcome: 9 as AuditOutcome } }),
      "filter.outcome",
    );
    await expectInvalid(owner.searchAuditEntries({ tenantId: t, filter: { startIndex: -1n } }), "filter.start_index");
    const err = await expectCode(
      owner.searchAuditEntries({
        tenantId: t,
        filter: { startTime: timestampFromDate(new Date(2_000)), endTime: timestampFromDate(new Date(1_000)) },
      }),
      Code.InvalidArgument,
    );
    expect(err.rawMessage).toContain("end_time must be after start_time");
  });
});

describe("GetAuditEntry", () => {
  it("returns one entry", async () => {
    const [e] = await searchAll(a, { resourceId: project.id });
    const res = await h.audit(a.ownerToken).getAuditEntry({ tenantId: a.tenantId, entryId: e!.id });
    expect(res.entry).toEqual(e);
  });

  it("rejects a malformed id", async () => {
    await expectInvalid(h.audit(a.ownerToken).getAuditEntry({ tenantId: a.tenantId, entryId: "aud_1" }), "entry_id");
  });

  it("answers NOT_FOUND for an unknown id and for another tenant's entry", async () => {
    await expectCode(
      h.audit(a.ownerToken).getAuditEntry({ tenantId: a.tenantId, entryId: newId("auditEntry") }),
      Code.NotFound,
      { reason: "AUDIT_ENTRY_NOT_FOUND" },
    );
    const [e] = await searchAll(a, { resourceId: project.id });
    await expectCode(h.audit(b.ownerToken).getAuditEntry({ tenantId: b.tenantId, entryId: e!.id }), Code.NotFound, {
      reason: "AUDIT_ENTRY_NOT_FOUND",
    });
  });
});

describe("ExportAuditEntries", () => {
  it("exports the whole log as NDJSON that verifies offline; header and trailer match the bytes", async () => {
    const parts = await collect(
      h.audit(a.ownerToken).exportAuditEntries({ tenantId: a.tenantId, format: ExportFormat.NDJSON }),
    );
    const { header, bytes, trailer } = assemble(parts);
    const size = Number(header.checkpoint!.treeSize);
    expect(header).toMatchObject({ format: ExportFormat.NDJSON, contentType: "application/x-ndjson" });
    expect(header.estimatedEntryCount).toBe(BigInt(size));
    checkTrailer(bytes, trailer, size);
    expect(trailer).toMatchObject({ firstIndex: 0n, lastIndex: BigInt(size - 1) });
    const keys = await verifierKeys();
    const v = verifyExport(bytes, { verifierKeys: keys, origin: `${ORIGIN}/${a.tenantId}` });
    expect(v).toMatchObject({ ok: true, format: "ndjson", entryCount: size, verifiedCount: size, complete: true });
    // The header line carries the checkpoint of the header message; the trailer line hashes what precedes it.
    const lines = ndjsonLines(bytes);
    expect(lines[0]).toMatchObject({ type: "header", log: a.tenantId, complete: true });
    expect((lines[0]!.checkpoint as { note: string }).note).toBe(header.checkpoint!.note);
    const last = lines[lines.length - 1]!;
    const beforeTrailer = bytes.subarray(0, bytes.length - Buffer.byteLength(`${JSON.stringify(last)}\n`));
    expect(last).toMatchObject({ type: "trailer", entry_count: size });
    expect(last.sha256).toBe(createHash("sha256").update(beforeTrailer).digest("hex"));
    // A changed byte in an entry is caught.
    const text = bytes.toString("utf8");
    const at = text.indexOf("Searchable Zebra");
    expect(at).toBeGreaterThan(0);
    const forged = Buffer.from(`${text.slice(0, at)}Searchable Zebru${text.slice(at + 16)}`, "utf8");
    const bad = verifyExport(forged, { verifierKeys: keys, origin: `${ORIGIN}/${a.tenantId}` });
    expect(bad.ok).toBe(false);
  });

  it("exports CSV that verifies with the header's checkpoint note", async () => {
    const parts = await collect(
      h.audit(a.ownerToken).exportAuditEntries({ tenantId: a.tenantId, format: ExportFormat.CSV }),
    );
    const { header, bytes, trailer } = assemble(parts);
    const size = Number(header.checkpoint!.treeSize);
    expect(header.contentType).toMatch(/^text\/csv/);
    checkTrailer(bytes, trailer, size);
    expect(bytes.toString("utf8").split("\n")[0]).toMatch(/^index,id,event_id,event_type/);
    const v = verifyExport(bytes, {
      verifierKeys: await verifierKeys(),
      checkpointNote: header.checkpoint!.note,
      origin: `${ORIGIN}/${a.tenantId}`,
      format: "csv",
    });
    expect(v).toMatchObject({ ok: true, format: "csv", entryCount: size, complete: true });
  });

  it("exports a filtered selection as NDJSON with an inclusion proof per entry", async () => {
    const projects = await searchAll(a, { eventTypes: ["uab.tenancy.v1.ProjectCreated"] });
    expect(projects.length).toBeGreaterThanOrEqual(2);
    const parts = await collect(
      h.audit(a.ownerToken).exportAuditEntries({
        tenantId: a.tenantId,
        format: ExportFormat.NDJSON,
        filter: { eventTypes: ["uab.tenancy.v1.ProjectCreated"] },
        includeInclusionProofs: true,
      }),
    );
    const { bytes, trailer } = assemble(parts);
    checkTrailer(bytes, trailer, projects.length);
    const lines = ndjsonLines(bytes);
    expect(lines[0]).toMatchObject({ type: "header", complete: false, boundary: null });
    const entries = lines.filter((l) => l.type === "entry");
    expect(entries.map((l) => BigInt(l.index as number))).toEqual([...projects].reverse().map((e) => e.index));
    expect(entries.every((l) => Array.isArray(l.inclusion_proof))).toBe(true);
    const v = verifyExport(bytes, { verifierKeys: await verifierKeys(), origin: `${ORIGIN}/${a.tenantId}` });
    expect(v).toMatchObject({ ok: true, complete: false, entryCount: projects.length });
  });

  it("exports an index range and pins an export to an earlier checkpoint", async () => {
    const { checkpoint } = await h.audit(a.ownerToken).createCheckpoint({ tenantId: a.tenantId });
    await makeProject(a);
    await h.waitForEntries(a.tenantId, Number(checkpoint!.treeSize) + 1);
    const pinned = assemble(
      await collect(
        h.audit(a.ownerToken).exportAuditEntries({
          tenantId: a.tenantId,
          format: ExportFormat.NDJSON,
          checkpointId: checkpoint!.id,
          filter: { startIndex: 2n },
        }),
      ),
    );
    expect(pinned.header.checkpoint?.id).toBe(checkpoint!.id);
    const n = Number(checkpoint!.treeSize) - 2;
    checkTrailer(pinned.bytes, pinned.trailer, n);
    expect(pinned.trailer).toMatchObject({ firstIndex: 2n, lastIndex: checkpoint!.treeSize - 1n });
    expect(ndjsonLines(pinned.bytes)[0]).toMatchObject({ complete: true, boundary: { start_index: 2 } });
    const v = verifyExport(pinned.bytes, { verifierKeys: await verifierKeys(), origin: `${ORIGIN}/${a.tenantId}` });
    expect(v).toMatchObject({ ok: true, entryCount: n, complete: true });
  });

  it("rejects invalid input naming the field", async () => {
    const owner = h.audit(a.ownerToken);
    const t = a.tenantId;
    await expectInvalid(collect(owner.exportAuditEntries({ tenantId: t })), "format");
    await expectInvalid(collect(owner.exportAuditEntries({ tenantId: "x", format: ExportFormat.CSV })), "tenant_id");
    await expectInvalid(
      collect(owner.exportAuditEntries({ tenantId: t, format: ExportFormat.CSV, includeInclusionProofs: true })),
      "include_inclusion_proofs",
    );
    await expectInvalid(
      collect(owner.exportAuditEntries({ tenantId: t, format: ExportFormat.NDJSON, checkpointId: "chk_x" })),
      "checkpoint_id",
    );
    await expectInvalid(
      collect(owner.exportAuditEntries({ tenantId: t, format: ExportFormat.NDJSON, filter: { ipAddress: "nope" } })),
      "filter.ip_address",
    );
  });

  it("answers NOT_FOUND for an unknown checkpoint and for another tenant's", async () => {
    await expectCode(
      collect(
        h.audit(a.ownerToken).exportAuditEntries({
          tenantId: a.tenantId,
          format: ExportFormat.NDJSON,
          checkpointId: newId("checkpoint"),
        }),
      ),
      Code.NotFound,
      { reason: "CHECKPOINT_NOT_FOUND" },
    );
    const { checkpoint } = await h.audit(a.ownerToken).getLatestCheckpoint({ tenantId: a.tenantId });
    await expectCode(
      collect(
        h.audit(b.ownerToken).exportAuditEntries({
          tenantId: b.tenantId,
          format: ExportFormat.NDJSON,
          checkpointId: checkpoint!.id,
        }),
      ),
      Code.NotFound,
      { reason: "CHECKPOINT_NOT_FOUND" },
    );
  });
});

describe("the platform log", () => {
  it("GetLatestPlatformCheckpoint answers NOT_FOUND before the platform log has a checkpoint", async () => {
    await expectCode(h.audit(h.adminToken).getLatestPlatformCheckpoint({}), Code.NotFound, {
      reason: "CHECKPOINT_NOT_FOUND",
    });
  });

  it("records platform-level denials; SearchPlatformAuditEntries shows them, never tenant entries", async () => {
    await expectCode(h.audit(a.ownerToken).searchPlatformAuditEntries({}), Code.PermissionDenied);
    const denied = await eventually(
      async () => {
        const res = await h.audit(h.adminToken).searchPlatformAuditEntries({
          filter: { outcome: AuditOutcome.DENIED, actorId: a.ownerId },
        });
        return res.entries[0];
      },
      2500,
      20,
    );
    expect(denied).toMatchObject({
      tenantId: "",
      eventType: "uab.authorization.v1.AccessDenied",
      resource: { id: "audit.platform_entries.list" },
    });
    const all = await h.audit(h.adminToken).searchPlatformAuditEntries({ pageSize: 1000 });
    expect(all.entries.every((e) => e.tenantId === "")).toBe(true);
    expect(all.entries.some((e) => e.resource?.id === project.id)).toBe(false);
  });

  it("SearchPlatformAuditEntries rejects invalid input naming the field", async () => {
    const admin = h.audit(h.adminToken);
    await expectInvalid(admin.searchPlatformAuditEntries({ filter: { ipAddress: "nope" } }), "filter.ip_address");
    await expectInvalid(admin.searchPlatformAuditEntries({ pageSize: 5000 }), "page_size");
  });

  it("ExportPlatformAuditEntries exports the platform log, which verifies; then it has a latest checkpoint", async () => {
    const { header, bytes, trailer } = assemble(
      await collect(h.audit(h.adminToken).exportPlatformAuditEntries({ format: ExportFormat.NDJSON })),
    );
    const size = Number(header.checkpoint!.treeSize);
    expect(size).toBeGreaterThan(0);
    expect(header.checkpoint!.origin).toBe(`${ORIGIN}/platform`);
    checkTrailer(bytes, trailer, size);
    const v = verifyExport(bytes, { verifierKeys: await verifierKeys(), origin: `${ORIGIN}/platform` });
    expect(v).toMatchObject({ ok: true, entryCount: size, complete: true });
    const latest = await h.audit(h.adminToken).getLatestPlatformCheckpoint({});
    expect(latest.checkpoint?.id).toBe(header.checkpoint!.id);
    expect(latest.checkpoint?.tenantId).toBe("");
    openCheckpoint(latest.checkpoint!.note, await verifierKeys(), { origin: `${ORIGIN}/platform` });
  });

  it("ExportPlatformAuditEntries rejects invalid input naming the field", async () => {
    const admin = h.audit(h.adminToken);
    await expectInvalid(collect(admin.exportPlatformAuditEntries({})), "format");
    await expectInvalid(
      collect(admin.exportPlatformAuditEntries({ format: ExportFormat.NDJSON, checkpointId: "nope" })),
      "checkpoint_id",
    );
    await expectCode(
      collect(admin.exportPlatformAuditEntries({ format: ExportFormat.NDJSON, checkpointId: newId("checkpoint") })),
      Code.NotFound,
    );
    // A tenant's checkpoint is not a platform checkpoint.
    const { checkpoint } = await h.audit(a.ownerToken).getLatestCheckpoint({ tenantId: a.tenantId });
    await expectCode(
      collect(admin.exportPlatformAuditEntries({ format: ExportFormat.NDJSON, checkpointId: checkpoint!.id })),
      Code.NotFound,
    );
  });
});

describe("GetPublicKeys and RotateSigningKey", () => {
  it("GetPublicKeys lists the active key, no token needed", async () => {
    const res = await h.audit().getPublicKeys({});
    expect(res.keys).toHaveLength(1);
    expect(res.keys[0]).toMatchObject({ status: SigningKeyStatus.ACTIVE, name: ORIGIN, algorithm: 1 });
    expect(res.keys[0]!.publicKey).toHaveLength(32);
    expect(res.keys[0]!.verifierKey.startsWith(`${res.keys[0]!.keyId}+`)).toBe(true);
  });

  it("RotateSigningKey rejects an empty reason", async () => {
    await expectInvalid(h.audit(await h.mfa({ sub: h.adminId })).rotateSigningKey({ reason: "" }), "reason");
  });

  it("RotateSigningKey retires the key, keeps it published and signs every log under the new one", async () => {
    const before = (await h.audit().getPublicKeys({})).keys[0]!;
    const { checkpoint: old } = await h.audit(b.ownerToken).createCheckpoint({ tenantId: b.tenantId });
    expect(old!.keyId).toBe(before.keyId);
    const res = await h.audit(await h.mfa({ sub: h.adminId })).rotateSigningKey({ reason: "scheduled rotation" });
    expect(res.retiredKey).toMatchObject({ keyId: before.keyId, status: SigningKeyStatus.RETIRED });
    expect(res.retiredKey?.retireTime).toBeDefined();
    expect(res.activeKey).toMatchObject({ status: SigningKeyStatus.ACTIVE });
    expect(res.activeKey!.keyId).not.toBe(before.keyId);
    // Published: the active key alone, or both with include_retired.
    expect((await h.audit().getPublicKeys({})).keys.map((k) => k.keyId)).toEqual([res.activeKey!.keyId]);
    const all = await h.audit().getPublicKeys({ includeRetired: true });
    expect(all.keys.map((k) => k.keyId)).toEqual([res.activeKey!.keyId, before.keyId]);
    // Every log's head is signed under the new key at once ("every log gets a checkpoint").
    const latest = await h.audit(b.ownerToken).getLatestCheckpoint({ tenantId: b.tenantId });
    expect(latest.checkpoint?.keyId).toBe(res.activeKey!.keyId);
    openCheckpoint(latest.checkpoint!.note, [res.activeKey!.verifierKey], { origin: `${ORIGIN}/${b.tenantId}` });
    // The old checkpoint still opens with the retired key, and the log verifies across the change.
    openCheckpoint(old!.note, [before.verifierKey], { origin: `${ORIGIN}/${b.tenantId}` });
    expect((await h.audit(b.ownerToken).verifyLog({ tenantId: b.tenantId })).result?.ok).toBe(true);
    expect((await h.audit(b.ownerToken).verifyLog({ tenantId: b.tenantId, checkpointId: old!.id })).result?.ok).toBe(
      true,
    );
    // The rotation is in the platform log, by the administrator, with its reason.
    const e = await eventually(async () => {
      const found = await h.audit(h.adminToken).searchPlatformAuditEntries({
        filter: { eventTypes: ["uab.audit.v1.SigningKeyRotated"] },
      });
      return found.entries[0];
    });
    expect(e).toMatchObject({ actor: { principalId: h.adminId }, resource: { id: res.activeKey!.keyId } });
    expect(JSON.stringify(e.metadata)).toContain("scheduled rotation");
  });
});
