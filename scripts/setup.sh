#!/usr/bin/env bash
# Installs what Headroom needs to build, test and benchmark, from Debian 12's
# packages and (for the test clients) the npm registry. Idempotent: installs
# only what is missing, so `make serve` and `make test` may call it every time.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libsqlite3-dev sqlite3 libssl-dev openssl
  postgresql-15 libpq-dev               # the scale-out store; its tests start a throwaway cluster
  libcli11-dev libtomlplusplus-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgoogle-perftools-dev               # tcmalloc, the server's allocator (CMakeLists.txt says why)
  nginx wrk curl
  slurmctld slurmd slurm-client munge   # a one-node Slurm: the job-submission benchmark's baseline
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node.js for the tests that use npm packages (the image usually has it).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: installing nodejs npm"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
here=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -d "$here/tests/node/node_modules" ] || [ "$here/tests/node/package-lock.json" -nt "$here/tests/node/node_modules" ]; then
  echo "setup: installing the test clients' npm packages"
  (cd "$here/tests/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null && touch node_modules)
fi
