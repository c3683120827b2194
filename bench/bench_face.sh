#!/bin/bash
# Face analysis on a 12-MP JPEG made by upscaling a real photo (franck_02159.jpg, 720x576, to
# 4032x3226): decode + detection + mesh + pose, median and ratio to a plain libvips full decode
# of the same file, and peak memory. Then the same for a 60-MP image.
#   bench/bench_face.sh [RUNS]      (default 15; build first: make build)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-15}
CACHE=${TRUESHOT_CACHE:-$HOME/.cache/trueshot}
B=${BUILD:-build}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
vips resize "$CACHE/photos/franck_02159.jpg" "$OUT/12mp.jpg[Q=90]" 5.6
vips resize "$CACHE/photos/franck_02159.jpg" "$OUT/60mp.jpg[Q=90]" 12.5
"$B/bench/bench_face" "$OUT/12mp.jpg" "$RUNS"
"$B/bench/bench_face" "$OUT/60mp.jpg" 3
