# Sourced by the benchmarks that run on a loop-mounted XFS (ctb.sh, growth.sh): they need root
# to mount it and mkfs.xfs (xfsprogs, installed from Debian if missing) to make it.
# usage: need_xfs SCRIPT-NAME
need_xfs() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "$1: needs root to loop-mount an XFS file system" >&2
    exit 2
  fi
  if ! command -v mkfs.xfs >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y xfsprogs
  fi
}
