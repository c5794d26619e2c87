/** Reads process facts from Linux's /proc (memory, process tree). */
import { readdirSync, readFileSync } from "node:fs";

/** A `kB` field of /proc/<pid>/status (VmRSS, VmHWM…); NaN when unreadable. */
export function statusKb(pid: number, field = "VmRSS"): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Proportional set size (shared pages split between sharers) from smaps_rollup; NaN when unreadable. */
export function pssKb(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
}

function allProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // "pid (comm) state ppid …"; comm may contain spaces and parentheses.
      const open = stat.indexOf("(");
      const close = stat.lastIndexOf(")");
      const rest = stat.slice(close + 2).split(" ");
      out.push({ pid: Number(name), ppid: Number(rest[1]), comm: stat.slice(open + 1, close) });
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

/** Every descendant of `pid` (children, grandchildren…). */
export function descendants(pid: number): ProcInfo[] {
  const procs = allProcesses();
  const children = new Map<number, ProcInfo[]>();
  for (const p of procs) {
    const list = children.get(p.ppid) ?? [];
    list.push(p);
    children.set(p.ppid, list);
  }
  const out: ProcInfo[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const c of children.get(queue.shift()!) ?? []) {
      out.push(c);
      queue.push(c.pid);
    }
  }
  return out;
}

/** True while `pid` exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const TICKS_PER_S = 100; // USER_HZ on Linux

/** utime + stime of a process, in ticks. */
export function cpuTicks(pid: string | number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14–17 of stat(5) are f[11]–f[14].
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** Busy and stolen ticks of the whole machine. */
function machineTicks(): { busy: number; steal: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal …
  return { busy: f[0]! + f[1]! + f[2]! + f[5]! + f[6]!, steal: f[7]! };
}

function backendsOf(database: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes(` ${database} `)) pids.push(Number(name));
    } catch {
      // gone
    }
  }
  return pids;
}

/** CPU used during a window, in cores (1.0 = one core busy the whole time). */
export interface CpuShare {
  /** This process (the server under test runs in it). */
  readonly server: number;
  /** Its children: h2load, client processes, `uab dev`. */
  readonly load: number;
  /** The PostgreSQL backends of the benchmark's database. */
  readonly postgres: number;
  /** Every other process on the machine. */
  readonly others: number;
  /** Time the hypervisor gave to other guests. */
  readonly steal: number;
  /** Length of the window. */
  readonly seconds: number;
}

/**
 * Measures how much CPU the benchmark used over a window, split by part, and how much
 * everything else on the machine did: on a shared machine a busy neighbour explains low
 * numbers. Children are counted whether they are still running or ended (and were waited
 * for) inside the window.
 */
export function startCpuMeter(database?: string): () => CpuShare {
  const backends = database ? backendsOf(database) : [];
  const sample = () => {
    const self = readFileSync("/proc/self/stat", "utf8");
    const f = self.slice(self.lastIndexOf(")") + 2).split(" ");
    return {
      server: Number(f[11]) + Number(f[12]),
      load: Number(f[13]) + Number(f[14]) + descendants(process.pid).reduce((n, p) => n + cpuTicks(p.pid), 0),
      postgres: backends.reduce((n, p) => n + cpuTicks(p), 0),
      machine: machineTicks(),
    };
  };
  const a = sample();
  const t0 = Date.now();
  return () => {
    const b = sample();
    const seconds = (Date.now() - t0) / 1000;
    const cores = (ticks: number) => ticks / TICKS_PER_S / seconds;
    const server = b.server - a.server;
    const load = b.load - a.load;
    const postgres = b.postgres - a.postgres;
    return {
      server: cores(server),
      load: cores(load),
      postgres: cores(postgres),
      others: cores(Math.max(0, b.machine.busy - a.machine.busy - server - load - postgres)),
      steal: cores(b.machine.steal - a.machine.steal),
      seconds,
    };
  };
}
