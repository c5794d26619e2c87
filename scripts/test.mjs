#!/usr/bin/env node
// Runs the whole test suite (jest, native ESM) and ends with one plain line:
//   tests: N passed, N failed
// Extra arguments go to jest (a path pattern, -t name). Exits non-zero on any failure,
// including a run that executed no test at all.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(mkdtempSync(join(tmpdir(), "uab-jest-")), "result.json");
const res = spawnSync(
  process.execPath,
  [join(root, "node_modules/jest/bin/jest.js"), "--json", `--outputFile=${out}`, ...process.argv.slice(2)],
  {
    cwd: root,
    stdio: "inherit",
    env: {
      ...process.env,
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --experimental-vm-modules --no-warnings`.trim(),
    },
  },
);
let passed = 0;
let failed = 0;
let suiteFailures = 0;
try {
  const r = JSON.parse(readFileSync(out, "utf8"));
  passed = r.numPassedTests;
  failed = r.numFailedTests;
  suiteFailures = r.numRuntimeErrorTestSuites ?? 0;
  for (const suite of r.testResults ?? []) {
    if (suite.status === "failed" && (suite.assertionResults ?? []).length === 0) suiteFailures += 0;
  }
} catch {
  failed = failed || 1;
}
rmSync(dirname(out), { recursive: true, force: true });
// A suite that failed to load counts as a failure even though it reported no test.
if (suiteFailures > 0 && failed === 0) failed = suiteFailures;
console.log(`tests: ${passed} passed, ${failed} failed`);
process.exit(res.status !== 0 || failed > 0 || passed === 0 ? 1 : 0);
