/**
 * Enforcement everywhere: every RPC of tenancy and authorization is decided by bindings; a
 * revoke is effective on the next call through both services; another replica sees it
 * within its refresh bound (at once with the revoke's revision); a service enforcing over
 * Connect (RemoteAuthorizer) denies at once with the revision and within its cache bound
 * without; denials become AccessDenied events; the projection works over JetStream.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createLogger, newId } from "@uab/core";
import { JetStreamBus } from "@uab/events";
import { Scope } from "@uab/proto";
import { PrincipalType } from "@uab/proto/gen/uab/authorization/v1/principal_pb.js";
import { eventually, expectCode, testNatsUrl, uniqueSuffix } from "@uab/testing";
import { authorizationModule, RemoteAuthorizer } from "../src/index.js";
import { type Harness, startHarness, type TestTenant } from "./harness.js";

const serviceAccount = newId("serviceAccount");
let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { UAB_SERVICE_ACCOUNT_IDS: serviceAccount } });
});
afterAll(async () => {
  await h?.close();
});

/** A member holding a custom role that can create projects and list bindings; returns the binding. */
async function grant(t: TestTenant, member?: { userId: string; token: string }) {
  const m = member ?? (await h.member(t.tenantId));
  const owner = h.client(t.ownerToken);
  const { role } = await owner.createRole({
    tenantId: t.tenantId,
    slug: `maker-${uniqueSuffix().slice(-6)}`,
    displayName: "Maker",
    permissions: ["tenancy.projects.create", "authorization.bindings.list"],
    assignableScopes: [Scope.TENANT],
  });
  const { binding, revision } = await owner.createBinding({
    tenantId: t.tenantId,
    principal: { type: PrincipalType.USER, id: m.userId },
    roleId: role!.id,
    scope: { type: Scope.TENANT, tenantId: t.tenantId },
  });
  return { m, binding: binding!, revision };
}

let n = 0;
const project = (tenantId: string) => ({ tenantId, slug: `p-${++n}`, displayName: `P ${n}` });

describe("enforcement through every service", () => {
  it("a revoked principal is denied on the next call to tenancy and to authorization", async () => {
    const t = await h.tenant("enf");
    const { m, binding } = await grant(t);
    await h.tenancy(m.token).createProject(project(t.tenantId));
    await h.client(m.token).listBindings({ tenantId: t.tenantId });
    await h.client(t.ownerToken).deleteBinding({ tenantId: t.tenantId, bindingId: binding.id });
    // Same process: the revoke marked the snapshot stale as it committed; no header needed.
    await expectCode(h.tenancy(m.token).createProject(project(t.tenantId)), Code.PermissionDenied);
    await expectCode(h.client(m.token).listBindings({ tenantId: t.tenantId }), Code.PermissionDenied);
  });

  it("a denial is recorded as an AccessDenied event naming the principal and permission", async () => {
    const t = await h.tenant("den");
    const m = await h.member(t.tenantId);
    await expectCode(h.tenancy(m.token).createProject(project(t.tenantId)), Code.PermissionDenied);
    const e = await eventually(
      () =>
        h.events.find(
          (d) =>
            d.event.type === "uab.authorization.v1.AccessDenied" &&
            d.event.tenantId === t.tenantId &&
            d.event.actor?.principalId === m.userId,
        ),
      5000,
    );
    expect(e.event.resource?.id).toBe("tenancy.projects.create");
  });

  it("another replica denies within its refresh bound, and at once given the revoke's revision", async () => {
    const t = await h.tenant("rep");
    const { m, binding } = await grant(t);
    const replica = await authorizationModule.start({
      databaseUrl: h.database.url,
      databaseRole: "uab_authorization",
      poolSize: 2,
      bus: h.bus,
      logger: createLogger({ service: "replica", level: "silent" }),
      env: {
        UAB_BOOTSTRAP_ADMIN_IDS: h.adminId,
        UAB_SERVICE_ACCOUNT_IDS: serviceAccount,
        UAB_AUTHORIZATION_REFRESH_MS: "200",
        UAB_AUTHORIZATION_SWEEP_INTERVAL_SECONDS: "3600",
      },
    });
    try {
      const principal = { id: m.userId, type: "user" as const, tenantId: t.tenantId, amr: [] };
      const ask = (minRevision?: string) =>
        replica.authorizer!.authorize({
          principal,
          permission: "tenancy.projects.create",
          scope: { type: "tenant", tenantId: t.tenantId },
          minRevision,
        });
      expect((await ask()).allowed).toBe(true);
      const { revision } = await h.client(t.ownerToken).deleteBinding({ tenantId: t.tenantId, bindingId: binding.id });
      expect((await ask(revision)).allowed).toBe(false);

      // Without the revision: within the stated bound (refresh 200 ms + one load).
      const again = await grant(t, m);
      expect((await ask(again.revision)).allowed).toBe(true);
      const started = Date.now();
      await h.client(t.ownerToken).deleteBinding({ tenantId: t.tenantId, bindingId: again.binding.id });
      await eventually(async () => ((await ask()).allowed ? undefined : true), 3000);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      await replica.close();
    }
  });

  it("a service enforcing over Connect denies at once with the revision and within its cache bound without", async () => {
    const t = await h.tenant("rem");
    const { m, binding } = await grant(t);
    const token = await h.token({ sub: serviceAccount, typ: "service_account" });
    const remote = new RemoteAuthorizer({
      url: h.url,
      token: () => token,
      cacheMs: 300,
      logger: createLogger({ service: "remote", level: "silent" }),
    });
    const principal = { id: m.userId, type: "user" as const, tenantId: t.tenantId, amr: [] };
    const ask = (minRevision?: string) =>
      remote.authorize({
        principal,
        permission: "tenancy.projects.create",
        scope: { type: "tenant", tenantId: t.tenantId },
        minRevision,
      });
    expect(await ask()).toMatchObject({ allowed: true, code: "GRANTED" });
    const { revision } = await h.client(t.ownerToken).deleteBinding({ tenantId: t.tenantId, bindingId: binding.id });
    expect(await ask(revision)).toMatchObject({ allowed: false, code: "NO_BINDING" });
    await new Promise((r) => setTimeout(r, 350));
    expect((await ask()).allowed).toBe(false);
  });

  it("a service account without authorization-checker cannot ask for decisions", async () => {
    const t = await h.tenant("rem2");
    const token = await h.token({ sub: newId("serviceAccount"), typ: "service_account" });
    const remote = new RemoteAuthorizer({
      url: h.url,
      token: () => token,
      cacheMs: 0,
      logger: createLogger({ service: "remote", level: "silent" }),
    });
    const decision = await remote.authorize({
      principal: { id: t.ownerId, type: "user", tenantId: t.tenantId, amr: [] },
      permission: "tenancy.projects.create",
      scope: { type: "tenant", tenantId: t.tenantId },
    });
    expect(decision).toMatchObject({ allowed: false, code: "UNAVAILABLE" });
  });
});

describe("over NATS JetStream", () => {
  it("tenancy's events reach the projection: an owner is tenant-owner, a member is member", async () => {
    const suffix = uniqueSuffix();
    const bus = await JetStreamBus.connect({
      url: testNatsUrl(),
      subjectPrefix: `a${suffix}`,
      streamName: `EVT_${suffix}`,
      dlqStreamName: `DLQ_${suffix}`,
    });
    const js = await startHarness({ bus });
    try {
      const t = await js.tenant("js");
      const m = await js.member(t.tenantId);
      await js.tenancy(t.ownerToken).createProject(project(t.tenantId));
      await expectCode(js.tenancy(m.token).createProject(project(t.tenantId)), Code.PermissionDenied);
      const got = await js.tenancy(m.token).getTenant({ tenantId: t.tenantId });
      expect(got.tenant?.id).toBe(t.tenantId);
    } finally {
      await js.close();
      await bus.close();
    }
  });
});
