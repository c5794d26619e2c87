/**
 * Audit log exports (docs/audit-export.md): the NDJSON and CSV writers, the `chain-hash`
 * checkpoint extension, and {@link verifyExport}, the offline verifier behind
 * `uab audit verify`.
 *
 * An NDJSON export is a header line (the log, the signed checkpoint note and, for a complete
 * export, the boundary it starts from), one line per entry with its canonical JSON and hashes,
 * and a trailer with the entry count and the SHA-256 of every byte before it. A CSV export is
 * a header row and one row per entry with readable columns, the hashes and the canonical JSON;
 * its checkpoint travels beside it.
 *
 * Verification opens the checkpoint note with the trusted keys (the signed values are
 * authoritative; copies in the header must agree), then:
 * - a complete export runs through {@link verifyLog} from its boundary to the signed root and
 *   chain head, so the first changed, removed, inserted or reordered entry is named exactly;
 * - an incomplete export (a filter, or a range ending before the checkpoint) needs an
 *   inclusion proof on every entry, and its entries in strictly increasing index order;
 * - each entry's canonical JSON must carry the entry's own index and log;
 * - the trailer's count and SHA-256 must match (a missing trailer means a truncated file);
 * - a CSV row's readable columns must say what its canonical column says; the rows are
 *   provable when they end at the checkpoint's tree size (the signed chain head binds every
 *   row, and from index 0 the Merkle root is checked as well).
 */
import { createHash } from "node:crypto";
import { fromBase64Strict, isHash, isSize, sameBytes, sha256, toBase64, toHex } from "./bytes.js";
import { canonicalJson, type JsonValue } from "./canonical.js";
import { type CsvRecord, csvRow, parseCsvPrefix } from "./csv.js";
import { leafHash, MerkleFrontier, verifyInclusion } from "./merkle.js";
import { NoteError, type NoteVerifier, openCheckpoint, parseVerifierKey } from "./note.js";
import { type LogRecord, type LogVerification, type LogVerificationFailureKind, verifyLog } from "./verify.js";

/** The `format` of an NDJSON export's header line; this module writes and reads version 1. */
export const EXPORT_FORMAT = "uab.audit.export";

/** The export format version this module writes and reads. */
const EXPORT_VERSION = 1;

/** The checkpoint an export is pinned to, as its header carries it. */
export interface ExportCheckpoint {
  /** The checkpoint id, `chk_…`. */
  readonly id: string;
  /** Number of entries covered. */
  readonly treeSize: number;
  /** The Merkle root over the first `treeSize` leaf hashes (32 bytes). */
  readonly rootHash: Uint8Array;
  /** The chain hash of entry `treeSize - 1` (32 zero bytes for an empty log). */
  readonly chainHash: Uint8Array;
  /** The signing key's id, `aks_…`. */
  readonly keyId: string;
  /** The checkpoint as a C2SP signed note: what a verifier actually trusts. */
  readonly note: string;
}

/** Where a complete export starts: the state of the log just before its first entry. */
export interface ExportBoundary {
  /** Index of the first entry exported. */
  readonly startIndex: number;
  /** Chain hash of entry `startIndex - 1` (32 zero bytes for 0). */
  readonly previousChainHash: Uint8Array;
  /** The Merkle frontier of leaves `[0, startIndex)`: one hash per set bit of `startIndex`, largest subtree first. */
  readonly frontier: readonly Uint8Array[];
}

/** What an NDJSON export's header line says. */
export interface ExportHeaderInput {
  /** The log id (`ten_…`, or `platform`): the last segment of the origin. */
  readonly log: string;
  /** The log's checkpoint origin line. */
  readonly origin: string;
  /** The checkpoint the export verifies against. */
  readonly checkpoint: ExportCheckpoint;
  /** Whether the export holds every entry from the boundary up to the checkpoint's tree size. */
  readonly complete: boolean;
  /** Where a complete export starts; null for an incomplete one. */
  readonly boundary: ExportBoundary | null;
  /** The filter the entries were selected with (informative), or null. */
  readonly filter: JsonValue | null;
  /** When the export was made. */
  readonly createTime: Date;
}

/** One entry to export, as the log stores it. */
export interface ExportEntryInput {
  /** The entry's index in its log. */
  readonly index: number;
  /** The stored canonical bytes (RFC 8785 JSON of the entry): exactly what the leaf hash covers. */
  readonly canonical: Uint8Array;
  /** The stored leaf hash, `SHA-256(0x00 ‖ canonical)`. */
  readonly leafHash: Uint8Array;
  /** The stored chain hash of the entry before (32 zero bytes for index 0). */
  readonly previousChainHash: Uint8Array;
  /** The stored chain hash, `SHA-256(previousChainHash ‖ leafHash)`. */
  readonly chainHash: Uint8Array;
  /** The inclusion proof of the entry in the checkpoint's tree (NDJSON; required in an incomplete export). */
  readonly inclusionProof?: readonly Uint8Array[];
  /**
   * The entry's server id (`aud_…`), written to the CSV `id` column. It is not part of the
   * canonical entry, so no hash covers it and a verifier cannot check it.
   */
  readonly id?: string;
}

/** The columns of a CSV export, in order (docs/audit-export.md). */
export const CSV_COLUMNS: readonly string[] = Object.freeze([
  "index",
  "id",
  "event_id",
  "event_type",
  "source",
  "action",
  "outcome",
  "outcome_reason",
  "actor_id",
  "actor_type",
  "actor_tenant_id",
  "impersonator_id",
  "session_id",
  "ip_address",
  "user_agent",
  "resource_type",
  "resource_id",
  "resource_name",
  "occur_time",
  "record_time",
  "request_id",
  "trace_id",
  "metadata",
  "leaf_hash",
  "previous_chain_hash",
  "chain_hash",
  "canonical",
]);

/** The checkpoint extension keyword of the signed chain head. */
const CHAIN_HASH_KEYWORD = "chain-hash";

/**
 * The checkpoint extension line that signs a log's chain head with its root:
 * `chain-hash <base64 chain hash of entry tree-size - 1>`.
 * @throws TypeError when the chain hash is not 32 bytes.
 */
export function chainHashExtension(chainHash: Uint8Array): string {
  if (!isHash(chainHash)) throw new TypeError("chainHashExtension: a chain hash is 32 bytes");
  return `${CHAIN_HASH_KEYWORD} ${toBase64(chainHash)}`;
}

/**
 * The chain head a checkpoint signs, from its extension lines (see {@link chainHashExtension});
 * undefined when it has no `chain-hash` line. Other extension lines are ignored.
 * @throws NoteError `malformed_checkpoint` for a `chain-hash` line that is not the keyword, one
 * space and 32 bytes of standard base64, or for more than one such line.
 */
export function chainHashFromExtensions(extensions: readonly string[]): Uint8Array | undefined {
  let found: Uint8Array | undefined;
  for (const line of extensions) {
    if (typeof line !== "string" || line.split(" ", 1)[0] !== CHAIN_HASH_KEYWORD) continue;
    const hash = fromBase64Strict(line.slice(CHAIN_HASH_KEYWORD.length + 1));
    if (line[CHAIN_HASH_KEYWORD.length] !== " " || hash === undefined || hash.length !== 32) {
      throw new NoteError(
        "malformed_checkpoint",
        `malformed checkpoint: the line ${JSON.stringify(line)} is not "chain-hash <base64 32 bytes>"`,
      );
    }
    if (found !== undefined) {
      throw new NoteError("malformed_checkpoint", "malformed checkpoint: more than one chain-hash line");
    }
    found = hash;
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Writing

const UTF8 = new TextEncoder();
const UTF8_STRICT = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function onesCount(n: number): number {
  let count = 0;
  for (let x = n; x > 0; x = Math.floor(x / 2)) count += x % 2;
  return count;
}

/** The canonical bytes as text, checked to be one JSON object that fits on a line. */
function canonicalText(canonical: Uint8Array, what: string): { text: string; value: Record<string, JsonValue> } {
  let text: string;
  try {
    text = UTF8_STRICT.decode(canonical);
  } catch {
    throw new TypeError(`${what}: the canonical bytes are not UTF-8`);
  }
  if (text.includes("\n") || text.includes("\r")) throw new TypeError(`${what}: the canonical JSON spans lines`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new TypeError(`${what}: the canonical bytes are not JSON`);
  }
  if (!isObject(value)) throw new TypeError(`${what}: the canonical JSON is not an object`);
  return { text, value };
}

function checkEntryInput(e: ExportEntryInput, what: string): void {
  if (!isSize(e?.index)) throw new TypeError(`${what}: the index must be a safe integer ≥ 0`);
  if (!isHash(e.leafHash) || !isHash(e.previousChainHash) || !isHash(e.chainHash)) {
    throw new TypeError(`${what}: entry ${e.index}'s hashes must be 32 bytes`);
  }
  if (e.inclusionProof !== undefined && !(Array.isArray(e.inclusionProof) && e.inclusionProof.every(isHash))) {
    throw new TypeError(`${what}: entry ${e.index}'s inclusion proof must be 32-byte hashes`);
  }
}

interface HeaderFields {
  readonly log: string;
  readonly origin: string;
  readonly checkpoint: {
    readonly id: string;
    readonly treeSize: number;
    readonly rootHash: Uint8Array;
    readonly chainHash: Uint8Array;
    readonly keyId: string;
    readonly note: string;
  };
  readonly complete: boolean;
  readonly boundary: ExportBoundary | null;
  readonly filter: JsonValue | null;
  readonly createTime: string;
}

/** The header line (with its newline) of an export. */
function headerLine(h: HeaderFields): string {
  const c = h.checkpoint;
  const b = h.boundary;
  return `${JSON.stringify({
    type: "header",
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    log: h.log,
    origin: h.origin,
    checkpoint: {
      id: c.id,
      tree_size: c.treeSize,
      root_hash: toBase64(c.rootHash),
      chain_hash: toBase64(c.chainHash),
      key_id: c.keyId,
      note: c.note,
    },
    complete: h.complete,
    boundary:
      b === null
        ? null
        : {
            start_index: b.startIndex,
            previous_chain_hash: toBase64(b.previousChainHash),
            frontier: b.frontier.map(toBase64),
          },
    filter: h.filter,
    create_time: h.createTime,
  })}\n`;
}

/** An entry line (with its newline); `canonical` is embedded verbatim. */
function entryLine(
  index: number,
  canonical: string,
  leaf: Uint8Array,
  previous: Uint8Array,
  chain: Uint8Array,
  proof: readonly Uint8Array[] | undefined,
): string {
  const proofPart = proof === undefined ? "" : `,"inclusion_proof":${JSON.stringify(proof.map(toBase64))}`;
  return `{"type":"entry","index":${index},"entry":${canonical},"leaf_hash":"${toBase64(leaf)}","previous_chain_hash":"${toBase64(previous)}","chain_hash":"${toBase64(chain)}"${proofPart}}\n`;
}

/**
 * Writes an NDJSON export line by line: {@link header} once, {@link entry} per entry in index
 * order, {@link trailer} once. Each method returns one `\n`-terminated line; the trailer
 * carries the entry count and the SHA-256 (hex) of every byte returned before it. The
 * canonical bytes are embedded verbatim as the `entry` object, so a verifier hashes exactly
 * what the log stored.
 */
export class NdjsonExportWriter {
  #hash = createHash("sha256");
  #bytes = 0;
  #entries = 0;
  #header: ExportHeaderInput | undefined;
  #lastIndex = -1;
  #done = false;

  /** Entries written so far. */
  get entryCount(): number {
    return this.#entries;
  }

  /** UTF-8 bytes of every line returned so far (the trailer included once written). */
  get byteCount(): number {
    return this.#bytes;
  }

  #emit(line: string, hashed: boolean): string {
    const bytes = UTF8.encode(line);
    if (hashed) this.#hash.update(bytes);
    this.#bytes += bytes.length;
    return line;
  }

  /**
   * The header line.
   * @throws Error when called twice; TypeError for malformed input (hashes that are not 32
   * bytes, sizes that are not safe integers, a complete export without a boundary or an
   * incomplete one with, a boundary beyond the tree size or whose frontier does not have one
   * hash per set bit of its start index, an invalid create time).
   */
  header(h: ExportHeaderInput): string {
    if (this.#header !== undefined) throw new Error("NdjsonExportWriter: the header is already written");
    const what = "NdjsonExportWriter.header";
    const c = h?.checkpoint;
    if (typeof h?.log !== "string" || h.log === "" || typeof h.origin !== "string" || h.origin === "") {
      throw new TypeError(`${what}: the log and origin must be non-empty strings`);
    }
    if (
      typeof c?.id !== "string" ||
      !isSize(c.treeSize) ||
      !isHash(c.rootHash) ||
      !isHash(c.chainHash) ||
      typeof c.keyId !== "string" ||
      typeof c.note !== "string"
    ) {
      throw new TypeError(`${what}: malformed checkpoint`);
    }
    if (typeof h.complete !== "boolean") throw new TypeError(`${what}: complete must be a boolean`);
    const b = h.boundary;
    if (h.complete !== (b !== null && b !== undefined)) {
      throw new TypeError(`${what}: a complete export needs a boundary, an incomplete one has none`);
    }
    if (b !== null) {
      if (
        !isSize(b.startIndex) ||
        b.startIndex > c.treeSize ||
        !isHash(b.previousChainHash) ||
        !Array.isArray(b.frontier) ||
        b.frontier.length !== onesCount(b.startIndex) ||
        !b.frontier.every(isHash)
      ) {
        throw new TypeError(`${what}: malformed boundary`);
      }
    }
    if (!(h.createTime instanceof Date) || Number.isNaN(h.createTime.getTime())) {
      throw new TypeError(`${what}: createTime must be a valid Date`);
    }
    this.#header = h;
    this.#lastIndex = b === null ? -1 : b.startIndex - 1;
    return this.#emit(headerLine({ ...h, createTime: h.createTime.toISOString() }), true);
  }

  /**
   * One entry line.
   * @throws Error before the header or after the trailer; TypeError for malformed input
   * (canonical bytes that are not one line of UTF-8 JSON object, hashes that are not 32 bytes,
   * no inclusion proof in an incomplete export); RangeError for an index that is not after the
   * previous one (or, in a complete export, not the next one) or not below the tree size.
   */
  entry(e: ExportEntryInput): string {
    const h = this.#header;
    if (h === undefined || this.#done)
      throw new Error("NdjsonExportWriter: entries go between the header and the trailer");
    const what = "NdjsonExportWriter.entry";
    checkEntryInput(e, what);
    if (!h.complete && e.inclusionProof === undefined) {
      throw new TypeError(`${what}: every entry of an incomplete export needs an inclusion proof`);
    }
    const expected = h.complete ? this.#lastIndex + 1 : undefined;
    if (e.index <= this.#lastIndex || (expected !== undefined && e.index !== expected)) {
      throw new RangeError(`${what}: entry ${e.index} out of order after ${this.#lastIndex}`);
    }
    if (e.index >= h.checkpoint.treeSize) {
      throw new RangeError(`${what}: entry ${e.index} is beyond the checkpoint's tree size ${h.checkpoint.treeSize}`);
    }
    const { text } = canonicalText(e.canonical, what);
    this.#lastIndex = e.index;
    this.#entries += 1;
    return this.#emit(entryLine(e.index, text, e.leafHash, e.previousChainHash, e.chainHash, e.inclusionProof), true);
  }

  /**
   * The trailer line: the entry count and the SHA-256 (hex) of every byte returned before it.
   * @throws Error before the header or when called twice; RangeError when a complete export
   * stops short of the checkpoint's tree size.
   */
  trailer(): string {
    const h = this.#header;
    if (h === undefined || this.#done) throw new Error("NdjsonExportWriter: the trailer follows the header, once");
    if (h.complete && this.#lastIndex + 1 !== h.checkpoint.treeSize) {
      throw new RangeError(
        `NdjsonExportWriter.trailer: a complete export ends at the tree size ${h.checkpoint.treeSize}, not ${this.#lastIndex + 1}`,
      );
    }
    this.#done = true;
    const sha = this.#hash.digest("hex");
    return this.#emit(`${JSON.stringify({ type: "trailer", entry_count: this.#entries, sha256: sha })}\n`, false);
  }
}

function member(value: JsonValue | undefined, key: string): JsonValue | undefined {
  return isObject(value) ? value[key] : undefined;
}

/** How a canonical value reads in a CSV column: strings as they are, anything else as canonical JSON. */
function readable(value: JsonValue | undefined): string {
  if (value === undefined) return "";
  return typeof value === "string" ? value : canonicalJson(value);
}

type Entry = Record<string, JsonValue>;

/** The readable CSV columns and where each comes from in the canonical entry. */
const READABLE_COLUMNS: readonly (readonly [string, (e: Entry) => JsonValue | undefined])[] = [
  ["index", (e) => e.index],
  ["event_id", (e) => e.event_id],
  ["event_type", (e) => e.event_type],
  ["source", (e) => e.source],
  ["action", (e) => e.action],
  ["outcome", (e) => e.outcome],
  ["outcome_reason", (e) => e.outcome_reason],
  ["actor_id", (e) => member(e.actor, "id")],
  ["actor_type", (e) => member(e.actor, "type")],
  ["actor_tenant_id", (e) => member(e.actor, "tenant_id")],
  ["impersonator_id", (e) => member(e.actor, "impersonator_id")],
  ["session_id", (e) => member(e.actor, "session_id")],
  ["ip_address", (e) => member(e.actor, "ip")],
  ["user_agent", (e) => member(e.actor, "user_agent")],
  ["resource_type", (e) => member(e.resource, "type")],
  ["resource_id", (e) => member(e.resource, "id")],
  ["resource_name", (e) => member(e.resource, "name")],
  ["occur_time", (e) => e.occur_time],
  ["record_time", (e) => e.record_time],
  ["request_id", (e) => e.request_id],
  ["trace_id", (e) => e.trace_id],
  ["metadata", (e) => e.metadata],
];

const COLUMN = new Map(CSV_COLUMNS.map((name, i) => [name, i]));

function col(name: string): number {
  return COLUMN.get(name) as number;
}

/**
 * Writes a CSV export (RFC 4180: CRLF line ends, fields quoted only when they hold a comma,
 * a quote, a CR or an LF): {@link header} once, then {@link entry} per entry in index order.
 * The readable columns come from the canonical JSON (strings as they are, other values as
 * canonical JSON); the hashes are base64 and the `canonical` column holds the canonical bytes
 * as text. A CSV export has no header line: its checkpoint note travels beside it.
 */
export class CsvExportWriter {
  #bytes = 0;
  #entries = 0;
  #started = false;
  #lastIndex = -1;

  /** Entries written so far. */
  get entryCount(): number {
    return this.#entries;
  }

  /** UTF-8 bytes of every line returned so far. */
  get byteCount(): number {
    return this.#bytes;
  }

  #emit(line: string): string {
    this.#bytes += UTF8.encode(line).length;
    return line;
  }

  /** The header row ({@link CSV_COLUMNS}). @throws Error when called twice. */
  header(): string {
    if (this.#started) throw new Error("CsvExportWriter: the header row is already written");
    this.#started = true;
    return this.#emit(csvRow(CSV_COLUMNS));
  }

  /**
   * One row.
   * @throws Error before the header row; TypeError for malformed input (canonical bytes that
   * are not a UTF-8 JSON object on one line, hashes that are not 32 bytes); RangeError for an
   * index not after the previous one.
   */
  entry(e: ExportEntryInput): string {
    if (!this.#started) throw new Error("CsvExportWriter: entries follow the header row");
    const what = "CsvExportWriter.entry";
    checkEntryInput(e, what);
    if (e.index <= this.#lastIndex)
      throw new RangeError(`${what}: entry ${e.index} out of order after ${this.#lastIndex}`);
    const { text, value } = canonicalText(e.canonical, what);
    const fields: string[] = new Array(CSV_COLUMNS.length).fill("");
    for (const [name, get] of READABLE_COLUMNS) fields[col(name)] = readable(get(value));
    fields[col("id")] = typeof e.id === "string" ? e.id : "";
    fields[col("leaf_hash")] = toBase64(e.leafHash);
    fields[col("previous_chain_hash")] = toBase64(e.previousChainHash);
    fields[col("chain_hash")] = toBase64(e.chainHash);
    fields[col("canonical")] = text;
    this.#lastIndex = e.index;
    this.#entries += 1;
    return this.#emit(csvRow(fields));
  }
}

// ---------------------------------------------------------------------------------------------
// Verifying

/**
 * What an export verification found wrong: a {@link LogVerificationFailureKind}, or
 * `truncated` (the file was cut: no trailer, a partial last line, fewer entries than the
 * trailer counts), `unprovable` (entries that cannot be tied to the checkpoint: an incomplete
 * NDJSON entry without an inclusion proof, CSV rows ending before the checkpoint's tree size)
 * or `malformed` (a line or row that cannot be read, a header that does not follow the format).
 */
export type ExportVerificationFailure = LogVerificationFailureKind | "truncated" | "unprovable" | "malformed";

/** The outcome of {@link verifyExport}. */
export interface ExportVerification {
  /** Everything verified. */
  readonly ok: boolean;
  /** The format read. */
  readonly format: "ndjson" | "csv";
  /** Entry lines (or rows) read. */
  readonly entryCount: number;
  /** Entries verified before the first bad one (all of them when ok). */
  readonly verifiedCount: number;
  /** Index of the first bad entry, when the failure has one. */
  readonly firstBadIndex?: number;
  /** What failed; absent when ok. */
  readonly failure?: ExportVerificationFailure;
  /** What was found, for people (line numbers for malformed input). */
  readonly detail: string;
  /** The signed checkpoint's values, once its note opened with a trusted key. */
  readonly checkpoint?: {
    /** The log's origin line. */
    readonly origin: string;
    /** Number of entries covered. */
    readonly treeSize: number;
    /** The signed Merkle root. */
    readonly rootHash: Uint8Array;
    /** The signed chain head (the note's `chain-hash` line), when the note has one. */
    readonly chainHash?: Uint8Array;
  };
  /**
   * NDJSON: whether the header declares the export complete (every entry from its boundary to
   * the tree size). CSV: whether the rows run up to the checkpoint's tree size.
   */
  readonly complete: boolean;
}

/** Options of {@link verifyExport}. */
export interface VerifyExportOptions {
  /** The trusted checkpoint signing keys (verifier key strings or parsed verifiers). */
  readonly verifierKeys: readonly (string | NoteVerifier)[];
  /**
   * The checkpoint note: required for CSV; for NDJSON, when given, it must be the note the
   * header carries.
   */
  readonly checkpointNote?: string;
  /** The log's origin: the checkpoint must be for it (NDJSON: the header's origin must be it too). */
  readonly origin?: string;
  /** The format; sniffed when absent (NDJSON starts with `{`). */
  readonly format?: "ndjson" | "csv";
}

type Checkpoint = NonNullable<ExportVerification["checkpoint"]>;

/** A failure about to be reported. */
interface Verdict {
  readonly failure: ExportVerificationFailure;
  readonly firstBadIndex?: number;
  readonly verifiedCount: number;
  readonly detail: string;
}

function isObject(x: unknown): x is Record<string, JsonValue> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** The log id a checkpoint origin names: its last `/`-separated segment. */
function logIdOfOrigin(origin: string): string {
  return origin.slice(origin.lastIndexOf("/") + 1);
}

/** 32 bytes of strict base64, or an empty array (which every hash check refuses). */
function hashOrEmpty(x: unknown): Uint8Array {
  const bytes = typeof x === "string" ? fromBase64Strict(x) : undefined;
  return bytes !== undefined && bytes.length === 32 ? bytes : new Uint8Array(0);
}

function strictHash(x: unknown): Uint8Array | undefined {
  const bytes = typeof x === "string" ? fromBase64Strict(x) : undefined;
  return bytes !== undefined && bytes.length === 32 ? bytes : undefined;
}

const JSON_SPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

function skipSpace(t: string, i: number): number {
  while (JSON_SPACE.has(t.charCodeAt(i))) i += 1;
  return i;
}

function skipString(t: string, i: number): number {
  let j = i + 1;
  while (t.charCodeAt(j) !== 0x22) j += t.charCodeAt(j) === 0x5c ? 2 : 1;
  return j + 1;
}

function skipValue(t: string, i: number): number {
  const c = t.charCodeAt(i);
  if (c === 0x22) return skipString(t, i);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    let j = i;
    for (;;) {
      const d = t.charCodeAt(j);
      if (d === 0x22) {
        j = skipString(t, j);
        continue;
      }
      if (d === 0x7b || d === 0x5b) depth += 1;
      else if (d === 0x7d || d === 0x5d) {
        depth -= 1;
        if (depth === 0) return j + 1;
      }
      j += 1;
    }
  }
  let j = i;
  while (j < t.length && !JSON_SPACE.has(t.charCodeAt(j)) && ![0x2c, 0x7d, 0x5d].includes(t.charCodeAt(j))) j += 1;
  return j;
}

/**
 * The raw text spans of the members of a JSON object text that JSON.parse accepted, or
 * undefined when a member name repeats (JSON.parse would silently keep the last one).
 */
function memberSpans(t: string): Map<string, readonly [number, number]> | undefined {
  const spans = new Map<string, readonly [number, number]>();
  let i = skipSpace(t, 0) + 1;
  i = skipSpace(t, i);
  if (t.charCodeAt(i) === 0x7d) return spans;
  for (;;) {
    i = skipSpace(t, i);
    const keyEnd = skipString(t, i);
    const key = JSON.parse(t.slice(i, keyEnd)) as string;
    i = skipSpace(t, skipSpace(t, keyEnd) + 1);
    const end = skipValue(t, i);
    if (spans.has(key)) return undefined;
    spans.set(key, [i, end]);
    i = skipSpace(t, end);
    if (t.charCodeAt(i) !== 0x2c) return spans;
    i += 1;
  }
}

/** One entry of an export, read leniently (what cannot be read fails the hash checks). */
interface ReadEntry {
  /** Where it was read: `line N` or `row N`. */
  readonly where: string;
  /** The claimed index (NaN when absent or not a safe integer). */
  readonly index: number;
  /** The canonical bytes as found (empty when absent). */
  readonly canonical: Uint8Array;
  /** The canonical text as found. */
  readonly canonicalText: string;
  /** The canonical JSON parsed, when it is an object. */
  readonly entry: Entry | undefined;
  readonly leafHash: Uint8Array;
  readonly previousChainHash: Uint8Array;
  readonly chainHash: Uint8Array;
  /** The inclusion proof: undefined when absent, hashes (empty arrays for unreadable ones) when present. */
  readonly proof: Uint8Array[] | undefined;
  /** Whether every field was well-formed (strict base64 hashes, a safe-integer index, a proof array). */
  readonly wellFormed: boolean;
  /** The text of the line, for NDJSON. */
  readonly line?: string;
}

function toRecord(e: ReadEntry): LogRecord {
  return {
    index: e.index,
    entryBytes: e.canonical,
    leafHash: e.leafHash,
    previousChainHash: e.previousChainHash,
    chainHash: e.chainHash,
  };
}

/** A problem of the entry itself that {@link verifyLog} does not look at: its canonical index and log, its proof. */
function entryFieldProblem(e: ReadEntry, log: string, checkpoint: Checkpoint): string | undefined {
  if (e.entry === undefined) return `${e.where}: the canonical entry is not a JSON object`;
  if (e.entry.index !== e.index) {
    return `${e.where}: the canonical entry says index ${JSON.stringify(e.entry.index)}, the export ${e.index}`;
  }
  if (e.entry.log !== log) {
    return `${e.where}: the canonical entry is of log ${JSON.stringify(e.entry.log)}, not ${JSON.stringify(log)}`;
  }
  if (
    e.proof !== undefined &&
    !verifyInclusion(e.leafHash, e.index, checkpoint.treeSize, e.proof, checkpoint.rootHash)
  ) {
    return `${e.where}: entry ${e.index}'s inclusion proof does not lead to the checkpoint's root`;
  }
  return undefined;
}

/**
 * Runs {@link verifyLog} over a complete run of entries and adds the entry field checks: the
 * first problem by position wins (verifyLog's on a tie, its classification being finer).
 */
function verifyRun(
  entries: readonly ReadEntry[],
  log: string,
  checkpoint: Checkpoint,
  options: Parameters<typeof verifyLog>[1],
): LogVerification {
  const result = verifyLog(entries.map(toRecord), options);
  const start = result.startIndex;
  const limit = result.firstBadIndex === undefined ? entries.length : result.firstBadIndex - start;
  for (let p = 0; p < limit && p < entries.length; p++) {
    const problem = entryFieldProblem(entries[p] as ReadEntry, log, checkpoint);
    if (problem !== undefined) {
      return { ...result, ok: false, failure: "changed", firstBadIndex: start + p, verifiedCount: p, detail: problem };
    }
  }
  return result;
}

function fromLog(result: LogVerification): Verdict | undefined {
  if (result.ok) return undefined;
  return {
    failure: result.failure as LogVerificationFailureKind,
    ...(result.firstBadIndex === undefined ? {} : { firstBadIndex: result.firstBadIndex }),
    verifiedCount: result.verifiedCount,
    detail: result.detail,
  };
}

/**
 * Checks the entries of an incomplete export one by one against the checkpoint: content,
 * hashes, canonical index and log, inclusion proof, strictly increasing indices (a repeated
 * index is an inserted copy; otherwise the first index out of its sorted place is reordered),
 * the chain link between entries with consecutive indices, the signed chain head on the
 * log's last entry, and without a filter no gap.
 */
function verifyIncomplete(
  entries: readonly ReadEntry[],
  log: string,
  checkpoint: Checkpoint,
  contiguous: boolean,
): Verdict | undefined {
  const counts = new Map<number, number>();
  for (const e of entries) counts.set(e.index, (counts.get(e.index) ?? 0) + 1);
  const sorted = entries.map((e) => e.index).sort((a, b) => a - b);
  let outOfPlace = entries.findIndex((e, p) => e.index !== sorted[p]);
  if (outOfPlace < 0) outOfPlace = entries.length;
  for (let p = 0; p < entries.length; p++) {
    const e = entries[p] as ReadEntry;
    const x = e.index;
    const fail = (failure: ExportVerificationFailure, at: number, detail: string): Verdict => ({
      failure,
      firstBadIndex: at,
      verifiedCount: p,
      detail,
    });
    let internal: string | undefined;
    if (!isHash(e.leafHash) || !isHash(e.previousChainHash) || !isHash(e.chainHash)) {
      internal = `${e.where}: entry ${x} has malformed hashes`;
    } else if (!sameBytes(leafHash(e.canonical), e.leafHash)) {
      internal = `${e.where}: entry ${x}'s content does not match its leaf hash`;
    } else if (!sameBytes(sha256(concat(e.previousChainHash, e.leafHash)), e.chainHash)) {
      internal = `${e.where}: entry ${x}'s chain hash is not SHA-256(previous chain hash ‖ leaf hash)`;
    }
    if (internal !== undefined) return fail("changed", x, internal);
    if (x >= checkpoint.treeSize) {
      return fail("inserted", x, `${e.where}: entry ${x} is beyond the checkpoint's tree size ${checkpoint.treeSize}`);
    }
    if (e.proof === undefined) {
      return fail(
        "unprovable",
        x,
        `${e.where}: entry ${x} has no inclusion proof, which every entry of an incomplete export needs`,
      );
    }
    const field = entryFieldProblem(e, log, checkpoint);
    if (field !== undefined) return fail("changed", x, field);
    if ((counts.get(x) ?? 0) > 1) return fail("inserted", x, `${e.where}: entry ${x} appears more than once`);
    if (p === outOfPlace) {
      const want = sorted[p] as number;
      return fail("reordered", want, `${e.where}: entry ${x} is out of order (entry ${want} belongs here)`);
    }
    const before = entries[p - 1];
    if (before !== undefined && x === before.index + 1 && !sameBytes(e.previousChainHash, before.chainHash)) {
      return fail(
        "changed",
        x,
        `${e.where}: entry ${x}'s previous chain hash is not entry ${before.index}'s chain hash`,
      );
    }
    if (contiguous && before !== undefined && x > before.index + 1) {
      return fail(
        "removed",
        before.index + 1,
        `entries ${before.index + 1} to ${x - 1} are missing from an export without a filter`,
      );
    }
    if (
      x === checkpoint.treeSize - 1 &&
      checkpoint.chainHash !== undefined &&
      !sameBytes(e.chainHash, checkpoint.chainHash)
    ) {
      return fail("changed", x, `${e.where}: entry ${x}'s chain hash is not the checkpoint's chain head`);
    }
  }
  return undefined;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Opens the note; a verdict when it does not open or its chain-hash line is malformed. */
function openNote(
  note: string,
  verifiers: readonly NoteVerifier[],
  origin: string | undefined,
): { checkpoint: Checkpoint } | { verdict: Verdict } {
  try {
    const opened = openCheckpoint(note, verifiers, origin === undefined ? {} : { origin });
    const chainHash = chainHashFromExtensions(opened.extensions);
    return {
      checkpoint: {
        origin: opened.origin,
        treeSize: opened.treeSize,
        rootHash: opened.rootHash,
        ...(chainHash === undefined ? {} : { chainHash }),
      },
    };
  } catch (err) {
    if (!(err instanceof NoteError)) throw err;
    const malformed = err.code === "malformed_note" || err.code === "malformed_checkpoint";
    return {
      verdict: {
        failure: malformed ? "malformed" : "bad_signature",
        verifiedCount: 0,
        detail: `the checkpoint does not verify: ${err.message}`,
      },
    };
  }
}

interface Line {
  /** 1-based line number. */
  readonly number: number;
  /** Byte offset of the line's first byte. */
  readonly start: number;
  /** The text, or undefined when the bytes are not UTF-8. */
  readonly text: string | undefined;
}

function splitLines(bytes: Uint8Array): { lines: Line[]; partial: Line | undefined } {
  const lines: Line[] = [];
  let start = 0;
  const decode = (s: number, e: number): string | undefined => {
    try {
      return UTF8_STRICT.decode(bytes.subarray(s, e));
    } catch {
      return undefined;
    }
  };
  while (start < bytes.length) {
    const end = bytes.indexOf(0x0a, start);
    if (end < 0) {
      return { lines, partial: { number: lines.length + 1, start, text: decode(start, bytes.length) } };
    }
    lines.push({ number: lines.length + 1, start, text: decode(start, end) });
    start = end + 1;
  }
  return { lines, partial: undefined };
}

/** The header line read back, or why it cannot be. */
function readHeader(text: string | undefined): HeaderFields | string {
  if (text === undefined) return "line 1 is not UTF-8";
  let h: unknown;
  try {
    h = JSON.parse(text);
  } catch {
    return "line 1 is not JSON";
  }
  if (!isObject(h) || h.type !== "header") return "line 1 is not a header line";
  if (h.format !== EXPORT_FORMAT) return `line 1: the format is not ${JSON.stringify(EXPORT_FORMAT)}`;
  if (h.version !== EXPORT_VERSION) return `line 1: unsupported version ${JSON.stringify(h.version)}`;
  const c = h.checkpoint;
  if (typeof h.log !== "string" || typeof h.origin !== "string" || !isObject(c)) {
    return "line 1: the header needs a log, an origin and a checkpoint";
  }
  const rootHash = strictHash(c.root_hash);
  const chainHash = strictHash(c.chain_hash);
  if (
    typeof c.id !== "string" ||
    !isSize(c.tree_size) ||
    rootHash === undefined ||
    chainHash === undefined ||
    typeof c.key_id !== "string" ||
    typeof c.note !== "string"
  ) {
    return "line 1: malformed checkpoint (id, tree_size, root_hash, chain_hash, key_id, note)";
  }
  if (typeof h.complete !== "boolean") return "line 1: complete must be true or false";
  if (typeof h.create_time !== "string" || Number.isNaN(Date.parse(h.create_time))) {
    return "line 1: create_time is not a time";
  }
  if (!("filter" in h)) return "line 1: the header has no filter member";
  let boundary: ExportBoundary | null = null;
  const b = h.boundary;
  if (h.complete) {
    if (!isObject(b)) return "line 1: a complete export needs a boundary";
    const previousChainHash = strictHash(b.previous_chain_hash);
    const frontier = Array.isArray(b.frontier) ? b.frontier.map(strictHash) : [undefined];
    if (!isSize(b.start_index) || previousChainHash === undefined || frontier.some((f) => f === undefined)) {
      return "line 1: malformed boundary (start_index, previous_chain_hash, frontier)";
    }
    const hashes = frontier as Uint8Array[];
    try {
      MerkleFrontier.from({ size: b.start_index, hashes });
    } catch {
      return `line 1: the boundary frontier does not have one hash per set bit of ${b.start_index}`;
    }
    if (b.start_index === 0 && previousChainHash.some((x) => x !== 0)) {
      return "line 1: a boundary at index 0 has 32 zero bytes as its previous chain hash";
    }
    if (b.start_index > c.tree_size) return "line 1: the boundary is beyond the checkpoint's tree size";
    boundary = { startIndex: b.start_index, previousChainHash, frontier: hashes };
  } else if (b !== null) {
    return "line 1: an incomplete export has a null boundary";
  }
  return {
    log: h.log,
    origin: h.origin,
    checkpoint: { id: c.id, treeSize: c.tree_size, rootHash, chainHash, keyId: c.key_id, note: c.note },
    complete: h.complete,
    boundary,
    filter: (h.filter ?? null) as JsonValue | null,
    createTime: h.create_time,
  };
}

/** An entry line read back leniently. */
function readEntryLine(text: string, value: Record<string, JsonValue>, number: number): ReadEntry {
  const spans = memberSpans(text);
  const span = spans?.get("entry");
  const canonicalText = span === undefined ? "" : text.slice(span[0], span[1]);
  const rawProof = value.inclusion_proof;
  const proof =
    rawProof === undefined || rawProof === null
      ? undefined
      : Array.isArray(rawProof)
        ? rawProof.map(hashOrEmpty)
        : [new Uint8Array(0)];
  const index = isSize(value.index) ? value.index : Number.NaN;
  const leaf = strictHash(value.leaf_hash);
  const previous = strictHash(value.previous_chain_hash);
  const chain = strictHash(value.chain_hash);
  return {
    where: `line ${number}`,
    index,
    canonical: UTF8.encode(canonicalText),
    canonicalText,
    entry: isObject(value.entry) ? value.entry : undefined,
    leafHash: leaf ?? new Uint8Array(0),
    previousChainHash: previous ?? new Uint8Array(0),
    chainHash: chain ?? new Uint8Array(0),
    proof,
    wellFormed:
      spans !== undefined &&
      !Number.isNaN(index) &&
      leaf !== undefined &&
      previous !== undefined &&
      chain !== undefined &&
      (proof === undefined || proof.every(isHash)),
    line: text,
  };
}

/** Which line of an intact-looking NDJSON export is not what the writer would have written. */
function locateAlteredLine(header: HeaderFields, headerText: string, entries: readonly ReadEntry[]): Verdict {
  for (let p = 0; p < entries.length; p++) {
    const e = entries[p] as ReadEntry;
    const expected = entryLine(e.index, e.canonicalText, e.leafHash, e.previousChainHash, e.chainHash, e.proof);
    if (!e.wellFormed || `${e.line}\n` !== expected) {
      return {
        failure: "changed",
        firstBadIndex: e.index,
        verifiedCount: p,
        detail: `${e.where}: the bytes of entry ${e.index} were altered (the trailer's SHA-256 does not match)`,
      };
    }
  }
  if (`${headerText}\n` !== headerLine(header)) {
    return {
      failure: "changed",
      verifiedCount: entries.length,
      detail: "line 1: the header was altered (the trailer's SHA-256 does not match)",
    };
  }
  return {
    failure: "changed",
    verifiedCount: entries.length,
    detail:
      "the trailer's SHA-256 does not match the bytes before it: the entries verify, so the header's unsigned fields (ids, filter, create time) or the trailer were altered",
  };
}

function verifyNdjson(
  bytes: Uint8Array,
  options: VerifyExportOptions,
  verifiers: readonly NoteVerifier[],
): ExportVerification {
  const { lines, partial } = splitLines(bytes);
  const base = { format: "ndjson" as const, entryCount: 0, verifiedCount: 0, complete: false };
  const first = lines[0];
  if (first === undefined) {
    return { ...base, ok: false, failure: "truncated", detail: "the file ends inside its header line (line 1)" };
  }
  const header = readHeader(first.text);
  if (typeof header === "string") return { ...base, ok: false, failure: "malformed", detail: header };
  const complete = header.complete;

  // The entry and trailer lines, up to the first line that cannot be read.
  const entries: ReadEntry[] = [];
  let trailer: { count: number; sha: string; start: number; number: number } | undefined;
  let stop: { failure: "malformed" | "truncated"; detail: string } | undefined;
  for (const line of lines.slice(1)) {
    const where = `line ${line.number}`;
    if (trailer !== undefined) {
      stop = { failure: "malformed", detail: `${where} follows the trailer` };
      break;
    }
    if (line.text === undefined) {
      stop = { failure: "malformed", detail: `${where} is not UTF-8` };
      break;
    }
    let value: unknown;
    try {
      value = JSON.parse(line.text);
    } catch {
      stop = { failure: "malformed", detail: `${where} is not JSON` };
      break;
    }
    if (isObject(value) && value.type === "trailer") {
      if (!isSize(value.entry_count) || typeof value.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(value.sha256)) {
        stop = { failure: "malformed", detail: `${where}: malformed trailer (entry_count, sha256)` };
        break;
      }
      trailer = { count: value.entry_count, sha: value.sha256, start: line.start, number: line.number };
      continue;
    }
    if (!isObject(value) || value.type !== "entry") {
      stop = { failure: "malformed", detail: `${where} is not an entry line` };
      break;
    }
    const e = readEntryLine(line.text, value, line.number);
    if (!complete && Number.isNaN(e.index)) {
      stop = { failure: "malformed", detail: `${where}: the entry has no valid index` };
      break;
    }
    entries.push(e);
  }
  if (stop === undefined && partial !== undefined) {
    stop =
      trailer === undefined
        ? { failure: "truncated", detail: `the file ends inside line ${partial.number}: it was truncated` }
        : { failure: "malformed", detail: `line ${partial.number} follows the trailer` };
  }
  if (stop === undefined && trailer === undefined) {
    stop = { failure: "truncated", detail: "the file has no trailer line: it was truncated" };
  }
  const counted = { ...base, entryCount: entries.length, complete };

  // The checkpoint: the signed values are authoritative, the header's copies must agree.
  const opened = openNote(header.checkpoint.note, verifiers, options.origin ?? header.origin);
  if ("verdict" in opened) return { ...counted, ok: false, ...opened.verdict };
  const checkpoint = opened.checkpoint;
  const withCheckpoint = { ...counted, checkpoint };
  const badSignature = (detail: string): ExportVerification => ({
    ...withCheckpoint,
    ok: false,
    failure: "bad_signature",
    verifiedCount: 0,
    detail,
  });
  if (header.origin !== checkpoint.origin) {
    return badSignature(`the header's origin ${JSON.stringify(header.origin)} is not the checkpoint's`);
  }
  if (options.checkpointNote !== undefined && options.checkpointNote !== header.checkpoint.note) {
    return badSignature("the export is pinned to another checkpoint than the one given");
  }
  if (header.checkpoint.treeSize !== checkpoint.treeSize) {
    return badSignature(
      `the header's tree size ${header.checkpoint.treeSize} is not the signed ${checkpoint.treeSize}`,
    );
  }
  if (!sameBytes(header.checkpoint.rootHash, checkpoint.rootHash)) {
    return badSignature("the header's root hash is not the signed one");
  }
  if (checkpoint.chainHash !== undefined && !sameBytes(header.checkpoint.chainHash, checkpoint.chainHash)) {
    return badSignature("the header's chain hash is not the signed one");
  }
  if (header.log !== logIdOfOrigin(checkpoint.origin)) {
    return {
      ...withCheckpoint,
      ok: false,
      failure: "malformed",
      detail: `line 1: the log ${JSON.stringify(header.log)} is not the one the origin names`,
    };
  }
  if (header.boundary !== null && header.boundary.startIndex > checkpoint.treeSize) {
    return {
      ...withCheckpoint,
      ok: false,
      failure: "malformed",
      detail: "line 1: the boundary is beyond the checkpoint's tree size",
    };
  }

  // The entries.
  let verdict: Verdict | undefined;
  const boundary = header.boundary;
  if (boundary !== null) {
    const result = verifyRun(entries, header.log, checkpoint, {
      boundary: {
        startIndex: boundary.startIndex,
        previousChainHash: boundary.previousChainHash,
        frontier: { size: boundary.startIndex, hashes: boundary.frontier },
      },
      checkpoint,
    });
    verdict = fromLog(result);
    const end = result.endIndex;
    const cutShort = verdict?.failure === "removed" && verdict.firstBadIndex === end;
    if (stop !== undefined && (verdict === undefined || cutShort)) {
      verdict = {
        failure: stop.failure,
        ...(end < checkpoint.treeSize ? { firstBadIndex: end } : {}),
        verifiedCount: entries.length,
        detail: stop.detail,
      };
    }
  } else {
    verdict = verifyIncomplete(entries, header.log, checkpoint, header.filter === null);
    if (verdict === undefined && stop !== undefined) {
      verdict = { failure: stop.failure, verifiedCount: entries.length, detail: stop.detail };
    }
  }
  if (verdict !== undefined) return { ...withCheckpoint, ok: false, ...verdict };

  // The trailer.
  const t = trailer as NonNullable<typeof trailer>;
  const sha = toHex(sha256(bytes.subarray(0, t.start)));
  const all = entries.length;
  if (t.count !== all) {
    const missing = t.count > all && sha !== t.sha && !complete;
    return {
      ...withCheckpoint,
      ok: false,
      failure: missing ? "truncated" : "changed",
      verifiedCount: all,
      detail: `line ${t.number}: the trailer counts ${t.count} entries, the file holds ${all}`,
    };
  }
  if (sha !== t.sha)
    return { ...withCheckpoint, ok: false, ...locateAlteredLine(header, first.text as string, entries) };
  const range = all === 0 ? "no entries" : `${all} entries (${entries[0]?.index} to ${entries[all - 1]?.index})`;
  return {
    ...withCheckpoint,
    ok: true,
    verifiedCount: all,
    detail: `${range} verified against the checkpoint of size ${checkpoint.treeSize}${complete ? ", complete" : " with inclusion proofs"}`,
  };
}

/** A CSV row read back leniently. */
function readRow(record: CsvRecord): ReadEntry {
  const f = record.fields;
  const at = (name: string): string => f[col(name)] ?? "";
  const indexText = at("index");
  const index = /^(0|[1-9][0-9]*)$/.test(indexText) ? Number(indexText) : Number.NaN;
  const canonicalText = at("canonical");
  let entry: Entry | undefined;
  try {
    const parsed: unknown = JSON.parse(canonicalText);
    entry = isObject(parsed) ? parsed : undefined;
  } catch {
    entry = undefined;
  }
  const leaf = strictHash(at("leaf_hash"));
  const previous = strictHash(at("previous_chain_hash"));
  const chain = strictHash(at("chain_hash"));
  return {
    where: `row ${record.line}`,
    index: isSize(index) ? index : Number.NaN,
    canonical: UTF8.encode(canonicalText),
    canonicalText,
    entry,
    leafHash: leaf ?? new Uint8Array(0),
    previousChainHash: previous ?? new Uint8Array(0),
    chainHash: chain ?? new Uint8Array(0),
    proof: undefined,
    wellFormed: !Number.isNaN(index) && leaf !== undefined && previous !== undefined && chain !== undefined,
  };
}

/** The first readable column of a row that does not say what its canonical JSON says. */
function readableProblem(record: CsvRecord, e: ReadEntry): string | undefined {
  if (e.entry === undefined) return undefined; // entryFieldProblem reports it
  for (const [name, get] of READABLE_COLUMNS) {
    let want: string;
    try {
      want = readable(get(e.entry));
    } catch {
      return `${e.where}: the canonical column is not I-JSON`;
    }
    if (record.fields[col(name)] !== want) {
      return `${e.where}: the ${name} column does not match the canonical column`;
    }
  }
  return undefined;
}

function verifyCsv(
  bytes: Uint8Array,
  options: VerifyExportOptions,
  verifiers: readonly NoteVerifier[],
  note: string,
): ExportVerification {
  const base = { format: "csv" as const, entryCount: 0, verifiedCount: 0, complete: false };
  const opened = openNote(note, verifiers, options.origin);
  if ("verdict" in opened) return { ...base, ok: false, ...opened.verdict };
  const checkpoint = opened.checkpoint;
  const withCheckpoint = { ...base, checkpoint };
  let text: string;
  try {
    text = UTF8_STRICT.decode(bytes);
  } catch {
    return { ...withCheckpoint, ok: false, failure: "malformed", detail: "the file is not UTF-8" };
  }
  if (text.startsWith("\uFEFF")) text = text.slice(1);
  const parsed = parseCsvPrefix(text);
  const [head, ...records] = parsed.records;
  if (head === undefined || head.fields.join(",") !== CSV_COLUMNS.join(",")) {
    return {
      ...withCheckpoint,
      ok: false,
      failure: parsed.problem?.atEnd ? "truncated" : "malformed",
      detail: `line 1 is not the header row ${CSV_COLUMNS.join(",")}`,
    };
  }
  let stop: { failure: "malformed" | "truncated"; detail: string } | undefined;
  let rows = records;
  const short = records.findIndex((r) => r.fields.length !== CSV_COLUMNS.length);
  if (short >= 0) {
    const r = records[short] as CsvRecord;
    const last = short === records.length - 1 && parsed.problem === undefined && !parsed.endsWithLineBreak;
    stop = {
      failure: last ? "truncated" : "malformed",
      detail: `line ${r.line} has ${r.fields.length} fields, not ${CSV_COLUMNS.length}${last ? ": the file was truncated" : ""}`,
    };
    rows = records.slice(0, short);
  } else if (parsed.problem !== undefined) {
    stop = {
      failure: parsed.problem.atEnd ? "truncated" : "malformed",
      detail: `line ${parsed.problem.line}: ${parsed.problem.message}`,
    };
  }
  const entries = rows.map(readRow);
  const n = entries.length;
  const log = logIdOfOrigin(checkpoint.origin);

  // Where the rows start: the smallest index a self-consistent row claims (the first row's,
  // unless rows were moved), continuing from that row's previous chain hash.
  let start: number | undefined;
  let startPrevious: Uint8Array | undefined;
  for (const e of entries) {
    const claimed = e.entry?.index;
    if (!isSize(claimed) || !isHash(e.leafHash) || !sameBytes(leafHash(e.canonical), e.leafHash)) continue;
    if (start === undefined || claimed < start) {
      start = claimed;
      startPrevious = e.previousChainHash;
    }
  }
  if (start === undefined) {
    start = isSize(entries[0]?.index) ? (entries[0] as ReadEntry).index : 0;
    startPrevious = entries[0]?.previousChainHash;
  }
  const end = start + n;
  const complete = stop === undefined && end === checkpoint.treeSize;
  const counted = { ...withCheckpoint, entryCount: n, complete };

  let result: LogVerification;
  if (start === 0 && end >= checkpoint.treeSize) {
    result = verifyRun(entries, log, checkpoint, { checkpoint });
  } else {
    const previous = isHash(startPrevious) ? startPrevious : new Uint8Array(32);
    result = verifyRun(
      entries,
      log,
      checkpoint,
      start === 0 ? {} : { boundary: { startIndex: start, previousChainHash: previous } },
    );
    // Without a checkpoint in verifyLog: entries past the tree size are checked here.
    if (
      end > checkpoint.treeSize &&
      (result.firstBadIndex === undefined || result.firstBadIndex >= checkpoint.treeSize)
    ) {
      const at = Math.max(start, checkpoint.treeSize);
      result = {
        ...result,
        ok: false,
        failure: "inserted",
        firstBadIndex: at,
        verifiedCount: at - start,
        detail: `entry ${at} is beyond the checkpoint's tree size ${checkpoint.treeSize}`,
      };
    }
  }
  let verdict = fromLog(result);
  // A readable column edited without the canonical one.
  const limit = verdict?.firstBadIndex === undefined ? n : verdict.firstBadIndex - start;
  for (let p = 0; p < limit && p < n; p++) {
    const problem = readableProblem(rows[p] as CsvRecord, entries[p] as ReadEntry);
    if (problem !== undefined) {
      verdict = { failure: "changed", firstBadIndex: start + p, verifiedCount: p, detail: problem };
      break;
    }
  }
  if (
    stop !== undefined &&
    (verdict === undefined || (verdict.failure === "removed" && verdict.firstBadIndex === end))
  ) {
    verdict = {
      failure: stop.failure,
      ...(end < checkpoint.treeSize ? { firstBadIndex: end } : {}),
      verifiedCount: n,
      detail: stop.detail,
    };
  }
  if (verdict === undefined && end < checkpoint.treeSize) {
    verdict = {
      failure: "unprovable",
      verifiedCount: 0,
      detail:
        n === 0
          ? `the export has no rows but the checkpoint covers ${checkpoint.treeSize} entries`
          : `the rows end at entry ${end - 1} but the checkpoint covers ${checkpoint.treeSize} entries: CSV carries no inclusion proofs, so export NDJSON with inclusion proofs to verify a range that ends before the checkpoint`,
    };
  }
  if (verdict === undefined && start > 0) {
    // verifyLog had no checkpoint: the signed chain head binds the rows, whatever their start.
    if (checkpoint.chainHash === undefined) {
      verdict = {
        failure: "unprovable",
        verifiedCount: 0,
        detail: `the rows start at entry ${start} and the checkpoint signs no chain hash to bind them to`,
      };
    } else if (!sameBytes(result.computedChainHash ?? new Uint8Array(0), checkpoint.chainHash)) {
      verdict = {
        failure: "root_mismatch",
        verifiedCount: n,
        detail: `the chain hash of entry ${end - 1} differs from the checkpoint's`,
      };
    }
  }
  if (verdict !== undefined) return { ...counted, ok: false, ...verdict };
  return {
    ...counted,
    ok: true,
    verifiedCount: n,
    detail: `${n === 0 ? "no entries" : `${n} entries (${start} to ${end - 1})`} verified against the checkpoint of size ${checkpoint.treeSize}${start === 0 ? "" : " by its chain hash"}`,
  };
}

/**
 * Verifies an export (NDJSON or CSV, see docs/audit-export.md) against its signed checkpoint.
 * Never throws on bad data: what is wrong is in the result, with the first bad entry's index
 * where there is one (for a complete export, exactly as {@link verifyLog} classifies it).
 *
 * The checkpoint is the note in the NDJSON header (or `options.checkpointNote` for CSV),
 * opened with `options.verifierKeys` and the origin (the header's, or `options.origin`); a note
 * that does not open, or header copies of its values that differ, is `bad_signature` (a
 * malformed note `malformed`). The signed chain head is the note's `chain-hash` extension.
 *
 * A CSV export cannot show rows removed from its beginning (it has no header to say where it
 * starts), and an incomplete NDJSON export whose trailer was recomputed cannot show a removed
 * entry where a filter allows gaps: verify complete NDJSON exports for that guarantee.
 * @throws TypeError when no verifier key is given, or a CSV export comes without
 * `options.checkpointNote`; NoteError `malformed_key` for a malformed verifier key string.
 */
export function verifyExport(data: string | Uint8Array, options: VerifyExportOptions): ExportVerification {
  const keys = options?.verifierKeys;
  if (!Array.isArray(keys) || keys.length === 0)
    throw new TypeError("verifyExport: at least one verifier key is needed");
  const verifiers = keys.map((k) => (typeof k === "string" ? parseVerifierKey(k) : k));
  const bytes = typeof data === "string" ? UTF8.encode(data) : data;
  if (!(bytes instanceof Uint8Array)) throw new TypeError("verifyExport: the data must be a string or bytes");
  const bom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  const format = options.format ?? (bytes[bom] === 0x7b ? "ndjson" : "csv");
  if (bytes.length === 0) {
    return {
      ok: false,
      format,
      entryCount: 0,
      verifiedCount: 0,
      failure: "malformed",
      detail: "the file is empty",
      complete: false,
    };
  }
  if (format === "ndjson") return verifyNdjson(bytes, options, verifiers);
  if (typeof options.checkpointNote !== "string") {
    throw new TypeError("verifyExport: a CSV export carries no checkpoint; pass its note as options.checkpointNote");
  }
  return verifyCsv(bytes, options, verifiers, options.checkpointNote);
}
