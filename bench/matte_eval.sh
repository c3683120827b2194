#!/bin/bash
# Matte evaluation by composition (issue 4): keys the blue-backdrop frames franck_*.jpg into a
# true alpha and foreground, composites them over five backgrounds, runs the real matte
# (whole photo) on each and prints SAD / MSE / gradient error (Composition-1k), the variation
# across backgrounds and the halo figure (CIEDE2000 over mid grey). See docs/matte-evaluation.md.
#   bench/matte_eval.sh [OUT_DIR]     (build first: make build; OUT_DIR keeps pictures to look at)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${TRUESHOT_CACHE:-$HOME/.cache/trueshot}
B=${BUILD:-build}
if [ $# -ge 1 ]; then
    exec "$B/bench/matte_eval" --out "$1" "$CACHE/photos"
fi
exec "$B/bench/matte_eval" "$CACHE/photos"
