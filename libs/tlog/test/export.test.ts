// Audit exports (docs/audit-export.md): the NDJSON and CSV writers, the chain-hash checkpoint
// extension, the CSV codec (against csv-parse, a parser no code of ours wrote), and
// verifyExport on intact exports (complete from 0 and from a boundary, incomplete with
// inclusion proofs) and on tampered ones: a fixed battery naming the failure and the first bad
// index, and a seeded random battery that must detect every mutation.
import { createHash } from "node:crypto";
import { describe, expect, it } from "@jest/globals";
import { seededRandom } from "@uab/testing";
import {
  CSV_COLUMNS,
  CsvExportWriter,
  canonicalBytes,
  chainHash,
  chainHashExtension,
  chainHashFromExtensions,
  EXPORT_FORMAT,
  type ExportCheckpoint,
  type ExportEntryInput,
  type ExportVerification,
  generateNoteKey,
  genesisChainHash,
  inclusionProof,
  type JsonValue,
  leafHash,
  MerkleFrontier,
  NdjsonExportWriter,
  NoteError,
  type NoteSigner,
  rootHash,
  signCheckpoint,
  verifyExport,
} from "@uab/tlog";
import { parse as csvParse } from "csv-parse/sync";
import { csvRow, parseCsv, parseCsvPrefix } from "../src/csv.js";
import { randomInt } from "./support.js";

const KEY: NoteSigner = generateNoteKey("uab.example.com/audit");
const OTHER_KEY: NoteSigner = generateNoteKey("uab.example.com/audit");
const KEYS = [KEY.verifierKey];
const CREATE_TIME = new Date("2026-11-22T10:00:00.000Z");

/** Values that stress CSV quoting and JSON escaping. */
const AWKWARD = [
  "plain",
  "comma, inside",
  'quote " inside',
  "line\nbreak",
  "crlf\r\nbreak",
  "  padded  ",
  "",
  "ünïcødé ✓ 🎉",
  "=SUM(A1)",
  "tab\tand\u0001control",
  '"',
  ",",
];

function id(rand: () => number, prefix: string): string {
  let s = "";
  for (let i = 0; i < 26; i++) s += "0123456789abcdefghjkmnpqrstvwxyz"[randomInt(rand, 0, 31)];
  return `${prefix}_${s}`;
}

/** A canonical entry shaped as services/audit's canonicalEntry writes it. */
function canonicalEntry(log: string, index: number, rand: () => number): Uint8Array {
  const pick = <T>(xs: readonly T[]): T => xs[randomInt(rand, 0, xs.length - 1)] as T;
  const outcome = pick(["SUCCESS", "SUCCESS", "DENIED", "FAILURE"]);
  const t = Date.UTC(2026, 10, 22, 9, 0, 0) + index * 1000;
  return canonicalBytes({
    v: 1,
    log,
    index,
    event_id: rand() < 0.9 ? id(rand, "evt") : "",
    event_type: pick(["uab.tenancy.v1.ProjectCreated", "uab.identity.v1.UserUpdated", "uab.audit.v1.RpcCall"]),
    source: pick(["tenancy", "identity", "authorization"]),
    action: pick(["tenancy.project.created", "identity.user.updated", "authorization.binding.deleted"]),
    outcome,
    outcome_reason: outcome === "SUCCESS" ? "" : pick(["PERMISSION_DENIED", ...AWKWARD]),
    actor: {
      id: id(rand, "usr"),
      type: pick(["user", "service_account", "api_key", "system"]),
      tenant_id: log,
      impersonator_id: rand() < 0.1 ? id(rand, "usr") : "",
      session_id: id(rand, "ses"),
      ip: `203.0.113.${index % 256}`,
      user_agent: pick(["Mozilla/5.0 (X11; Linux x86_64)", ...AWKWARD]),
    },
    resource: { type: "tenancy.project", id: id(rand, "prj"), name: pick(AWKWARD) },
    occur_time: new Date(t).toISOString(),
    record_time: new Date(t + 5).toISOString(),
    request_id: id(rand, "req"),
    trace_id: createHash("md5").update(String(index)).digest("hex"),
    metadata: { n: index, note: pick(AWKWARD), nested: { flag: rand() < 0.5, list: [1, "two", null] } },
  });
}

interface TestLog {
  readonly log: string;
  readonly origin: string;
  readonly entries: ExportEntryInput[];
  readonly leaves: Uint8Array[];
  readonly checkpoint: ExportCheckpoint;
  readonly rand: () => number;
}

function signedCheckpoint(
  origin: string,
  leaves: Uint8Array[],
  head: Uint8Array,
  key: NoteSigner,
  extensions?: string[],
): ExportCheckpoint {
  const root = rootHash(leaves);
  const note = signCheckpoint(
    {
      origin,
      treeSize: leaves.length,
      rootHash: root,
      extensions: extensions ?? [chainHashExtension(head), "time 2026-11-22T10:00:00Z"],
    },
    key,
  );
  return {
    id: "chk_0000000000000000000000000a",
    treeSize: leaves.length,
    rootHash: root,
    chainHash: head,
    keyId: "aks_1",
    note,
  };
}

function buildLog(seed: number, size: number): TestLog {
  const rand = seededRandom(seed);
  const log = id(rand, "ten");
  const origin = `uab.example.com/${log}`;
  const entries: ExportEntryInput[] = [];
  let previous = genesisChainHash();
  for (let i = 0; i < size; i++) {
    const canonical = canonicalEntry(log, i, rand);
    const leaf = leafHash(canonical);
    const chain = chainHash(previous, leaf);
    entries.push({
      index: i,
      id: id(rand, "aud"),
      canonical,
      leafHash: leaf,
      previousChainHash: previous,
      chainHash: chain,
    });
    previous = chain;
  }
  const leaves = entries.map((e) => e.leafHash);
  return { log, origin, entries, leaves, checkpoint: signedCheckpoint(origin, leaves, previous, KEY), rand };
}

interface NdjsonOptions {
  /** Complete from this index (the default, 0). */
  readonly start?: number;
  /** Incomplete: these indexes, with proofs. */
  readonly subset?: readonly number[];
  /** Proofs on every line (always for a subset). */
  readonly proofs?: boolean;
  readonly filter?: JsonValue | null;
  readonly checkpoint?: ExportCheckpoint;
}

function ndjson(t: TestLog, o: NdjsonOptions = {}): string {
  const complete = o.subset === undefined;
  const start = o.start ?? 0;
  const checkpoint = o.checkpoint ?? t.checkpoint;
  const w = new NdjsonExportWriter();
  let out = w.header({
    log: t.log,
    origin: t.origin,
    checkpoint,
    complete,
    boundary: complete
      ? {
          startIndex: start,
          previousChainHash: start === 0 ? genesisChainHash() : (t.entries[start - 1] as ExportEntryInput).chainHash,
          frontier: MerkleFrontier.fromLeaves(t.leaves.slice(0, start)).hashes,
        }
      : null,
    filter: o.filter === undefined ? (complete ? null : { actions: ["tenancy.*"] }) : o.filter,
    createTime: CREATE_TIME,
  });
  const indexes = o.subset ?? Array.from({ length: checkpoint.treeSize - start }, (_, k) => start + k);
  const leaves = t.leaves.slice(0, checkpoint.treeSize);
  for (const i of indexes) {
    const e = t.entries[i] as ExportEntryInput;
    out += w.entry(o.proofs || !complete ? { ...e, inclusionProof: inclusionProof(i, leaves) } : e);
  }
  return out + w.trailer();
}

/** The rows of a CSV export (header row first), each without its CRLF (fields may hold line breaks). */
function csvRows(t: TestLog, start = 0, end = t.checkpoint.treeSize): string[] {
  const w = new CsvExportWriter();
  const rows = [w.header()];
  for (let i = start; i < end; i++) rows.push(w.entry(t.entries[i] as ExportEntryInput));
  return rows.map((r) => r.slice(0, -2));
}

function csv(t: TestLog, start = 0, end = t.checkpoint.treeSize): string {
  return unrows(csvRows(t, start, end));
}

function unrows(rows: readonly string[]): string {
  return rows.map((r) => `${r}\r\n`).join("");
}

/** The byte ranges of the `id` column in a CSV export: the only column no hash covers. */
function idRanges(rows: readonly string[]): [number, number][] {
  const ranges: [number, number][] = [];
  let offset = 0;
  for (const [k, row] of rows.entries()) {
    if (k > 0) {
      const from = offset + Buffer.byteLength(row.slice(0, row.indexOf(",") + 1));
      ranges.push([from, from + Buffer.byteLength(row.split(",")[1] as string)]);
    }
    offset += Buffer.byteLength(row) + 2;
  }
  return ranges;
}

/** The lines of an NDJSON text, without their newlines. */
function lines(text: string): string[] {
  return text.slice(0, -1).split("\n");
}

/** Lines back to text; with `retrail`, the trailer is recomputed as an attacker would. */
function unlines(ls: readonly string[], retrail = false): string {
  if (!retrail) return ls.map((l) => `${l}\n`).join("");
  const body = ls.filter((l) => !l.startsWith('{"type":"trailer"'));
  const text = body.map((l) => `${l}\n`).join("");
  const count = body.filter((l) => l.startsWith('{"type":"entry"')).length;
  const sha = createHash("sha256").update(text).digest("hex");
  return `${text}${JSON.stringify({ type: "trailer", entry_count: count, sha256: sha })}\n`;
}

/** Changes one letter inside a string value of the canonical entry on an entry line. */
function alterCanonical(line: string, rand: () => number): string {
  const at = line.indexOf('"request_id":"req_') + '"request_id":"req_'.length + randomInt(rand, 0, 25);
  const c = line[at] as string;
  return line.slice(0, at) + (c === "a" ? "b" : "a") + line.slice(at + 1);
}

function verify(
  data: string | Uint8Array,
  extra: Partial<Parameters<typeof verifyExport>[1]> = {},
): ExportVerification {
  return verifyExport(data, { verifierKeys: KEYS, ...extra });
}

/** The parts of a result the battery compares. */
function verdict(r: ExportVerification): string {
  return `${r.ok} ${r.failure} ${r.firstBadIndex}`;
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64");

describe("export writers", () => {
  const t = buildLog(1, 40);

  it("writes NDJSON line by line: a header, one line per entry, a trailer over every byte before it", () => {
    const w = new NdjsonExportWriter();
    const header = w.header({
      log: t.log,
      origin: t.origin,
      checkpoint: t.checkpoint,
      complete: true,
      boundary: { startIndex: 0, previousChainHash: genesisChainHash(), frontier: [] },
      filter: null,
      createTime: CREATE_TIME,
    });
    const parts = [header];
    for (const e of t.entries) parts.push(w.entry(e));
    expect(w.entryCount).toBe(40);
    const trailer = w.trailer();
    parts.push(trailer);
    for (const p of parts) {
      expect(p.endsWith("\n")).toBe(true);
      expect(p.slice(0, -1)).not.toContain("\n");
    }
    const text = parts.join("");
    expect(w.byteCount).toBe(Buffer.byteLength(text));
    const h = JSON.parse(header);
    expect(h).toMatchObject({
      type: "header",
      format: EXPORT_FORMAT,
      version: 1,
      log: t.log,
      origin: t.origin,
      checkpoint: {
        id: t.checkpoint.id,
        tree_size: 40,
        root_hash: b64(t.checkpoint.rootHash),
        chain_hash: b64(t.checkpoint.chainHash),
        key_id: "aks_1",
        note: t.checkpoint.note,
      },
      complete: true,
      boundary: { start_index: 0, previous_chain_hash: b64(new Uint8Array(32)), frontier: [] },
      filter: null,
      create_time: CREATE_TIME.toISOString(),
    });
    // The canonical bytes are embedded verbatim, and the line carries the stored hashes.
    const e7 = t.entries[7] as ExportEntryInput;
    const line = parts[8] as string;
    expect(line).toContain(`"entry":${Buffer.from(e7.canonical).toString("utf8")},`);
    expect(JSON.parse(line)).toEqual({
      type: "entry",
      index: 7,
      entry: JSON.parse(Buffer.from(e7.canonical).toString("utf8")),
      leaf_hash: b64(e7.leafHash),
      previous_chain_hash: b64(e7.previousChainHash),
      chain_hash: b64(e7.chainHash),
    });
    const before = Buffer.from(parts.slice(0, -1).join(""));
    expect(JSON.parse(trailer)).toEqual({
      type: "trailer",
      entry_count: 40,
      sha256: createHash("sha256").update(before).digest("hex"),
    });
  });

  it("refuses to write what could not verify", () => {
    const header = {
      log: t.log,
      origin: t.origin,
      checkpoint: t.checkpoint,
      complete: false,
      boundary: null,
      filter: { actions: ["tenancy.*"] },
      createTime: CREATE_TIME,
    };
    const e = t.entries[3] as ExportEntryInput;
    expect(() => new NdjsonExportWriter().entry(e)).toThrow(Error);
    const w = new NdjsonExportWriter();
    w.header(header);
    expect(() => w.header(header)).toThrow(Error);
    expect(() => w.entry(e)).toThrow(/inclusion proof/);
    const proof = inclusionProof(3, t.leaves);
    w.entry({ ...e, inclusionProof: proof });
    expect(() => w.entry({ ...e, inclusionProof: proof })).toThrow(RangeError);
    expect(() => w.entry({ ...(t.entries[5] as ExportEntryInput), canonical: Buffer.from("not json") })).toThrow(
      TypeError,
    );
    expect(() => w.entry({ ...(t.entries[5] as ExportEntryInput), canonical: Buffer.from('{"a":"\n"}') })).toThrow(
      TypeError,
    );
    w.trailer();
    expect(() => w.trailer()).toThrow(Error);
    // A complete export needs a boundary with a frontier of the right shape, and every entry.
    expect(() => new NdjsonExportWriter().header({ ...header, complete: true })).toThrow(TypeError);
    expect(() =>
      new NdjsonExportWriter().header({
        ...header,
        complete: true,
        boundary: { startIndex: 3, previousChainHash: genesisChainHash(), frontier: [] },
      }),
    ).toThrow(TypeError);
    const c = new NdjsonExportWriter();
    c.header({
      ...header,
      complete: true,
      boundary: { startIndex: 0, previousChainHash: genesisChainHash(), frontier: [] },
    });
    expect(() => c.entry(t.entries[1] as ExportEntryInput)).toThrow(RangeError);
    c.entry(t.entries[0] as ExportEntryInput);
    expect(() => c.trailer()).toThrow(RangeError);
    const s = new CsvExportWriter();
    expect(() => s.entry(e)).toThrow(Error);
    s.header();
    s.entry(e);
    expect(() => s.entry(t.entries[2] as ExportEntryInput)).toThrow(RangeError);
  });

  it("writes CSV that csv-parse reads back to the written values", () => {
    const text = csv(t);
    const w = new CsvExportWriter();
    expect(w.header() + t.entries.map((e) => w.entry(e)).join("")).toBe(text);
    expect(w.entryCount).toBe(40);
    expect(w.byteCount).toBe(Buffer.byteLength(text));
    expect(text.endsWith("\r\n")).toBe(true);
    const rows = csvParse(text, { relax_column_count: false }) as string[][];
    expect(rows[0]).toEqual([...CSV_COLUMNS]);
    expect(rows.length).toBe(41);
    const str = (v: unknown): string => (typeof v === "string" ? v : JSON.stringify(v));
    for (const e of t.entries) {
      const row = rows[e.index + 1] as string[];
      const c = JSON.parse(Buffer.from(e.canonical).toString("utf8"));
      const expected: Record<string, string> = {
        index: String(e.index),
        id: e.id as string,
        event_id: c.event_id,
        event_type: c.event_type,
        source: c.source,
        action: c.action,
        outcome: c.outcome,
        outcome_reason: c.outcome_reason,
        actor_id: c.actor.id,
        actor_type: c.actor.type,
        actor_tenant_id: c.actor.tenant_id,
        impersonator_id: c.actor.impersonator_id,
        session_id: c.actor.session_id,
        ip_address: c.actor.ip,
        user_agent: c.actor.user_agent,
        resource_type: c.resource.type,
        resource_id: c.resource.id,
        resource_name: c.resource.name,
        occur_time: c.occur_time,
        record_time: c.record_time,
        request_id: c.request_id,
        trace_id: c.trace_id,
        metadata: str(c.metadata), // canonical JSON: JSON.stringify of a canonical parse is the same text
        leaf_hash: b64(e.leafHash),
        previous_chain_hash: b64(e.previousChainHash),
        chain_hash: b64(e.chainHash),
        canonical: Buffer.from(e.canonical).toString("utf8"),
      };
      expect(Object.fromEntries(CSV_COLUMNS.map((name, i) => [name, row[i]]))).toEqual(expected);
    }
    // Awkward values were written (and read back above).
    expect(text).toContain('"quote "" inside"');
    expect(text).toContain('"line\nbreak"');
  });

  it("parses RFC 4180 as csv-parse does, and refuses what it refuses", () => {
    const rand = seededRandom(42);
    const alphabet = ['"', ",", "\r\n", "\n", "a", "b", " ", "é", "🎉", '""', "\t"];
    for (let round = 0; round < 300; round++) {
      const rows: string[][] = [];
      const width = randomInt(rand, 1, 5);
      for (let r = randomInt(rand, 1, 6); r > 0; r--) {
        rows.push(
          Array.from({ length: width }, () => {
            let s = "";
            for (let k = randomInt(rand, 0, 6); k > 0; k--) s += alphabet[randomInt(rand, 0, alphabet.length - 1)];
            return s;
          }),
        );
      }
      // A single empty field would be an empty line, which csv-parse skips.
      if (width === 1) for (const row of rows) if (row[0] === "") row[0] = "x";
      const text = rows.map(csvRow).join("");
      const ours = parseCsv(text);
      expect(ours).toEqual(rows);
      expect(csvParse(text)).toEqual(ours);
      // Without the final line break, and with LF line ends where no field needs quotes.
      expect(parseCsv(text.slice(0, -2))).toEqual(rows);
    }
    expect(parseCsv("a,b\nc,d\n")).toEqual(csvParse("a,b\nc,d\n"));
    expect(parseCsv('a,"b\r\nc",d\r\n')).toEqual(csvParse('a,"b\r\nc",d\r\n'));
    expect(parseCsv("a,,\r\n,,\r\n")).toEqual(csvParse("a,,\r\n,,\r\n"));
    for (const bad of ['a"b,c\r\n', '"a"b,c\r\n', '"abc\r\n', 'a,"b"x\r\n']) {
      expect(() => csvParse(bad)).toThrow();
      expect(() => parseCsv(bad)).toThrow(SyntaxError);
    }
    expect(parseCsvPrefix('a,b\r\n"c\r\nd').problem).toMatchObject({ line: 2, atEnd: true });
    expect(parseCsvPrefix('a,b\r\nc,d\r\ne"f').problem).toMatchObject({ line: 3, atEnd: false });
  });

  it("writes and reads the chain-hash checkpoint extension", () => {
    const head = t.checkpoint.chainHash;
    expect(chainHashExtension(head)).toBe(`chain-hash ${b64(head)}`);
    expect(chainHashFromExtensions([chainHashExtension(head)])).toEqual(head);
    expect(chainHashFromExtensions(["time 2026-11-22T10:00:00Z", chainHashExtension(head)])).toEqual(head);
    expect(chainHashFromExtensions([])).toBeUndefined();
    expect(chainHashFromExtensions(["chain-hashes abc", "chain abc"])).toBeUndefined();
    expect(() => chainHashExtension(new Uint8Array(31))).toThrow(TypeError);
    for (const bad of [
      ["chain-hash"],
      [`chain-hash  ${b64(head)}`],
      [`chain-hash ${b64(head.subarray(1))}`],
      [`chain-hash ${b64(head)}x`],
      [chainHashExtension(head), chainHashExtension(head)],
    ]) {
      expect(() => chainHashFromExtensions(bad)).toThrow(NoteError);
      try {
        chainHashFromExtensions(bad);
      } catch (err) {
        expect((err as NoteError).code).toBe("malformed_checkpoint");
      }
    }
  });
});

describe("verifyExport on intact exports", () => {
  const t = buildLog(2, 300);

  it("accepts complete NDJSON exports from 0 and from a boundary, with and without proofs", () => {
    for (const start of [0, 1, 137, 256, 299, 300]) {
      for (const proofs of [false, true]) {
        const r = verify(ndjson(t, { start, proofs }));
        expect(r).toMatchObject({
          ok: true,
          format: "ndjson",
          entryCount: 300 - start,
          verifiedCount: 300 - start,
          complete: true,
          checkpoint: { origin: t.origin, treeSize: 300 },
        });
        expect(r.failure).toBeUndefined();
        expect(r.firstBadIndex).toBeUndefined();
        expect(b64(r.checkpoint?.rootHash as Uint8Array)).toBe(b64(t.checkpoint.rootHash));
        expect(b64(r.checkpoint?.chainHash as Uint8Array)).toBe(b64(t.checkpoint.chainHash));
      }
    }
    // Bytes, a matching checkpoint note and origin, and an explicit format are accepted too.
    const text = ndjson(t, { start: 100 });
    expect(
      verifyExport(Buffer.from(text), {
        verifierKeys: [KEY],
        checkpointNote: t.checkpoint.note,
        origin: t.origin,
        format: "ndjson",
      }).ok,
    ).toBe(true);
  });

  it("accepts incomplete NDJSON exports with inclusion proofs: a filtered subset, a range ending early", () => {
    const rand = seededRandom(5);
    const subset = t.entries.map((e) => e.index).filter(() => rand() < 0.3);
    const filtered = verify(ndjson(t, { subset }));
    expect(filtered).toMatchObject({
      ok: true,
      complete: false,
      entryCount: subset.length,
      verifiedCount: subset.length,
    });
    // A range of an older checkpoint's log, and a range ending before the checkpoint.
    const older = signedCheckpoint(
      t.origin,
      t.leaves.slice(0, 120),
      (t.entries[119] as ExportEntryInput).chainHash,
      KEY,
    );
    const range = Array.from({ length: 50 }, (_, k) => 60 + k);
    expect(verify(ndjson(t, { subset: range, filter: null }))).toMatchObject({ ok: true, verifiedCount: 50 });
    expect(verify(ndjson(t, { subset: range, filter: null, checkpoint: older }))).toMatchObject({
      ok: true,
      checkpoint: { treeSize: 120 },
    });
    expect(verify(ndjson(t, { subset: [299] }))).toMatchObject({ ok: true });
    expect(verify(ndjson(t, { subset: [] }))).toMatchObject({ ok: true, entryCount: 0 });
  });

  it("accepts CSV exports that end at the checkpoint: from 0 (root and chain head) and a tail (chain head)", () => {
    const note = t.checkpoint.note;
    expect(verify(csv(t), { checkpointNote: note })).toMatchObject({
      ok: true,
      format: "csv",
      entryCount: 300,
      verifiedCount: 300,
      complete: true,
      checkpoint: { origin: t.origin, treeSize: 300 },
    });
    expect(verify(csv(t, 173), { checkpointNote: note, origin: t.origin })).toMatchObject({
      ok: true,
      entryCount: 127,
      complete: true,
    });
    // A byte-order mark is tolerated.
    expect(verify(`\uFEFF${csv(t)}`, { checkpointNote: note, format: "csv" }).ok).toBe(true);
    // Rows that end before the checkpoint cannot be proven without inclusion proofs.
    const early = verify(csv(t, 0, 250), { checkpointNote: note });
    expect(early).toMatchObject({ ok: false, failure: "unprovable", complete: false, verifiedCount: 0 });
    expect(early.detail).toMatch(/NDJSON with inclusion proofs/);
    expect(verify(csv(t, 10, 20), { checkpointNote: note }).failure).toBe("unprovable");
  });

  it("without a chain-hash line: NDJSON still checks the root, a CSV tail is unprovable", () => {
    const bare = signedCheckpoint(t.origin, t.leaves, t.checkpoint.chainHash, KEY, ["time 2026-11-22T10:00:00Z"]);
    const r = verify(ndjson(t, { start: 42, checkpoint: bare }));
    expect(r).toMatchObject({ ok: true });
    expect(r.checkpoint?.chainHash).toBeUndefined();
    expect(verify(csv(t), { checkpointNote: bare.note }).ok).toBe(true);
    expect(verify(csv(t, 5), { checkpointNote: bare.note })).toMatchObject({ ok: false, failure: "unprovable" });
    // A malformed chain-hash line makes the checkpoint malformed.
    const broken = signedCheckpoint(t.origin, t.leaves, t.checkpoint.chainHash, KEY, ["chain-hash nope"]);
    expect(verify(ndjson(t, { checkpoint: broken }))).toMatchObject({ ok: false, failure: "malformed" });
  });

  it("treats misuse as an error, not a verdict", () => {
    expect(() => verifyExport(csv(t), { verifierKeys: KEYS })).toThrow(TypeError);
    expect(() => verifyExport(ndjson(t), { verifierKeys: [] })).toThrow(TypeError);
    expect(() => verifyExport(ndjson(t), { verifierKeys: ["not a key"] })).toThrow(NoteError);
    expect(verify("")).toMatchObject({ ok: false, failure: "malformed" });
  });
});

describe("verifyExport on tampered exports", () => {
  const t = buildLog(3, 200);
  const note = t.checkpoint.note;

  it("complete NDJSON from 0 and from a boundary: each change fails with its kind and first bad index", () => {
    for (const start of [0, 77]) {
      const genuine = lines(ndjson(t, { start }));
      const at = (i: number): number => 1 + i - start; // line position of entry i
      const rand = seededRandom(start + 1);
      for (const retrail of [false, true]) {
        const cases: [string, string[], string][] = [];
        const changed = genuine.slice();
        changed[at(120)] = alterCanonical(changed[at(120)] as string, rand);
        cases.push(["change a byte of an entry's canonical JSON", changed, "false changed 120"]);
        const deleted = genuine.slice();
        deleted.splice(at(150), 1);
        cases.push(["delete a line", deleted, "false removed 150"]);
        const copied = genuine.slice();
        copied.splice(at(100), 0, genuine[at(90)] as string);
        cases.push(["insert a copied line", copied, "false inserted 100"]);
        const swapped = genuine.slice();
        [swapped[at(130)], swapped[at(160)]] = [swapped[at(160)] as string, swapped[at(130)] as string];
        cases.push(["swap two lines", swapped, "false reordered 130"]);
        const adjacent = genuine.slice();
        [adjacent[at(198)], adjacent[at(199)]] = [adjacent[at(199)] as string, adjacent[at(198)] as string];
        cases.push(["swap the last two lines", adjacent, "false reordered 198"]);
        const tail = genuine.slice(0, at(180));
        cases.push(["cut the last entries", [...tail, genuine.at(-1) as string], "false removed 180"]);
        const index = genuine.slice();
        index[at(110)] = (index[at(110)] as string).replace('"index":110,"entry"', '"index":111,"entry"');
        cases.push(["change a line's index", index, "false changed 110"]);
        for (const [name, mutated, want] of cases) {
          const r = verify(unlines(mutated, retrail));
          expect(`${name}: ${verdict(r)}`).toBe(`${name}: ${want}`);
        }
      }
      // The trailer: dropped, cut inside, or not matching.
      expect(verdict(verify(unlines(genuine.slice(0, -1))))).toBe("false truncated undefined");
      expect(verdict(verify(unlines(genuine.slice(0, at(190)))))).toBe("false truncated 190");
      const text = unlines(genuine);
      expect(verify(text.slice(0, -10))).toMatchObject({ ok: false, failure: "truncated" });
      const cut = text.slice(0, text.indexOf('{"type":"entry","index":150') + 30);
      expect(verdict(verify(cut))).toBe("false truncated 150");
      const counted = genuine.slice();
      counted[counted.length - 1] = (counted.at(-1) as string).replace(/"entry_count":\d+/, '"entry_count":7');
      expect(verify(unlines(counted))).toMatchObject({ ok: false, failure: "changed" });
      // A byte the entry checks cannot see (the header's unsigned create time) is caught by the SHA-256.
      const dated = genuine.slice();
      dated[0] = (dated[0] as string).replace("2026-11-22T10:00:00.000Z", "2026-11-22T10:00:01.000Z");
      expect(verify(unlines(dated))).toMatchObject({
        ok: false,
        failure: "changed",
        detail: expect.stringMatching(/SHA-256/),
      });
      // A semantically equal re-encoding of one entry's JSON is caught by its leaf hash.
      const spaced = genuine.slice();
      spaced[at(140)] = (spaced[at(140)] as string).replace('"entry":{"action"', '"entry":{ "action"');
      expect(verdict(verify(unlines(spaced, true)))).toBe("false changed 140");
    }
  });

  it("the checkpoint: another key, a header copy that differs from the signed values, another note or origin", () => {
    const genuine = lines(ndjson(t));
    const other = signedCheckpoint(t.origin, t.leaves, t.checkpoint.chainHash, OTHER_KEY);
    const resigned = genuine.slice();
    resigned[0] = (resigned[0] as string).replace(JSON.stringify(note), JSON.stringify(other.note));
    expect(verify(unlines(resigned, true))).toMatchObject({ ok: false, failure: "bad_signature", verifiedCount: 0 });
    expect(verifyExport(unlines(genuine), { verifierKeys: [OTHER_KEY.verifierKey] })).toMatchObject({
      ok: false,
      failure: "bad_signature",
    });
    const sized = genuine.slice();
    sized[0] = (sized[0] as string).replace('"tree_size":200', '"tree_size":199');
    expect(verify(unlines(sized, true))).toMatchObject({ ok: false, failure: "bad_signature" });
    const rooted = genuine.slice();
    rooted[0] = (rooted[0] as string).replace(b64(t.checkpoint.rootHash), b64(t.checkpoint.chainHash));
    expect(verify(unlines(rooted, true))).toMatchObject({ ok: false, failure: "bad_signature" });
    // A forged note text (a signature that no longer matches).
    const forged = genuine.slice();
    forged[0] = (forged[0] as string).replace("\\n200\\n", "\\n201\\n").replace('"tree_size":200', '"tree_size":201');
    expect(verify(unlines(forged, true))).toMatchObject({ ok: false, failure: "bad_signature" });
    const older = signedCheckpoint(t.origin, t.leaves.slice(0, 10), (t.entries[9] as ExportEntryInput).chainHash, KEY);
    expect(verify(unlines(genuine), { checkpointNote: older.note })).toMatchObject({ failure: "bad_signature" });
    expect(verify(unlines(genuine), { origin: "uab.example.com/ten_other" })).toMatchObject({
      failure: "bad_signature",
    });
    // Another log's export under this log's checkpoint: the header's log is not the origin's.
    const relogged = genuine.slice();
    relogged[0] = (relogged[0] as string).replace(`"log":"${t.log}"`, '"log":"ten_x"');
    expect(verify(unlines(relogged, true))).toMatchObject({ failure: "malformed" });
  });

  it("incomplete NDJSON: changed, copied, swapped, unprovable and removed entries", () => {
    const subset = Array.from({ length: 60 }, (_, k) => 3 * k + 1); // 1, 4, … 178
    const genuine = lines(ndjson(t, { subset }));
    const at = (i: number): number => 1 + subset.indexOf(i);
    const rand = seededRandom(9);
    const changed = genuine.slice();
    changed[at(100)] = alterCanonical(changed[at(100)] as string, rand);
    expect(verdict(verify(unlines(changed, true)))).toBe("false changed 100");
    const copied = genuine.slice();
    copied.splice(at(40), 0, genuine[at(130)] as string);
    expect(verdict(verify(unlines(copied, true)))).toBe("false inserted 130");
    const after = genuine.slice();
    after.splice(at(130) + 1, 0, genuine[at(130)] as string);
    expect(verdict(verify(unlines(after, true)))).toBe("false inserted 130");
    const swapped = genuine.slice();
    [swapped[at(52)], swapped[at(97)]] = [swapped[at(97)] as string, swapped[at(52)] as string];
    expect(verdict(verify(unlines(swapped, true)))).toBe("false reordered 52");
    const unproven = genuine.slice();
    unproven[at(112)] = (unproven[at(112)] as string).replace(/,"inclusion_proof":\[[^\]]*\]/, "");
    expect(verdict(verify(unlines(unproven, true)))).toBe("false unprovable 112");
    const badProof = genuine.slice();
    badProof[at(70)] = (badProof[at(70)] as string).replace(
      /"inclusion_proof":\["([^"]+)"/,
      `"inclusion_proof":["${b64(new Uint8Array(32))}"`,
    );
    expect(verdict(verify(unlines(badProof, true)))).toBe("false changed 70");
    // Deleting a line of a filtered export: only the trailer can tell.
    const deleted = genuine.slice();
    deleted.splice(at(88), 1);
    expect(verdict(verify(unlines(deleted)))).toBe("false truncated undefined");
    // A range without a filter has no gaps, and its consecutive entries are chained.
    const range = lines(ndjson(t, { subset: Array.from({ length: 50 }, (_, k) => 100 + k), filter: null }));
    const gap = range.slice();
    gap.splice(1 + 20, 1);
    expect(verdict(verify(unlines(gap, true)))).toBe("false removed 120");
    const relinked = range.slice();
    relinked[1 + 30] = (relinked[1 + 30] as string).replace(
      /"previous_chain_hash":"[^"]+","chain_hash":"[^"]+"/,
      (() => {
        const e = t.entries[130] as ExportEntryInput;
        const previous = new Uint8Array(32).fill(7);
        return `"previous_chain_hash":"${b64(previous)}","chain_hash":"${b64(chainHash(previous, e.leafHash))}"`;
      })(),
    );
    expect(verdict(verify(unlines(relinked, true)))).toBe("false changed 130");
    // An entry beyond the checkpoint.
    const older = signedCheckpoint(
      t.origin,
      t.leaves.slice(0, 150),
      (t.entries[149] as ExportEntryInput).chainHash,
      KEY,
    );
    const beyond = lines(ndjson(t, { subset: [10, 20], checkpoint: older }));
    beyond.splice(3, 0, (genuine[at(169)] as string).replace(/,"inclusion_proof":\[[^\]]*\]/, ',"inclusion_proof":[]'));
    expect(verdict(verify(unlines(beyond, true)))).toBe("false inserted 169");
  });

  it("CSV: a readable column, the canonical JSON, deleted, copied and swapped rows, another key", () => {
    for (const start of [0, 64]) {
      const genuine = csvRows(t, start);
      const at = (i: number): number => 1 + i - start;
      const edit = (i: number, column: string, value: string): string => {
        const rows = csvParse(csv(t, start)) as string[][];
        (rows[at(i)] as string[])[CSV_COLUMNS.indexOf(column)] = value;
        return rows.map(csvRow).join("");
      };
      const v = (text: string) => verdict(verify(text, { checkpointNote: note }));
      expect(v(edit(150, "actor_id", "usr_somebody_else"))).toBe("false changed 150");
      expect(v(edit(151, "metadata", "{}"))).toBe("false changed 151");
      expect(v(edit(152, "index", "153"))).toBe("false changed 152");
      expect(
        v(
          edit(
            153,
            "canonical",
            (csvParse(csv(t, start)) as string[][])[at(153)]?.at(-1)?.replace('"v":1', '"v":2') as string,
          ),
        ),
      ).toBe("false changed 153");
      expect(v(edit(154, "leaf_hash", b64(new Uint8Array(32))))).toBe("false changed 154");
      // The id column is not hashed: nothing can check it.
      expect(v(edit(155, "id", "aud_other"))).toBe("true undefined undefined");
      const deleted = genuine.slice();
      deleted.splice(at(120), 1);
      expect(v(unrows(deleted))).toBe("false removed 120");
      const copied = genuine.slice();
      copied.splice(at(110), 0, genuine[at(100)] as string);
      expect(v(unrows(copied))).toBe("false inserted 110");
      const swapped = genuine.slice();
      [swapped[at(start)], swapped[at(start + 1)]] = [swapped[at(start + 1)] as string, swapped[at(start)] as string];
      expect(v(unrows(swapped))).toBe(`false reordered ${start}`);
      const swapped2 = genuine.slice();
      [swapped2[at(170)], swapped2[at(190)]] = [swapped2[at(190)] as string, swapped2[at(170)] as string];
      expect(v(unrows(swapped2))).toBe("false reordered 170");
      // The last rows gone: what is left ends before the checkpoint.
      expect(v(unrows(genuine.slice(0, at(199))))).toBe("false unprovable undefined");
      expect(verifyExport(csv(t, start), { verifierKeys: [OTHER_KEY.verifierKey], checkpointNote: note }).failure).toBe(
        "bad_signature",
      );
      // Rows cut mid-way, and rows that do not parse.
      expect(verify(csv(t, start).slice(0, -40), { checkpointNote: note }).failure).toMatch(/truncated|malformed/);
      const garbage = genuine.slice();
      garbage.splice(at(130), 0, 'x,"y');
      expect(verify(unrows(garbage), { checkpointNote: note }).failure).toBe("malformed");
    }
    expect(verify("index,id\r\n1,2\r\n", { checkpointNote: note }).failure).toBe("malformed");
  });

  it("malformed NDJSON names the line", () => {
    const genuine = lines(ndjson(t));
    const garbage = genuine.slice();
    garbage.splice(50, 0, "this is not json");
    expect(verify(unlines(garbage, true))).toMatchObject({ ok: false, failure: "malformed", firstBadIndex: 49 });
    expect(verify(unlines(garbage, true)).detail).toMatch(/line 51/);
    const after = [...genuine, '{"type":"entry"}'];
    expect(verify(unlines(after))).toMatchObject({
      failure: "malformed",
      detail: expect.stringMatching(/follows the trailer/),
    });
    const header = genuine.slice();
    header[0] = "{";
    expect(verify(unlines(header))).toMatchObject({ failure: "malformed", detail: expect.stringMatching(/line 1/) });
    const version = genuine.slice();
    version[0] = (version[0] as string).replace('"version":1', '"version":2');
    expect(verify(unlines(version))).toMatchObject({ failure: "malformed", detail: expect.stringMatching(/version/) });
    const binary = Buffer.from(unlines(genuine));
    binary[binary.indexOf('"index":60,') + 3] = 0xff;
    expect(verify(binary)).toMatchObject({
      failure: "malformed",
      detail: expect.stringMatching(/line 62 is not UTF-8/),
    });
  });
});

describe("random tamper battery", () => {
  const t = buildLog(4, 150);
  const note = t.checkpoint.note;

  /** The first position where two arrays of lines differ. */
  function firstDeviation(a: readonly string[], b: readonly string[]): number {
    for (let p = 0; ; p++) if (p >= a.length || p >= b.length || a[p] !== b[p]) return p;
  }

  it("finds and locates every line-level change of a complete NDJSON export (400 mutations)", () => {
    const rand = seededRandom(2026);
    const wrong: string[] = [];
    const kinds: Record<string, number> = {};
    for (let round = 0; round < 400; round++) {
      const start = [0, 0, 33, 96][round % 4] as number;
      const all = lines(ndjson(t, { start, proofs: round % 8 === 1 }));
      const entries = all.slice(1, -1);
      const n = entries.length;
      const mutated = entries.slice();
      let kind: string;
      let expectedAt: number | undefined;
      let retrail = rand() < 0.5;
      switch (round % 7) {
        case 0: {
          const p = randomInt(rand, 0, n - 1);
          mutated[p] = alterCanonical(mutated[p] as string, rand);
          kind = "changed";
          break;
        }
        case 1: {
          mutated.splice(randomInt(rand, 0, n - 1), 1);
          kind = "removed";
          break;
        }
        case 2: {
          const p = randomInt(rand, 0, n);
          const j = randomInt(rand, Math.max(0, p - 3), Math.min(n - 1, p + 3));
          mutated.splice(p, 0, entries[j] as string);
          kind = "inserted";
          break;
        }
        case 3: {
          const i = randomInt(rand, 0, n - 2);
          const j = rand() < 0.3 ? i + 1 : randomInt(rand, i + 1, n - 1);
          [mutated[i], mutated[j]] = [mutated[j] as string, mutated[i] as string];
          kind = "reordered";
          break;
        }
        case 4: {
          const from = randomInt(rand, 0, n - 1);
          const [moved] = mutated.splice(from, 1);
          let to = randomInt(rand, 0, n - 1);
          if (to === from) to = from === 0 ? 1 : from - 1;
          mutated.splice(to, 0, moved as string);
          kind = "reordered";
          break;
        }
        case 5: {
          // A forged entry, correctly hashed and linked to its predecessor, replacing one.
          const p = randomInt(rand, 0, n - 2);
          const i = start + p;
          const canonical = canonicalEntry(t.log, i, rand);
          const leaf = leafHash(canonical);
          const previous = (t.entries[i] as ExportEntryInput).previousChainHash;
          const w = new NdjsonExportWriter();
          w.header({
            log: t.log,
            origin: t.origin,
            checkpoint: t.checkpoint,
            complete: false,
            boundary: null,
            filter: null,
            createTime: CREATE_TIME,
          });
          mutated[p] = w
            .entry({
              index: i,
              canonical,
              leafHash: leaf,
              previousChainHash: previous,
              chainHash: chainHash(previous, leaf),
              inclusionProof: [],
            })
            .slice(0, -1)
            .replace(',"inclusion_proof":[]', "");
          kind = "changed";
          break;
        }
        default: {
          // The file cut at a line boundary, the trailer gone with the lines after it.
          const keep = randomInt(rand, 0, n - 1);
          mutated.splice(keep);
          kind = "truncated";
          retrail = false;
          expectedAt = start + keep;
          break;
        }
      }
      expectedAt ??= start + firstDeviation(entries, mutated);
      const body = [all[0] as string, ...mutated];
      const text = kind === "truncated" ? unlines(body) : unlines([...body, all.at(-1) as string], retrail);
      const r = verify(text);
      kinds[kind] = (kinds[kind] ?? 0) + 1;
      const want = `false ${kind} ${expectedAt}`;
      if (verdict(r) !== want)
        wrong.push(`round ${round} (${kind}, start ${start}): got ${verdict(r)} (${r.detail}), want ${want}`);
    }
    expect(wrong).toEqual([]);
    expect(Object.keys(kinds).sort()).toEqual(["changed", "inserted", "removed", "reordered", "truncated"]);
  });

  it("detects every random byte change anywhere in NDJSON and CSV exports (600 mutations)", () => {
    const rand = seededRandom(77);
    const subset = t.entries.map((e) => e.index).filter((i) => i % 4 !== 1);
    const csv0 = csvRows(t);
    const csv90 = csvRows(t, 90);
    const exports: { name: string; bytes: Buffer; csv: boolean; unhashed: [number, number][] }[] = [
      { name: "complete from 0", bytes: Buffer.from(ndjson(t)), csv: false, unhashed: [] },
      {
        name: "complete from 57",
        bytes: Buffer.from(ndjson(t, { start: 57, proofs: true })),
        csv: false,
        unhashed: [],
      },
      { name: "incomplete", bytes: Buffer.from(ndjson(t, { subset })), csv: false, unhashed: [] },
      { name: "csv from 0", bytes: Buffer.from(unrows(csv0)), csv: true, unhashed: idRanges(csv0) },
      { name: "csv from 90", bytes: Buffer.from(unrows(csv90)), csv: true, unhashed: idRanges(csv90) },
    ];
    const missed: string[] = [];
    let done = 0;
    for (let round = 0; done < 600; round++) {
      const x = exports[round % exports.length] as (typeof exports)[number];
      const at = randomInt(rand, 0, x.bytes.length - 1);
      if (x.unhashed.some(([from, to]) => at >= from && at < to)) continue; // the CSV id column: see above
      const bytes = Buffer.from(x.bytes);
      bytes[at] = (bytes[at] as number) ^ randomInt(rand, 1, 255);
      done += 1;
      const r = verify(bytes, x.csv ? { checkpointNote: note } : {});
      if (r.ok) missed.push(`${x.name}: byte ${at} undetected`);
      // Every failure is one of the documented kinds.
      expect([
        "changed",
        "removed",
        "inserted",
        "reordered",
        "root_mismatch",
        "bad_signature",
        "truncated",
        "unprovable",
        "malformed",
      ]).toContain(r.failure ?? "none");
    }
    expect(missed).toEqual([]);
  });

  it("finds and locates line-level changes of CSV and incomplete NDJSON exports (300 mutations)", () => {
    const rand = seededRandom(31337);
    const wrong: string[] = [];
    const subset = t.entries.map((e) => e.index).filter((i) => i % 3 !== 0);
    const incomplete = lines(ndjson(t, { subset }));
    for (let round = 0; round < 300; round++) {
      if (round % 2 === 0) {
        // CSV from 0 or a tail: copy, swap, or edit a readable column.
        const start = round % 4 === 0 ? 0 : 45;
        const rows = csvRows(t, start);
        const n = rows.length - 1;
        const body = rows.slice(1);
        const mutated = body.slice();
        let want: string;
        const op = Math.floor(round / 2) % 3;
        if (op === 0) {
          const p = randomInt(rand, 0, n);
          mutated.splice(p, 0, body[randomInt(rand, Math.max(0, p - 3), Math.min(n - 1, p + 3))] as string);
          want = `false inserted ${start + firstDeviation(body, mutated)}`;
        } else if (op === 1) {
          const i = randomInt(rand, 0, n - 2);
          const j = rand() < 0.3 ? i + 1 : randomInt(rand, i + 1, n - 1);
          [mutated[i], mutated[j]] = [mutated[j] as string, mutated[i] as string];
          want = `false reordered ${start + i}`;
        } else {
          const p = randomInt(rand, 0, n - 1);
          const fields = (csvParse(`${mutated[p]}\r\n`) as string[][])[0] as string[];
          const column = randomInt(rand, 2, 22); // a readable column (not index or id)
          fields[column] = `${fields[column]}x`;
          mutated[p] = csvRow(fields).slice(0, -2);
          want = `false changed ${start + p}`;
        }
        const r = verify(unrows([rows[0] as string, ...mutated]), { checkpointNote: note });
        if (verdict(r) !== want) wrong.push(`round ${round} csv: got ${verdict(r)} (${r.detail}), want ${want}`);
      } else {
        const entries = incomplete.slice(1, -1);
        const mutated = entries.slice();
        let want: string;
        const index = (line: string): number => JSON.parse(line).index as number;
        const op = Math.floor(round / 2) % 3;
        if (op === 0) {
          const p = randomInt(rand, 0, mutated.length);
          const copy = entries[randomInt(rand, 0, entries.length - 1)] as string;
          mutated.splice(p, 0, copy);
          want = `false inserted ${index(copy)}`;
        } else if (op === 1) {
          const i = randomInt(rand, 0, mutated.length - 2);
          const j = randomInt(rand, i + 1, mutated.length - 1);
          [mutated[i], mutated[j]] = [mutated[j] as string, mutated[i] as string];
          want = `false reordered ${index(entries[i] as string)}`;
        } else {
          const p = randomInt(rand, 0, mutated.length - 1);
          mutated[p] = alterCanonical(mutated[p] as string, rand);
          want = `false changed ${index(entries[p] as string)}`;
        }
        const r = verify(unlines([incomplete[0] as string, ...mutated, incomplete.at(-1) as string], rand() < 0.5));
        if (verdict(r) !== want) wrong.push(`round ${round} ndjson: got ${verdict(r)} (${r.detail}), want ${want}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
