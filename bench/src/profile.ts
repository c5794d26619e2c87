/**
 * An in-process CPU profile (the inspector's sampling profiler, what `--cpu-prof` uses) of
 * one benchmark run: writes a `.cpuprofile` (open it in Chrome DevTools or speedscope) and
 * summarises the hottest functions by self time.
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { relative } from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface Profile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
}

/** A running profile; `stop` writes it and returns the top functions by self time. */
export interface Profiler {
  stop(file: string, top?: number): Promise<{ name: string; selfPct: number }[]>;
}

function post<T>(session: Session, method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) =>
    session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res as T))),
  );
}

/** Starts profiling this process (sampling every 200 µs). */
export async function startProfile(root: string): Promise<Profiler> {
  const session = new Session();
  session.connect();
  await post(session, "Profiler.enable");
  await post(session, "Profiler.setSamplingInterval", { interval: 200 });
  await post(session, "Profiler.start");
  return {
    async stop(file, top = 12) {
      const { profile } = await post<{ profile: Profile }>(session, "Profiler.stop");
      session.disconnect();
      writeFileSync(file, JSON.stringify(profile));
      const self = new Map<string, number>();
      let total = 0;
      for (const n of profile.nodes) {
        const hits = n.hitCount ?? 0;
        total += hits;
        const f = n.callFrame;
        const where = f.url ? `${shorten(root, f.url)}:${f.lineNumber + 1}` : "";
        const name = `${f.functionName || "(anonymous)"}${where ? ` ${where}` : ""}`;
        self.set(name, (self.get(name) ?? 0) + hits);
      }
      return [...self.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, top)
        .map(([name, hits]) => ({ name, selfPct: total ? (100 * hits) / total : 0 }));
    },
  };
}

function shorten(root: string, url: string): string {
  const path = url.startsWith("file://") ? new URL(url).pathname : url;
  const pnpm = /node_modules\/\.pnpm\/[^/]+\/node_modules\/(.*)$/.exec(path);
  if (pnpm) return pnpm[1]!;
  return path.startsWith("/") ? relative(root, path) : path;
}
