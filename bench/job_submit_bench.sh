#!/usr/bin/env bash
# Issue 3's benchmark: durable job submissions per second through the HTTP
# API (POST /v1/jobs on `headroom serve`), beside `sbatch` submitting to a
# throwaway one-node Slurm on this machine in the same run when Slurm is
# installed. The goal is >= 5,000/s; Slurm documents 500 jobs/s sustained.
#
#   bench/job_submit_bench.sh BUILD_DIR [THREADS] [ROUNDS] [SECONDS]
#
# Both sides get 64 concurrent submitters for the same seconds, and rounds
# alternate headroom and sbatch so that drift on a noisy machine hits both;
# the report gives each round and the medians, and the ratio.
#
# headroom: the fleet is one cordoned node, so queued jobs never start and the
# figure is submission alone, not process spawning. Each round starts a fresh
# data directory and an external tenant with a compute key, drives it with wrk,
# then kills the server with SIGKILL (a crash, not a clean stop, so that only
# what was committed before its answer can count) and checks that every
# acknowledged job is a row of the jobs table.
#
# sbatch: jobs are submitted held (-H) so they never run. slurmctld answers
# before its state reaches the disk (it saves the state in the background), so
# its acknowledgement promises less than headroom's: the comparison favours it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"  # wait_until, one_node_fleet
export LC_ALL=C  # $EPOCHREALTIME and awk with a '.' decimal separator

build=${1:-build/release}
threads=${2:-1}
rounds=${3:-5}
seconds=${4:-5}
connections=64
headroom="$(cd "$build" && pwd)/headroom"
work=$(mktemp -d /tmp/headroom-jobs-XXXXXX)
chmod 755 "$work"  # munged wants its socket's folder open to all
pids=()            # daemons to stop at exit: the server, munged, slurmctld, slurmd
cleanup() {
  local p deadline=$((SECONDS + 10))
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    while kill -0 "$p" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

die() { echo "job_submit_bench: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk is missing: run scripts/setup.sh"
[ -x "$headroom" ] || die "$headroom is missing: build it first"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
group() {  # 7812.3 -> 7,812
  awk -v n="$1" 'BEGIN { s = sprintf("%.0f", n); o = ""
    while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
    print s o }'
}
to_ms() {  # wrk prints 812.00us, 1.20ms or 2.01s
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /s$/ && v !~ /ms$/) n*=1000; printf "%.3f", n }'
}
# stop_pid PID SIGNAL: signals PID and waits at most 30 s for it to exit.
# PID must be disowned: bash then reaps it without a "Killed" line.
stop_pid() {
  local pid=$1 deadline=$((SECONDS + 30))
  kill "-$2" "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || die "process $pid ignored SIG$2 for 30s"
    sleep 0.05
  done
  local p kept=()
  for p in "${pids[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  pids=("${kept[@]}")
}
count_rows() {  # the jobs table of a stopped server's database
  if command -v sqlite3 >/dev/null; then
    sqlite3 "$1/headroom.db" 'select count(*) from jobs'
  else
    python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from jobs").fetchone()[0])' \
      "$1/headroom.db"
  fi
}

# --- headroom: one round of wrk on POST /v1/jobs ---------------------------
# One cordoned node: submissions queue and never start.
one_node_fleet "$work/fleet.toml" cordoned
admin_key=$("$headroom" keygen)
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# Sets h_rps h_p50 h_p99 h_acked h_rows for round $1.
headroom_round() {
  local dir="$work/data-$1" out="$work/serve-$1.out"
  HEADROOM_ADMIN_KEY=$admin_key "$headroom" serve --data "$dir" --listen 127.0.0.1:0 --threads "$threads" \
    --log-level warning --config "$work/fleet.toml" >"$out" 2>&1 &
  local pid=$!
  pids+=("$pid")
  disown "$pid"  # it is killed with SIGKILL: see stop_pid
  wait_until 30 "headroom serve to listen (see $out)" grep -q 'listening on http://' "$out"
  local url
  url=$(grep -o 'listening on http://[0-9.:]*' "$out" | cut -d' ' -f3)
  wait_until 30 "$url/readyz" curl -sf "$url/readyz"

  # The realistic caller: an external tenant's compute key, not the admin's.
  local admin=(-sf --max-time 10 -H "Authorization: Bearer $admin_key" -H 'Content-Type: application/json')
  local tenant key
  tenant=$(curl "${admin[@]}" -d '{"name":"bench","kind":"external"}' "$url/v1/tenants" | json_field id)
  # Paid work needs money (402 otherwise): plenty for every job the bench submits.
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
  stop_pid "$pid" KILL
  if grep -q 'Non-2xx' <<<"$w" || grep -q 'Socket errors' <<<"$w"; then
    echo "$w" >&2
    die "headroom round $1: wrk saw errors or non-2xx answers (above): the benchmark is invalid"
  fi
  h_rps=$(awk '/Requests\/sec/ {print $2}' <<<"$w")
  h_p50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$w")")
  h_p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$w")")
  h_acked=$(awk '/ requests in / {print $1}' <<<"$w")  # every answer was a 201
  h_rows=$(count_rows "$dir")
  # wrk stops with up to one request in flight per connection: those jobs
  # were committed, but their answers came after wrk stopped counting.
  if [ "$h_rows" -lt "$h_acked" ] || [ "$h_rows" -gt $((h_acked + connections)) ]; then
    die "headroom round $1: $h_rows rows in the jobs table but $h_acked jobs acknowledged: NOT durable"
  fi
  h_unacked=$((h_rows - h_acked))
  rm -rf "$dir"
}

# --- sbatch: a throwaway one-node Slurm in $work ---------------------------
slurm=""
if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
  || ! command -v munged >/dev/null; then
  slurm="Slurm is not installed (apt-get install slurmctld slurmd slurm-client munge)"
elif [ "$(id -u)" != 0 ]; then
  slurm="a throwaway Slurm needs root (SlurmUser=root)"
fi

slurm_node_idle() { [ "$(sinfo -h -o %T)" = idle ]; }
start_slurm() {
  local s="$work/slurm" host
  host=$(hostname -s)
  mkdir -p "$s/munge" "$s/run" "$s/state" "$s/spool"
  chmod 700 "$s/munge"
  chmod 755 "$s" "$s/run"
  # Our own munged on our own socket and key: the system's is left alone.
  dd if=/dev/urandom of="$s/munge/munge.key" bs=1024 count=1 status=none
  chmod 600 "$s/munge/munge.key"
  munged -F --socket="$s/run/munge.sock" --key-file="$s/munge/munge.key" --pid-file="$s/run/munged.pid" \
    --seed-file="$s/munge/seed" --log-file="$s/munge/log" --num-threads=4 >"$s/munged.out" 2>&1 &
  pids+=($!)
  wait_until 30 "munged (see $s/munged.out)" munge -S "$s/run/munge.sock" -n
  cat >"$s/slurm.conf" <<CONF
ClusterName=hrbench
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$s/run/munge.sock
CredType=cred/munge
StateSaveLocation=$s/state
SlurmdSpoolDir=$s/spool
SlurmctldPidFile=$s/run/slurmctld.pid
SlurmdPidFile=$s/run/slurmd.pid
SlurmctldLogFile=$s/slurmctld.log
SlurmdLogFile=$s/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/linear
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
MaxJobCount=1000000
MinJobAge=2
MessageTimeout=30
SlurmctldDebug=error
SlurmdDebug=error
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=bench Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$s/slurm.conf"
  slurmctld -D -f "$SLURM_CONF" >"$s/slurmctld.out" 2>&1 &
  pids+=($!)
  slurmd -D -f "$SLURM_CONF" >"$s/slurmd.out" 2>&1 &
  pids+=($!)
  wait_until 60 "the Slurm node to be idle (see $s/slurmctld.log)" slurm_node_idle
}

# One submitter: held jobs until the deadline, a line "JOBID START END" each.
submitter() {
  local deadline=$1 t0 id
  while [[ $EPOCHREALTIME < $deadline ]]; do
    t0=$EPOCHREALTIME
    if id=$(sbatch --parsable -H -p bench -o /dev/null --wrap true 2>>"$2.err"); then
      echo "$id $t0 $EPOCHREALTIME"
    fi
  done >"$2"
}

# Sets s_rps s_p50 s_p99 s_jobs s_errors for round $1.
sbatch_round() {
  local dir="$work/sbatch-$1" start deadline i subs=()
  mkdir -p "$dir"
  start=$EPOCHREALTIME
  deadline=$(awk -v t="$start" -v s="$seconds" 'BEGIN {printf "%.6f", t + s}')
  for i in $(seq 1 $connections); do
    submitter "$deadline" "$dir/$i" &
    subs+=($!)
  done
  local limit=$((SECONDS + seconds + 90))  # sbatch retries for MessageTimeout at most
  for i in "${subs[@]}"; do
    while kill -0 "$i" 2>/dev/null; do
      [ "$SECONDS" -lt "$limit" ] || { kill "${subs[@]}" 2>/dev/null || true; die "sbatch round $1 hung"; }
      sleep 0.05
    done
    wait "$i"
  done
  local elapsed
  elapsed=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}')
  cat "$dir"/[0-9]* | awk '$1 ~ /^[0-9]+$/ {printf "%.1f\n", ($3 - $2) * 1000}' | sort -n >"$dir/ms"
  s_jobs=$(wc -l <"$dir/ms")
  s_errors=$(cat "$dir"/*.err | grep -c . || true)
  [ "$s_jobs" -gt 0 ] || { cat "$dir"/*.err | sort | uniq -c >&2; die "sbatch round $1: no job was accepted"; }
  s_rps=$(awk -v n="$s_jobs" -v e="$elapsed" 'BEGIN {printf "%.2f", n / e}')
  s_p50=$(awk '{a[NR]=$1} END {print a[int((NR - 1) * 0.50) + 1]}' "$dir/ms")
  s_p99=$(awk '{a[NR]=$1} END {print a[int((NR - 1) * 0.99) + 1]}' "$dir/ms")
  [ "$s_errors" = 0 ] || { echo "sbatch round $1: $s_errors failed submissions:" >&2; cat "$dir"/*.err | sort | uniq -c | head -5 >&2; }
  rm -rf "$dir"
  # Empty the queue so that Slurm idles through headroom's next round and
  # starts its own next round empty, as headroom does.
  scancel -u root
  wait_until 60 "Slurm to forget the cancelled jobs" slurm_queue_empty
}
slurm_queue_empty() { [ -z "$(squeue -h -t PENDING,RUNNING -o %i)" ]; }

if [ -z "$slurm" ]; then start_slurm; fi

# --- the rounds, alternating ------------------------------------------------
h_rpss=(); h_p50s=(); h_p99s=(); s_rpss=(); s_p50s=(); s_p99s=()
durable=()
echo "round  headroom jobs/s  p50 ms  p99 ms  acked    rows   sbatch jobs/s  p50 ms  p99 ms"
for r in $(seq 1 "$rounds"); do
  headroom_round "$r"
  h_rpss+=("$h_rps"); h_p50s+=("$h_p50"); h_p99s+=("$h_p99")
  durable+=("$h_rows rows >= $h_acked acknowledged (+$h_unacked answered after wrk stopped)")
  s_cols="      -"
  if [ -z "$slurm" ]; then
    sbatch_round "$r"
    s_rpss+=("$s_rps"); s_p50s+=("$s_p50"); s_p99s+=("$s_p99")
    s_cols=$(printf '%14s  %6s  %6s' "$s_rps" "$s_p50" "$s_p99")
  fi
  printf '%5d  %15s  %6s  %6s  %6s  %6s  %s\n' "$r" "$h_rps" "$h_p50" "$h_p99" "$h_acked" "$h_rows" "$s_cols"
done

hm=$(median "${h_rpss[@]}")
echo
echo "threads=$threads connections=$connections rounds=$rounds x ${seconds}s, wrk -t1, $(nproc) cores"
echo "headroom POST /v1/jobs (an external tenant's key, fsync'd group commit): median $(group "$hm") jobs/s," \
  "p50 $(median "${h_p50s[@]}") ms, p99 $(median "${h_p99s[@]}") ms"
for r in $(seq 1 "$rounds"); do echo "  durable, round $r: ${durable[$((r - 1))]}"; done
if [ -z "$slurm" ]; then
  sm=$(median "${s_rpss[@]}")
  echo "sbatch -H (Slurm $(sbatch --version | awk '{print $2}'), one node, $connections submitters): median $(group "$sm") jobs/s," \
    "p50 $(median "${s_p50s[@]}") ms, p99 $(median "${s_p99s[@]}") ms"
  vs="vs sbatch $(group "$sm")/s: $(awk -v a="$hm" -v b="$sm" 'BEGIN {printf "%.1f", a/b}')x"
else
  echo "sbatch: $slurm: skipped"
  vs="(sbatch skipped)"
fi
met=$(awk -v a="$hm" 'BEGIN {print (a >= 5000 ? "met" : "NOT met")}')
echo "job submissions: headroom $(group "$hm")/s (median of $rounds, p99 $(printf '%.1f' "$(median "${h_p99s[@]}")") ms)" \
  "$vs; goal >= 5,000/s: $met"
