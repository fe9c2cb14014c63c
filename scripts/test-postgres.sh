#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the store's tests and benchmarks.
#
#   scripts/test-postgres.sh start DIR   make a cluster, start it, write DIR/url
#   scripts/test-postgres.sh stop DIR    stop it and delete it
#
# The server listens on 127.0.0.1 on a free port, with trust authentication,
# superuser "postgres"; DIR/url holds "postgresql://postgres@127.0.0.1:PORT/postgres".
# initdb and postgres refuse to run as root: as root (CI), they run as the
# "postgres" user (made by Debian's postgresql package) with the cluster in a
# directory of its own under /tmp (DIR itself may sit below a directory that
# user cannot enter); DIR/datadir says where. Otherwise the cluster is DIR/data.
#
# Without PostgreSQL installed, start says so and succeeds without a URL, so
# that the tests skip; under CI=true it fails instead.
#
# HEADROOM_PG_DURABLE=1 keeps PostgreSQL's durable defaults (fsync, synchronous
# commit), for benchmarks; without it the tests' cluster skips fsync, since a
# test never survives a power cut anyway and two cores are shared.
set -euo pipefail

bin=${HEADROOM_PG_BIN:-/usr/lib/postgresql/15/bin}
cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# Runs a PostgreSQL binary as the user that owns the cluster.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

stop() {
  if [ -f "$dir/datadir" ]; then
    local data
    data=$(cat "$dir/datadir")
    if [ -f "$data/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    # Only ever a directory this script made (never DIR's parent, never /).
    case "$data" in
      "$dir/data" | /tmp/headroom-pg.*) rm -rf "$data" ;;
    esac
  fi
  rm -f "$dir/url" "$dir/datadir" "$dir/initdb.log"
}

start() {
  stop  # a cluster left by an interrupted run
  if [ ! -x "$bin/initdb" ]; then
    # Without a server the PostgreSQL cases skip, saying why; CI must run them.
    echo "test-postgres: $bin/initdb not found (scripts/setup.sh installs postgresql-15)" >&2
    if [ "${CI:-}" = true ]; then exit 1; fi
    echo "test-postgres: no server: the PostgreSQL tests will skip" >&2
    exit 0
  fi
  local data
  if [ "$(id -u)" -eq 0 ]; then
    data=$(mktemp -d /tmp/headroom-pg.XXXXXX)
    chown postgres: "$data"
  else
    data="$dir/data"
    mkdir -p "$data"
  fi
  chmod 700 "$data"
  echo "$data" >"$dir/datadir"
  as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }

  # TCP only: a socket under DIR could pass the 107-byte limit on socket paths.
  local settings=(-c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200)
  if [ "${HEADROOM_PG_DURABLE:-0}" != 1 ]; then
    settings+=(-c fsync=off -c synchronous_commit=off -c full_page_writes=off)
  fi
  # A random port, tried until one is free: the server's own bind is the test.
  local port attempt
  for attempt in $(seq 1 20); do
    port=$((20000 + RANDOM % 30000))
    if as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 30 \
        -o "-p $port $(printf '%q ' "${settings[@]}")" start >/dev/null 2>&1; then
      echo "postgresql://postgres@127.0.0.1:$port/postgres" >"$dir/url"
      echo "test-postgres: PostgreSQL running at $(cat "$dir/url") (data in $data)"
      return 0
    fi
  done
  echo "test-postgres: PostgreSQL did not start; its log:" >&2
  cat "$data/server.log" >&2 || true
  exit 1
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
