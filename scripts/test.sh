#!/usr/bin/env bash
# Run every test of disksnap on a fresh machine: installs what the tests need, then runs the
# Rust unit and integration tests (which drive the real binary on real files).
#
#   scripts/test.sh            # everything
#   scripts/test.sh -- NAME    # only tests whose name contains NAME
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v qemu-img >/dev/null || need_apt+=(qemu-utils)
# mkfs.xfs: crates/service/tests/points.rs loop-mounts an XFS (reflink) for instant points
command -v mkfs.xfs >/dev/null || need_apt+=(xfsprogs)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "installing: ${need_apt[*]}"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

# Formatting (rustfmt.toml) where the toolchain has rustfmt.
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --all -- --check
fi

# The dependency-direction check: dialects and the engine must not grow arrows upward.
scripts/check-layers.sh

# Throwaway servers this run starts (below), stopped however it ends.
stops=()
trap 'for c in "${stops[@]}"; do $c || true; done' EXIT

# Release build: the end-to-end tests move gigabytes and the benchmark needs it anyway.
cargo build --release --locked

# A real S3 for the S3 backend's tests: a one-node Ceph RGW on 127.0.0.1 (installed with apt
# when missing), stopped however this script ends. DISKSNAP_TEST_S3=skip runs without it (the
# S3 tests then print SKIP lines); an S3 already exported in DISKSNAP_TEST_S3_ENDPOINT is used as
# it is.
if [ "${DISKSNAP_TEST_S3:-}" != skip ] && [ -z "${DISKSNAP_TEST_S3_ENDPOINT:-}" ]; then
    # One cluster per checkout (directory and ports from its path), so test runs of two
    # checkouts on one machine neither share nor stop each other's RGW.
    slot=$(( $(pwd | cksum | cut -d' ' -f1) % 2000 ))
    export DISKSNAP_RGW_DIR=${DISKSNAP_RGW_DIR:-/tmp/disksnap-rgw-test-$slot}
    export DISKSNAP_RGW_PORT=${DISKSNAP_RGW_PORT:-$((20000 + slot))}
    export DISKSNAP_RGW_MON_PORT=${DISKSNAP_RGW_MON_PORT:-$((22000 + 2 * slot))}
    # This checkout's cluster: reused if a killed run left it up, stopped when this run ends.
    stops+=("scripts/rgw.sh stop")
    scripts/rgw.sh start
    eval "$(scripts/rgw.sh env)"
fi

# A throwaway PostgreSQL for the metadata tests on PostgreSQL (crates/meta runs every test on
# SQLite and on it) and the binary's end-to-end run on it: the machine's postgresql (installed
# with apt when missing) in a fresh cluster on 127.0.0.1, stopped however this script ends.
# DISKSNAP_TEST_PG=skip runs without it (the PostgreSQL passes print SKIP lines); a server
# already exported in DISKSNAP_TEST_PG_URL is used as it is (each test makes its own database).
if [ "${DISKSNAP_TEST_PG:-}" != skip ] && [ -z "${DISKSNAP_TEST_PG_URL:-}" ]; then
    # Per checkout, as the RGW (ports above the RGW's monitor range).
    pg_slot=$(( $(pwd | cksum | cut -d' ' -f1) % 2000 ))
    export DISKSNAP_PG_DIR=${DISKSNAP_PG_DIR:-/tmp/disksnap-pg-test-$pg_slot}
    export DISKSNAP_PG_PORT=${DISKSNAP_PG_PORT:-$((26000 + pg_slot))}
    stops+=("scripts/pg.sh stop")
    scripts/pg.sh start
    eval "$(scripts/pg.sh env)"
fi

cargo test --release --locked --workspace "$@"

# Crash trials, a short soak and the disk-full test on the release binary (bench/RELIABILITY.md).
scripts/reliability.sh

# A short fuzzing pass over the parsers and verifiers (fuzz/README.md); skipped, with a message,
# where the nightly toolchain is missing.
scripts/fuzz-smoke.sh

# The vendors' own SDKs and CLIs against the real server (one venv per dialect, pinned).
tests/python/run.sh

# Every suite again with the server's metadata on PostgreSQL (a database per server on the
# throwaway one above) and its store in the test RGW (a key prefix per server), then every suite
# once more on a cluster of three nodes on them, behind a proxy that sends each request to a
# node chosen at random (tests/python/conftest.py, cluster_proxy.py). About 4 minutes each.
if [ -n "${DISKSNAP_TEST_PG_URL:-}" ] && [ "${DISKSNAP_TEST_PG:-}" != skip ] \
    && [ -n "${DISKSNAP_TEST_S3_ENDPOINT:-}" ] && [ "${DISKSNAP_TEST_S3:-}" != skip ]; then
    DISKSNAP_PYTEST_META=pg DISKSNAP_PYTEST_STORE=s3 tests/python/run.sh
    DISKSNAP_PYTEST_CLUSTER=3 tests/python/run.sh
elif [ -n "${DISKSNAP_TEST_PG_URL:-}" ] && [ "${DISKSNAP_TEST_PG:-}" != skip ]; then
    echo "SKIP the Python suites on PostgreSQL + S3 and in a cluster: no test RGW (DISKSNAP_TEST_S3=skip); metadata on PostgreSQL only" >&2
    DISKSNAP_PYTEST_META=pg tests/python/run.sh
else
    echo "SKIP the Python suites on PostgreSQL + S3 and in a cluster: no test PostgreSQL (DISKSNAP_TEST_PG=skip)" >&2
fi

# The web console in headless Chromium (installs chromium, chromium-driver and selenium).
tests/browser/run.sh
