#!/bin/bash
# trueshot setup: installs the Debian packages trueshot needs and fetches the pinned models and
# test photos into the cache, checking every file against the SHA-256 in scripts/assets.txt.
#
#   scripts/setup.sh          build/run needs: Debian packages, models, test photos
#   scripts/setup.sh --test   also what the tests need: extra Debian packages and the reference
#                             TFLite runtime (npm, from tests/ref/package-lock.json) and the
#                             studio's browser test driver (npm, tests/studio/package-lock.json)
#
# The cache is ${TRUESHOT_CACHE:-$HOME/.cache/trueshot}:
#   dl/       downloaded npm tarballs and .deb files (kept, so a repair needs no network)
#   models/   *.tflite and the face geometry metadata
#   photos/   test photos
#   ref/      the reference TFLite runtime (node_modules), --test only
#   studio/   playwright-core for the studio's browser tests (node_modules), --test only
#
# Safe to run again: a second run with everything in place re-checks the hashes of the final
# files (about 20 MB) and downloads nothing.
#
# Exit codes: 0 ready; 1 error (download failed, hash mismatch, ...); 2 Debian packages are
# missing and we are not root; 64 bad usage.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
manifest=$here/assets.txt
pkglist=$here/debian-packages.txt

log() { printf 'trueshot setup: %s\n' "$*" >&2; }
die() {
    printf 'trueshot setup: error: %s\n' "$*" >&2
    exit 1
}

test_mode=0
for arg in "$@"; do
    case $arg in
    --test) test_mode=1 ;;
    -h | --help)
        sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        printf 'usage: %s [--test]\n' "$0" >&2
        exit 64
        ;;
    esac
done

if [ -z "${HOME:-}" ]; then
    HOME=$(getent passwd "$(id -u)" | cut -d: -f6)
    export HOME
fi
CACHE=${TRUESHOT_CACHE:-$HOME/.cache/trueshot}

# ---- Debian packages ---------------------------------------------------------------------------

command -v dpkg-query >/dev/null || die "dpkg-query not found: trueshot's setup expects Debian 12"

wanted=()
while read -r profile pkg extra; do
    case $profile in '' | '#'*) continue ;; esac
    if [ "$profile" = test ] && [ $test_mode = 0 ]; then continue; fi
    if [[ ${extra:-} == cmd=* ]] && command -v "${extra#cmd=}" >/dev/null 2>&1; then continue; fi
    wanted+=("$pkg")
done <"$pkglist"

missing=()
if [ ${#wanted[@]} -gt 0 ]; then
    installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${wanted[@]}" 2>/dev/null |
        awk '$2 == "ii" { print $1 }' || true)
    for pkg in "${wanted[@]}"; do
        grep -qxF "$pkg" <<<"$installed" || missing+=("$pkg")
    done
fi

apt_lists_present() { compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; }

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        printf 'trueshot setup: missing Debian packages; install them with:\n' >&2
        printf '  sudo apt-get update && sudo apt-get install -y %s\n' "${missing[*]}" >&2
        printf 'trueshot setup: error: %d Debian package(s) missing and not root; run the line above, then this script again\n' \
            "${#missing[@]}" >&2
        exit 2
    fi
    log "installing Debian packages: ${missing[*]} ..."
    export DEBIAN_FRONTEND=noninteractive
    if ! apt_lists_present; then
        apt-get update -q >&2 || die "apt-get update failed"
    fi
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
        log "install failed; refreshing the package lists and trying again ..."
        apt-get update -q >&2 || die "apt-get update failed"
        apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
            die "apt-get install ${missing[*]} failed"
    fi
fi

# ---- cache, lock -------------------------------------------------------------------------------

mkdir -p "$CACHE/dl" "$CACHE/models" "$CACHE/photos" || die "cannot create the cache at $CACHE"
if command -v flock >/dev/null; then
    exec 9>"$CACHE/.setup.lock"
    flock 9
fi
work=$(mktemp -d "$CACHE/.setup.XXXXXX")
trap 'rm -rf "$work"' EXIT

sha256() { sha256sum "$1" | cut -c1-64; }

# ---- read the manifest -------------------------------------------------------------------------

declare -A src_kind src_spec src_file src_sha
f_dest=() f_src=() f_member=() f_sha=()
lineno=0
while read -r kind a b c d e _; do
    lineno=$((lineno + 1))
    case $kind in
    '' | '#'*) ;;
    src)
        [ -n "${e:-}" ] || die "$manifest:$lineno: expected: src ID KIND SPEC FILE SHA256"
        src_kind[$a]=$b src_spec[$a]=$c src_file[$a]=$d src_sha[$a]=$e
        ;;
    file)
        [ -n "${d:-}" ] || die "$manifest:$lineno: expected: file DEST ID MEMBER SHA256 [NOTE]"
        [ -n "${src_kind[$b]:-}" ] || die "$manifest:$lineno: unknown package id '$b'"
        f_dest+=("$a") f_src+=("$b") f_member+=("$c") f_sha+=("$d")
        ;;
    *) die "$manifest:$lineno: unknown line type '$kind'" ;;
    esac
done <"$manifest"

# ---- which final files are missing or wrong ----------------------------------------------------

declare -A have_sha
existing=()
for dest in "${f_dest[@]}"; do
    if [ -f "$CACHE/$dest" ]; then existing+=("$CACHE/$dest"); fi
done
if [ ${#existing[@]} -gt 0 ]; then
    while read -r h p; do have_sha[$p]=$h; done < <(sha256sum "${existing[@]}")
fi

declare -A need_src
todo=()
for i in "${!f_dest[@]}"; do
    p=$CACHE/${f_dest[$i]}
    if [ "${have_sha[$p]:-}" = "${f_sha[$i]}" ]; then continue; fi
    if [ -f "$p" ]; then
        log "${f_dest[$i]} has the wrong SHA-256 (${have_sha[$p]:-?}); extracting it again"
        rm -f "$p"
    fi
    todo+=("$i")
    need_src[${f_src[$i]}]=1
done

# ---- download a pinned package into dl/ --------------------------------------------------------

apt_download() { # SPEC, in the current directory
    if apt-get download -q "$1" >"$work/apt.log" 2>&1; then return 0; fi
    if [ "$(id -u)" = 0 ]; then
        log "apt-get download $1 failed; running apt-get update and trying again ..."
        apt-get update -q >&2 || die "apt-get update failed"
        apt-get download -q "$1" >"$work/apt.log" 2>&1 && return 0
    fi
    cat "$work/apt.log" >&2
    if [ "$(id -u)" != 0 ]; then
        die "apt-get download $1 failed (if the package lists are stale: sudo apt-get update)"
    fi
    die "apt-get download $1 failed"
}

fetch_src() { # ID
    local id=$1 kind=${src_kind[$1]} spec=${src_spec[$1]} file=${src_file[$1]} want=${src_sha[$1]}
    local dl=$CACHE/dl/$file got tmp
    if [ -f "$dl" ]; then
        got=$(sha256 "$dl")
        [ "$got" = "$want" ] && return 0
        log "dl/$file has the wrong SHA-256 ($got); downloading it again"
        rm -f "$dl"
    fi
    log "fetching $spec ..."
    tmp=$(mktemp -d "$work/dl.XXXXXX")
    chmod 755 "$tmp" # apt-get download drops to the _apt user when it can write here
    case $kind in
    npm)
        (cd "$tmp" && npm pack --silent --loglevel=error "$spec" >"$work/npm.log" 2>&1) || {
            cat "$work/npm.log" >&2
            die "npm pack $spec failed"
        }
        ;;
    deb) (cd "$tmp" && apt_download "$spec") ;;
    *) die "$manifest: unknown package kind '$kind' for $id" ;;
    esac
    [ -f "$tmp/$file" ] || die "fetching $spec did not produce $file (got: $(ls "$tmp" | tr '\n' ' '))"
    got=$(sha256 "$tmp/$file")
    [ "$got" = "$want" ] ||
        die "SHA-256 mismatch for $file ($spec): expected $want, got $got"
    mv "$tmp/$file" "$dl"
    rm -rf "$tmp"
}

# ---- extract the final files -------------------------------------------------------------------

extract_src() { # ID: extracts every file in todo[] that comes from package ID
    local id=$1 dl=$CACHE/dl/${src_file[$1]} x members=() m i
    x=$(mktemp -d "$work/x.XXXXXX")
    for i in "${todo[@]}"; do
        [ "${f_src[$i]}" = "$id" ] || continue
        m=${f_member[$i]}
        if [[ $m == packed:* ]]; then
            IFS=: read -r _ data loader _ <<<"$m"
            members+=("$data" "$loader")
        else
            members+=("$m")
        fi
    done
    mapfile -t members < <(printf '%s\n' "${members[@]}" | sort -u)
    log "extracting ${#members[@]} file(s) from ${src_file[$id]} ..."
    case ${src_kind[$id]} in
    npm) tar -xzf "$dl" -C "$x" -- "${members[@]}" ;;
    deb) dpkg-deb --fsys-tarfile "$dl" | tar -x -C "$x" -- "${members[@]}" ;;
    esac || die "cannot extract ${members[*]} from $dl"

    local dest want got out name data loader range start end
    for i in "${todo[@]}"; do
        [ "${f_src[$i]}" = "$id" ] || continue
        dest=${f_dest[$i]} want=${f_sha[$i]} m=${f_member[$i]}
        out=$CACHE/$dest.tmp.$$
        mkdir -p "$(dirname "$CACHE/$dest")"
        if [[ $m == packed:* ]]; then
            IFS=: read -r _ data loader name <<<"$m"
            # the loader lists {"filename": "...", "start": N, "end": M} for each bundled file
            range=$(grep -oE '"filename": *"[^"]*", *"start": *[0-9]+, *"end": *[0-9]+' "$x/$loader" |
                sed -E 's/"filename": *"([^"]*)", *"start": *([0-9]+), *"end": *([0-9]+)/\1 \2 \3/' |
                awk -v n="$name" '$1 == n { print $2, $3; exit }')
            [ -n "$range" ] || die "$name is not listed in $loader"
            read -r start end <<<"$range"
            dd if="$x/$data" of="$out" bs=65536 iflag=skip_bytes,count_bytes skip="$start" \
                count=$((end - start)) status=none || die "cannot cut $name out of $data"
            [ "$(stat -c %s "$out")" = $((end - start)) ] || die "$data is shorter than $loader says"
        else
            cp "$x/$m" "$out"
        fi
        chmod 644 "$out"
        got=$(sha256 "$out")
        if [ "$got" != "$want" ]; then
            rm -f "$out"
            die "SHA-256 mismatch for $dest (from ${src_spec[$id]} $m): expected $want, got $got"
        fi
        mv -f "$out" "$CACHE/$dest"
    done
    rm -rf "$x"
}

for id in "${!need_src[@]}"; do
    fetch_src "$id"
    extract_src "$id"
done

# ---- npm packages for the tests (tests only) ---------------------------------------------------

# npm_ci SRC DEST WHAT: `npm ci` of SRC/package.json + SRC/package-lock.json into $CACHE/DEST; npm
# checks every tarball against the lockfile's integrity (SHA-512). Skipped when the installed copy
# was made from the same two files (their SHA-256 is kept in DEST/.installed-sha256).
npm_ci() {
    local src=$1 dest=$CACHE/$2 what=$3 want have
    if [ ! -f "$src/package.json" ] || [ ! -f "$src/package-lock.json" ]; then
        log "warning: ${src#"$root"/}/package.json or package-lock.json is missing; skipping $what"
        return 0
    fi
    want=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-64)
    have=$(cat "$dest/.installed-sha256" 2>/dev/null || true)
    if [ "$want" = "$have" ] && [ -d "$dest/node_modules" ]; then return 0; fi
    log "installing $what (npm ci in $dest) ..."
    mkdir -p "$dest"
    rm -f "$dest/.installed-sha256"
    cp "$src/package.json" "$src/package-lock.json" "$dest/"
    (cd "$dest" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) \
        >"$work/npm-ci.log" 2>&1 || {
        cat "$work/npm-ci.log" >&2
        die "npm ci in $dest failed"
    }
    printf '%s\n' "$want" >"$dest/.installed-sha256"
}

if [ $test_mode = 1 ]; then
    # the reference TFLite runtime (tfjs-tflite, LiteRT.js) for the golden tests
    npm_ci "$root/tests/ref" ref "the reference TFLite runtime"
    # the studio's browser tests: playwright-core drives Debian's /usr/bin/chromium (no browser
    # download: playwright-core has no install script and is only ever given executablePath)
    npm_ci "$root/tests/studio" studio "the studio test driver (playwright-core)"
fi

log "ready (cache: $CACHE; ${#f_dest[@]} files checked, ${#todo[@]} extracted)"
