#!/usr/bin/env bash
# A throwaway one-node Slurm for the tests: its own munged (own socket and
# key), slurmctld and slurmd, on free ports, everything under DIR. The
# system's Slurm and munge, if any, are left alone.
#
#   scripts/test-slurm.sh start DIR   starts it; writes DIR/slurm.conf and
#                                     returns once the node is idle
#   scripts/test-slurm.sh stop DIR    cancels its jobs, stops the daemons
#                                     and every process they left, and
#                                     removes DIR
#
# The node is this host, with 16 CPUs (config_overrides: whatever the
# machine has) and 4 GPUs of type "h100". The GPUs are fake: character
# devices made with mknod (195 = the NVIDIA major), because slurmd drops a
# GPU GRES without a File= and AutoDetect=off keeps it from asking NVML.
# Jobs then get CUDA_VISIBLE_DEVICES as on a real GPU node.
#
# Slurm 22.05 as packaged by Debian runs here as root (SlurmUser=root). When
# Slurm cannot be started for a reason of the environment (not root, not
# installed) `start` writes the reason to DIR/unavailable and exits 0: the
# tests then skip (or fail under CI=true) with that reason. A Slurm that is
# there but does not come up is an error (exit 1, its logs printed).
#
# Every daemon is started with HEADROOM_TEST_SLURM=DIR in its environment,
# and `stop` kills what carries it or holds a file under DIR open (see
# marked_pids), so nothing is left behind even when a test died half way.
# The tests keep their job directories under DIR/jobs.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$2
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac

# The pids of our processes: those carrying our mark (HEADROOM_TEST_SLURM=DIR:
# the daemons) and those holding a file under DIR open (slurmstepd, which
# slurmd starts with a clean environment, holds slurmd.log; the tests' jobs
# write their logs under DIR/jobs).
marked_pids() {
  python3 - "$dir" "$$" <<'PY'
import os, sys
root, script = sys.argv[1], int(sys.argv[2])
mark = ("HEADROOM_TEST_SLURM=" + root).encode()
ours = {os.getpid(), os.getppid(), script}
for pid in os.listdir("/proc"):
    if not pid.isdigit() or int(pid) in ours:
        continue
    try:
        if mark in open(f"/proc/{pid}/environ", "rb").read().split(b"\0"):
            print(pid)
            continue
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(root + "/"):
                    print(pid)
                    break
            except OSError:
                pass
    except OSError:
        pass  # gone meanwhile, or a kernel thread
PY
}

stop() {
  if [ -f "$dir/slurm.conf" ] && [ -n "$(marked_pids)" ]; then
    # Cancel first so that slurmstepd ends the jobs the regular way.
    SLURM_CONF="$dir/slurm.conf" timeout 10 scancel --full --quiet --user=root >/dev/null 2>&1 || true
    local i
    for i in $(seq 1 30); do
      [ -z "$(SLURM_CONF="$dir/slurm.conf" timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  local round pids
  for round in TERM TERM TERM KILL KILL; do
    pids=$(marked_pids)
    [ -n "$pids" ] || break
    # shellcheck disable=SC2086
    kill -s "$round" $pids 2>/dev/null || true
    sleep 0.5
  done
  pids=$(marked_pids)
  if [ -n "$pids" ]; then
    echo "test-slurm: processes survived SIGKILL: $pids" >&2
    exit 1
  fi
  rm -rf "$dir"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

unavailable() {
  echo "$1" >"$dir/unavailable"
  echo "test-slurm: $1" >&2
  exit 0
}

fail() {
  echo "test-slurm: $1" >&2
  local f
  for f in "$dir"/*.log "$dir"/*.out "$dir"/munge/log; do
    [ -s "$f" ] || continue
    echo "--- $f" >&2
    tail -n 30 "$f" >&2
  done
  stop || true
  exit 1
}

# Runs "$@" until it succeeds, for up to $1 seconds.
wait_until() {
  local seconds=$1 what=$2
  shift 2
  local limit=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$limit" ] || fail "timed out after ${seconds}s waiting for $what"
    sleep 0.2
  done
}

node_idle() { [ "$(sinfo -h -N -o %T)" = idle ]; }

start() {
  if [ -e "$dir" ]; then stop; fi
  mkdir -p "$dir"
  local tool
  for tool in munged munge slurmctld slurmd slurmstepd sbatch squeue scontrol scancel sinfo; do
    command -v "$tool" >/dev/null || unavailable "Slurm is not installed ($tool not found; apt-get install slurmctld slurmd slurm-client munge)"
  done
  [ "$(id -u)" = 0 ] || unavailable "a throwaway Slurm needs root (SlurmUser=root), and this runs as $(id -un)"

  local host
  host=$(hostname -s)
  mkdir -p "$dir/munge" "$dir/run" "$dir/state" "$dir/spool" "$dir/dev"
  chmod 700 "$dir/munge"
  chmod 755 "$dir" "$dir/run"
  local i
  for i in 0 1 2 3; do mknod "$dir/dev/nvidia$i" c 195 "$i"; done

  export HEADROOM_TEST_SLURM="$dir"
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 600 "$dir/munge/munge.key"
  setsid munged -F --socket="$dir/run/munge.sock" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/run/munged.pid" --seed-file="$dir/munge/seed" --log-file="$dir/munge/log" \
    --num-threads=4 </dev/null >"$dir/munged.out" 2>&1 &
  wait_until 30 "munged" munge -S "$dir/run/munge.sock" -n

  cat >"$dir/gres.conf" <<CONF
AutoDetect=off
NodeName=$host Name=gpu Type=h100 File=$dir/dev/nvidia[0-3]
CONF
  cat >"$dir/slurm.conf" <<CONF
ClusterName=hrtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/run/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
GresTypes=gpu
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
MinJobAge=300
KillWait=5
MessageTimeout=30
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$host NodeAddr=127.0.0.1 CPUs=16 RealMemory=1000 Gres=gpu:h100:4 State=UNKNOWN
PartitionName=hrtest Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$dir/slurm.conf"
  setsid slurmctld -D -f "$SLURM_CONF" </dev/null >"$dir/slurmctld.out" 2>&1 &
  setsid slurmd -D -f "$SLURM_CONF" </dev/null >"$dir/slurmd.out" 2>&1 &
  wait_until 60 "the Slurm node to be idle" node_idle
  echo "test-slurm: up, SLURM_CONF=$SLURM_CONF"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
