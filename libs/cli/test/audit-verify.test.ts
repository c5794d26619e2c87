/**
 * `uab audit verify`: in process through runAuditVerify (exit statuses, the summary and the
 * JSON result, key files, gzip input, usage errors), and once through the built binary as a
 * user runs it (compiled with tsc -b first, so no prior build is needed).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import {
  CsvExportWriter,
  canonicalBytes,
  chainHash,
  chainHashExtension,
  type ExportEntryInput,
  generateNoteKey,
  genesisChainHash,
  leafHash,
  NdjsonExportWriter,
  rootHash,
  signCheckpoint,
} from "@uab/tlog";
import { runAuditVerify } from "../src/audit-verify.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const BIN = join(ROOT, "libs/cli/dist/bin.js");

const key = generateNoteKey("uab.example.com/audit");
const otherKey = generateNoteKey("uab.example.com/audit");
const LOG = "ten_01jd0000000000000000000000";
const ORIGIN = `uab.example.com/${LOG}`;
const SIZE = 25;

const entries: ExportEntryInput[] = [];
let previous = genesisChainHash();
for (let i = 0; i < SIZE; i++) {
  const canonical = canonicalBytes({
    v: 1,
    log: LOG,
    index: i,
    event_id: `evt_${String(i).padStart(26, "0")}`,
    event_type: "uab.tenancy.v1.ProjectCreated",
    source: "tenancy",
    action: "tenancy.project.created",
    outcome: "SUCCESS",
    outcome_reason: "",
    actor: {
      id: "usr_01",
      type: "user",
      tenant_id: LOG,
      impersonator_id: "",
      session_id: "ses_01",
      ip: "203.0.113.7",
      user_agent: "curl/8, with a comma",
    },
    resource: { type: "tenancy.project", id: `prj_${i}`, name: `Project "${i}"` },
    occur_time: new Date(Date.UTC(2026, 10, 22, 9, 0, i)).toISOString(),
    record_time: new Date(Date.UTC(2026, 10, 22, 9, 0, i, 5)).toISOString(),
    request_id: `req_${i}`,
    trace_id: "",
    metadata: { project: { name: `Project "${i}"` } },
  });
  const leaf = leafHash(canonical);
  const chain = chainHash(previous, leaf);
  entries.push({ index: i, id: `aud_${i}`, canonical, leafHash: leaf, previousChainHash: previous, chainHash: chain });
  previous = chain;
}
const root = rootHash(entries.map((e) => e.leafHash));
const note = signCheckpoint(
  { origin: ORIGIN, treeSize: SIZE, rootHash: root, extensions: [chainHashExtension(previous)] },
  key,
);

function ndjson(): string {
  const w = new NdjsonExportWriter();
  let out = w.header({
    log: LOG,
    origin: ORIGIN,
    checkpoint: { id: "chk_1", treeSize: SIZE, rootHash: root, chainHash: previous, keyId: "aks_1", note },
    complete: true,
    boundary: { startIndex: 0, previousChainHash: genesisChainHash(), frontier: [] },
    filter: null,
    createTime: new Date("2026-11-22T10:00:00.000Z"),
  });
  for (const e of entries) out += w.entry(e);
  return out + w.trailer();
}

function csv(): string {
  const w = new CsvExportWriter();
  return w.header() + entries.map((e) => w.entry(e)).join("");
}

const dir = mkdtempSync(join(tmpdir(), "uab-audit-verify-"));
const file = (name: string, content: string | Uint8Array): string => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};

const good = ndjson();
const lines = good.split("\n");
lines[8] = (lines[8] as string).replace('"request_id":"req_7"', '"request_id":"req_X"');
const paths = {
  good: file("export.ndjson", good),
  tampered: file("tampered.ndjson", lines.join("\n")),
  gz: file("export.ndjson.gz", gzipSync(good)),
  gzNoSuffix: file("export.bin", gzipSync(good)),
  badGz: file("broken.ndjson.gz", Buffer.from([0x1f, 0x8b, 1, 2, 3])),
  csv: file("export.csv", csv()),
  note: file("checkpoint.txt", note),
  keys: file(
    "keys.json",
    JSON.stringify({ keys: [{ verifierKey: otherKey.verifierKey }, { verifierKey: key.verifierKey }] }),
  ),
  snakeKeys: file("keys-snake.json", JSON.stringify({ keys: [{ verifier_key: key.verifierKey, key_id: "aks_1" }] })),
  notJson: file("keys-broken.json", "{"),
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(...args: string[]): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const code = await runAuditVerify(args, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  });
  return { code, stdout, stderr };
}

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("uab audit verify (in process)", () => {
  const rootB64 = Buffer.from(root).toString("base64");

  it("exits 0 and prints a summary for an intact export", async () => {
    const r = await run(paths.good, "--key", key.verifierKey);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toContain(
      `OK: ${SIZE} entries verified against checkpoint ${ORIGIN} size ${SIZE} root ${rootB64}`,
    );
  });

  it("prints the result as JSON with --json, bytes in base64", async () => {
    const r = await run(paths.good, "--key", otherKey.verifierKey, "--key", key.verifierKey, "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      ok: true,
      format: "ndjson",
      entryCount: SIZE,
      verifiedCount: SIZE,
      detail: expect.any(String),
      checkpoint: {
        origin: ORIGIN,
        treeSize: SIZE,
        rootHash: rootB64,
        chainHash: Buffer.from(previous).toString("base64"),
      },
      complete: true,
    });
    const bad = await run(paths.tampered, "--key", key.verifierKey, "--json");
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, failure: "changed", firstBadIndex: 7, verifiedCount: 7 });
  });

  it("exits 1 naming the first bad entry, or a checkpoint that does not verify", async () => {
    const r = await run(paths.tampered, "--key", key.verifierKey);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^FAILED: changed at entry 7: /);
    const wrongKey = await run(paths.good, "--key", otherKey.verifierKey);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stdout).toMatch(/^FAILED: bad_signature: /);
    const wrongOrigin = await run(paths.good, "--key", key.verifierKey, "--origin", "uab.example.com/ten_other");
    expect(wrongOrigin.code).toBe(1);
  });

  it("reads keys from a GetPublicKeys response (verifierKey or verifier_key)", async () => {
    expect((await run(paths.good, "--key-file", paths.keys)).code).toBe(0);
    expect((await run(paths.good, "--key-file", paths.snakeKeys)).code).toBe(0);
  });

  it("reads gzip-compressed exports, by name or by their magic bytes", async () => {
    expect((await run(paths.gz, "--key", key.verifierKey)).code).toBe(0);
    expect((await run(paths.gzNoSuffix, "--key", key.verifierKey)).code).toBe(0);
  });

  it("verifies CSV with --checkpoint", async () => {
    const r = await run(paths.csv, "--checkpoint", paths.note, "--key-file", paths.keys);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^OK: 25 entries/);
    const other = file("other.txt", signCheckpoint({ origin: ORIGIN, treeSize: SIZE, rootHash: root }, otherKey));
    expect((await run(paths.csv, "--checkpoint", other, "--key", key.verifierKey)).code).toBe(1);
  });

  it("exits 2 for usage errors and unreadable input, with a message on stderr", async () => {
    const cases: string[][] = [
      [],
      [paths.good],
      [paths.good, "--key"],
      [paths.good, "--key", "not-a-key"],
      [paths.good, paths.csv, "--key", key.verifierKey],
      [paths.good, "--key", key.verifierKey, "--frobnicate"],
      [join(dir, "missing.ndjson"), "--key", key.verifierKey],
      [paths.good, "--key-file", join(dir, "missing.json")],
      [paths.good, "--key-file", paths.notJson],
      [paths.good, "--key-file", paths.good],
      [paths.badGz, "--key", key.verifierKey],
      [paths.csv, "--key", key.verifierKey], // CSV needs --checkpoint
      [paths.good, "--key", key.verifierKey, "--checkpoint", join(dir, "missing.txt")],
    ];
    for (const args of cases) {
      const r = await run(...args);
      expect(`${args.join(" ")} → ${r.code}`).toBe(`${args.join(" ")} → 2`);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/^uab audit verify: /);
    }
    expect((await run(paths.csv, "--key", key.verifierKey)).stderr).toMatch(/--checkpoint/);
    const help = await run("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: uab audit verify/);
  });
});

describe("uab audit verify (the built binary)", () => {
  beforeAll(() => {
    // Compile the CLI and everything it references (incremental; no prior build needed).
    execFileSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-b", "libs/cli"], {
      cwd: ROOT,
      stdio: "pipe",
    });
    expect(existsSync(BIN)).toBe(true);
  }, 120_000);

  it("exits 0, 1 and 2", () => {
    const bin = (...args: string[]) =>
      spawnSync(process.execPath, [BIN, "audit", "verify", ...args], { cwd: ROOT, encoding: "utf8" });
    const ok = bin(paths.gz, "--key", key.verifierKey);
    expect({ status: ok.status, stderr: ok.stderr }).toEqual({ status: 0, stderr: "" });
    expect(ok.stdout).toMatch(/^OK: 25 entries verified/);
    const failed = bin(paths.tampered, "--key-file", paths.keys, "--json");
    expect(failed.status).toBe(1);
    expect(JSON.parse(failed.stdout)).toMatchObject({ ok: false, failure: "changed", firstBadIndex: 7 });
    const usage = bin(paths.good);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/at least one --key/);
    const unknown = spawnSync(process.execPath, [BIN, "audit", "frobnicate"], { cwd: ROOT, encoding: "utf8" });
    expect(unknown.status).toBe(2);
  });
});
