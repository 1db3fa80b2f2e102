#!/usr/bin/env bash
# Issue 18's growth figure: does a tracked incremental cost the change or the volume? The same
# series on a 4 GiB and a 32 GiB image (mkdisk.py), disksnap only, on a loop-mounted XFS made
# here (instant points and changed-block tracking): import, full snapshot, then after each of
# mutate.py's 16 MiB changes (scattered, clustered) an incremental, warm and cold, and a roll
# back after a scattered change. Prints each figure and the 32 GiB / 4 GiB ratios (target
# <= 1.5 for the incrementals).
#
#   bench/growth.sh [--no-build] [--sizes "4 32"] [--restic]
#
# Why not bench/run.sh: at 32 GiB it needs the image, the peers' copy and the restic and borg
# repositories at once (~75 GB); this machine has ~65 GB free. With --restic, restic runs the
# same series first, alone (the image and its repository, ~40 GB at 32 GiB): a full backup, then
# after each of the same changes (same mutate.py seeds) an incremental backup, warm and cold;
# then a restore of the newest backup (+ sync), warm and cold, once the image is gone (the output
# and the repository fit; the image, repository and output together do not). The image is then
# made again for disksnap, and its incrementals and roll backs are also printed as disksnap /
# restic (target <= 0.1). restic works on the host's file system, not through the loop device
# disksnap's XFS sits on (a file deleted in there keeps its blocks in the image file): the
# ratios lean against disksnap. bench/ctb.sh, all on the same XFS, gives the fair 4 GiB ones.
#
# Needs root (mount) and xfsprogs (installed if missing). The file system image is sparse and
# removed on exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
TOOLS="${TOOLS:-$ROOT/../shared/tools}"
BIN="$ROOT/target/release/disksnap"
SIZES="4 32"
BUILD=1
RESTIC=0
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    --restic) RESTIC=1 ;;
    --sizes) SIZES="$2"; shift ;;
    *) echo "bench/growth.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
# shellcheck source=bench/xfs.sh
. "$HERE/xfs.sh"
need_xfs bench/growth.sh
if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release -p disksnap)
fi

IMG="$ROOT/bench-growth-xfs.img"
MNT="$ROOT/bench-growth-xfs"
# The workload image is made outside the XFS and imported: a file deleted inside a loop-mounted
# file system keeps its blocks in the (sparse) image file, and 32 GiB twice does not fit.
SRC="$ROOT/bench-growth-disk.img"
REPO="$ROOT/bench-growth-restic"
export RESTIC_PASSWORD=disksnap-bench RESTIC_CACHE_DIR="$ROOT/bench-growth-restic-cache"
cleanup() {
  if mountpoint -q "$MNT"; then umount "$MNT" 2>/dev/null || umount -l "$MNT" || true; fi
  rm -f "$IMG" "$SRC"
  rm -rf "$REPO" "$REPO-out" "$RESTIC_CACHE_DIR"
  rmdir "$MNT" 2>/dev/null || true
}
trap cleanup EXIT

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# seconds a command takes; its stdout goes to $OUT
OUT=$(mktemp)
timed() { local s e; s=$(date +%s.%N); "$@" > "$OUT"; e=$(date +%s.%N); echo "$e - $s" | bc; }
declare -A FIG

# restic's series on the image made for `size`, in the order and with the seeds of disksnap's
restic_series() {
  local size=$1 n=0 pat cache
  echo "== $size GiB image, restic $(restic version | cut -d' ' -f2)"
  python3 "$TOOLS/mkdisk.py" "$SRC" --size-gib "$size" >/dev/null
  restic -q -r "$REPO" init >/dev/null
  drop
  FIG[$size,restic,full]=$(cd "$(dirname "$SRC")" && timed restic -q -r "$REPO" backup "$(basename "$SRC")")
  echo "restic full backup (cold)  ${FIG[$size,restic,full]} s"
  for pat in scattered clustered; do
    for cache in warm cold; do
      n=$((n + 1))
      python3 "$TOOLS/mutate.py" "$SRC" "$pat" --seed "$n" >/dev/null
      if [ "$cache" = cold ]; then drop; else sync; cat "$SRC" >/dev/null; fi
      FIG[$size,restic,$pat,$cache]=$(cd "$(dirname "$SRC")" && timed restic -q -r "$REPO" backup "$(basename "$SRC")")
      echo "restic incr $pat ($cache)$(printf '%*s' $((6 - ${#pat} - ${#cache} + 7)) '') ${FIG[$size,restic,$pat,$cache]} s"
    done
  done
  rm -f "$SRC"
  for cache in warm cold; do
    if [ "$cache" = cold ]; then drop; fi
    FIG[$size,restic,rollback,$cache]=$(timed bash -c 'restic -q -r "$1" restore latest --target "$2" && sync' _ "$REPO" "$REPO-out")
    echo "restic restore + sync ($cache) ${FIG[$size,restic,rollback,$cache]} s"
    rm -rf "$REPO-out"
  done
  rm -rf "$REPO" "$RESTIC_CACHE_DIR"
}

for size in $SIZES; do
  cleanup
  if [ "$RESTIC" = 1 ]; then restic_series "$size"; fi
  truncate -s $((size + 24))G "$IMG"
  mkfs.xfs -q -f -m reflink=1 "$IMG"
  mkdir -p "$MNT"
  mount -o loop "$IMG" "$MNT"
  D="$MNT/data"
  echo "== $size GiB image on XFS (reflink)"
  python3 "$TOOLS/mkdisk.py" "$SRC" --size-gib "$size" >/dev/null
  id=$("$BIN" --data-dir "$D" --json volume import "$SRC" --name v 2>/dev/null \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  rm -f "$SRC"
  path=$("$BIN" --data-dir "$D" volume path "$id" | tail -1)
  drop
  FIG[$size,full]=$(timed "$BIN" --data-dir "$D" --json snapshot create "$id" --name s0)
  echo "full snapshot (cold)        ${FIG[$size,full]} s"
  n=0
  for pat in scattered clustered; do
    for cache in warm cold; do
      n=$((n + 1))
      python3 "$TOOLS/mutate.py" "$path" "$pat" --seed "$n" >/dev/null
      if [ "$cache" = cold ]; then drop; else sync; cat "$path" >/dev/null; fi
      FIG[$size,$pat,$cache]=$(timed "$BIN" --data-dir "$D" --json snapshot create "$id" --name "s$n")
      echo "incr $pat ($cache)$(printf '%*s' $((13 - ${#pat} - ${#cache})) '') ${FIG[$size,$pat,$cache]} s"
    done
  done
  last=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshots"][0]["id"])' "$OUT")
  for cache in warm cold; do
    python3 "$TOOLS/mutate.py" "$path" scattered --seed 4242 >/dev/null
    if [ "$cache" = cold ]; then drop; else sync; cat "$path" >/dev/null; fi
    FIG[$size,rollback,$cache]=$(timed "$BIN" --data-dir "$D" --json snapshot rollback "$last")
    echo "roll back ($cache)            ${FIG[$size,rollback,$cache]} s"
  done
  echo "store: $(du -sh "$D/store" | cut -f1)"
done
rm -f "$OUT"

set -- $SIZES
if [ $# -eq 2 ]; then
  small=$1 big=$2
  echo "== ${big} GiB / ${small} GiB (target <= 1.5 for the incrementals)"
  for k in scattered,warm scattered,cold clustered,warm clustered,cold rollback,warm rollback,cold; do
    r=$(echo "scale=3; ${FIG[$big,$k]} / ${FIG[$small,$k]}" | bc)
    verdict=""
    case "$k" in
      rollback*) ;;
      *) verdict=$(echo "$r <= 1.5" | bc | sed 's/1/PASS/; s/0/MISS/') ;;
    esac
    printf '%-18s %6s  %s\n' "${k/,/ }" "$r" "$verdict"
  done
fi
if [ "$RESTIC" = 1 ]; then
  echo "== disksnap / restic: incrementals / incrementals, roll back / restore (target <= 0.1)"
  for size in $SIZES; do
    for k in scattered,warm scattered,cold clustered,warm clustered,cold rollback,warm rollback,cold; do
      r=$(echo "scale=3; ${FIG[$size,$k]} / ${FIG[$size,restic,$k]}" | bc)
      printf '%3s GiB %-16s %6s  %s\n' "$size" "${k/,/ }" "$r" "$(echo "$r <= 0.1" | bc | sed 's/1/PASS/; s/0/MISS/')"
    done
  done
fi
