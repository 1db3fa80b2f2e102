#!/usr/bin/env bash
# Issue 18's benchmark: bench/run.sh (disksnap and its peers on the same image) with the work
# dir on a loop-mounted XFS made here, so disksnap's volumes get instant points (reflink
# clones) and changed-block tracking (FIEMAP), and the peers run on the same file system.
#
#   bench/ctb.sh [--no-build] [bench.py options: --size-gib 4 --cache both --runs 1 …]
#
# Needs root (mount) and xfsprogs (installed if missing). The file system image is sparse
# (CTB_FS_GIB, default 40 GiB, holds a 4 GiB run's images, repos and stores) and is removed
# on exit, as is its mount point.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

# shellcheck source=bench/xfs.sh
. "$HERE/xfs.sh"
need_xfs bench/ctb.sh

IMG="${CTB_IMG:-$ROOT/bench-xfs.img}"
MNT="${CTB_MNT:-$ROOT/bench-xfs}"
rm -f "$IMG"
truncate -s "${CTB_FS_GIB:-40}G" "$IMG"
mkfs.xfs -q -f -m reflink=1 "$IMG"
mkdir -p "$MNT"
mount -o loop "$IMG" "$MNT"
cleanup() {
  umount "$MNT" 2>/dev/null || umount -l "$MNT" || true
  rm -f "$IMG"
  rmdir "$MNT" 2>/dev/null || true
}
trap cleanup EXIT
echo "bench/ctb.sh: work dir on XFS (reflink) at $MNT"
"$HERE/run.sh" --work "$MNT/work" "$@"
