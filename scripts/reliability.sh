#!/usr/bin/env bash
# The CI slice of the reliability campaign (bench/RELIABILITY.md): 20 crash trials (kill -9 at a
# random moment of each job kind, through the CLI and the server), a 60 s soak with 8 clients,
# and the disk-full test (needs root for its loop mount; skipped otherwise). Uses the release
# binary scripts/test.sh has just built. The full-size runs are
#   bench/crash_trials.py --trials 100        bench/soak.py --clients 32 --seconds 600
#
#   scripts/reliability.sh [--trials N] [--soak-seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."

trials=20
soak_seconds=60
while [ $# -gt 0 ]; do
    case "$1" in
        --trials) trials="$2"; shift 2 ;;
        --soak-seconds) soak_seconds="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

BIN="$PWD/target/release/disksnap"
[ -x "$BIN" ] || cargo build --release --locked
WORK="$(mktemp -d /tmp/disksnap-reliability.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

t0=$SECONDS
python3 bench/crash_trials.py --disksnap "$BIN" --trials "$trials" --data-mib 32 --work "$WORK/crash"
t1=$SECONDS
python3 bench/soak.py --disksnap "$BIN" --clients 8 --seconds "$soak_seconds" --volumes 6 --work "$WORK/soak"
t2=$SECONDS
if [ "$(id -u)" = 0 ]; then
    python3 bench/diskfull.py --disksnap "$BIN" --work "$WORK/diskfull"
elif sudo -n true 2>/dev/null; then
    sudo -n python3 bench/diskfull.py --disksnap "$BIN" --work "$WORK/diskfull"
else
    echo "disk-full test skipped: it needs root (or password-less sudo) for mount -o loop"
fi
t3=$SECONDS
echo "reliability: crash trials $((t1 - t0)) s, soak $((t2 - t1)) s, disk full $((t3 - t2)) s"
