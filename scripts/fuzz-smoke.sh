#!/usr/bin/env bash
# A short fuzzing pass (part of scripts/test.sh): builds the cargo-fuzz targets of fuzz/, replays
# every saved crash input under fuzz/regressions/<target>/ (each must now run clean), then fuzzes
# each target for a few seconds from its corpus. Any crash, panic, timeout or OOM fails.
#
#   scripts/fuzz-smoke.sh                # every target, FUZZ_SECONDS (default 10) each
#   FUZZ_SECONDS=600 scripts/fuzz-smoke.sh engine_index   # a long run of one target
#
# Needs the nightly toolchain (cargo-fuzz builds with -Z flags); cargo-fuzz is installed from
# crates.io when missing. Without nightly the pass is skipped with a message, not failed: this
# machine cannot download toolchains.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-10}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz-smoke: SKIPPED: no nightly toolchain (cargo +nightly); install it with" \
        "'rustup toolchain install nightly' where toolchains can be downloaded"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

cd fuzz
# -s none: the fuzzed code is safe Rust (the C libraries are not instrumented by cargo-fuzz's
# sanitizer anyway); panics, overflow checks and debug assertions are what find bugs here, and
# without ASan the build is faster and each run executes about twice the inputs.
FLAGS=(-s none)
cargo +nightly fuzz build "${FLAGS[@]}"

if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi
failed=()
for t in "${targets[@]}"; do
    # Replay: each saved input runs once through the target.
    if [ -d "regressions/$t" ] && [ -n "$(ls -A "regressions/$t")" ]; then
        if ! cargo +nightly fuzz run "${FLAGS[@]}" "$t" regressions/"$t"/* >"target/smoke-$t-replay.log" 2>&1; then
            echo "fuzz-smoke: $t: a regression input fails again:"
            grep -m3 -A2 "panicked at" "target/smoke-$t-replay.log" || true
            tail -30 "target/smoke-$t-replay.log"
            failed+=("$t (regression)")
            continue
        fi
    fi
    mkdir -p "corpus/$t"
    dict=()
    [ -f "dicts/$t.dict" ] && dict=(-dict="dicts/$t.dict")
    log="target/smoke-$t.log"
    if cargo +nightly fuzz run "${FLAGS[@]}" "$t" "corpus/$t" -- "${dict[@]}" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1; then
        echo "fuzz-smoke: $t: clean, $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -1)"
    else
        echo "fuzz-smoke: $t: FAILED (artifact under fuzz/artifacts/$t/):"
        # The panic's own line first: the tail alone is mostly the input's Debug dump.
        grep -m3 -A2 "panicked at" "$log" || true
        tail -40 "$log"
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz-smoke: failed: ${failed[*]}"
    exit 1
fi
echo "fuzz-smoke: ${#targets[@]} targets clean"
