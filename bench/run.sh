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
echo "== issue 4: usage log"
"$build/bench/usage_log_bench"
echo "== issue 4: durable usage events over HTTP (POST /v1/usage, batches of 1,000) beside SQLite"
"$here/usage_http_bench.sh" "$build"                   # the headline: 4 connections
"$here/usage_http_bench.sh" "$build" --connections 1   # one batch in flight: the least latency
echo "== issue 5: CPU kernels (matvec per weight type, 1 and 2 threads) beside the memory bandwidth"
"$build/bench/kernels_bench"
