#!/bin/sh
# Installs the load generator the benchmarks use: h2load, from Debian's nghttp2-client.
# `make bench` runs this first; it is a no-op when h2load is already on PATH.
set -eu
if command -v h2load >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nghttp2-client
else
  echo "bench/setup.sh: install h2load (nghttp2) with your package manager; the gRPC benchmarks fall back to the Node client without it" >&2
fi
