#!/usr/bin/env bash
# API-level benchmark: DescribeSnapshots on a store holding 100 000 snapshots (performance.md,
# last row; issue 16), through every dialect: QingCloud, Aliyun, Tencent v2 and 3.0, Cinder
# snapshots/detail, EVS cloudsnapshots/detail. Builds, seeds a data dir, starts `disksnap serve`
# (release) on a free port, drives it with signed requests, and prints per dialect and
# concurrency req/s, p50, p99 and server CPU (medians of the runs) and a PASS/MISS line per target
# (QingCloud: >= 5000 req/s with p99 <= 5 ms; every other dialect: >= 4000 req/s, p99 <= 6 ms;
# the server's peak RSS over the whole run <= 150 MiB).
#   bench/api.sh [--runs 3] [--concurrency 1,4,16,64] [--secs 5] [--warmup 1]
#                [--dialects qingcloud,aliyun,tencent,tencent3,cinder,evs]
#                [--snapshots 100000] [--volumes 1000] [--work DIR] [--no-build] [--reseed]
#                [--meta sqlite|pg] [--writes on|off|both] [--write-rate 20]
# --writes: each step without, with (or both: without, then with) a stream of signed QingCloud
# CreateSnapshots/DeleteSnapshots on the seed's stream volumes at --write-rate writes/s on one
# more connection (crates/apibench/src/writes.rs); its p99 must stay <= 50 ms and every list
# answer exact (counted against what the stream had made at that instant).
# --meta pg keeps the metadata on PostgreSQL (issue 13: the same targets as on SQLite): a
# throwaway server (scripts/pg.sh, its own directory and port under the work dir) is started,
# seeded afresh, and stopped at the end.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

build=1 reseed=0 meta=sqlite writes=both write_rate=20 runs=3 conc=1,4,16,64 secs=5 warmup=1 snapshots=100000 volumes=1000
dialects=qingcloud,aliyun,tencent,tencent3,cinder,evs
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
    --dialects) dialects=$2; shift ;;
    --work) work=$2; shift ;;
    --meta) meta=$2; shift ;;
    --writes) writes=$2; shift ;;
    --write-rate) write_rate=$2; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
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
stop_pg=:
case "$meta" in
  sqlite) ;;
  pg)
    export DISKSNAP_PG_DIR="$work/pg" DISKSNAP_PG_PORT=${DISKSNAP_PG_PORT:-$((27000 + RANDOM % 1000))}
    "$ROOT/scripts/pg.sh" start
    stop_pg='"$ROOT/scripts/pg.sh" stop'
    trap 'eval "$stop_pg"' EXIT
    url=$("$ROOT/scripts/pg.sh" env | sed -n 's/^export DISKSNAP_TEST_PG_URL=//p')
    data="$work/data-pg-${snapshots}x${volumes}"
    # every pg.sh start is an empty cluster: seed it (the data dir holds only the config and the
    # request mix)
    rm -rf "$data"
    "$bin/disksnap-apibench" seed "$data" --snapshots "$snapshots" --volumes "$volumes" --database-url "$url"
    ;;
  *) echo "api.sh: --meta is sqlite or pg, not $meta" >&2; exit 2 ;;
esac
# The seed is deterministic: reuse it unless asked, or unless an older schema made it (the
# server migrates it on open, which is what an upgraded installation would do too). A seed made
# before the other dialects were measured lacks their keys and queries, one made before the
# write stream its (small) volumes: seeded again.
if [ "$reseed" = 1 ] || [ ! -f "$data/queries.json" ] || ! grep -q '"volume_bytes"' "$data/queries.json"; then
  rm -rf "$data"
  "$bin/disksnap-apibench" seed "$data" --snapshots "$snapshots" --volumes "$volumes"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="$work/server.log"
# Production settings: the default log level (one info line per request), to a file.
"$bin/disksnap" --data-dir "$data" serve --listen "127.0.0.1:$port" 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; eval "$stop_pg"' EXIT

{
  echo "disksnap API bench: DescribeSnapshots (signed), $snapshots snapshots over $volumes volumes, metadata on $meta, dialects $dialects,"
  echo "  write stream: $writes ($write_rate QingCloud CreateSnapshots/DeleteSnapshots per s on one more connection),"
  echo "  $runs run(s) x concurrency $conc, ${secs} s per step after ${warmup} s warm-up, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "  $(nproc) cores shared by client (1 thread) and server; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "  disksnap $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo '+dirty')"
  echo
  for d in ${dialects//,/ }; do
    case "$d" in
      qingcloud) target="--rps 5000 --p99-ms 5" ;;
      *) target="--rps 4000 --p99-ms 6" ;;
    esac
    echo "=== $d (load average now: $(cut -d' ' -f1-3 /proc/loadavg); server RSS now: $(awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$server/status"))"
    # shellcheck disable=SC2086
    "$bin/disksnap-apibench" load "$data" --addr "127.0.0.1:$port" --server-pid "$server" --dialect "$d" $target \
      --concurrency "$conc" --secs "$secs" --warmup "$warmup" --runs "$runs" --out "$work/results-$d.json" \
      --writes "$writes" --write-rate "$write_rate"
    echo
  done
  # The server's memory: now (after every dialect's runs) and its peak (VmHWM) under the load.
  rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$server/status")
  hwm=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$server/status")
  echo "summary (medians of $runs run(s); server CPU in % of one core; server RSS $rss MiB after the runs, peak $hwm MiB)"
  python3 - "$work" "$hwm" ${dialects//,/ } <<'PY'
import json, sys
work, hwm, dialects = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
print(f"{'dialect':<10} {'conc':>4} {'writes':>6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'server CPU':>10} {'write p99 ms':>12}")
verdicts = []
for d in dialects:
    doc = json.load(open(f"{work}/results-{d}.json"))
    # a step with no answer inside its window has no latency (null in the JSON)
    num = lambda x, spec: "-" if x is None else format(x, spec)
    for s in doc["medians"]:
        writes = "on" if s.get("writes") else "off"
        print(f"{d:<10} {s['concurrency']:>4} {writes:>6} {num(s['rps'], '.0f'):>7} {num(s['p50_ms'], '.2f'):>7} "
              f"{num(s['p99_ms'], '.2f'):>7} {num(s['server_cpu'] * 100, '.0f'):>9}% {num(s.get('write_p99_ms'), '.2f'):>12}")
    verdicts.append(doc["verdicts"])
print()
for v in verdicts:
    for line in v:
        print(line)
print(f"{'PASS' if hwm <= 150 else 'MISS'} server peak RSS {hwm:.1f} MiB over the whole run (target <= 150 MiB)")
PY
} | tee "$work/results.txt"
