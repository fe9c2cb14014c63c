#!/usr/bin/env bash
# Issue 4's benchmark over HTTP: durable usage events per second through
# POST /v1/usage on `headroom serve`, in batches of 1,000, beside SQLite
# inserting the same records with synchronous=FULL in the same run; p50/p99
# acknowledgement latency. The goal: >= 100,000 events/s with p99 <= 5 ms.
#
#   bench/usage_http_bench.sh BUILD_DIR [--quick] [--threads N] [usage_http_bench flags...]
#     --quick      a short run: 2 s measured after 1 s of warm-up (default 10 s after 2 s)
#     --threads N  the server's threads (default: its own, one per core)
#     the rest goes to BUILD_DIR/bench/usage_http_bench (--connections C, --rate EVENTS_PER_S,
#     --seconds D, --warmup W, --batch B; see bench/usage_http_bench.cpp)
#
# Two ways to load it, both beside SQLite loaded the same way:
#   closed loop (the default): C connections send back to back, C batches
#     always in flight: the most events/s the server takes, and the latency
#     of a batch at that load (its service time, times the queue).
#   open loop (--rate R): a batch of 1,000 due every 1,000/R s, sent on
#     whichever of the C connections is free, its latency counted from when
#     it was due (no coordinated omission). The goal reads: at >= 100,000
#     events/s, p99 <= 5 ms; `--rate 100000` measures exactly that.
#
# The script starts the server on a fresh data directory and port 0 with a new
# admin key; usage_http_bench makes a tenant, sends the batches (C keep-alive
# connections, default 4) and checks every answer. At the end of the measured
# window it kills the server with SIGKILL, requests still in flight (a crash:
# only what was durable before its answer may count), then runs the SQLite
# baseline and prints both. The server is started again on the same
# directory, and GET /v1/usage must count every acknowledged event, plus at
# most the events of the requests the kill cut off.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # wait_until

build=${1:-build/release}
shift || true
client_flags=()
threads=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) client_flags+=(--seconds 2 --warmup 1) ;;
    --threads) threads=(--threads "$2"); shift ;;
    *) client_flags+=("$1") ;;
  esac
  shift
done

headroom="$(cd "$build" && pwd)/headroom"
client="$(cd "$build" && pwd)/bench/usage_http_bench"
work=$(mktemp -d /tmp/headroom-usage-XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

die() { echo "usage_http_bench: $*" >&2; exit 1; }
[ -x "$headroom" ] || die "$headroom is missing: build it first"
[ -x "$client" ] || die "$client is missing: build it first"

admin_key=$("$headroom" keygen)
url=""
# Starts the server on $work/data and sets pid and url.
start_server() {
  local out="$work/serve-$1.out"
  HEADROOM_ADMIN_KEY=$admin_key "$headroom" serve --data "$work/data" --listen 127.0.0.1:0 "${threads[@]}" \
    --log-level warning >"$out" 2>&1 &
  pid=$!
  disown "$pid"  # it is killed with SIGKILL: no "Killed" line from bash
  wait_until 30 "headroom serve to listen (see $out)" grep -q 'listening on http://' "$out"
  url=$(grep -o 'listening on http://[0-9.:]*' "$out" | cut -d' ' -f3)
  wait_until 30 "$url/readyz" curl -sf "$url/readyz"
}
kill_server() {
  local deadline=$((SECONDS + 30))
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || die "process $pid ignored SIGKILL for 30s"
    sleep 0.05
  done
  pid=""
}

start_server 1
# SQLite's file beside the server's data directory: the same disk.
if ! "$client" --url "$url" --admin-key "$admin_key" --dir "$work/sqlite" --server-pid "$pid" \
  "${client_flags[@]}" | tee "$work/client.out"; then
  echo "--- the server's log (the end):" >&2
  tail -20 "$work/serve-1.out" >&2
  die "the run failed (above): no figures"
fi
kill_server  # the client killed it already, at the end of the measured window

# acknowledged N events of tenant T from F with U in flight
read -r acked tenant from in_flight < <(awk '/^acknowledged / {print $2, $6, $8, $10}' "$work/client.out")
[ -n "$in_flight" ] || die "the client printed no 'acknowledged' line"
start_server 2
if ! "$client" --url "$url" --admin-key "$admin_key" --verify "$tenant" "$acked" "$in_flight" "$from"; then
  echo "--- the restarted server's log (the end):" >&2
  tail -20 "$work/serve-2.out" >&2
  die "the durability check failed (above)"
fi
kill_server
