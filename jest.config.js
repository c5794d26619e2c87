import { existsSync } from "node:fs";

// One jest config for the workspace. Tests run as native ESM (node --experimental-vm-modules,
// set by scripts/test.mjs) and import workspace packages from source, so no build is needed.
const packages = {
  proto: "libs/proto",
  core: "libs/core",
  db: "libs/db",
  events: "libs/events",
  tlog: "libs/tlog",
  webhooks: "libs/webhooks",
  auth: "libs/auth",
  server: "libs/server",
  testing: "libs/testing",
  cli: "libs/cli",
  tenancy: "services/tenancy",
  authorization: "services/authorization",
  audit: "services/audit",
  identity: "services/identity",
};

/** @type {import('jest').Config} */
export default {
  testEnvironment: "node",
  roots: ["libs", "services", "bench", "deploy"]
    .filter((d) => existsSync(new URL(d, import.meta.url)))
    .map((d) => `<rootDir>/${d}`),
  testMatch: ["**/test/**/*.test.ts"],
  testPathIgnorePatterns: ["/node_modules/", "/dist/"],
  extensionsToTreatAsEsm: [".ts"],
  transform: {
    "^.+\\.ts$": [
      "@swc/jest",
      { jsc: { target: "es2022", parser: { syntax: "typescript" } }, module: { type: "es6" } },
    ],
  },
  moduleNameMapper: {
    "^@uab/proto/gen/(.*)\\.js$": "<rootDir>/libs/proto/src/gen/$1.ts",
    ...Object.fromEntries(
      Object.entries(packages).map(([name, dir]) => [`^@uab/${name}$`, `<rootDir>/${dir}/src/index.ts`]),
    ),
    "^(\\.{1,2}/.*)\\.js$": "$1",
  },
  testTimeout: 30000,
  maxWorkers: 2,
};
