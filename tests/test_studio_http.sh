#!/bin/bash
# The studio's HTTP contract (issue 7; server/API.md) end to end with curl: the security checks
# (Host, token, Origin), upload -> check -> preview -> full-size render with its disclosure,
# the ZIP, the limits, live coaching, "forget" and the session folder's removal on SIGTERM and
# on the idle timeout.
#   tests/test_studio_http.sh BUILD/cli/trueshot REPO
set -u
ts=$1
repo=$2
sample=$repo/samples/sample.jpg
for tool in curl jq vipsheader; do
    command -v $tool >/dev/null || { echo "$tool is needed: run scripts/setup.sh --test"; exit 1; }
done
tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
pass=0 fail=0
check() { # check NAME CONDITION-STATUS (0 = true)
    if [ "$2" -eq 0 ]; then
        pass=$((pass + 1))
        echo "ok   $1"
    else
        fail=$((fail + 1))
        echo "FAIL $1"
    fi
}
is() { [ "$1" = "$2" ]; echo $?; }

runs=0
start() { # start ARGS...: sets pid, url, base, token, dir; stdout and stderr in $tmp/out, err
    runs=$((runs + 1))
    rm -f "$tmp/out" "$tmp/err"
    TRUESHOT_NO_BROWSER=1 "$ts" studio --no-open "$@" >"$tmp/out.$runs" 2>"$tmp/err.$runs" &
    pid=$!
    for _ in $(seq 200); do
        [ -s "$tmp/out.$runs" ] && grep -q 'session folder' "$tmp/err.$runs" && break
        sleep 0.1
    done
    ln -sf "out.$runs" "$tmp/out"
    ln -sf "err.$runs" "$tmp/err"
    url=$(sed -n 's/^trueshot studio: \(http[^ ]*\)$/\1/p' "$tmp/out")
    base=${url%%/\?*}
    token=${url##*token=}
    dir=$(sed -n 's/^trueshot studio: session folder \([^ ]*\) .*/\1/p' "$tmp/err")
}
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
auth=()

# --- options ---------------------------------------------------------------------------------
"$ts" studio --help | grep -q 'Privacy' ; check "help teaches" $?
"$ts" studio --bogus >/dev/null 2>&1
check "bad option exits 2 (bad usage, as every command)" "$(is $? 2)"
"$ts" studio --port x >/dev/null 2>&1
check "bad number exits 2" "$(is $? 2)"

# --- start -----------------------------------------------------------------------------------
start --port 0
[[ $url =~ ^http://127\.0\.0\.1:[0-9]+/\?token=[0-9a-f]{32}$ ]]
check "prints the URL with a 32-hex token ($url)" $?
[ "$(wc -l <"$tmp/out")" -eq 1 ]
check "exactly one line on stdout" $?
[ -d "$dir" ] && [ "$(stat -c %a "$dir")" = 700 ]
check "session folder $dir is 0700" $?
auth=(-H "X-Trueshot-Token: $token")

# --- security --------------------------------------------------------------------------------
curl -s -D "$tmp/h" -o "$tmp/page" "$url"
grep -q '^HTTP/1.1 200' "$tmp/h"
check "page with token: 200" $?
grep -qi "^Set-Cookie: ts_token=$token; HttpOnly; SameSite=Strict; Path=/" "$tmp/h"
check "page sets the HttpOnly SameSite=Strict cookie" $?
grep -qi "^Content-Security-Policy: default-src 'self'" "$tmp/h" && grep -qi '^Cache-Control: no-store' "$tmp/h" &&
    grep -qi '^X-Content-Type-Options: nosniff' "$tmp/h" && grep -qi '^Referrer-Policy: no-referrer' "$tmp/h"
check "security headers" $?
grep -q 'id="photo-input"' "$tmp/page" && grep -q 'src="/app.js"' "$tmp/page"
check "page is the studio" $?
for f in app.js app.css favicon.svg; do
    check "GET /$f" "$(is "$(code "${auth[@]}" "$base/$f")" 200)"
done
check "no token: 403" "$(is "$(code "$base/")" 403)"
check "API without token: 403" "$(is "$(code "$base/api/health")" 403)"
check "wrong token: 403" "$(is "$(code -H "X-Trueshot-Token: ${token//?/0}" "$base/api/health")" 403)"
check "token in cookie: 200" "$(is "$(code -b "ts_token=$token" "$base/api/health")" 200)"
check "token in query: 200" "$(is "$(code "$base/api/health?token=$token")" 200)"
c=$(code "${auth[@]}" -H 'Host: evil.example' "$base/api/health")
[ "$c" = 421 ] || [ "$c" = 403 ]
check "Host: evil.example refused ($c)" $?
port=${base##*:}
check "Host: localhost:$port accepted" "$(is "$(code "${auth[@]}" -H "Host: localhost:$port" "$base/api/health")" 200)"
check "cross-origin POST: 403" \
    "$(is "$(code "${auth[@]}" -H 'Origin: http://evil.example' -X POST "$base/api/forget")" 403)"
check "same-origin POST with Origin: 200" \
    "$(is "$(code "${auth[@]}" -H "Origin: http://127.0.0.1:$port" -X POST "$base/api/forget")" 200)"

# --- upload, check, preview, render ----------------------------------------------------------
c=$(curl -s -o "$tmp/up.json" -w '%{http_code}' "${auth[@]}" -H 'X-Filename: sample%20me.jpg' \
    --data-binary @"$sample" "$base/api/photos")
check "upload sample.jpg: 201 ($c)" "$(is "$c" 201)"
id=$(jq -r .id "$tmp/up.json")
jq -e '.name == "sample me.jpg" and .width == 512 and .height == 600 and
       (.check.score | type) == "number" and (.check.components | length) > 5 and
       (.check.verdict | type) == "string"' "$tmp/up.json" >/dev/null
check "upload answers the check JSON" $?
ls "$dir" | grep -q "$id"
check "photo saved in the session folder" $?
curl -s "${auth[@]}" "$base/api/photos" >"$tmp/list.json"
jq -e --arg id "$id" '.best == $id and .photos[0].best == true and .photos[0].id == $id' \
    "$tmp/list.json" >/dev/null
check "photo list names the best" $?
check "thumbnail" "$(is "$(code "${auth[@]}" "$base/api/photos/$id/thumb")" 200)"
curl -s "${auth[@]}" "$base/api/styles" >"$tmp/styles.json"
jq -e '(.styles | length) == 12 and ([.styles[] | select(.name == "linkedin")][0].crops == ["square"])' \
    "$tmp/styles.json" >/dev/null
check "12 styles" $?

q="photo=$id&style=linkedin&background=radial&crop=4x5&retouch=0.3&brightness=0.2"
curl -s -D "$tmp/h" -o "$tmp/prev.jpg" "${auth[@]}" "$base/api/preview?$q"
grep -qi '^Content-Type: image/jpeg' "$tmp/h" && grep -qi '^X-Render-Ms:' "$tmp/h"
check "preview: image/jpeg with X-Render-Ms" $?
[ "$(vipsheader -f width "$tmp/prev.jpg")x$(vipsheader -f height "$tmp/prev.jpg")" = 576x720 ]
check "preview 4x5 is 576x720" $?
t0=$(date +%s%N)
curl -s -o /dev/null "${auth[@]}" "$base/api/preview?${q/retouch=0.3/retouch=0.45}"
ms=$((($(date +%s%N) - t0) / 1000000))
echo "     (a new preview of an analysed photo took $ms ms)"
check "preview before=1" "$(is "$(code "${auth[@]}" "$base/api/preview?$q&before=1")" 200)"
check "preview of an unknown photo: 404" \
    "$(is "$(code "${auth[@]}" "$base/api/preview?photo=nope&style=linkedin")" 404)"
check "preview with a bad crop: 400" \
    "$(is "$(code "${auth[@]}" "$base/api/preview?photo=$id&style=linkedin&crop=huge")" 400)"

c=$(curl -s -o "$tmp/r.json" -w '%{http_code}' "${auth[@]}" -X POST -H 'Content-Type: application/json' \
    -d "{\"photo\":\"$id\",\"style\":\"linkedin\",\"brightness\":0.1}" "$base/api/render")
check "render: 201 ($c)" "$(is "$c" 201)"
jq -e '.name == "linkedin-square.jpg" and .width == 1200 and .height == 1200 and
       .identity.pass == true and .disclosure.digital_source_type == "compositeSynthetic" and
       (.disclosure.edits | length) > 0' "$tmp/r.json" >/dev/null
check "render JSON: size, identity, disclosure" $?
curl -s -D "$tmp/h" -o "$tmp/out.jpg" "${auth[@]}" "$base$(jq -r .url "$tmp/r.json")"
grep -qi '^Content-Disposition: attachment; filename="linkedin-square.jpg"' "$tmp/h"
check "file download is an attachment" $?
[ "$(vipsheader -f width "$tmp/out.jpg")x$(vipsheader -f height "$tmp/out.jpg")" = 1200x1200 ]
check "downloaded file is 1200x1200" $?
grep -aq 'DigitalSourceType' "$tmp/out.jpg" && grep -aq 'compositeSynthetic' "$tmp/out.jpg"
check "downloaded file carries the XMP disclosure" $?
curl -s -o "$tmp/map.png" "${auth[@]}" "$base$(jq -r .edit_map_url "$tmp/r.json")"
[ "$(vipsheader -f width "$tmp/map.png" 2>/dev/null)" = 1200 ]
check "edit map PNG" $?
c=$(curl -s -o "$tmp/r2.json" -w '%{http_code}' "${auth[@]}" -X POST \
    -d "{\"photo\":\"$id\",\"style\":\"corporate\",\"crop\":\"4x5\",\"format\":\"png\"}" "$base/api/render")
check "render corporate 4x5 png: 201" "$(is "$c" 201)"
curl -s -o "$tmp/all.zip" "${auth[@]}" "$base/api/zip"
if command -v unzip >/dev/null; then
    unzip -l "$tmp/all.zip" >"$tmp/zl" 2>&1 && grep -q linkedin-square.jpg "$tmp/zl" &&
        grep -q 'corporate-4x5.png' "$tmp/zl"
else
    [ "$(head -c 2 "$tmp/all.zip")" = PK ]
fi
check "ZIP of all files" $?
ls "$dir" | grep -q '\.zip$'
check "ZIP removed from the session folder after sending" "$(is $? 1)"

# --- limits and bad input --------------------------------------------------------------------
# A face the photo cuts beside it (the sample cut through the left cheek) cannot be framed: 422
# with the reason, for the preview and the file.
vips crop "$sample" "$tmp/side.jpg" 230 0 282 600
curl -s -o "$tmp/up2.json" "${auth[@]}" --data-binary @"$tmp/side.jpg" "$base/api/photos"
id2=$(jq -r .id "$tmp/up2.json")
c=$(curl -s -o "$tmp/e.json" -w '%{http_code}' "${auth[@]}" "$base/api/preview?photo=$id2&style=linkedin")
jq -e '.error | test("cannot be framed as a headshot: the face runs off the photo")' "$tmp/e.json" >/dev/null
check "preview of a face cut by the photo's edge: 422 ($c) saying why" "$(is "$c$?" 4220)"
c=$(curl -s -o "$tmp/e.json" -w '%{http_code}' "${auth[@]}" -X POST \
    -d "{\"photo\":\"$id2\",\"style\":\"linkedin\"}" "$base/api/render")
jq -e '.error | test("runs off the photo")' "$tmp/e.json" >/dev/null
check "render of a face cut by the photo's edge: 422 ($c) saying why" "$(is "$c$?" 4220)"
head -c 100000 /dev/urandom >"$tmp/garbage.jpg"
check "garbage upload: 415" \
    "$(is "$(code "${auth[@]}" --data-binary @"$tmp/garbage.jpg" "$base/api/photos")" 415)"
head -c $((41 * 1024 * 1024)) /dev/zero >"$tmp/big.bin"
c=$(curl -s -o "$tmp/e.json" -w '%{http_code}' "${auth[@]}" --data-binary @"$tmp/big.bin" "$base/api/photos")
check "upload over --max-upload-mb: 413 ($c)" "$(is "$c" 413)"
jq -e '.error | length > 10' "$tmp/e.json" >/dev/null
check "413 has a JSON error" $?
rm -f "$tmp/big.bin"

# --- live coaching ---------------------------------------------------------------------------
vips thumbnail "$sample" "$tmp/frame.jpg[Q=80]" 640 >/dev/null 2>&1
curl -s "${auth[@]}" --data-binary @"$tmp/frame.jpg" "$base/api/live" >"$tmp/live.json"
jq -e '.face.w > 50 and (.yaw | type) == "number" and (.tips | type) == "array" and
       (.distance | IN("ok","closer","farther")) and (.light | IN("ok","dark","bright","uneven"))' \
    "$tmp/live.json" >/dev/null
check "live frame: face, pose, tips ($(jq -c .ms "$tmp/live.json") ms)" $?
ls "$dir" | grep -qi live
check "live frame not stored" "$(is $? 1)"

# --- forget, SIGTERM, idle timeout -----------------------------------------------------------
curl -s "${auth[@]}" -X POST "$base/api/forget" >"$tmp/f.json"
jq -e '.forgotten >= 4' "$tmp/f.json" >/dev/null
check "forget answers how many files ($(jq -c .forgotten "$tmp/f.json"))" $?
[ -d "$dir" ] && [ -z "$(ls -A "$dir")" ]
check "forget empties the session folder" $?
jq -e '.photos == [] and .best == null' <(curl -s "${auth[@]}" "$base/api/photos") >/dev/null
check "forget empties the photo list" $?
curl -s -o /dev/null "${auth[@]}" -H 'X-Filename: again.jpg' --data-binary @"$sample" "$base/api/photos"
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
check "SIGTERM: exit 0 ($rc)" "$(is "$rc" 0)"
[ ! -e "$dir" ]
check "SIGTERM removes the session folder" $?

start --idle-timeout 2
for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait "$pid"
rc=$?
pid=
check "idle timeout: exit 0 ($rc)" "$(is "$rc" 0)"
[ -n "$dir" ] && [ ! -e "$dir" ]
check "idle timeout removes the session folder ($dir)" $?
[ -n "$dir" ] || cat "$tmp/err"

start --max-photos 1 --max-megapixels 1
auth=(-H "X-Trueshot-Token: $token")
vips resize "$sample" "$tmp/big.jpg" 2.2 >/dev/null 2>&1 # 1126x1320: 1.5 MP
c=$(code "${auth[@]}" --data-binary @"$tmp/big.jpg" "$base/api/photos")
check "photo over --max-megapixels: 422 ($c)" "$(is "$c" 422)"
code "${auth[@]}" --data-binary @"$sample" "$base/api/photos" >/dev/null
c=$(code "${auth[@]}" --data-binary @"$sample" "$base/api/photos")
[ "$c" = 409 ] || [ "$c" = 429 ]
check "photo over --max-photos: 409 ($c)" $?
kill -INT "$pid"
wait "$pid"
pid=
[ ! -e "$dir" ]
check "SIGINT removes the session folder" $?

# Sanitizer builds (build-asan) report memory errors, leaks and undefined behaviour on stderr.
if grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$tmp"/err.* >/dev/null 2>&1; then
    check "no sanitizer reports" 1
    grep -h -A20 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$tmp"/err.* | head -60
else
    check "no sanitizer reports" 0
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
