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
