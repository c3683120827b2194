#!/bin/bash
# Builds and runs trueshot's whole test suite; `make test` runs this after `scripts/setup.sh --test`.
#
#   1. release build in build/, then `meson test -C build`
#   2. sanitizer build in build-asan/ (clang, ASan + UBSan, debugoptimized), then its meson tests
#   3. every libFuzzer target build-asan/fuzz/fuzz_* for TS_FUZZ_SECONDS (default 20) seconds,
#      seeded from fuzz/corpus/<name>/ (with or without the fuzz_ prefix) and $TRUESHOT_CACHE/models/,
#      plus any libFuzzer flags in fuzz/<name>.options
#   4. make format-check
#
# Each meson test counts as one test (from meson's own Ok/Fail summary), so does each fuzz target
# and the format check; a build that fails counts as one failure. The last line of output is
# exactly "N passed, N failed"; the exit code is non-zero when anything failed.
#
# Environment: TRUESHOT_CACHE (models and photos, default ~/.cache/trueshot), TS_FUZZ_SECONDS.
# If tests/lsan.supp exists it is used as LeakSanitizer's suppression file.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
root=$PWD

if [ -z "${HOME:-}" ]; then HOME=$(getent passwd "$(id -u)" | cut -d: -f6); fi
export TRUESHOT_CACHE=${TRUESHOT_CACHE:-$HOME/.cache/trueshot}
fuzz_seconds=${TS_FUZZ_SECONDS:-20}
# meson 1.0 sets no sanitizer options: make every report a failure (UBSan only warns by default)
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_summary=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_summary=1:print_stacktrace=1}
if [ -f "$root/tests/lsan.supp" ]; then
    export LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$root/tests/lsan.supp:print_suppressions=0
fi

passed=0 failed=0 skipped=0
failures=()
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT

step() { printf '\n=== trueshot suite: %s\n' "$*"; }
ok() { passed=$((passed + 1)); }
bad() {
    failed=$((failed + 1))
    failures+=("$1")
    printf 'FAILED: %s\n' "$1"
}

# configure DIR LABEL MESON-ARGS...: meson setup DIR unless already configured, then ninja
configure_and_build() {
    local dir=$1 label=$2
    shift 2
    if [ ! -f "$dir/build.ninja" ]; then
        rm -rf "$dir"
        if ! meson setup "$dir" "$@"; then
            bad "configure ($label)"
            return 1
        fi
    fi
    if ! ninja -C "$dir"; then
        bad "build ($label)"
        return 1
    fi
}

# summary_count LOG KEY: the number after "KEY:" in meson test's last summary block
summary_count() {
    awk -v k="$2:" 'index($0, k) == 1 { n = $NF } END { print n + 0 }' "$1"
}

# meson_tests DIR LABEL [ARGS...]: run meson's tests and add its summary to the totals
meson_tests() {
    local dir=$1 label=$2 log=$logdir/meson-$2.log rc
    shift 2
    meson test -C "$dir" --no-rebuild --print-errorlogs "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    local n_ok n_xfail n_fail n_xpass n_skip n_timeout
    n_ok=$(summary_count "$log" 'Ok')
    n_xfail=$(summary_count "$log" 'Expected Fail')
    n_fail=$(summary_count "$log" 'Fail')
    n_xpass=$(summary_count "$log" 'Unexpected Pass')
    n_skip=$(summary_count "$log" 'Skipped')
    n_timeout=$(summary_count "$log" 'Timeout')
    passed=$((passed + n_ok + n_xfail))
    skipped=$((skipped + n_skip))
    local bad_n=$((n_fail + n_xpass + n_timeout))
    if [ "$bad_n" -gt 0 ]; then
        failed=$((failed + bad_n))
        failures+=("meson test ($label): $bad_n")
    elif [ "$rc" -ne 0 ]; then
        bad "meson test ($label) exited with $rc"
    fi
}

# ---- 1. release build ---------------------------------------------------------------------------
step "release build (build/)"
if configure_and_build build release --buildtype=release; then
    step "meson test (release)"
    meson_tests build release
fi

# ---- 2. sanitizer build -------------------------------------------------------------------------
step "sanitizer build (build-asan/: clang, address + undefined)"
if CC=clang configure_and_build build-asan asan -Db_sanitize=address,undefined -Db_lundef=false \
    --buildtype=debugoptimized; then
    step "meson test (asan)"
    meson_tests build-asan asan --timeout-multiplier 3
fi

# ---- 3. fuzz ------------------------------------------------------------------------------------
shopt -s nullglob
fuzzers=()
for exe in build-asan/fuzz/fuzz_*; do
    name=${exe##*/}
    [ -f "$exe" ] && [ -x "$exe" ] && [[ $name != *.* ]] && fuzzers+=("$exe")
done
if [ ${#fuzzers[@]} -eq 0 ]; then
    step "fuzz: no build-asan/fuzz/fuzz_* targets"
fi
for exe in "${fuzzers[@]}"; do
    name=${exe##*/}
    step "fuzz $name for ${fuzz_seconds}s"
    seeds=()
    for d in "fuzz/corpus/$name" "fuzz/corpus/${name#fuzz_}"; do
        if [ -d "$d" ]; then seeds+=("$d"); fi
    done
    if [ -d "$TRUESHOT_CACHE/models" ]; then seeds+=("$TRUESHOT_CACHE/models"); fi
    # optional extra libFuzzer flags (e.g. -max_len=4000000), whitespace-separated, # comments
    extra=()
    if [ -f "fuzz/$name.options" ]; then
        read -r -a extra < <(sed 's/#.*//' "fuzz/$name.options" | tr '\n' ' ')
    fi
    run=build-asan/fuzz-run/$name
    rm -rf "$run"
    mkdir -p "$run/corpus" "$run/artifacts"
    # the first directory collects new inputs; the seed directories are only read
    if "$exe" -max_total_time="$fuzz_seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$run/artifacts/" "${extra[@]}" "$run/corpus" "${seeds[@]}" >"$run/log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units)' "$run/log" || true
        ok
    else
        tail -n 40 "$run/log"
        bad "fuzz $name (log: $run/log; crash inputs: $run/artifacts/)"
    fi
done

# ---- 4. format ----------------------------------------------------------------------------------
step "make format-check"
if make --no-print-directory format-check; then ok; else bad "format-check"; fi

# ---- summary ------------------------------------------------------------------------------------
echo
for f in "${failures[@]}"; do printf 'failed: %s\n' "$f"; done
if [ "$skipped" -gt 0 ]; then printf 'skipped: %d meson test(s)\n' "$skipped"; fi
printf '%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
