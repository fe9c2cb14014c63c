# Shell functions the benchmark scripts of bench/ share; source it:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# The sourcing script defines die MESSAGE (print it, exit 1) before it calls
# any of these.

# wait_until SECONDS WHAT COMMAND...: retries COMMAND until it succeeds.
wait_until() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "gave up after ${limit}s waiting for $what"
    sleep 0.05
  done
}

# one_node_fleet FILE STATE: writes a headroom.toml declaring one node "n1" of
# 8 h100 GPUs in STATE ("up", or "cordoned" for submissions that queue and
# never start).
one_node_fleet() {
  cat >"$1" <<TOML
[[fleet.gpu_types]]
name = "h100"
memory_gib = 80

[[fleet.nodes]]
name = "n1"
region = "r"
site = "s"
cluster = "c"
gpu_type = "h100"
gpus = 8
state = "$2"
TOML
}
