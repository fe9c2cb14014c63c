#!/usr/bin/env bash
# Issue 6's benchmark: what the gateway adds in front of a model server.
# wrk POSTs the same small chat completion request (a) straight to a
# fixed-response upstream (bench/fixed_upstream.cpp), (b) through nginx's
# proxy_pass (keep-alive to the upstream), (c) through `headroom serve` with
# a [models] entry whose upstream is that server: auth, parsing, limits,
# the budget check and metering (two usage events per request, durable before
# the answer) all on. Rounds alternate the three, each twice: under load
# (CONNECTIONS connections, for requests per second; a request's latency
# then is mostly its wait behind the others) and unloaded (one connection:
# what each hop adds to one request). The report gives the medians, what (b)
# and (c) add to (a) at p50 and p99 both ways, and (c)/(b) in requests per
# second. Goals: headroom adds <= 0.2 ms at p50 and <= 1 ms at p99, and
# serves >= 80% of nginx's requests/s.
#
#   bench/gateway_bench.sh BUILD_DIR [ROUNDS] [SECONDS] [CONNECTIONS]
set -euo pipefail

build=${1:-build/release}
rounds=${2:-3}
seconds=${3:-5}
connections=${4:-32}
bin="$(cd "$build" && pwd)"
work=$(mktemp -d /tmp/headroom-gateway-XXXXXX)
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
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_line() { until grep -q "listening on" "$1" 2>/dev/null; do sleep 0.05; done; grep -o 'http://[0-9.:]*' "$1" | head -1; }

# (a) the upstream, one thread
"$bin/bench/fixed_upstream" 1 >"$work/upstream.out" 2>&1 &
pids+=($!)
upstream=$(wait_line "$work/upstream.out")

# (b) nginx, one worker, keep-alive to the upstream
nport=$(free_port)
mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream model { server ${upstream#http://}; keepalive 64; }
  server {
    listen 127.0.0.1:$nport reuseport;
    location / { proxy_pass http://model; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
"$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=($!)
until curl -sf "http://127.0.0.1:$nport/v1/models" >/dev/null 2>&1; do sleep 0.05; done

# (c) headroom, one I/O thread, the upstream as model "fixed"; limits high enough not to refuse
key=$("$bin/headroom" keygen)
cat >"$work/headroom.toml" <<CONF
[models.fixed]
upstreams = ["$upstream/v1"]
input_price = "0.10"
output_price = "0.20"
[gateway.tenant_limits]
requests_per_minute = 1000000000
tokens_per_minute = 100000000000
concurrent = 100000
CONF
HEADROOM_ADMIN_KEY=$key "$bin/headroom" serve --data "$work/data" --listen 127.0.0.1:0 --threads 1 \
  --config "$work/headroom.toml" --log-level warning >"$work/serve.out" 2>&1 &
pids+=($!)
hurl=$(wait_line "$work/serve.out")
# A customer tenant with credit and an inference key: the path a customer takes.
api() { curl -sf -H "Authorization: Bearer $key" -H 'content-type: application/json' "$@"; }
tenant=$(api -d '{"name":"bench"}' "$hurl/v1/tenants" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
tkey=$(api -d '{"name":"wrk","scopes":["inference"]}' "$hurl/v1/tenants/$tenant/keys" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
api -H 'Idempotency-Key: gateway-bench' -d '{"amount":"100000.00"}' "$hurl/v1/tenants/$tenant/credits" >/dev/null

body='{"model":"fixed","messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":16}'
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $tkey"
LUA
for url in "$upstream" "http://127.0.0.1:$nport" "$hurl"; do
  answer=$(curl -sf -H "Authorization: Bearer $tkey" -H 'content-type: application/json' -d "$body" "$url/v1/chat/completions")
  grep -q '"Once upon a time' <<<"$answer" || { echo "no completion from $url: $answer" >&2; exit 1; }
done

to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /s$/ && v !~ /ms$/) n*=1000; printf "%.3f", n }'; }
run_wrk() {  # URL CONNECTIONS
  local out
  out=$(wrk -t1 -c"$2" -d"${seconds}s" --latency -s "$work/post.lua" "$1/v1/chat/completions")
  non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out")
  [ -z "$non2xx" ] || { echo "wrk saw $non2xx non-2xx answers from $1: the benchmark is invalid" >&2; exit 1; }
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")") $(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -a a_rps a_p50 a_p99 b_rps b_p50 b_p99 c_rps c_p50 c_p99 a1_p50 a1_p99 b1_p50 b1_p99 c1_p50 c1_p99
echo "round  connections  upstream req/s p50 p99 ms   nginx req/s p50 p99 ms   headroom req/s p50 p99 ms"
for r in $(seq 1 "$rounds"); do
  read -r x y z <<<"$(run_wrk "$upstream" "$connections")"; a_rps+=("$x"); a_p50+=("$y"); a_p99+=("$z")
  read -r x y z <<<"$(run_wrk "http://127.0.0.1:$nport" "$connections")"; b_rps+=("$x"); b_p50+=("$y"); b_p99+=("$z")
  read -r x y z <<<"$(run_wrk "$hurl" "$connections")"; c_rps+=("$x"); c_p50+=("$y"); c_p99+=("$z")
  printf '%5d  %11d  %14s %s %s   %11s %s %s   %14s %s %s\n' "$r" "$connections" "${a_rps[-1]}" "${a_p50[-1]}" "${a_p99[-1]}" \
    "${b_rps[-1]}" "${b_p50[-1]}" "${b_p99[-1]}" "${c_rps[-1]}" "${c_p50[-1]}" "${c_p99[-1]}"
  read -r x y z <<<"$(run_wrk "$upstream" 1)"; a1_p50+=("$y"); a1_p99+=("$z"); ar=$x
  read -r x y z <<<"$(run_wrk "http://127.0.0.1:$nport" 1)"; b1_p50+=("$y"); b1_p99+=("$z"); br=$x
  read -r x y z <<<"$(run_wrk "$hurl" 1)"; c1_p50+=("$y"); c1_p99+=("$z")
  printf '%5d  %11d  %14s %s %s   %11s %s %s   %14s %s %s\n' "$r" 1 "$ar" "${a1_p50[-1]}" "${a1_p99[-1]}" \
    "$br" "${b1_p50[-1]}" "${b1_p99[-1]}" "$x" "${c1_p50[-1]}" "${c1_p99[-1]}"
done
added() { awk -v x="$1" -v y="$2" 'BEGIN{printf "%.3f", x-y}'; }
ma50=$(median "${a_p50[@]}"); ma99=$(median "${a_p99[@]}")
mb50=$(median "${b_p50[@]}"); mb99=$(median "${b_p99[@]}"); mbr=$(median "${b_rps[@]}")
mc50=$(median "${c_p50[@]}"); mc99=$(median "${c_p99[@]}"); mcr=$(median "${c_rps[@]}")
ua50=$(median "${a1_p50[@]}"); ua99=$(median "${a1_p99[@]}")
ub50=$(median "${b1_p50[@]}"); ub99=$(median "${b1_p99[@]}")
uc50=$(median "${c1_p50[@]}"); uc99=$(median "${c1_p99[@]}")
echo
echo "wrk -t1, $rounds rounds x ${seconds}s each way, one thread each, $(nproc) cores"
echo "under load, $connections connections:"
echo "  (a) upstream:  median $(median "${a_rps[@]}") req/s, p50 $ma50 ms, p99 $ma99 ms"
echo "  (b) nginx:     median $mbr req/s, p50 $mb50 ms, p99 $mb99 ms; adds p50 $(added "$mb50" "$ma50") ms, p99 $(added "$mb99" "$ma99") ms"
echo "  (c) headroom:  median $mcr req/s, p50 $mc50 ms, p99 $mc99 ms; adds p50 $(added "$mc50" "$ma50") ms, p99 $(added "$mc99" "$ma99") ms"
echo "unloaded, 1 connection:"
echo "  (a) upstream:  p50 $ua50 ms, p99 $ua99 ms"
echo "  (b) nginx:     p50 $ub50 ms, p99 $ub99 ms; adds p50 $(added "$ub50" "$ua50") ms, p99 $(added "$ub99" "$ua99") ms"
echo "  (c) headroom:  p50 $uc50 ms, p99 $uc99 ms; adds p50 $(added "$uc50" "$ua50") ms, p99 $(added "$uc99" "$ua99") ms"
echo "headroom/nginx requests/s: $(awk -v a="$mcr" -v b="$mbr" 'BEGIN {printf "%.2f", a/b}')"
