#!/usr/bin/env bash
# Issue 8's benchmark: durable job submissions per second through the HTTP API
# (POST /v1/jobs on `headroom serve`) with the store on PostgreSQL, beside the
# same with the embedded SQLite store in the same run. The goal is >= 2,000/s
# on PostgreSQL.
#
#   bench/job_submit_pg_bench.sh BUILD_DIR [THREADS] [ROUNDS] [SECONDS]
#
# The PostgreSQL server is a throwaway cluster on this machine
# (scripts/test-postgres.sh) with PostgreSQL's durable defaults: fsync on,
# synchronous_commit on, so a commit is on disk before headroom answers.
# Rounds alternate SQLite and PostgreSQL so that drift on a noisy machine hits
# both. As in job_submit_bench.sh: the fleet is one cordoned node (queued jobs
# never start), an external tenant's compute key submits, 64 connections of
# wrk, and each round ends with SIGKILL and a check that every acknowledged
# job is a row of the jobs table. Each PostgreSQL round uses a new database.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # wait_until, one_node_fleet
export LC_ALL=C

build=${1:-build/release}
threads=${2:-1}
rounds=${3:-3}
seconds=${4:-5}
connections=64
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
headroom="$(cd "$build" && pwd)/headroom"
work=$(mktemp -d /tmp/headroom-pgjobs-XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  "$here/../scripts/test-postgres.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

die() { echo "job_submit_pg_bench: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk is missing: run scripts/setup.sh"
command -v psql >/dev/null || die "psql is missing: run scripts/setup.sh (postgresql-15)"
[ -x "$headroom" ] || die "$headroom is missing: build it first"

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
group() {  # 7812.3 -> 7,812
  awk -v n="$1" 'BEGIN { s = sprintf("%.0f", n); o = ""
    while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
    print s o }'
}
to_ms() {  # wrk prints 812.00us, 1.20ms or 2.01s
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /s$/ && v !~ /ms$/) n*=1000; printf "%.3f", n }'
}
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

HEADROOM_PG_DURABLE=1 "$here/../scripts/test-postgres.sh" start "$work/pg" >/dev/null
server_url=$(cat "$work/pg/url")
psql -qAtX "$server_url" -c 'SHOW fsync' | grep -qx on || die "the benchmark's PostgreSQL must fsync"
psql -qAtX "$server_url" -c 'SHOW synchronous_commit' | grep -qx on || die "the benchmark's PostgreSQL must commit synchronously"

# One cordoned node: submissions queue and never start.
one_node_fleet "$work/fleet.toml" cordoned
admin_key=$("$headroom" keygen)

# round STORE N: STORE is sqlite or postgres. Sets rps p50 p99 acked rows.
round() {
  local kind=$1 n=$2 dir="$work/data-$1-$2" out="$work/serve-$1-$2.out" store_args=() db_url=""
  if [ "$kind" = postgres ]; then
    psql -qAtX "$server_url" -c "CREATE DATABASE bench_$n" >/dev/null
    db_url="${server_url%/*}/bench_$n"
    store_args=(--store "$db_url")
  fi
  HEADROOM_ADMIN_KEY=$admin_key "$headroom" serve --data "$dir" "${store_args[@]}" --listen 127.0.0.1:0 \
    --threads "$threads" --log-level warning --config "$work/fleet.toml" >"$out" 2>&1 &
  local pid=$!
  pids+=("$pid")
  disown "$pid"
  wait_until 30 "headroom serve to listen (see $out)" grep -q 'listening on http://' "$out"
  local url
  url=$(grep -o 'listening on http://[0-9.:]*' "$out" | cut -d' ' -f3)
  wait_until 30 "$url/readyz" curl -sf "$url/readyz"
  local admin=(-sf --max-time 10 -H "Authorization: Bearer $admin_key" -H 'Content-Type: application/json')
  local tenant key
  tenant=$(curl "${admin[@]}" -d '{"name":"bench","kind":"external"}' "$url/v1/tenants" | json_field id)
  curl "${admin[@]}" -d '{"amount":"1000000.00"}' "$url/v1/tenants/$tenant/credits" >/dev/null
  key=$(curl "${admin[@]}" -d '{"name":"k","scopes":["compute"]}' "$url/v1/tenants/$tenant/keys" | json_field key)
  cat >"$work/submit.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"gpus":1,"command":["true"]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
  local w
  w=$(wrk -t1 -c$connections -d"${seconds}s" --latency -s "$work/submit.lua" "$url/v1/jobs")
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  if grep -q 'Non-2xx' <<<"$w" || grep -q 'Socket errors' <<<"$w"; then
    echo "$w" >&2
    die "$kind round $n: wrk saw errors or non-2xx answers (above): the benchmark is invalid"
  fi
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$w")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$w")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$w")")
  acked=$(awk '/ requests in / {print $1}' <<<"$w")
  if [ "$kind" = postgres ]; then
    rows=$(psql -qAtX "$db_url" -c 'SELECT count(*) FROM jobs')
    psql -qAtX "$server_url" -c "DROP DATABASE bench_$n WITH (FORCE)" >/dev/null
  else
    rows=$(sqlite3 "$dir/headroom.db" 'select count(*) from jobs')
  fi
  if [ "$rows" -lt "$acked" ] || [ "$rows" -gt $((acked + connections)) ]; then
    die "$kind round $n: $rows rows in the jobs table but $acked jobs acknowledged: NOT durable"
  fi
  rm -rf "$dir"
}

s_rpss=(); s_p99s=(); p_rpss=(); p_p50s=(); p_p99s=()
echo "round  sqlite jobs/s  p50 ms  p99 ms   postgres jobs/s  p50 ms  p99 ms  acked   rows"
for r in $(seq 1 "$rounds"); do
  round sqlite "$r"
  s_rpss+=("$rps"); s_p99s+=("$p99")
  s_cols=$(printf '%13s  %6s  %6s' "$rps" "$p50" "$p99")
  round postgres "$r"
  p_rpss+=("$rps"); p_p50s+=("$p50"); p_p99s+=("$p99")
  printf '%5d  %s   %15s  %6s  %6s  %6s  %6s\n' "$r" "$s_cols" "$rps" "$p50" "$p99" "$acked" "$rows"
done
sm=$(median "${s_rpss[@]}")
pm=$(median "${p_rpss[@]}")
echo
echo "threads=$threads connections=$connections rounds=$rounds x ${seconds}s, wrk -t1, $(nproc) cores," \
  "PostgreSQL $(psql -qAtX "$server_url" -c 'SHOW server_version') on this machine (fsync on, synchronous_commit on)"
met=$(awk -v a="$pm" 'BEGIN {print (a >= 2000 ? "met" : "NOT met")}')
echo "job submissions: postgres $(group "$pm")/s (median of $rounds, p99 $(median "${p_p99s[@]}") ms)" \
  "beside sqlite $(group "$sm")/s (p99 $(median "${s_p99s[@]}") ms); goal >= 2,000/s: $met"
