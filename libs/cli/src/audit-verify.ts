/**
 * `uab audit verify`: checks an audit export (docs/audit-export.md) offline, with nothing but
 * the file, its checkpoint and the published signing keys.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { gunzipSync } from "node:zlib";
import { type ExportVerification, type NoteVerifier, parseVerifierKey, verifyExport } from "@uab/tlog";

/** The usage of `uab audit verify`. */
export const AUDIT_VERIFY_USAGE = `usage: uab audit verify <file> (--key <verifier key>)... [--key-file keys.json]
                        [--checkpoint note.txt] [--origin O] [--json]

  <file>            an export, NDJSON or CSV (gzip-compressed when it ends in .gz or starts
                    with the gzip magic)
  --key K           a trusted checkpoint signing key, <name>+<hash>+<base64> (repeatable)
  --key-file F      the JSON of a GetPublicKeys response: {"keys":[{"verifierKey":"…"}, …]}
  --checkpoint F    the checkpoint note (required for CSV; for NDJSON it must be the header's)
  --origin O        the log's checkpoint origin the export must be for
  --json            print the result as JSON (bytes in base64)

Exit status: 0 verified, 1 verification failed, 2 usage error or unreadable input.
`;

/** Where `uab audit verify` writes. */
export interface AuditVerifyIo {
  /** The result. */
  readonly stdout: { write(text: string): unknown };
  /** Usage and input errors. */
  readonly stderr: { write(text: string): unknown };
}

/** A usage error (the usage follows the message) or an unreadable input (`usage` false). */
class UsageError extends Error {
  constructor(
    message: string,
    readonly usage = true,
  ) {
    super(message);
  }
}

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

async function readInput(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new UsageError(`cannot read ${what} ${path}: ${(err as Error).message}`, false);
  }
}

function parseKey(key: string, from: string): NoteVerifier {
  try {
    return parseVerifierKey(key);
  } catch (err) {
    throw new UsageError(`${from}: ${(err as Error).message}`);
  }
}

/** The verifier keys of a GetPublicKeys response (`verifierKey` or `verifier_key`). */
function keysOfFile(text: string, path: string): NoteVerifier[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError(`${path} is not JSON`, false);
  }
  const keys = (json as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new UsageError(`${path} has no "keys" array (a GetPublicKeys response)`, false);
  return keys.map((k: unknown, i) => {
    const entry = (k ?? {}) as { verifierKey?: unknown; verifier_key?: unknown };
    const key = entry.verifierKey ?? entry.verifier_key;
    if (typeof key !== "string") throw new UsageError(`${path}: keys[${i}] has no verifierKey`, false);
    return parseKey(key, `${path}: keys[${i}]`);
  });
}

/** The result as JSON, bytes in base64. */
function resultJson(r: ExportVerification): unknown {
  const c = r.checkpoint;
  return {
    ok: r.ok,
    format: r.format,
    entryCount: r.entryCount,
    verifiedCount: r.verifiedCount,
    ...(r.firstBadIndex === undefined ? {} : { firstBadIndex: r.firstBadIndex }),
    ...(r.failure === undefined ? {} : { failure: r.failure }),
    detail: r.detail,
    ...(c === undefined
      ? {}
      : {
          checkpoint: {
            origin: c.origin,
            treeSize: c.treeSize,
            rootHash: toBase64(c.rootHash),
            ...(c.chainHash === undefined ? {} : { chainHash: toBase64(c.chainHash) }),
          },
        }),
    complete: r.complete,
  };
}

function summary(r: ExportVerification): string {
  if (r.ok) {
    const c = r.checkpoint as NonNullable<ExportVerification["checkpoint"]>;
    return `OK: ${r.verifiedCount} entries verified against checkpoint ${c.origin} size ${c.treeSize} root ${toBase64(c.rootHash)}\n  ${r.detail}\n`;
  }
  const at = r.firstBadIndex === undefined ? "" : ` at entry ${r.firstBadIndex}`;
  return `FAILED: ${r.failure}${at}: ${r.detail}\n`;
}

/**
 * Runs `uab audit verify <file> (--key K)... [--key-file F] [--checkpoint F] [--origin O]
 * [--json]` (the arguments after `verify`): reads the export (gunzipping it when it ends in
 * `.gz` or starts with the gzip magic), verifies it with {@link verifyExport} and prints a
 * summary, or the result as JSON with `--json`.
 * @returns the exit status: 0 when the export verifies, 1 when it does not, 2 for a usage
 * error or an unreadable input (the message goes to stderr).
 */
export async function runAuditVerify(args: string[], io: AuditVerifyIo): Promise<number> {
  try {
    let parsed: ReturnType<typeof parse>;
    try {
      parsed = parse(args);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const { values, positionals } = parsed;
    if (values.help) {
      io.stdout.write(AUDIT_VERIFY_USAGE);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError("give exactly one export file");
    const file = positionals[0] as string;
    const keys = (values.key ?? []).map((k, i) => parseKey(k, `--key #${i + 1}`));
    if (values["key-file"] !== undefined) {
      const path = values["key-file"];
      keys.push(...keysOfFile((await readInput(path, "the key file")).toString("utf8"), path));
    }
    if (keys.length === 0) throw new UsageError("give at least one --key or a --key-file");
    let checkpointNote: string | undefined;
    if (values.checkpoint !== undefined) {
      checkpointNote = (await readInput(values.checkpoint, "the checkpoint")).toString("utf8");
      if (!checkpointNote.endsWith("\n")) checkpointNote += "\n";
    }
    let data: Uint8Array = await readInput(file, "the export");
    if (file.endsWith(".gz") || (data[0] === 0x1f && data[1] === 0x8b)) {
      try {
        data = gunzipSync(data);
      } catch (err) {
        throw new UsageError(`cannot decompress ${file}: ${(err as Error).message}`, false);
      }
    }
    let result: ExportVerification;
    try {
      result = verifyExport(data, {
        verifierKeys: keys,
        ...(checkpointNote === undefined ? {} : { checkpointNote }),
        ...(values.origin === undefined ? {} : { origin: values.origin }),
      });
    } catch (err) {
      if (err instanceof TypeError) throw new UsageError(err.message.replace("options.checkpointNote", "--checkpoint"));
      throw err;
    }
    io.stdout.write(values.json ? `${JSON.stringify(resultJson(result), null, 2)}\n` : summary(result));
    return result.ok ? 0 : 1;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`uab audit verify: ${err.message}\n${err.usage ? `\n${AUDIT_VERIFY_USAGE}` : ""}`);
    return 2;
  }
}

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      key: { type: "string", multiple: true },
      "key-file": { type: "string" },
      checkpoint: { type: "string" },
      origin: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}
