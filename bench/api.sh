#!/usr/bin/env bash
# API-level benchmark: DescribeSnapshots through the QingCloud dialect on a store holding
# 100 000 snapshots (performance.md, last row). Builds, seeds a data dir, starts
# `disksnap serve` (release) on a free port, drives it with signed requests, prints PASS/MISS.
#   bench/api.sh [--runs 3] [--concurrency 1,4,16,64] [--secs 5] [--warmup 1]
#                [--snapshots 100000] [--volumes 1000] [--work DIR] [--no-build] [--reseed]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

build=1 reseed=0 runs=3 conc=1,4,16,64 secs=5 warmup=1 snapshots=100000 volumes=1000
work="$ROOT/bench-work/api"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --reseed) reseed=1 ;;
    --runs) runs=$2; shift ;;
    --concurrency) conc=$2; shift ;;
    --secs) secs=$2; shift ;;
    --warmup) warmup=$2; shift ;;
    --snapshots) snapshots=$2; shift ;;
    --volumes) volumes=$2; shift ;;
    --work) work=$2; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "api.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

cd "$ROOT"
if [ "$build" = 1 ]; then
  cargo build --release -p disksnap -p disksnap-apibench
fi
bin="$ROOT/target/release"
mkdir -p "$work"
data="$work/data-${snapshots}x${volumes}"
# The seed is deterministic: reuse it unless asked, or unless an older schema made it (the
# server migrates it on open, which is what an upgraded installation would do too).
if [ "$reseed" = 1 ] || [ ! -f "$data/queries.json" ]; then
  rm -rf "$data"
  "$bin/disksnap-apibench" seed "$data" --snapshots "$snapshots" --volumes "$volumes"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="$work/server.log"
# Production settings: the default log level (one info line per request), to a file.
"$bin/disksnap" --data-dir "$data" serve --listen "127.0.0.1:$port" 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT

{
  echo "disksnap API bench: DescribeSnapshots (QingCloud, signed), $snapshots snapshots over $volumes volumes,"
  echo "  $runs run(s) x concurrency $conc, ${secs} s per step after ${warmup} s warm-up, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "  $(nproc) cores shared by client (1 thread) and server; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "  disksnap $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo '+dirty')"
  echo
  "$bin/disksnap-apibench" load "$data" --addr "127.0.0.1:$port" --server-pid "$server" \
    --concurrency "$conc" --secs "$secs" --warmup "$warmup" --runs "$runs" --out "$work/results.json"
} | tee "$work/results.txt"
