/**
 * Search returns exactly the entries its filters select, in the order asked, across pages:
 * each filter is checked against the same selection made in memory over all the entries.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { newId } from "@uab/core";
import { createDatabase, type Database, migrateService } from "@uab/db";
import {
  type AuditEntryFilter,
  AuditEntryFilterSchema,
  AuditOutcome,
} from "@uab/proto/gen/uab/audit/v1/audit_entry_pb.js";
import { AuditEntryOrder } from "@uab/proto/gen/uab/audit/v1/audit_service_pb.js";
import { type Event, EventSchema } from "@uab/proto/gen/uab/events/v1/event_pb.js";
import { createTestDatabase, type TestDatabase } from "@uab/testing";
import { type AuditDatabase, appendEvents, auditMigrations, type EntryRow, searchEntries } from "../src/index.js";

let database: TestDatabase;
let rt: Database<AuditDatabase>;
const T = newId("tenant");
const actors = [newId("user"), newId("user"), newId("user")];
const base = Date.UTC(2026, 10, 1);
let all: EntryRow[] = [];

function event(i: number): Event {
  const types = ["uab.tenancy.v1.ProjectCreated", "uab.tenancy.v1.TeamCreated", "uab.authorization.v1.AccessDenied"];
  const type = types[i % 3]!;
  return create(EventSchema, {
    id: newId("event"),
    type,
    source: type.split(".")[1]!,
    tenantId: T,
    occurredAt: timestampFromDate(new Date(base + i * 60_000)),
    actor: {
      principalId: actors[i % actors.length]!,
      principalType: 1,
      impersonatorId: i % 10 === 0 ? actors[0]! : "",
      ipAddress: i % 2 === 0 ? `10.0.${i % 4}.${i}` : `192.168.1.${i}`,
      sessionId: `ses_${i % 5}`,
    },
    resource: { type: i % 3 === 1 ? "tenancy.team" : "tenancy.project", id: `r${i % 7}`, displayName: `Thing ${i}` },
    requestId: `req_${i % 11}`,
  });
}

beforeAll(async () => {
  database = await createTestDatabase();
  await migrateService({ url: database.url, service: "audit", migrations: auditMigrations });
  rt = createDatabase<AuditDatabase>({ url: database.url, schema: "audit", role: "uab_audit", max: 2 });
  await appendEvents(
    rt.db,
    Array.from({ length: 120 }, (_, i) => event(i)),
  );
  all = (await searchAll({}, AuditEntryOrder.OLDEST_FIRST)).rows;
});
afterAll(async () => {
  await rt?.close();
  await database?.drop();
});

async function searchAll(
  init: Parameters<typeof create<typeof AuditEntryFilterSchema>>[1],
  order: AuditEntryOrder,
  pageSize = 7,
): Promise<{ rows: EntryRow[]; pages: number }> {
  const filter: AuditEntryFilter = create(AuditEntryFilterSchema, init);
  const rows: EntryRow[] = [];
  let token = "";
  let pages = 0;
  do {
    const page = await searchEntries(rt.db, T, filter, order, pageSize, token);
    rows.push(...page.items);
    token = page.next;
    pages++;
  } while (token && pages < 1000);
  return { rows, pages };
}

const idxs = (rows: readonly EntryRow[]) => rows.map((r) => Number(r.idx));

describe("searchEntries", () => {
  it("pages through the whole log in both orders", async () => {
    expect(idxs(all)).toEqual(Array.from({ length: 120 }, (_, i) => i));
    const newest = await searchAll({}, AuditEntryOrder.NEWEST_FIRST);
    expect(idxs(newest.rows)).toEqual(idxs(all).reverse());
    expect(newest.pages).toBe(Math.ceil(120 / 7));
  });

  it.each([
    ["actor", { actorId: actors[1] }, (r: EntryRow) => r.actor_id === actors[1]],
    ["impersonator", { impersonatorId: actors[0] }, (r: EntryRow) => r.impersonator_id === actors[0]],
    [
      "event type",
      { eventTypes: ["uab.tenancy.v1.TeamCreated"] },
      (r: EntryRow) => r.event_type.endsWith("TeamCreated"),
    ],
    ["event type prefix", { eventTypes: ["uab.tenancy.*"] }, (r: EntryRow) => r.event_type.startsWith("uab.tenancy.")],
    [
      "action",
      { actions: ["authorization.access.denied"] },
      (r: EntryRow) => r.action === "authorization.access.denied",
    ],
    [
      "resource",
      { resourceType: "tenancy.project", resourceId: "r3" },
      (r: EntryRow) => r.resource_type === "tenancy.project" && r.resource_id === "r3",
    ],
    ["outcome", { outcome: AuditOutcome.DENIED }, (r: EntryRow) => r.outcome === AuditOutcome.DENIED],
    ["IP range", { ipAddress: "10.0.2.0/24" }, (r: EntryRow) => (r.ip_address ?? "").startsWith("10.0.2.")],
    ["single IP", { ipAddress: "192.168.1.7" }, (r: EntryRow) => r.ip_address === "192.168.1.7"],
    [
      "time range",
      {
        startTime: timestampFromDate(new Date(base + 10 * 60_000)),
        endTime: timestampFromDate(new Date(base + 20 * 60_000)),
      },
      (r: EntryRow) => r.occur_time.getTime() >= base + 600_000 && r.occur_time.getTime() < base + 1_200_000,
    ],
    ["index range", { startIndex: 30n, endIndex: 45n }, (r: EntryRow) => Number(r.idx) >= 30 && Number(r.idx) < 45],
    ["request", { requestId: "req_4" }, (r: EntryRow) => r.request_id === "req_4"],
    ["session", { sessionId: "ses_2" }, (r: EntryRow) => r.session_id === "ses_2"],
    ["free text", { query: "thing 11" }, (r: EntryRow) => r.resource_name.toLowerCase().includes("thing 11")],
  ] as const)("filters by %s exactly", async (_name, init, keep) => {
    const expected = idxs(all.filter(keep as (r: EntryRow) => boolean));
    expect(expected.length).toBeGreaterThan(0);
    expect(expected.length).toBeLessThan(all.length);
    const got = await searchAll(init as never, AuditEntryOrder.OLDEST_FIRST, 4);
    expect(idxs(got.rows)).toEqual(expected);
  });

  it("refuses a page token used with other filters", async () => {
    const page = await searchEntries(rt.db, T, create(AuditEntryFilterSchema, { actorId: actors[0] }), 0, 2, "");
    await expect(
      searchEntries(rt.db, T, create(AuditEntryFilterSchema, { actorId: actors[1] }), 0, 2, page.next),
    ).rejects.toMatchObject({ reason: "INVALID_FIELD" });
  });

  it("sees nothing of another tenant's log", async () => {
    const other = await searchEntries(rt.db, newId("tenant"), undefined, 0, 50, "");
    expect(other.items).toEqual([]);
  });
});
