#!/usr/bin/env bash
# Installs what UAB needs to build and run on a fresh machine: Node.js check, pnpm (the
# version pinned in package.json), the workspace packages, and a build. With --dev-tools
# it also installs protoc (needed only to regenerate contracts) from Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."

need_node="20.19.0"
if ! command -v node >/dev/null; then
  echo "setup: Node.js >= ${need_node} is required (https://nodejs.org)" >&2
  exit 1
fi
if ! node -e "const [a,b]=process.versions.node.split('.').map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)"; then
  echo "setup: Node.js >= ${need_node} is required, found $(node --version)" >&2
  exit 1
fi

pnpm_version=$(node -p "require('./package.json').packageManager.split('@')[1]")
if [ "$(pnpm --version 2>/dev/null || true)" != "${pnpm_version}" ]; then
  echo "setup: installing pnpm ${pnpm_version}"
  npm install -g "pnpm@${pnpm_version}" --no-fund --no-audit >/dev/null 2>&1 \
    || npm install -g "pnpm@${pnpm_version}" --no-fund --no-audit --prefix "${HOME}/.local" >/dev/null
  export PATH="${HOME}/.local/bin:${PATH}"
fi

if [ "${1:-}" = "--dev-tools" ] && ! command -v protoc >/dev/null; then
  echo "setup: installing protoc (protobuf-compiler)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq protobuf-compiler >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq protobuf-compiler >/dev/null; fi
fi

pnpm install --frozen-lockfile --reporter=append-only
pnpm exec tsc -b
