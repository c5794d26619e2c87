import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace";
import { startTelemetry } from "@uab/core";
import { eventually } from "@uab/testing";
import { type Harness, startHarness, userId } from "./harness.js";

const exporter = new InMemorySpanExporter();
startTelemetry({ processors: [new SimpleSpanProcessor({ exporter })] });

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

describe("tracing", () => {
  it("continues the caller's trace in the RPC span, its DB queries and the emitted event", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const traceparent = `00-${traceId}-00f067aa0ba902b7-01`;
    const res = await h
      .client(h.adminToken, { traceparent, "x-request-id": "req-trace-test" })
      .createTenant({ slug: "traced", displayName: "Traced", ownerUserId: userId() });
    const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    const rpc = spans.find((s) => s.name === "uab.tenancy.v1.TenancyService/CreateTenant");
    expect(rpc).toBeDefined();
    const db = spans.filter((s) => s.name === "db.query");
    expect(db.length).toBeGreaterThan(2);
    const event = await eventually(() => h.events.find((e) => e.event.tenantId === res.tenant?.id));
    expect(event.event.trace?.traceparent).toContain(traceId);
    expect(event.event.requestId).toBe("req-trace-test");
  });
});
