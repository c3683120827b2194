#!/bin/bash
# Inference speed of every model: ours (XNNPACK runtime, 1 thread) against real TFLite
# (tfjs-tflite 0.0.1-alpha.10 WASM with SIMD, 1 thread), both measured in this run, as medians of
# N runs after warm-up. Models tfjs-tflite cannot run (MediaPipe custom ops) are timed against
# LiteRT.js instead, and said so. Then the peak memory of loading all six models.
#   bench/bench_nn.sh [RUNS]      (default 30; build first: make build)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-30}
CACHE=${TRUESHOT_CACHE:-$HOME/.cache/trueshot}
B=${BUILD:-build}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
json() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }

printf '%-38s %10s %10s %8s  %s\n' model "ours ms" "ref ms" "speedup" reference
for m in face_detection_short_range face_detection_full_range face_landmark \
         face_landmark_with_attention selfie_segmentation selfie_segmentation_landscape; do
    f="$CACHE/models/$m.tflite"
    ours=$("$B/tools/nn_run" "$f" "$OUT" --bench "$RUNS" --threads 1 | json median_ms)
    engine=tfjs
    if ! ref=$(node tests/ref/run_tflite.mjs "$f" --bench "$RUNS" 2>/dev/null | json median_ms) || [ -z "$ref" ]; then
        engine=litert
        ref=$(node tests/ref/run_tflite.mjs "$f" --bench "$RUNS" --engine litert 2>/dev/null | json median_ms || true)
    fi
    if [ -z "$ref" ] && [ "$m" = face_landmark_with_attention ]; then
        # No reference runs MediaPipe's custom ops; time real TFLite on the model's trunk (the
        # 192 operators before the first custom op). The whole model costs more than that, so
        # this ratio understates our lead.
        "$B/tools/nn_cut" "$f" 192 "$OUT/trunk.tflite" 186,191,193,195,35
        ref=$(node tests/ref/run_tflite.mjs "$OUT/trunk.tflite" --bench "$RUNS" 2>/dev/null | json median_ms || true)
        engine="tfjs, trunk only (ops 0-191)"
    fi
    if [ -z "$ref" ]; then
        printf '%-38s %10.3f %10s %8s  %s\n' "$m" "$ours" "-" "-" "no reference can run it"
    else
        printf '%-38s %10.3f %10.3f %7.1fx  %s\n' "$m" "$ours" "$ref" \
            "$(awk -v a="$ref" -v b="$ours" 'BEGIN{print a/b}')" "$engine"
    fi
done
echo
echo "memory: $("$B/bench/bench_load")"
