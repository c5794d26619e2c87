import type { ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Health, HealthCheckResponse_ServingStatus as Status } from "@uab/proto/gen/health/v1/health_pb.js";

/** A readiness probe: resolves when the dependency answers, rejects otherwise. */
export type ReadinessCheck = () => Promise<void>;

/**
 * Serving state of the process and of each service it hosts, behind both grpc.health.v1
 * and the HTTP `/healthz` (alive) and `/readyz` (ready: every readiness check passes) probes.
 */
export class HealthState {
  private readonly statuses = new Map<string, Status>([["", Status.NOT_SERVING]]);
  private readonly watchers = new Set<() => void>();
  private readonly checks: ReadinessCheck[] = [];

  /** Marks `service` (or the whole server, `""`) serving or not. */
  set(service: string, serving: boolean): void {
    this.statuses.set(service, serving ? Status.SERVING : Status.NOT_SERVING);
    for (const w of this.watchers) w();
  }

  /** Marks every known service, and the server, serving or not. */
  setAll(serving: boolean): void {
    for (const k of this.statuses.keys()) this.statuses.set(k, serving ? Status.SERVING : Status.NOT_SERVING);
    for (const w of this.watchers) w();
  }

  /** The status of `service`, or undefined when unknown. */
  get(service: string): Status | undefined {
    return this.statuses.get(service);
  }

  /** Every known service with its status. */
  entries(): [string, Status][] {
    return [...this.statuses.entries()];
  }

  /** Adds a readiness check (database ping, bus connection). */
  addCheck(check: ReadinessCheck): void {
    this.checks.push(check);
  }

  /** Runs the readiness checks; the first failure's message, or undefined when ready. */
  async unready(): Promise<string | undefined> {
    if (this.statuses.get("") !== Status.SERVING) return "not serving";
    for (const check of this.checks) {
      try {
        await check();
      } catch (e) {
        return e instanceof Error ? e.message : String(e);
      }
    }
    return undefined;
  }

  /** Subscribes to status changes; returns the unsubscribe function. */
  watch(listener: () => void): () => void {
    this.watchers.add(listener);
    return () => this.watchers.delete(listener);
  }
}

/** The grpc.health.v1.Health implementation over a {@link HealthState}. */
export function healthService(state: HealthState): ServiceImpl<typeof Health> {
  return {
    list() {
      const statuses: Record<string, { status: Status }> = {};
      for (const [name, status] of state.entries()) statuses[name] = { status };
      return { statuses };
    },
    check(req) {
      const status = state.get(req.service);
      if (status === undefined) throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
      return { status };
    },
    async *watch(req, ctx) {
      let last: Status | undefined;
      let wake: (() => void) | undefined;
      const unsubscribe = state.watch(() => wake?.());
      try {
        while (!ctx.signal.aborted) {
          const status = state.get(req.service) ?? Status.SERVICE_UNKNOWN;
          if (status !== last) {
            last = status;
            yield { status };
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
            ctx.signal.addEventListener("abort", () => resolve(), { once: true });
          });
        }
      } finally {
        unsubscribe();
      }
    },
  };
}
