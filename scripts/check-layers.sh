#!/usr/bin/env bash
# Keep the arrows of shared/design/architecture.md pointing down: the engine and the metadata
# store depend on no other disksnap crate, the service not on the binary, api-common or a dialect.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
deps() { cargo tree --locked -p "$1" -e normal --prefix none --depth 1 2>/dev/null | awk 'NR>1{print $1}' | sort -u; }
check() {
    local crate=$1; shift
    for forbidden in "$@"; do
        if deps "$crate" | grep -qx "$forbidden"; then
            echo "layering: $crate must not depend on $forbidden"; fail=1
        fi
    done
}
check disksnap-engine disksnap-meta disksnap-service disksnap
check disksnap-meta disksnap-engine disksnap-service disksnap
check disksnap-service disksnap disksnap-api-common $(cargo metadata --no-deps --format-version 1 --locked 2>/dev/null | python3 -c 'import json,sys; print(" ".join(p["name"] for p in json.load(sys.stdin)["packages"] if p["name"].startswith("disksnap-dialect-")))')
# api-common and every dialect: only the service and api-common below them, never each other.
check disksnap-api-common disksnap-engine disksnap-meta disksnap
dialects=$(cargo metadata --no-deps --format-version 1 --locked 2>/dev/null | python3 -c 'import json,sys; print(" ".join(p["name"] for p in json.load(sys.stdin)["packages"] if p["name"].startswith("disksnap-dialect-")))')
for d in $dialects; do
    check "$d" disksnap-engine disksnap-meta disksnap $(echo $dialects | tr ' ' '\n' | grep -vx "$d")
done
# The console sees only the service: sign-in and id spellings are handed to it by the binary.
check disksnap-console disksnap-engine disksnap-meta disksnap disksnap-api-common $dialects
[ $fail = 0 ] && echo "layering: ok"
exit $fail
