#!/bin/bash
# The trueshot command as a person meets it: help, version, the demo on the bundled sample, and
# a distinct exit code with a one-line message for each kind of bad input.
#   tests/test_cli.sh BUILD/cli/trueshot REPO
set -u
ts=$1
repo=$2
photos=${TRUESHOT_CACHE:-$HOME/.cache/trueshot}/photos
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() { # check NAME EXPECTED_RC CMD...
    local name=$1 want=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $name: exit $rc, expected $want; stderr: $(head -c 300 "$tmp/err")"
    fi
}
one_line_err() { # the message is exactly one line and names the problem
    local name=$1 pattern=$2
    if [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "$pattern" "$tmp/err"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $name: stderr was: $(cat "$tmp/err")"
    fi
}

check help 0 "$ts" --help
grep -q "exit codes" "$tmp/out" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL help text"; }
check version 0 "$ts" --version
grep -q "^trueshot [0-9]" "$tmp/out" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL version"; }
check usage 2 "$ts"
check unknown-command 2 "$ts" frobnicate
one_line_err unknown-command "unknown command"

check missing-file 3 "$ts" demo "$tmp/nope.jpg" -o "$tmp/o"
one_line_err missing-file "nope.jpg"
echo "not a photo" >"$tmp/notes.jpg"
check not-an-image 4 "$ts" demo "$tmp/notes.jpg" -o "$tmp/o"
one_line_err not-an-image "not an image"
check no-face 6 "$ts" demo "$photos/baboon.jpg" -o "$tmp/o"
one_line_err no-face "no face"
check no-models 7 env TRUESHOT_MODELS="$tmp/empty" "$ts" demo "$repo/samples/sample.jpg" -o "$tmp/o"
check unwritable 8 "$ts" demo "$repo/samples/sample.jpg" -o /proc/trueshot-cannot-write

# The main job on the bundled sample: two JPEGs, the headshot 800x800, no temporary left over,
# and the input untouched.
before=$(sha256sum "$repo/samples/sample.jpg")
check demo 0 "$ts" demo "$repo/samples/sample.jpg" -o "$tmp/out-demo"
size=$(vipsheader -f width "$tmp/out-demo/headshot.jpg" 2>/dev/null)x$(vipsheader -f height "$tmp/out-demo/headshot.jpg" 2>/dev/null)
[ "$size" = 800x800 ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL headshot size $size"; }
vipsheader "$tmp/out-demo/analysis.jpg" >/dev/null 2>&1 && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL analysis.jpg"; }
[ "$(ls "$tmp/out-demo" | wc -l)" -eq 2 ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL leftover files: $(ls "$tmp/out-demo")"; }
[ "$before" = "$(sha256sum "$repo/samples/sample.jpg")" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL input modified"; }

# Face analysis: the subject's full record in JSON, and the drawing.
check faces-json 0 "$ts" faces --json "$repo/samples/sample.jpg"
if node -e '
const o = JSON.parse(require("fs").readFileSync(0, "utf8"));
const s = o.faces.find(f => f.subject);
const ok = o.faces.length === 1 && s && s.landmarks.length === 478 && s.landmarks[0].length === 3 &&
    s.inter_eye_px > 40 && Math.abs(s.pose.yaw) < 15 && s.eyes.left.open > 0.15 &&
    s.mouth.open < 0.1 && s.irises.left.length === 2;
process.exit(ok ? 0 : 1);' <"$tmp/out"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL faces json: $(head -c 300 "$tmp/out")"; fi
check faces-draw 0 "$ts" faces "$repo/samples/sample.jpg" --draw "$tmp/drawn.png"
[ "$(vipsheader -f width "$tmp/drawn.png" 2>/dev/null)" = 512 ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL faces --draw"; }
check faces-no-face 6 "$ts" faces "$photos/baboon.jpg"

# Inputs are never overwritten, whatever the outputs are called: each refused in one line, exit 2,
# the photo byte for byte as it was (matte -o, --alpha and --over's image, faces --draw and
# demo's headshot.jpg used to write over them).
vips copy "$repo/samples/sample.jpg" "$tmp/in.png"
cp "$tmp/in.png" "$tmp/bg.png"
mkdir -p "$tmp/d" && cp "$repo/samples/sample.jpg" "$tmp/d/headshot.jpg"
sum_in=$(sha256sum <"$tmp/in.png") sum_bg=$(sha256sum <"$tmp/bg.png") sum_d=$(sha256sum <"$tmp/d/headshot.jpg")
check matte-over-input 2 "$ts" matte "$tmp/in.png" -o "$tmp/in.png"
one_line_err matte-over-input "in.png is the photo, and trueshot never overwrites its inputs"
check matte-alpha-over-input 2 "$ts" matte "$tmp/in.png" -o "$tmp/cut.png" --alpha "$tmp/in.png"
one_line_err matte-alpha-over-input "in.png is the photo"
check matte-over-backdrop 2 "$ts" matte "$tmp/in.png" --over "$tmp/bg.png" -o "$tmp/bg.png"
one_line_err matte-over-backdrop "bg.png is the --over image"
check matte-alpha-is-out 2 "$ts" matte "$tmp/in.png" -o "$tmp/cut.png" --alpha "$tmp/cut.png"
one_line_err matte-alpha-is-out "name the same file"
check faces-draw-over-input 2 "$ts" faces "$tmp/in.png" --draw "$tmp/in.png"
one_line_err faces-draw-over-input "one of the photos given"
check demo-over-input 2 "$ts" demo "$tmp/d/headshot.jpg" -o "$tmp/d"
one_line_err demo-over-input "headshot.jpg is the photo"
[ "$sum_in" = "$(sha256sum <"$tmp/in.png")" ] && [ "$sum_bg" = "$(sha256sum <"$tmp/bg.png")" ] &&
    [ "$sum_d" = "$(sha256sum <"$tmp/d/headshot.jpg")" ] && [ ! -e "$tmp/cut.png" ] &&
    pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL inputs changed or output written"; }

check models 0 "$ts" models
[ "$(grep -c '^ok ' "$tmp/out")" -eq 6 ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL models: $(cat "$tmp/out")"; }

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
