#!/bin/bash
# The pixel loops' AVX2 paths against the SSE2 and scalar ones they stand for: `trueshot make`
# renders the same photos and looks twice, once as the CPU allows and once with
# TRUESHOT_NO_AVX2=1 (ts_cpu_avx2), and every file written (headshots as PNG, the report's edit
# maps and befores) must be the same bytes, and every identity reading the same number. On a CPU
# without AVX2 both runs take the same paths: the test is skipped (exit 77) rather than passed.
#   tests/test_simd_paths.sh BUILD/cli/trueshot REPO
set -u
ts=$1
repo=$2
photos=${TRUESHOT_CACHE:-$HOME/.cache/trueshot}/photos
if ! grep -qw avx2 /proc/cpuinfo; then
    echo "this CPU has no AVX2: both runs would take the same paths"
    exit 77
fi
tmp=$(mktemp -d)
mkdir -p "$tmp/avx2" "$tmp/plain"
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
# a radial, a gradient and a blurred backdrop; square, 4x5, 2x3 and tight crops; a small face
# (messi5) and a 3-MP photo (franck) whose canvases shrink it
styles=(--style creative --style team-directory --style dating-social)
for photo in "$repo/samples/sample.jpg" "$photos/franck_02159.jpg" "$photos/messi5.jpg"; do
    name=$(basename "$photo" .jpg)
    for mode in avx2 plain; do
        env=()
        [ "$mode" = plain ] && env=(TRUESHOT_NO_AVX2=1)
        if ! env "${env[@]}" "$ts" make "$photo" -o "$tmp/$mode/$name" "${styles[@]}" \
            --format png >"$tmp/$mode-$name.log" 2>&1; then
            echo "FAIL $name ($mode): make failed: $(tail -3 "$tmp/$mode-$name.log")"
            fail=$((fail + 1))
            continue 2
        fi
    done
    n=0
    for f in "$tmp/avx2/$name"/*.png "$tmp/avx2/$name"/report-files/*; do
        g="$tmp/plain/$name/${f#"$tmp/avx2/$name/"}"
        n=$((n + 1))
        if cmp -s "$f" "$g"; then
            pass=$((pass + 1))
        else
            echo "FAIL $name: $(basename "$f") differs between the AVX2 and the plain paths"
            fail=$((fail + 1))
        fi
    done
    ids() { jq -c '[.outputs[].identity]' "$1/report.json"; }
    if [ "$(ids "$tmp/avx2/$name")" = "$(ids "$tmp/plain/$name")" ] && [ "$n" -ge 12 ]; then
        pass=$((pass + 1))
    else
        echo "FAIL $name: identity readings differ, or too few files ($n)"
        fail=$((fail + 1))
    fi
    echo "$name: $n files compared"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
