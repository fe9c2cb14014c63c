#!/usr/bin/env bash
# Issue 2's benchmark: authenticated GET /v1/me on `headroom serve` beside
# nginx serving a small static file, both with the same number of worker
# threads, driven by wrk from this machine in the same run; plus
# `headroom serve`'s time to ready and its idle resident memory.
#
#   bench/http_me_vs_nginx.sh BUILD_DIR [THREADS] [ROUNDS] [SECONDS]
#
# Rounds alternate headroom and nginx so that drift on a noisy machine hits
# both; the report gives each round and the medians, and the ratio.
set -euo pipefail

build=${1:-build/release}
threads=${2:-1}
rounds=${3:-5}
seconds=${4:-5}
connections=64
headroom="$(cd "$build" && pwd)/headroom"
work=$(mktemp -d /tmp/headroom-bench-XXXXXX)
chmod 755 "$work"  # nginx workers run as www-data when started by root
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is missing: run scripts/setup.sh" >&2; exit 1; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || { echo "nginx is missing: run scripts/setup.sh" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- time to ready and idle memory: 10 fresh starts ------------------------
ready_ms=()
rss_kb=()
for i in $(seq 1 10); do
  dir="$work/ready-$i"
  start=$(date +%s%N)
  "$headroom" serve --data "$dir" --listen 127.0.0.1:0 --threads "$threads" --log-level warning >"$work/ready.out" 2>&1 &
  pid=$!
  url=""
  until [ -n "$url" ]; do
    url=$(grep -o 'listening on http://[0-9.:]*' "$work/ready.out" 2>/dev/null | cut -d' ' -f3 || true)
  done
  until curl -sf "$url/readyz" >/dev/null; do :; done
  end=$(date +%s%N)
  ready_ms+=($(( (end - start) / 1000000 )))
  sleep 0.3
  rss_kb+=($(awk '/^VmRSS/ {print $2}' /proc/$pid/status))
  kill -TERM $pid; wait $pid || true
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# --- throughput: headroom /v1/me vs nginx static ---------------------------
key=$("$headroom" keygen)
hport=$(free_port)
HEADROOM_ADMIN_KEY=$key "$headroom" serve --data "$work/data" --listen 127.0.0.1:$hport --threads "$threads" \
  --log-level warning >"$work/serve.out" 2>&1 &
pids+=($!)
until curl -sf "http://127.0.0.1:$hport/readyz" >/dev/null 2>&1; do sleep 0.05; done
curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$hport/v1/me" >"$work/me.json"

nport=$(free_port)
mkdir -p "$work/nginx/html" "$work/nginx/logs"
cp "$work/me.json" "$work/nginx/html/me.json"  # the same bytes headroom answers
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes $threads;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:$nport reuseport;
    root $work/nginx/html;
    location / { default_type application/json; }
  }
}
CONF
"$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=($!)
until curl -sf "http://127.0.0.1:$nport/me.json" >/dev/null 2>&1; do sleep 0.05; done

# wrk's "Requests/sec" and its 50% / 99% latency, in ms.
run_wrk() {
  local out
  out=$(wrk -t1 -c$connections -d${seconds}s --latency "$@")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out")
  [ -z "$non2xx" ] || { echo "wrk saw $non2xx non-2xx answers: the benchmark is invalid" >&2; exit 1; }
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}
to_ms() {  # wrk prints 812.00us, 1.20ms or 2.01s
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /s$/ && v !~ /ms$/) n*=1000; printf "%.3f", n }'
}

h_rps=(); h_p50=(); h_p99=(); n_rps=(); n_p50=(); n_p99=()
echo "round  headroom req/s  p50 ms  p99 ms   nginx req/s  p50 ms  p99 ms"
for r in $(seq 1 "$rounds"); do
  # In the main shell (not < <(...)), so that an invalid round stops the script.
  hout=$(run_wrk -H "Authorization: Bearer $key" "http://127.0.0.1:$hport/v1/me")
  nout=$(run_wrk "http://127.0.0.1:$nport/me.json")
  read -r a b c <<<"$hout"
  read -r d e f <<<"$nout"
  h_rps+=("$a"); h_p50+=("$b"); h_p99+=("$c"); n_rps+=("$d"); n_p50+=("$e"); n_p99+=("$f")
  printf '%5d  %14s  %6s  %6s   %11s  %6s  %6s\n' "$r" "$a" "$b" "$c" "$d" "$e" "$f"
done

hm=$(median "${h_rps[@]}"); nm=$(median "${n_rps[@]}")
echo
echo "threads=$threads connections=$connections rounds=$rounds x ${seconds}s, wrk -t1, $(nproc) cores"
echo "headroom GET /v1/me (authenticated): median $hm req/s, p50 $(median "${h_p50[@]}") ms, p99 $(median "${h_p99[@]}") ms"
echo "nginx static file ($(wc -c <"$work/me.json") bytes): median $nm req/s, p50 $(median "${n_p50[@]}") ms, p99 $(median "${n_p99[@]}") ms"
echo "ratio headroom/nginx: $(awk -v a="$hm" -v b="$nm" 'BEGIN {printf "%.2f", a/b}')"
echo "ready after start: median $(median "${ready_ms[@]}") ms (10 starts: ${ready_ms[*]})"
echo "idle resident memory: median $(( $(median "${rss_kb[@]}") / 1024 )) MB (10 starts, kB: ${rss_kb[*]})"
