#!/usr/bin/env bash
# Real-client integration tests: each suite (a requirements-<suite>.txt here) gets its own venv
# with the vendor's pinned SDKs from PyPI, then pytest runs test_<suite>*.py against the real
# `disksnap serve` (conftest.py starts it).
#
#   tests/python/run.sh                 # every suite
#   tests/python/run.sh qingcloud -k tag   # one suite, pytest arguments after it
#   DISKSNAP_BIN=target/debug/disksnap tests/python/run.sh qingcloud
#
# The back ends the servers run on (conftest.py; scripts/test.sh runs each of these passes):
#   DISKSNAP_PYTEST_META=pg      metadata in a fresh PostgreSQL database per server, on the
#                                server of DISKSNAP_TEST_PG_URL (scripts/pg.sh start; eval "$(scripts/pg.sh env)")
#   DISKSNAP_PYTEST_STORE=s3     packs and indexes in the bucket of DISKSNAP_TEST_S3_* under a
#                                prefix per server (scripts/rgw.sh start; eval "$(scripts/rgw.sh env)")
#   DISKSNAP_PYTEST_CLUSTER=3    each server is three `disksnap serve` nodes on PostgreSQL + S3
#                                (implies both) behind cluster_proxy.py, which sends each request
#                                to a node chosen at random; single-server tests are skipped there
#   DISKSNAP_KEEP_TEST_DIRS=1    keep each server's dir (logs, proxy.log), S3 prefix and database
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export DISKSNAP_BIN=${DISKSNAP_BIN:-$root/target/release/disksnap}
[ -x "$DISKSNAP_BIN" ] || { echo "no disksnap binary at $DISKSNAP_BIN: run cargo build --release first" >&2; exit 1; }

if [ $# -gt 0 ] && [ -f "$here/requirements-$1.txt" ]; then
    suites=("$1"); shift
else
    suites=()
    for f in "$here"/requirements-*.txt; do s=${f##*/requirements-}; suites+=("${s%.txt}"); done
fi

for s in "${suites[@]}"; do
    venv="$root/.venv/$s"
    stamp="$venv/.installed"
    if [ ! -f "$stamp" ] || ! cmp -s "$stamp" "$here/requirements-$s.txt"; then
        echo "== $s: installing client SDKs into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements-$s.txt"
        cp "$here/requirements-$s.txt" "$stamp"
    fi
    echo "== $s: running against $DISKSNAP_BIN"
    # test_<suite>.py and test_<suite>_*.py: `tencent` must not pick up `tencent3`'s file.
    files=("test_$s.py")
    for f in "$here/test_${s}_"*.py; do [ -e "$f" ] && files+=("${f##*/}"); done
    (cd "$here" && "$venv/bin/python" -m pytest -q -p no:cacheprovider "${files[@]}" "$@")
done
