#!/usr/bin/env bash
# The web console in a real browser: headless Chromium (Debian's chromium + chromium-driver,
# installed here when missing) driven by selenium from a venv, against the real release
# server on a temp data dir (tests/python/conftest.py's Server starts it).
#
#   tests/browser/run.sh               # the whole suite
#   tests/browser/run.sh -k rollback   # pytest arguments
#   DISKSNAP_BROWSER_SHOTS=DIR tests/browser/run.sh   # also save screenshots of the pages
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export DISKSNAP_BIN=${DISKSNAP_BIN:-$root/target/release/disksnap}
[ -x "$DISKSNAP_BIN" ] || { echo "no disksnap binary at $DISKSNAP_BIN: run cargo build --release first" >&2; exit 1; }

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "== browser: installing chromium and chromium-driver"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver
fi

venv="$root/.venv/browser"
stamp="$venv/.installed"
if [ ! -f "$stamp" ] || ! cmp -s "$stamp" "$here/requirements.txt"; then
    echo "== browser: installing selenium into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi
echo "== browser: running against $DISKSNAP_BIN"
cd "$here" && "$venv/bin/python" -m pytest -q -p no:cacheprovider test_console.py "$@"
