#!/usr/bin/env bash
# Runs a command against a fresh PostgreSQL server on a free loopback port, with TLS on (a throwaway
# self-signed certificate), then stops the server and removes its data, pass or fail.
#
#   scripts/postgres.sh cargo test
#
# The command sees KEYROT_TEST_POSTGRES (host=127.0.0.1 port=N user=keyrot_master password=... dbname=app):
# a superuser's connection, for the tests to set up roles with. Installs the server once where it is missing:
# Debian's postgresql when run as root with apt-get (what CI has). The server never runs as root: as root it
# runs as the `postgres` user the package creates.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

find_bin() {
  if command -v initdb >/dev/null 2>&1; then readlink -f "$(command -v initdb)"; return; fi
  ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1
}
initdb_bin=$(find_bin || true)
if [ -z "$initdb_bin" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "postgres.sh: installing Debian's postgresql (once)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
    initdb_bin=$(find_bin)
  else
    echo "postgres.sh: no PostgreSQL server (initdb) here: install it (Debian: apt-get install postgresql)" >&2
    exit 1
  fi
fi
bin="$(dirname "$initdb_bin")"

run_as=()
owner=$(id -un)
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  run_as=(runuser -u postgres --)
  owner=postgres
fi

work="$(mktemp -d -t keyrot-pg.XXXXXX)"
data="$work/data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
password="pg$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
chown "$owner" "$work"
cleanup() {
  "${run_as[@]}" "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf '%s\n' "$password" >"$work/pwfile"
chown "$owner" "$work/pwfile"
"${run_as[@]}" "$bin/initdb" -D "$data" -U keyrot_master --pwfile="$work/pwfile" --auth=scram-sha-256 \
  -E UTF8 --locale=C.UTF-8 >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log" >&2; exit 1; }
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 2 \
  -keyout "$data/server.key" -out "$data/server.crt" >/dev/null 2>&1
chown "$owner" "$data/server.key" "$data/server.crt"
chmod 600 "$data/server.key"
cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$work'
ssl = on
max_connections = 200
fsync = off
CONF
# Password logins over TCP only, TLS or not (a secret may choose sslmode disable for a local server),
# except members of the role tls_only, who must use TLS: tests/postgres.rs checks encryption with it.
printf 'hostnossl all +tls_only 127.0.0.1/32 reject\nhost all all 127.0.0.1/32 scram-sha-256\n' >"$data/pg_hba.conf"
"${run_as[@]}" "$bin/pg_ctl" -D "$data" -l "$work/server.log" -w -t 30 start >/dev/null ||
  { cat "$work/server.log" >&2; exit 1; }
PGPASSWORD="$password" "$bin/psql" -qAt -h 127.0.0.1 -p "$port" -U keyrot_master -d postgres \
  -c 'CREATE DATABASE app' >/dev/null

export KEYROT_TEST_POSTGRES="host=127.0.0.1 port=$port user=keyrot_master password=$password dbname=app"
set +e
"$@"
status=$?
set -e
exit "$status"
