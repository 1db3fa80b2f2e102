#!/usr/bin/env bash
# disksnap benchmark entry point: installs the peers, builds disksnap, runs bench.py.
#   bench/run.sh [--size-gib 4] [--runs 1] [--keep] [--chunk-sizes 16,32,64,128,256]
#                [--cache warm|cold|both] [--s3] [--work DIR] [--no-build]
#                [other bench.py flags, see bench.py --help]
# --cache cold|both (both is the default) drops the page cache before every timed operation:
# run as root. --s3 starts a Ceph RGW of its own with scripts/rgw.sh (installs ceph if missing,
# own dir and ports, stopped at exit) and runs disksnap's series again against it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

build=1
args=()
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    *) args+=("$arg") ;;
  esac
done

# 1. peers (Debian packages), once
need=()
command -v restic >/dev/null 2>&1 || need+=(restic)
command -v borg >/dev/null 2>&1 || need+=(borgbackup)
[ -x /usr/bin/time ] || need+=(time)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
if [ "${#need[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y restic borgbackup time "${need[@]}"
fi

# 2. disksnap
if [ "$build" -eq 1 ]; then
  (cd "$ROOT" && cargo build --release)
fi
BIN="$ROOT/target/release/disksnap"

# 3. the bench (python3 >= 3.11, standard library only)
exec python3 "$HERE/bench.py" --disksnap "$BIN" ${args[@]+"${args[@]}"}
