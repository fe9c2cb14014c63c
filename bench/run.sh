#!/usr/bin/env bash
# Runs every benchmark of bench/ and prints the figures the issues ask for.
#   bench/run.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build/release}
echo "== issue 2: GET /v1/me beside nginx, time to ready, idle memory"
"$here/http_me_vs_nginx.sh" "$build" 1   # the headline: one worker each, wrk on the other core
"$here/http_me_vs_nginx.sh" "$build" 2   # two workers each: the 2 cores are shared with wrk
echo "== issue 3: scheduler"
"$build/bench/sched_bench"
echo "== issue 3: durable job submissions through the HTTP API beside sbatch"
"$here/job_submit_bench.sh" "$build" 1   # the headline: one server thread, wrk on the other core
"$here/job_submit_bench.sh" "$build" 2   # two server threads: the 2 cores are shared with wrk
echo "== issue 8: durable job submissions through the HTTP API with the store on PostgreSQL, beside SQLite"
"$here/job_submit_pg_bench.sh" "$build" 1   # a throwaway PostgreSQL on this machine, fsync on
echo "== issue 8: a new leader taking over after the old one is killed (SIGKILL), beside taking a free lock"
pg_dir=$(mktemp -d)
HEADROOM_PG_DURABLE=1 "$here/../scripts/test-postgres.sh" start "$pg_dir"
"$build/bench/leader_takeover_bench" "$(cat "$pg_dir/url")" 10
"$here/../scripts/test-postgres.sh" stop "$pg_dir"
rm -rf "$pg_dir"
echo "== issue 8: a follower \`headroom serve\` taking over the platform after the leader is killed, beside a cold start"
"$here/serve_takeover_bench.sh" "$build" 5
echo "== issue 4: usage log"
"$build/bench/usage_log_bench"
echo "== issue 4: durable usage events over HTTP (POST /v1/usage, batches of 1,000) beside SQLite"
"$here/usage_http_bench.sh" "$build" --rate 100000     # the goal: p99 at 100,000 events/s (open loop, 4 connections)
"$here/usage_http_bench.sh" "$build"                   # the most it takes: 4 connections back to back (closed loop)
"$here/usage_http_bench.sh" "$build" --connections 1   # one batch in flight: a batch's service time
echo "== issue 5: CPU kernels (matvec per weight type, 1 and 2 threads) beside the memory bandwidth"
"$build/bench/kernels_bench"
echo "== issue 5: inference: single-stream decode and prefill of stories260K and a 110M llama (f32, q8_0, q4_0) beside"
echo "   the memory bandwidth and llama2.c, and the engine's aggregate tokens/s at 1, 4, 16, 64 sequences"
"$build/bench/infer_bench"
echo "== issue 6: the gateway beside nginx: straight to a fixed upstream, through nginx, through headroom"
"$here/gateway_bench.sh" "$build"
echo "== issue 6: 16 concurrent streaming chats through headroom serve beside the engine alone"
"$build/bench/model_api_bench" "$build/headroom"
echo "== issue 6: 1,000 concurrent streaming connections held for a minute"
"$build/bench/stream_hold_bench" "$build/headroom"
