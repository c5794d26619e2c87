// Logs and mutations for the tamper battery: the kinds of change an attacker with write access
// to the store (or to an export file) can make, each with the failure verifyLog must report.

import { seededRandom } from "@uab/testing";
import {
  canonicalBytes,
  chainHash,
  genesisChainHash,
  type LogRecord,
  type LogVerificationFailureKind,
  leafHash,
  MerkleFrontier,
  rootHash,
  type TrustedCheckpoint,
  type VerifyLogOptions,
  verifyLog,
} from "@uab/tlog";
import { hex, randomBytes, randomInt } from "./support.js";

export interface Log {
  records: LogRecord[];
  options: VerifyLogOptions;
  /** Whether the entry content holds its own index (as an audit entry's does). */
  indexInContent: boolean;
}

export function entryBytes(rand: () => number, index: number, indexInContent: boolean): Uint8Array {
  const entry = {
    ...(indexInContent ? { index: String(index) } : {}),
    action: ["tenancy.projects.create", "identity.users.update", "authorization.bindings.delete"][index % 3] as string,
    actor: { id: `usr_${Math.floor(rand() * 1e12).toString(36)}`, ip: `203.0.113.${index % 256}` },
    metadata: { n: rand(), note: Buffer.from(randomBytes(rand, 6)).toString("hex") },
  };
  return canonicalBytes(entry);
}

export function buildLog(seed: number, size: number, indexInContent: boolean): Log {
  const rand = seededRandom(seed);
  const records: LogRecord[] = [];
  let previous = genesisChainHash();
  for (let i = 0; i < size; i++) {
    const bytes = entryBytes(rand, i, indexInContent);
    const leaf = leafHash(bytes);
    const chain = chainHash(previous, leaf);
    records.push({ index: i, entryBytes: bytes, leafHash: leaf, previousChainHash: previous, chainHash: chain });
    previous = chain;
  }
  const checkpoint: TrustedCheckpoint = {
    treeSize: size,
    rootHash: rootHash(records.map((r) => r.leafHash)),
    chainHash: previous,
  };
  return { records, options: { checkpoint }, indexInContent };
}

/** The tail of a log from `start`, as retention leaves it: a boundary with the frontier before it. */
export function retainedTail(log: Log, start: number, purgedUntil: number): Log {
  const frontier = MerkleFrontier.fromLeaves(log.records.slice(0, start).map((r) => r.leafHash));
  const records = log.records.slice(start).map((r) => {
    if (r.index >= purgedUntil) return r;
    const { entryBytes: _purged, ...hashesOnly } = r;
    return hashesOnly;
  });
  return {
    records,
    options: {
      ...log.options,
      boundary: {
        startIndex: start,
        previousChainHash: (log.records[start - 1] as LogRecord).chainHash,
        frontier: frontier.state(),
      },
    },
    indexInContent: log.indexInContent,
  };
}

function sameRecord(a: LogRecord | undefined, b: LogRecord | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  const bytes = (x?: Uint8Array) => (x === undefined ? "-" : hex(x));
  return (
    a.index === b.index &&
    bytes(a.entryBytes) === bytes(b.entryBytes) &&
    bytes(a.leafHash) === bytes(b.leafHash) &&
    bytes(a.previousChainHash) === bytes(b.previousChainHash) &&
    bytes(a.chainHash) === bytes(b.chainHash)
  );
}

/** The first position where the mutated records differ from the genuine ones. */
export function firstDeviation(genuine: readonly LogRecord[], mutated: readonly LogRecord[]): number {
  for (let p = 0; ; p++) {
    if (p >= genuine.length || p >= mutated.length) return p;
    if (!sameRecord(genuine[p], mutated[p])) return p;
  }
}

export interface Mutation {
  name: string;
  records: LogRecord[];
  kind: LogVerificationFailureKind;
}

export type Mutator = (log: Log, rand: () => number) => Mutation | undefined;

function flipByte(bytes: Uint8Array, rand: () => number): Uint8Array {
  const out = Uint8Array.from(bytes);
  const at = randomInt(rand, 0, out.length - 1);
  out[at] = (out[at] as number) ^ randomInt(rand, 1, 255);
  return out;
}

function renumbered(records: LogRecord[], from: number, start: number): LogRecord[] {
  return records.map((r, p) => (p >= from && r.index !== start + p ? { ...r, index: start + p } : r));
}

function chainBefore(log: Log, records: readonly LogRecord[], position: number): Uint8Array {
  if (position > 0) return (records[position - 1] as LogRecord).chainHash;
  return log.options.boundary?.previousChainHash ?? genesisChainHash();
}

export function forged(log: Log, records: readonly LogRecord[], position: number, rand: () => number): LogRecord {
  const start = log.options.boundary?.startIndex ?? 0;
  const bytes = entryBytes(rand, start + position, log.indexInContent);
  const leaf = leafHash(bytes);
  const previous = chainBefore(log, records, position);
  return {
    index: start + position,
    entryBytes: bytes,
    leafHash: leaf,
    previousChainHash: previous,
    chainHash: chainHash(previous, leaf),
  };
}

export const MUTATORS: Record<string, Mutator> = {
  "change a byte of an entry": (log, rand) => {
    const withContent = log.records.flatMap((r, p) => (r.entryBytes === undefined ? [] : [p]));
    if (withContent.length === 0) return undefined;
    const p = withContent[randomInt(rand, 0, withContent.length - 1)] as number;
    const records = log.records.slice();
    const r = records[p] as LogRecord;
    records[p] = { ...r, entryBytes: flipByte(r.entryBytes as Uint8Array, rand) };
    return { name: "change a byte of an entry", records, kind: "changed" };
  },
  "change a byte of a stored hash": (log, rand) => {
    const p = randomInt(rand, 0, log.records.length - 1);
    const field = (["leafHash", "previousChainHash", "chainHash"] as const)[randomInt(rand, 0, 2)] as
      | "leafHash"
      | "previousChainHash"
      | "chainHash";
    const records = log.records.slice();
    const r = records[p] as LogRecord;
    records[p] = { ...r, [field]: flipByte(r[field], rand) };
    return { name: `change a byte of ${field}`, records, kind: "changed" };
  },
  "change an index field": (log, rand) => {
    const p = randomInt(rand, 0, log.records.length - 1);
    const records = log.records.slice();
    const r = records[p] as LogRecord;
    const index = [r.index + 1, r.index - 1, randomInt(rand, 0, 10_000)].filter((x) => x !== r.index && x >= 0)[
      randomInt(rand, 0, 1)
    ] as number;
    records[p] = { ...r, index };
    return { name: "change an index field", records, kind: "changed" };
  },
  "delete a record": (log, rand) => {
    const records = log.records.slice();
    records.splice(randomInt(rand, 0, records.length - 1), 1);
    return { name: "delete a record", records, kind: "removed" };
  },
  "delete a record and renumber the rest": (log, rand) => {
    if (log.indexInContent) return undefined; // renumbering would change the content: "changed"
    const records = log.records.slice();
    const p = randomInt(rand, 0, records.length - 1);
    records.splice(p, 1);
    return {
      name: "delete a record and renumber",
      records: renumbered(records, p, log.options.boundary?.startIndex ?? 0),
      kind: "removed",
    };
  },
  "insert a forged record": (log, rand) => {
    const records = log.records.slice();
    const p = randomInt(rand, 0, records.length);
    records.splice(p, 0, forged(log, records, p, rand));
    return { name: "insert a forged, correctly hashed and linked record", records, kind: "inserted" };
  },
  "insert a garbage record": (log, rand) => {
    const records = log.records.slice();
    const p = randomInt(rand, 0, records.length);
    const start = log.options.boundary?.startIndex ?? 0;
    const garbage: LogRecord = {
      index: rand() < 0.5 ? start + p : randomInt(rand, 0, 5000),
      entryBytes: randomBytes(rand, 40),
      leafHash: randomBytes(rand, 32),
      previousChainHash: rand() < 0.5 ? chainBefore(log, records, p) : randomBytes(rand, 32),
      chainHash: randomBytes(rand, 32),
    };
    records.splice(p, 0, garbage);
    return { name: "insert a garbage record", records, kind: "inserted" };
  },
  "insert a copy of a record": (log, rand) => {
    const records = log.records.slice();
    const p = randomInt(rand, 0, records.length);
    const j = randomInt(rand, Math.max(0, p - 3), Math.min(records.length - 1, p + 3)); // near, sometimes itself
    const source =
      rand() < 0.5 ? (records[j] as LogRecord) : (records[randomInt(rand, 0, records.length - 1)] as LogRecord);
    records.splice(p, 0, { ...source });
    return { name: "insert a copy of a record", records, kind: "inserted" };
  },
  "insert a forged record and renumber the rest": (log, rand) => {
    if (log.indexInContent) return undefined;
    const records = log.records.slice();
    const p = randomInt(rand, 0, records.length);
    records.splice(p, 0, forged(log, records, p, rand));
    return {
      name: "insert a forged record and renumber",
      records: renumbered(records, p, log.options.boundary?.startIndex ?? 0),
      kind: "inserted",
    };
  },
  "swap two records": (log, rand) => {
    const records = log.records.slice();
    const i = randomInt(rand, 0, records.length - 2);
    const j = rand() < 0.3 ? i + 1 : randomInt(rand, i + 1, records.length - 1);
    [records[i], records[j]] = [records[j] as LogRecord, records[i] as LogRecord];
    return { name: "swap two records", records, kind: "reordered" };
  },
  "swap two records and their index fields": (log, rand) => {
    const records = log.records.slice();
    const i = randomInt(rand, 0, records.length - 2);
    const j = rand() < 0.3 ? i + 1 : randomInt(rand, i + 1, records.length - 1);
    const [a, b] = [records[i] as LogRecord, records[j] as LogRecord];
    records[i] = { ...b, index: a.index };
    records[j] = { ...a, index: b.index };
    return { name: "swap two records, keeping the index sequence", records, kind: "reordered" };
  },
  "move a record": (log, rand) => {
    const records = log.records.slice();
    const from = randomInt(rand, 0, records.length - 1);
    const [moved] = records.splice(from, 1);
    let to = randomInt(rand, 0, records.length);
    if (to === from) to = from === 0 ? 1 : from - 1;
    records.splice(to, 0, moved as LogRecord);
    return { name: "move a record", records, kind: "reordered" };
  },
  "truncate the tail": (log, rand) => {
    const keep = rand() < 0.2 ? log.records.length - 1 : randomInt(rand, 0, log.records.length - 1);
    return { name: "truncate the tail", records: log.records.slice(0, keep), kind: "removed" };
  },
  "replace a record with a forged linked one": (log, rand) => {
    const records = log.records.slice();
    const p = randomInt(rand, 0, records.length - 2); // the last one is only caught by the checkpoint
    records[p] = forged(log, records, p, rand);
    return { name: "replace a record", records, kind: "changed" };
  },
};

export function battery(log: Log, seed: number, count: number): { counts: Record<string, number>; wrong: string[] } {
  const rand = seededRandom(seed);
  const start = log.options.boundary?.startIndex ?? 0;
  const names = Object.keys(MUTATORS);
  const counts: Record<string, number> = {};
  const wrong: string[] = [];
  let done = 0;
  while (done < count) {
    const name = names[done % names.length] as string;
    const mutation = (MUTATORS[name] as Mutator)(log, rand);
    if (mutation === undefined) {
      names.splice(names.indexOf(name), 1);
      continue;
    }
    done += 1;
    counts[name] = (counts[name] ?? 0) + 1;
    const expectedIndex = start + firstDeviation(log.records, mutation.records);
    const result = verifyLog(mutation.records, log.options);
    const got = `${result.ok} ${result.failure} ${result.firstBadIndex} ${result.verifiedCount}`;
    const want = `false ${mutation.kind} ${expectedIndex} ${expectedIndex - start}`;
    if (got !== want) wrong.push(`${mutation.name}: got ${got} (${result.detail}), want ${want}`);
  }
  return { counts, wrong };
}
