/**
 * Audit streams over RPC, delivering to real HTTPS receivers (a self-signed certificate the
 * harness trusts through UAB_AUDIT_STREAM_CA_FILE) that check every request with the
 * reference Standard Webhooks implementation: CreateAuditStream, GetAuditStream,
 * ListAuditStreams, UpdateAuditStream, DeleteAuditStream, PauseAuditStream, ResumeAuditStream,
 * RotateAuditStreamSecret, ListAuditStreamDeliveries and SendTestAuditStreamEvent — success,
 * invalid input naming the field, unknown ids and one tenant's streams under another.
 *
 * Delivery: new entries arrive in signed batches, in index order, each exactly once; an
 * endpoint answering 500 gets FAILED deliveries with a next attempt time, the stream turns
 * FAILING after UAB_AUDIT_STREAM_FAILING_AFTER (2 here) failures and ACTIVE again once the
 * endpoint heals, with no entry lost; a paused stream holds its backlog (or skips it); during
 * a secret rotation both secrets sign; a paused stream stays paused when a delivery that was
 * in flight completes.
 */
import type { ServerResponse } from "node:http";
import { toJsonString } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { newId } from "@uab/core";
import { AuditOutcome } from "@uab/proto/gen/uab/audit/v1/audit_entry_pb.js";
import {
  type AuditStream,
  AuditStreamDeliveryStatus,
  AuditStreamPayloadFormat,
  AuditStreamSchema,
  AuditStreamStatus,
} from "@uab/proto/gen/uab/audit/v1/audit_stream_pb.js";
import { eventually, expectCode, expectInvalid } from "@uab/testing";
// The reference implementation; a devDependency of @uab/webhooks, not of @uab/audit.
import { Webhook } from "../../../libs/webhooks/node_modules/standardwebhooks/dist/index.js";
import {
  FAILING_AFTER,
  type Harness,
  type Received,
  type Receiver,
  startHarness,
  startReceiver,
  type TestTenant,
} from "./harness.js";

let h: Harness;
/** Tenant of the main stream. */
let t: TestTenant;
/** Tenant of the failing stream. */
let u: TestTenant;
/** Another tenant, for cross-tenant checks. */
let other: TestTenant;
/** Answers 200 (or holds /slow requests until released). */
let receiver: Receiver;
/** Answers 500 while `failing`. */
let flaky: Receiver;
let failing = true;

interface Seen {
  readonly received: Received;
  readonly status: number;
}
const seen: Seen[] = [];
const held: ServerResponse[] = [];

beforeAll(async () => {
  h = await startHarness();
  receiver = await startReceiver((r, res) => {
    if (r.path.startsWith("/slow")) {
      held.push(res);
      seen.push({ received: r, status: 200 });
      return;
    }
    seen.push({ received: r, status: 200 });
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  });
  flaky = await startReceiver((r, res) => {
    const status = failing ? 500 : 200;
    seen.push({ received: r, status });
    res.writeHead(status, { "content-type": "text/plain" });
    res.end(failing ? "down" : "ok");
  });
  [t, u, other] = await Promise.all([h.tenant("st-t"), h.tenant("st-u"), h.tenant("st-o")]);
  await Promise.all([t, u, other].map((x) => h.waitForEntries(x.tenantId, 3)));
});
afterAll(async () => {
  for (const res of held) res.destroy();
  await h?.close();
  await receiver?.close();
  await flaky?.close();
});

let slugs = 0;
/** Adds `n` entries to a tenant's log (projects, or teams) and waits for them; returns the log size. */
async function grow(x: TestTenant, n: number, kind: "project" | "team" = "project"): Promise<number> {
  const before = await h.logSize(x.tenantId);
  for (let i = 0; i < n; i++) {
    slugs++;
    const req = { tenantId: x.tenantId, slug: `s-${slugs}`, displayName: `S${slugs}` };
    if (kind === "project") await h.tenancy(x.ownerToken).createProject(req);
    else await h.tenancy(x.ownerToken).createTeam(req);
  }
  return h.waitForEntries(x.tenantId, before + n);
}

interface Batch {
  readonly webhookId: string;
  readonly type: string;
  readonly indices: number[];
  readonly eventTypes: string[];
  readonly received: Received;
}

/**
 * The JSON batches a path received and answered with 200, in arrival order (from the
 * `since`-th request received), each checked with the reference verifier for every secret.
 */
function batches(path: string, secrets: readonly string[] = [], since = 0): Batch[] {
  return seen
    .slice(since)
    .filter((s) => s.received.path === path && s.status === 200)
    .map(({ received }) => {
      for (const secret of secrets) new Webhook(secret).verify(received.body, received.headers);
      const body = JSON.parse(received.body) as {
        type: string;
        data: { entries: { index?: string; eventType: string }[] };
      };
      return {
        webhookId: received.headers["webhook-id"]!,
        type: body.type,
        indices: body.data.entries.map((e) => Number(e.index ?? 0)),
        eventTypes: body.data.entries.map((e) => e.eventType),
        received,
      };
    });
}

/** Every index a path received (200), in arrival order. */
function delivered(path: string): number[] {
  return batches(path).flatMap((b) => b.indices);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

/** Waits until a path has received every index in [from, to]. */
async function waitDelivered(path: string, from: number, to: number, timeoutMs = 15_000): Promise<void> {
  await eventually(
    () => {
      const got = new Set(delivered(path));
      return range(from, to).every((i) => got.has(i));
    },
    timeoutMs,
    50,
  );
}

const get = (x: TestTenant, id: string) =>
  h
    .audit(x.ownerToken)
    .getAuditStream({ tenantId: x.tenantId, auditStreamId: id })
    .then((r) => r.auditStream!);

describe("CreateAuditStream and delivery", () => {
  let main: AuditStream;
  let secret: string;
  const path = "/s/main";

  it("creates a stream and returns its signing secret once", async () => {
    const size = await h.logSize(t.tenantId);
    const res = await h.audit(t.ownerToken).createAuditStream({
      tenantId: t.tenantId,
      displayName: "main",
      endpointUrl: `${receiver.url}${path}`,
      batchSize: 3,
      flushInterval: { seconds: 1n },
      headers: { authorization: "Bearer siem-token" },
    });
    secret = res.signingSecret;
    main = res.auditStream!;
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(main).toMatchObject({
      tenantId: t.tenantId,
      displayName: "main",
      endpointUrl: `${receiver.url}${path}`,
      payloadFormat: AuditStreamPayloadFormat.JSON,
      batchSize: 3,
      flushInterval: { seconds: 1n },
      headerNames: ["authorization"],
      status: AuditStreamStatus.ACTIVE,
      deliveredThroughIndex: BigInt(size - 1),
      lagEntries: 0n,
      consecutiveFailures: 0,
    });
    expect(main.id).toMatch(/^ast_[0-9a-z]{26}$/);
    expect(main.secretHint).toBe(`whsec_…${secret.replace(/=+$/, "").slice(-4)}`);
    // Never shown again, nor the custom header's value.
    const again = toJsonString(AuditStreamSchema, await get(t, main.id));
    expect(again).not.toContain(secret.slice(6));
    expect(again).not.toContain("siem-token");
  });

  it("delivers new entries in signed batches, in index order, each exactly once", async () => {
    const from = Number(main.deliveredThroughIndex) + 1;
    const size = await grow(t, 7);
    await waitDelivered(path, from, size - 1);
    const got = batches(path, [secret]);
    for (const b of got) {
      expect(b.type).toBe("uab.audit.v1.AuditEntries");
      expect(b.indices.length).toBeGreaterThan(0);
      expect(b.indices.length).toBeLessThanOrEqual(3);
      expect(b.indices).toEqual(range(b.indices[0]!, b.indices[b.indices.length - 1]!));
      expect(b.webhookId).toBe(`${main.id}_${b.indices[0]}_${b.indices[b.indices.length - 1]}`);
      expect(b.received.headers.authorization).toBe("Bearer siem-token");
      expect(b.received.headers["content-type"]).toBe("application/json");
      expect(b.received.method).toBe("POST");
    }
    const all = delivered(path);
    expect(all).toEqual(range(from, all[all.length - 1]!));
    expect(all.length).toBeGreaterThanOrEqual(size - from);
    // The deliveries as the API records them.
    const list = await h
      .audit(t.ownerToken)
      .listAuditStreamDeliveries({ tenantId: t.tenantId, auditStreamId: main.id });
    const ok = list.deliveries.filter((d) => !d.test);
    expect(ok.length).toBeGreaterThanOrEqual(got.length);
    for (const d of ok) {
      expect(d).toMatchObject({ status: AuditStreamDeliveryStatus.SUCCEEDED, httpStatusCode: 200, attempt: 1 });
      expect(d.entryCount).toBe(Number(d.lastIndex - d.firstIndex) + 1);
    }
    expect(ok.map((d) => Number(d.firstIndex)).sort((x, y) => x - y)).toEqual(got.map((b) => b.indices[0]));
    const failed = await h.audit(t.ownerToken).listAuditStreamDeliveries({
      tenantId: t.tenantId,
      auditStreamId: main.id,
      status: AuditStreamDeliveryStatus.FAILED,
    });
    expect(failed.deliveries).toEqual([]);
    const now = await get(t, main.id);
    expect(Number(now.deliveredThroughIndex)).toBeGreaterThanOrEqual(size - 1);
    expect(now.lastDeliveryStatus).toBe(AuditStreamDeliveryStatus.SUCCEEDED);
    expect(now.lastSuccessTime).toBeDefined();
  });

  it("replays the log from start_index as NDJSON (a backfill)", async () => {
    const size = await h.logSize(t.tenantId);
    const res = await h.audit(t.ownerToken).createAuditStream({
      tenantId: t.tenantId,
      displayName: "backfill",
      endpointUrl: `${receiver.url}/s/backfill`,
      payloadFormat: AuditStreamPayloadFormat.NDJSON,
      batchSize: 1000,
      flushInterval: { seconds: 1n },
      startIndex: 0n,
    });
    expect(res.auditStream?.deliveredThroughIndex).toBe(-1n);
    const requests = await eventually(
      () => {
        const got = seen.filter((s) => s.received.path === "/s/backfill");
        const lines = got.flatMap((s) => s.received.body.trim().split("\n"));
        return lines.length >= size ? got : undefined;
      },
      15_000,
      50,
    );
    const first = requests[0]!.received;
    // NDJSON is not one JSON document: check the signature without parsing the body.
    new Webhook(res.signingSecret).verify(first.body, first.headers, { jsonParse: false });
    expect(first.headers["content-type"]).toBe("application/x-ndjson");
    const indices = requests.flatMap((s) =>
      s.received.body
        .trim()
        .split("\n")
        .map((l) => Number((JSON.parse(l) as { index?: string }).index ?? 0)),
    );
    expect(indices.slice(0, size)).toEqual(range(0, size - 1));
    await h.audit(t.ownerToken).deleteAuditStream({ tenantId: t.tenantId, auditStreamId: res.auditStream!.id });
  });

  it("rejects invalid input naming the field", async () => {
    const owner = h.audit(t.ownerToken);
    const base = { tenantId: t.tenantId, displayName: "bad", endpointUrl: `${receiver.url}/bad` };
    await expectInvalid(
      owner.createAuditStream({ ...base, endpointUrl: "http://siem.example.com/hook" }),
      "endpoint_url",
    );
    await expectInvalid(owner.createAuditStream({ ...base, endpointUrl: "not a url" }), "endpoint_url");
    await expectInvalid(owner.createAuditStream({ ...base, displayName: "" }), "display_name");
    await expectInvalid(owner.createAuditStream({ ...base, tenantId: "ten_1" }), "tenant_id");
    await expectInvalid(owner.createAuditStream({ ...base, batchSize: 1001 }), "batch_size");
    await expectInvalid(owner.createAuditStream({ ...base, flushInterval: { nanos: 500_000_000 } }), "flush_interval");
    await expectInvalid(owner.createAuditStream({ ...base, eventTypes: ["no spaces"] }), "event_types[0]");
    await expectInvalid(
      owner.createAuditStream({ ...base, payloadFormat: 9 as AuditStreamPayloadFormat }),
      "payload_format",
    );
    await expectInvalid(owner.createAuditStream({ ...base, startIndex: -1n }), "start_index");
    await expectInvalid(owner.createAuditStream({ ...base, headers: { "webhook-id": "x" } }), 'headers["webhook-id"]');
    await expectCode(owner.createAuditStream({ ...base, displayName: "main" }), Code.AlreadyExists, {
      reason: "AUDIT_STREAM_EXISTS",
    });
  });

  it("records AuditStreamCreated in the tenant's log", async () => {
    const e = await eventually(async () => {
      const res = await h.audit(t.ownerToken).searchAuditEntries({
        tenantId: t.tenantId,
        filter: { eventTypes: ["uab.audit.v1.AuditStreamCreated"], resourceId: main.id },
      });
      return res.entries[0];
    });
    expect(e).toMatchObject({
      actor: { principalId: t.ownerId },
      resource: { type: "audit.stream", displayName: "main" },
    });
    expect(JSON.stringify(e.metadata)).not.toContain(secret.slice(6));
  });

  describe("RotateAuditStreamSecret", () => {
    it("signs with both secrets during the overlap, then only with the new one", async () => {
      const owner = h.audit(await h.mfa({ sub: t.ownerId, tid: t.tenantId }));
      const rotated = await owner.rotateAuditStreamSecret({ tenantId: t.tenantId, auditStreamId: main.id });
      const second = rotated.signingSecret;
      expect(second).toMatch(/^whsec_/);
      expect(second).not.toBe(secret);
      expect(rotated.auditStream?.secretHint).toBe(`whsec_…${second.replace(/=+$/, "").slice(-4)}`);
      let mark = seen.length;
      let size = await grow(t, 1);
      await eventually(() => delivered(path).includes(size - 1), 15_000, 50);
      const during = batches(path, [secret, second], mark);
      expect(during.length).toBeGreaterThan(0);
      for (const b of during) {
        expect(b.received.headers["webhook-signature"]!.split(" ")).toHaveLength(2);
        new Webhook(secret).verify(b.received.body, b.received.headers);
        new Webhook(second).verify(b.received.body, b.received.headers);
      }
      // Overlap 0: the previous secret stops signing at once.
      const third = (
        await owner.rotateAuditStreamSecret({ tenantId: t.tenantId, auditStreamId: main.id, overlap: { seconds: 0n } })
      ).signingSecret;
      mark = seen.length;
      size = await grow(t, 1);
      await eventually(() => delivered(path).includes(size - 1), 15_000, 50);
      const after = batches(path, [third], mark);
      expect(after.length).toBeGreaterThan(0);
      for (const b of after) {
        new Webhook(third).verify(b.received.body, b.received.headers);
        expect(() => new Webhook(second).verify(b.received.body, b.received.headers)).toThrow();
        expect(() => new Webhook(secret).verify(b.received.body, b.received.headers)).toThrow();
      }
      secret = third;
      // Still exactly once, in order.
      const all = delivered(path);
      expect(all).toEqual(range(all[0]!, all[all.length - 1]!));
    });

    it("rejects invalid input naming the field", async () => {
      const owner = h.audit(await h.mfa({ sub: t.ownerId, tid: t.tenantId }));
      await expectInvalid(
        owner.rotateAuditStreamSecret({ tenantId: t.tenantId, auditStreamId: main.id, overlap: { seconds: 604_801n } }),
        "overlap",
      );
      await expectInvalid(
        owner.rotateAuditStreamSecret({ tenantId: t.tenantId, auditStreamId: "ast_x" }),
        "audit_stream_id",
      );
    });
  });

  describe("PauseAuditStream and ResumeAuditStream", () => {
    it("holds the backlog while paused and delivers it on resume", async () => {
      await eventually(async () => (await get(t, main.id)).lagEntries === 0n, 15_000, 50);
      const paused = (await h.audit(t.ownerToken).pauseAuditStream({ tenantId: t.tenantId, auditStreamId: main.id }))
        .auditStream!;
      expect(paused.status).toBe(AuditStreamStatus.PAUSED);
      // Pausing a paused stream changes nothing.
      const again = (await h.audit(t.ownerToken).pauseAuditStream({ tenantId: t.tenantId, auditStreamId: main.id }))
        .auditStream!;
      expect(again).toMatchObject({ status: AuditStreamStatus.PAUSED, etag: paused.etag });
      const before = delivered(path).length;
      const size = await grow(t, 2);
      // Longer than the flush interval and many polls: nothing goes out.
      await new Promise((r) => setTimeout(r, 1500));
      expect(delivered(path)).toHaveLength(before);
      const lagging = await get(t, main.id);
      expect(Number(lagging.lagEntries)).toBeGreaterThanOrEqual(2);
      expect(lagging.lag).toBeDefined();
      const resumed = (await h.audit(t.ownerToken).resumeAuditStream({ tenantId: t.tenantId, auditStreamId: main.id }))
        .auditStream!;
      expect(resumed.status).toBe(AuditStreamStatus.ACTIVE);
      expect(Number(resumed.deliveredThroughIndex)).toBeLessThan(size - 2);
      await waitDelivered(path, Number(paused.deliveredThroughIndex) + 1, size - 1);
      const all = delivered(path);
      expect(all).toEqual(range(all[0]!, all[all.length - 1]!));
    });

    it("skips the backlog on resume with skip_backlog, and records the gap", async () => {
      await eventually(async () => (await get(t, main.id)).lagEntries === 0n, 15_000, 50);
      const paused = (await h.audit(t.ownerToken).pauseAuditStream({ tenantId: t.tenantId, auditStreamId: main.id }))
        .auditStream!;
      const size = await grow(t, 2);
      const resumed = (
        await h.audit(t.ownerToken).resumeAuditStream({
          tenantId: t.tenantId,
          auditStreamId: main.id,
          skipBacklog: true,
        })
      ).auditStream!;
      expect(resumed.status).toBe(AuditStreamStatus.ACTIVE);
      expect(Number(resumed.deliveredThroughIndex)).toBeGreaterThanOrEqual(size - 1);
      const skippedFrom = Number(paused.deliveredThroughIndex) + 1;
      const skippedTo = Number(resumed.deliveredThroughIndex);
      const next = await grow(t, 1);
      await eventually(() => delivered(path).includes(next - 1), 15_000, 50);
      const got = new Set(delivered(path));
      expect(range(skippedFrom, skippedTo).filter((i) => got.has(i))).toEqual([]);
      const e = await eventually(async () => {
        const res = await h.audit(t.ownerToken).searchAuditEntries({
          tenantId: t.tenantId,
          filter: { eventTypes: ["uab.audit.v1.AuditStreamResumed"], resourceId: main.id },
        });
        return res.entries.find((x) => JSON.stringify(x.metadata).includes("skippedEntries"));
      });
      expect(JSON.stringify(e.metadata)).toContain(`"skippedEntries":"${skippedTo - skippedFrom + 1}"`);
    });

    it("rejects malformed ids", async () => {
      await expectInvalid(
        h.audit(t.ownerToken).pauseAuditStream({ tenantId: t.tenantId, auditStreamId: "x" }),
        "audit_stream_id",
      );
      await expectInvalid(
        h.audit(t.ownerToken).resumeAuditStream({ tenantId: t.tenantId, auditStreamId: "x" }),
        "audit_stream_id",
      );
    });
  });

  describe("UpdateAuditStream", () => {
    it("changes the fields in the mask with the etag read; a stale etag is ABORTED", async () => {
      const read = await get(t, main.id);
      const res = await h.audit(t.ownerToken).updateAuditStream({
        tenantId: t.tenantId,
        auditStreamId: main.id,
        displayName: "main (renamed)",
        batchSize: 500,
        updateMask: { paths: ["display_name"] },
        etag: read.etag,
      });
      expect(res.auditStream).toMatchObject({ displayName: "main (renamed)", batchSize: 3 });
      expect(res.auditStream!.etag).not.toBe(read.etag);
      await expectCode(
        h.audit(t.ownerToken).updateAuditStream({
          tenantId: t.tenantId,
          auditStreamId: main.id,
          displayName: "stale",
          updateMask: { paths: ["display_name"] },
          etag: read.etag,
        }),
        Code.Aborted,
        { reason: "ETAG_MISMATCH" },
      );
      expect((await get(t, main.id)).displayName).toBe("main (renamed)");
    });

    it("delivers only the event types of a new filter", async () => {
      await h.audit(t.ownerToken).updateAuditStream({
        tenantId: t.tenantId,
        auditStreamId: main.id,
        eventTypes: ["uab.tenancy.v1.TeamCreated"],
        updateMask: { paths: ["event_types"] },
      });
      const mark = seen.length;
      const since = () => batches(path, [secret], mark);
      // A project, then a team: the project's entry comes first, so a filter that let it through would show it.
      await grow(t, 1, "project");
      await grow(t, 1, "team");
      await eventually(() => since().some((b) => b.eventTypes.includes("uab.tenancy.v1.TeamCreated")), 15_000, 50);
      expect(since().flatMap((b) => b.eventTypes)).toEqual(["uab.tenancy.v1.TeamCreated"]);
      await h.audit(t.ownerToken).updateAuditStream({
        tenantId: t.tenantId,
        auditStreamId: main.id,
        eventTypes: [],
        updateMask: { paths: ["event_types"] },
      });
    });

    it("rejects invalid input naming the field", async () => {
      const owner = h.audit(t.ownerToken);
      const base = { tenantId: t.tenantId, auditStreamId: main.id };
      await expectInvalid(owner.updateAuditStream(base), "update_mask");
      await expectInvalid(owner.updateAuditStream({ ...base, updateMask: { paths: ["secret"] } }), "update_mask");
      await expectInvalid(
        owner.updateAuditStream({
          ...base,
          endpointUrl: "http://x.example/h",
          updateMask: { paths: ["endpoint_url"] },
        }),
        "endpoint_url",
      );
      await expectInvalid(
        owner.updateAuditStream({ ...base, headers: { Host: "x" }, updateMask: { paths: ["headers"] } }),
        'headers["Host"]',
      );
      await expectInvalid(
        owner.updateAuditStream({ ...base, batchSize: -1, updateMask: { paths: ["batch_size"] } }),
        "batch_size",
      );
      const err = await expectCode(
        owner.updateAuditStream({ ...base, displayName: "", updateMask: { paths: ["display_name"] } }),
        Code.InvalidArgument,
      );
      expect(err.rawMessage).toContain("display_name must not be empty when it is in update_mask");
    });
  });

  describe("SendTestAuditStreamEvent", () => {
    it("sends a signed synthetic entry now without moving the cursor", async () => {
      const before = await get(t, main.id);
      const mark = seen.length;
      const { delivery } = await h.audit(t.ownerToken).sendTestAuditStreamEvent({
        tenantId: t.tenantId,
        auditStreamId: main.id,
      });
      expect(delivery).toMatchObject({
        auditStreamId: main.id,
        tenantId: t.tenantId,
        test: true,
        status: AuditStreamDeliveryStatus.SUCCEEDED,
        httpStatusCode: 200,
      });
      const req = seen.slice(mark).find((s) => s.received.path === path)!.received;
      new Webhook(secret).verify(req.body, req.headers);
      const body = JSON.parse(req.body) as { type: string; data: { entries: { eventType: string }[] } };
      expect(body.type).toBe("uab.audit.v1.TestEvent");
      expect(body.data.entries.map((e) => e.eventType)).toEqual(["uab.audit.v1.TestEvent"]);
      expect((await get(t, main.id)).deliveredThroughIndex).toBeGreaterThanOrEqual(before.deliveredThroughIndex);
      const list = await h
        .audit(t.ownerToken)
        .listAuditStreamDeliveries({ tenantId: t.tenantId, auditStreamId: main.id });
      expect(list.deliveries.find((d) => d.id === delivery!.id)?.test).toBe(true);
    });

    it("rejects a malformed id", async () => {
      await expectInvalid(
        h.audit(t.ownerToken).sendTestAuditStreamEvent({ tenantId: t.tenantId, auditStreamId: "ast_" }),
        "audit_stream_id",
      );
    });
  });

  describe("ListAuditStreams and ListAuditStreamDeliveries", () => {
    it("lists a tenant's streams page by page and by status", async () => {
      const second = await h.audit(t.ownerToken).createAuditStream({
        tenantId: t.tenantId,
        displayName: "second",
        endpointUrl: `${receiver.url}/s/second`,
      });
      await h.audit(t.ownerToken).pauseAuditStream({ tenantId: t.tenantId, auditStreamId: second.auditStream!.id });
      const ids: string[] = [];
      let pageToken = "";
      do {
        const res = await h.audit(t.ownerToken).listAuditStreams({ tenantId: t.tenantId, pageSize: 1, pageToken });
        expect(res.auditStreams.length).toBeLessThanOrEqual(1);
        ids.push(...res.auditStreams.map((s) => s.id));
        pageToken = res.nextPageToken;
      } while (pageToken);
      expect(ids).toEqual([main.id, second.auditStream!.id].sort());
      const paused = await h.audit(t.ownerToken).listAuditStreams({
        tenantId: t.tenantId,
        status: AuditStreamStatus.PAUSED,
      });
      expect(paused.auditStreams.map((s) => s.id)).toEqual([second.auditStream!.id]);
      expect((await h.audit(other.ownerToken).listAuditStreams({ tenantId: other.tenantId })).auditStreams).toEqual([]);
      await expectInvalid(
        h.audit(t.ownerToken).listAuditStreams({ tenantId: t.tenantId, status: 9 as AuditStreamStatus }),
        "status",
      );
      await expectInvalid(
        h.audit(t.ownerToken).listAuditStreams({ tenantId: t.tenantId, pageSize: 1001 }),
        "page_size",
      );
    });

    it("lists a stream's deliveries newest first, page by page and by status", async () => {
      // Hold deliveries still while paging.
      await eventually(async () => (await get(t, main.id)).lagEntries === 0n, 15_000, 50);
      await h.audit(t.ownerToken).pauseAuditStream({ tenantId: t.tenantId, auditStreamId: main.id });
      const all = (
        await h.audit(t.ownerToken).listAuditStreamDeliveries({
          tenantId: t.tenantId,
          auditStreamId: main.id,
          pageSize: 1000,
        })
      ).deliveries;
      expect(all.length).toBeGreaterThan(3);
      expect(all.map((d) => d.id)).toEqual([...all.map((d) => d.id)].sort().reverse());
      const ids: string[] = [];
      let pageToken = "";
      do {
        const res = await h.audit(t.ownerToken).listAuditStreamDeliveries({
          tenantId: t.tenantId,
          auditStreamId: main.id,
          pageSize: 2,
          pageToken,
        });
        ids.push(...res.deliveries.map((d) => d.id));
        pageToken = res.nextPageToken;
      } while (pageToken);
      expect(ids).toEqual(all.map((d) => d.id));
      const succeeded = await h.audit(t.ownerToken).listAuditStreamDeliveries({
        tenantId: t.tenantId,
        auditStreamId: main.id,
        status: AuditStreamDeliveryStatus.SUCCEEDED,
        pageSize: 1000,
      });
      expect(succeeded.deliveries.length).toBe(all.length);
      await expectInvalid(
        h.audit(t.ownerToken).listAuditStreamDeliveries({
          tenantId: t.tenantId,
          auditStreamId: main.id,
          status: 7 as AuditStreamDeliveryStatus,
        }),
        "status",
      );
      await expectInvalid(
        h.audit(t.ownerToken).listAuditStreamDeliveries({ tenantId: t.tenantId, auditStreamId: "x" }),
        "audit_stream_id",
      );
      await h.audit(t.ownerToken).resumeAuditStream({ tenantId: t.tenantId, auditStreamId: main.id });
    });
  });

  describe("unknown ids and another tenant's stream", () => {
    const calls: [string, (x: TestTenant, id: string) => Promise<unknown>][] = [
      ["GetAuditStream", (x, id) => h.audit(x.ownerToken).getAuditStream({ tenantId: x.tenantId, auditStreamId: id })],
      [
        "UpdateAuditStream",
        (x, id) =>
          h.audit(x.ownerToken).updateAuditStream({
            tenantId: x.tenantId,
            auditStreamId: id,
            displayName: "taken",
            updateMask: { paths: ["display_name"] },
          }),
      ],
      [
        "DeleteAuditStream",
        (x, id) => h.audit(x.ownerToken).deleteAuditStream({ tenantId: x.tenantId, auditStreamId: id }),
      ],
      [
        "PauseAuditStream",
        (x, id) => h.audit(x.ownerToken).pauseAuditStream({ tenantId: x.tenantId, auditStreamId: id }),
      ],
      [
        "ResumeAuditStream",
        (x, id) =>
          h.audit(x.ownerToken).resumeAuditStream({ tenantId: x.tenantId, auditStreamId: id, skipBacklog: true }),
      ],
      [
        "RotateAuditStreamSecret",
        async (x, id) =>
          h
            .audit(await h.mfa({ sub: x.ownerId, tid: x.tenantId }))
            .rotateAuditStreamSecret({ tenantId: x.tenantId, auditStreamId: id }),
      ],
      [
        "ListAuditStreamDeliveries",
        (x, id) => h.audit(x.ownerToken).listAuditStreamDeliveries({ tenantId: x.tenantId, auditStreamId: id }),
      ],
      [
        "SendTestAuditStreamEvent",
        (x, id) => h.audit(x.ownerToken).sendTestAuditStreamEvent({ tenantId: x.tenantId, auditStreamId: id }),
      ],
    ];
    for (const [name, call] of calls) {
      it(`${name} answers NOT_FOUND for an unknown id and for another tenant's stream`, async () => {
        await expectCode(call(t, newId("auditStream")), Code.NotFound, { reason: "AUDIT_STREAM_NOT_FOUND" });
        await expectCode(call(other, main.id), Code.NotFound, { reason: "AUDIT_STREAM_NOT_FOUND" });
        const still = await get(t, main.id);
        expect(still.displayName).toBe("main (renamed)");
      });
    }
  });

  describe("DeleteAuditStream", () => {
    it("deletes with the etag read (a stale one is ABORTED); nothing is delivered after", async () => {
      const read = await get(t, main.id);
      expect(read.status).toBe(AuditStreamStatus.ACTIVE);
      await h.audit(t.ownerToken).updateAuditStream({
        tenantId: t.tenantId,
        auditStreamId: main.id,
        displayName: "main (final)",
        updateMask: { paths: ["display_name"] },
      });
      await expectCode(
        h.audit(t.ownerToken).deleteAuditStream({ tenantId: t.tenantId, auditStreamId: main.id, etag: read.etag }),
        Code.Aborted,
        { reason: "ETAG_MISMATCH" },
      );
      const current = await get(t, main.id);
      await h
        .audit(t.ownerToken)
        .deleteAuditStream({ tenantId: t.tenantId, auditStreamId: main.id, etag: current.etag });
      await expectCode(
        h.audit(t.ownerToken).getAuditStream({ tenantId: t.tenantId, auditStreamId: main.id }),
        Code.NotFound,
      );
      const listed = await h.audit(t.ownerToken).listAuditStreams({ tenantId: t.tenantId });
      expect(listed.auditStreams.map((s) => s.id)).not.toContain(main.id);
      const before = delivered(path).length;
      await grow(t, 1);
      await new Promise((r) => setTimeout(r, 1500));
      expect(delivered(path)).toHaveLength(before);
      await eventually(async () => {
        const res = await h.audit(t.ownerToken).searchAuditEntries({
          tenantId: t.tenantId,
          filter: { eventTypes: ["uab.audit.v1.AuditStreamDeleted"], resourceId: main.id },
        });
        return res.entries.length === 1;
      });
    });

    it("rejects a malformed id", async () => {
      await expectInvalid(
        h.audit(t.ownerToken).deleteAuditStream({ tenantId: t.tenantId, auditStreamId: "nope" }),
        "audit_stream_id",
      );
    });
  });
});

describe("a failing endpoint", () => {
  it(`gets FAILED deliveries with a next attempt time, turns FAILING after ${FAILING_AFTER}, and recovers losing nothing`, async () => {
    failing = true;
    const path = "/flaky";
    const created = await h.audit(u.ownerToken).createAuditStream({
      tenantId: u.tenantId,
      displayName: "flaky",
      endpointUrl: `${flaky.url}${path}`,
      batchSize: 50,
      flushInterval: { seconds: 1n },
    });
    const stream = created.auditStream!;
    const from = Number(stream.deliveredThroughIndex) + 1;
    const size = await grow(u, 2);
    const failingNow = await eventually(
      async () => {
        const s = await get(u, stream.id);
        return s.status === AuditStreamStatus.FAILING ? s : undefined;
      },
      15_000,
      50,
    );
    expect(failingNow.consecutiveFailures).toBeGreaterThanOrEqual(FAILING_AFTER);
    expect(failingNow.lastDeliveryStatus).toBe(AuditStreamDeliveryStatus.FAILED);
    expect(failingNow.lastError).not.toBe("");
    const failed = await h.audit(u.ownerToken).listAuditStreamDeliveries({
      tenantId: u.tenantId,
      auditStreamId: stream.id,
      status: AuditStreamDeliveryStatus.FAILED,
    });
    expect(failed.deliveries.length).toBeGreaterThanOrEqual(FAILING_AFTER);
    for (const d of failed.deliveries) {
      expect(d).toMatchObject({ httpStatusCode: 500, firstIndex: BigInt(from) });
      expect(d.nextAttemptTime).toBeDefined();
      const next = Number(d.nextAttemptTime!.seconds) * 1000 + d.nextAttemptTime!.nanos / 1e6;
      const at = Number(d.createTime!.seconds) * 1000 + d.createTime!.nanos / 1e6;
      expect(next).toBeGreaterThan(at);
    }
    expect(failed.deliveries.map((d) => d.attempt).sort()).toEqual(range(1, failed.deliveries.length));
    // A test event to a failing endpoint is a FAILED attempt, not an RPC error.
    const test = await h
      .audit(u.ownerToken)
      .sendTestAuditStreamEvent({ tenantId: u.tenantId, auditStreamId: stream.id });
    expect(test.delivery).toMatchObject({ status: AuditStreamDeliveryStatus.FAILED, httpStatusCode: 500, test: true });
    // The endpoint heals.
    failing = false;
    await eventually(async () => (await get(u, stream.id)).status === AuditStreamStatus.ACTIVE, 15_000, 50);
    await waitDelivered(path, from, size - 1);
    const got = delivered(path);
    expect(got.slice(0, size - from)).toEqual(range(from, size - 1));
    expect(new Set(got).size).toBe(got.length);
    const healthy = await get(u, stream.id);
    expect(healthy).toMatchObject({ consecutiveFailures: 0, lastDeliveryStatus: AuditStreamDeliveryStatus.SUCCEEDED });
    for (const type of ["uab.audit.v1.AuditStreamFailing", "uab.audit.v1.AuditStreamRecovered"]) {
      await eventually(async () => {
        const res = await h.audit(u.ownerToken).searchAuditEntries({
          tenantId: u.tenantId,
          filter: { eventTypes: [type], resourceId: stream.id },
        });
        return res.entries.length === 1 && res.entries[0]!.outcome === AuditOutcome.SUCCESS;
      });
    }
  });
});

describe("a delivery in flight", () => {
  it("does not undo a pause made while it was in flight", async () => {
    const path = "/slow";
    const created = await h.audit(other.ownerToken).createAuditStream({
      tenantId: other.tenantId,
      displayName: "slow",
      endpointUrl: `${receiver.url}${path}`,
      batchSize: 10,
      flushInterval: { seconds: 1n },
    });
    const id = created.auditStream!.id;
    await grow(other, 1);
    // The receiver holds the request: the delivery is in flight.
    await eventually(() => held.length > 0, 15_000, 50);
    const paused = await h.audit(other.ownerToken).pauseAuditStream({ tenantId: other.tenantId, auditStreamId: id });
    expect(paused.auditStream?.status).toBe(AuditStreamStatus.PAUSED);
    const res = held.shift()!;
    res.writeHead(200);
    res.end("ok");
    // Wait for the worker to record the outcome on the stream (it does after recording the delivery).
    const after = await eventually(
      async () => {
        const s = await get(other, id);
        return s.lastDeliveryStatus === AuditStreamDeliveryStatus.SUCCEEDED ? s : undefined;
      },
      15_000,
      50,
    );
    expect(AuditStreamStatus[after.status]).toBe("PAUSED");
  });
});
