/**
 * Shared assertions of the per-RPC test matrix: error shape (code, ErrorInfo reason, the
 * field named in the message and in the BadRequest detail), delivered events, and the
 * access cases every RPC shares (no token, forged token, no permission, another tenant).
 */
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { type Client, Code } from "@connectrpc/connect";
import { describe, expect, it } from "@jest/globals";
import { createSigningKey, issueAccessToken } from "@uab/auth";
import { newId } from "@uab/core";
import { createDatabase } from "@uab/db";
import { type DeliveredEvent, unpackPayload } from "@uab/events";
import type { TenancyService } from "@uab/proto/gen/uab/tenancy/v1/tenancy_service_pb.js";
import { eventually, expectCode, expectInvalid, reasonOf, rejection, violatedFields } from "@uab/testing";

export { expectCode, expectInvalid, reasonOf, rejection, violatedFields };

import { TenantCache } from "../src/domain/tenant-cache.js";
import { sweep } from "../src/index.js";
import type { TenancyDatabase } from "../src/storage/tables.js";
import { AUDIENCE, type Harness, ISSUER, userId } from "./harness.js";

export type TenancyClient = Client<typeof TenancyService>;

/** Waits for the event of `type` (short name, `ProjectCreated`) about resource `resourceId`. */
export function delivered(
  h: Harness,
  type: string,
  resourceId: string,
  match: (e: DeliveredEvent) => boolean = () => true,
): Promise<DeliveredEvent> {
  return eventually(() =>
    h.events.find((e) => e.event.type === `uab.tenancy.v1.${type}` && e.event.resource?.id === resourceId && match(e)),
  );
}

/**
 * Waits for the event of `schema` about `resource` (whose payload satisfies `match`, when
 * given) and asserts its envelope: tenant, resource type, source. Returns the payload.
 */
export async function expectEvent<D extends DescMessage>(
  h: Harness,
  schema: D,
  resource: { type: string; id: string; tenantId: string },
  match: (payload: MessageShape<D>) => boolean = () => true,
): Promise<MessageShape<D>> {
  const short = schema.typeName.replace(/^uab\.tenancy\.v1\./, "");
  const e = await delivered(h, short, resource.id, (x) => {
    const p = unpackPayload(x.event, schema);
    return p !== undefined && match(p);
  });
  expect(e.event.tenantId).toBe(resource.tenantId);
  expect(e.event.resource?.type).toBe(resource.type);
  expect(e.event.source).toBe("tenancy");
  return unpackPayload(e.event, schema)!;
}

/** A token carrying the bootstrap admin's id but signed by a key the server does not trust (same kid). */
export async function forgedToken(h: Harness): Promise<string> {
  const other = await createSigningKey(h.key.kid);
  return issueAccessToken(
    other,
    { typ: "user", sub: h.adminId },
    { issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 600 },
  );
}

/** Well-formed ids nobody created. */
export const unknown = {
  tenant: () => newId("tenant"),
  project: () => newId("project"),
  team: () => newId("team"),
  membership: () => newId("membership"),
};

/** One RPC in the access matrix: a valid request against the fixture tenant. */
export interface AccessCase {
  readonly rpc: string;
  /** Platform-scoped RPCs have no tenant to be foreign to. */
  readonly platform?: boolean;
  readonly call: (client: TenancyClient) => Promise<unknown>;
}

/**
 * The access outcomes of each RPC, one test each: no token and a forged token are
 * UNAUTHENTICATED, a platform principal without bindings and (for tenant-scoped RPCs) a
 * principal of the same tenant without bindings there (not a member) are PERMISSION_DENIED,
 * and a principal bound to another tenant is NOT_FOUND (tenants cannot probe each other).
 */
export function describeAccess(
  ctx: () => { h: Harness; tenantId: string; otherTenantId: string },
  cases: readonly AccessCase[],
): void {
  describe.each(cases)("$rpc access", (c) => {
    it("without a token is UNAUTHENTICATED", async () => {
      await expectCode(c.call(ctx().h.client()), Code.Unauthenticated, { reason: "TOKEN_MISSING" });
    });
    it("with a token signed by another key is UNAUTHENTICATED", async () => {
      const { h } = ctx();
      await expectCode(c.call(h.client(await forgedToken(h))), Code.Unauthenticated, { reason: "TOKEN_INVALID" });
    });
    it("for a platform principal without the permission is PERMISSION_DENIED", async () => {
      const { h } = ctx();
      await expectCode(c.call(h.client(await h.token({ sub: userId() }))), Code.PermissionDenied, {
        reason: "PERMISSION_DENIED",
      });
    });
    if (c.platform) {
      it("for a tenant-bound principal is PERMISSION_DENIED (platform scope)", async () => {
        const { h, tenantId } = ctx();
        const token = await h.token({ sub: userId(), tid: tenantId });
        await expectCode(c.call(h.client(token)), Code.PermissionDenied, { reason: "PERMISSION_DENIED" });
      });
    } else {
      it("for a principal of the same tenant without the permission is PERMISSION_DENIED", async () => {
        const { h, tenantId } = ctx();
        const token = await h.token({ sub: userId(), tid: tenantId });
        await expectCode(c.call(h.client(token)), Code.PermissionDenied, { reason: "PERMISSION_DENIED" });
      });
      it("for a principal of another tenant is NOT_FOUND", async () => {
        const { h, otherTenantId } = ctx();
        const token = await h.token({ sub: userId(), tid: otherTenantId });
        await expectCode(c.call(h.client(token)), Code.NotFound, { reason: "TENANT_NOT_FOUND" });
      });
    }
  });
}

/**
 * Runs the purge sweep as production does (runtime role, so row-level security applies)
 * at `now`, with the harness's restore window.
 */
export async function sweepAt(h: Harness, now: Date): Promise<void> {
  const database = createDatabase<TenancyDatabase>({
    url: h.database.url,
    schema: "tenancy",
    role: "uab_tenancy",
    max: 1,
  });
  try {
    await sweep({ db: database.db, restoreWindowMs: 30 * 86_400_000, tenantCache: new TenantCache(0) }, now);
  } finally {
    await database.close();
  }
}

/** 31 days from now: past the default 30-day restore window. */
export function afterRestoreWindow(): Date {
  return new Date(Date.now() + 31 * 86_400_000);
}

/** A unique slug for a test (slugs are global for tenants). */
export function slug(prefix: string): string {
  return `${prefix}-${newId("request").slice(-8)}`;
}

/** Creates a tenant with a fresh owner; returns the tenant and the owner's user id and membership. */
export async function createTenant(h: Harness, prefix = "t", extra: { planId?: string } = {}) {
  const owner = userId();
  const res = await h
    .client(h.adminToken)
    .createTenant({ slug: slug(prefix), displayName: `Tenant ${prefix}`, ownerUserId: owner, ...extra });
  return { tenant: res.tenant!, owner, ownerMembership: res.ownerMembership! };
}
