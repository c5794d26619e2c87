#!/usr/bin/env bash
# Makes sure the PostgreSQL and NATS JetStream the tests talk to answer on 127.0.0.1:5432
# and 127.0.0.1:4222: starts installed-but-stopped servers, installs them from Debian's
# packages when missing (as root), and fails loudly otherwise. Tests never skip a missing
# service.
set -euo pipefail
cd "$(dirname "$0")/.."

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done; return 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
install_pkg() {
  if ! command -v apt-get >/dev/null; then
    echo "services: $1 is not running and this is not a Debian/Ubuntu machine: install and start it," >&2
    echo "          or point UAB_TEST_DATABASE_URL / UAB_TEST_NATS_URL at running servers (NATS with JetStream)" >&2
    exit 1
  fi
  echo "services: installing $1"
  as_root apt-get update -qq && as_root apt-get install -y -qq "$1" >/dev/null
}

if [ -z "${UAB_TEST_DATABASE_URL:-}" ] && ! port_open 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    install_pkg postgresql
    v=$(ls /etc/postgresql | head -n1)
    as_root sed -i 's/^\(host\|local\)\(.*\)\(scram-sha-256\|md5\|peer\)$/\1\2trust/' "/etc/postgresql/$v/main/pg_hba.conf"
  fi
  echo "services: starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  wait_port 5432 || { echo "services: PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }
fi

if [ -z "${UAB_TEST_NATS_URL:-}" ] && ! port_open 4222; then
  if ! command -v nats-server >/dev/null && [ ! -x /usr/sbin/nats-server ]; then
    install_pkg nats-server
  fi
  echo "services: starting NATS with JetStream"
  as_root mkdir -p /var/lib/nats-server
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222 || { echo "services: NATS does not answer on 127.0.0.1:4222" >&2; exit 1; }
fi

# Both must really work, not just listen: a query, and a JetStream account.
(cd libs/testing && node --input-type=module -e "
import pg from 'pg';
const c = new pg.Client({ connectionString: process.env.UAB_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' });
await c.connect(); await c.query('select 1'); await c.end();
const { connect } = await import('nats');
const nc = await connect({ servers: process.env.UAB_TEST_NATS_URL ?? 'nats://127.0.0.1:4222', timeout: 5000 });
const jsm = await nc.jetstreamManager(); await jsm.getAccountInfo(); await nc.close();
console.log('services: PostgreSQL and NATS JetStream answer');
") 2>&1 || { echo "services: PostgreSQL or NATS JetStream is not usable (is JetStream enabled, -js?)" >&2; exit 1; }
