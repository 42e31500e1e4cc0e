#!/usr/bin/env bash
# lab/release-matrix.sh: the release benchmark over the Debian kernel matrix (not run by CI).
# Usage: lab/release-matrix.sh [--cold]
# Builds a release of three fixes (a new function, a shadow variable with its 7.x backport, a fix in
# the binfmt_misc module) and a fourth that no Debian config builds, for ten kernels read from the archive:
# bookworm 6.1 -50, -55, -56, -57; bookworm's 6.12 backport, two versions; trixie's 6.12, three
# versions including the newest; sid's newest 7.x. Then the same release again (warm), and a second
# release with `previous` that adds one fix and revises one. Prints the wall time of each run, each
# target's status and time, and the bytes downloaded. --cold empties the matrix's cache first.
# Cache: $KLP_MATRIX_CACHE (default $LAB/matrix-cache); outputs under $LAB/matrix-out.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"
root=$(cd "$LAB_SCRIPTS/.." && pwd)
export KLP_BUILD_CACHE=${KLP_MATRIX_CACHE:-$LAB/matrix-cache}
out=$LAB/matrix-out
lab_install mmdebstrap bubblewrap ccache patch make gcc dpkg-dev binutils
# KLP_BUILD_BIN: a klp-build already built (default: cargo build --release of this checkout).
if [ -n "${KLP_BUILD_BIN:-}" ]; then
    klp=$KLP_BUILD_BIN
else
    cargo build --release --manifest-path "$root/Cargo.toml" -q
    klp="$root/target/release/klp-build"
fi
if [ "${1:-}" = --cold ]; then
    log "emptying $KLP_BUILD_CACHE"
    rm -rf "$KLP_BUILD_CACHE"
fi
mkdir -p "$out"
list=$("$klp" release kernels 2>/dev/null)
pick() { echo "$list" | awk '{print $1}' | grep -E "$1" | head -n "${2:-1}"; }
targets=$( {
    for abi in 50 55 56 57; do pick "^6\\.1\\.0-$abi-amd64$"; done
    pick '^6\.12\.[0-9]+\+deb12-amd64$' 2
    pick '^6\.12\.[0-9]+\+deb13-amd64$' 3
    pick '^7\.[0-9]+\.[0-9]+\+deb14-amd64$' 1
} )
[ "$(echo "$targets" | grep -c .)" -ge 10 ] || die "the archive lists fewer than ten of the matrix's kernels: $targets"

rel=$out/src
rm -rf "$rel"; mkdir -p "$rel/fixes"
cp "$root"/testdata/patches/fixes/{new-function,shadow-fork,module-cold,pr-debug}.patch "$root"/testdata/release/fixes/{exar-wdt,shadow-fork-7.x}.patch "$rel/fixes/"
write_release() { # version previous fix...
    local version=$1 previous=$2; shift 2
    {
        echo "name = \"matrix\""
        echo "version = \"$version\""
        [ -n "$previous" ] && echo "previous = \"$previous\""
        for f in "$@"; do
            echo "[[fix]]"; echo "id = \"${f%%=*}\""; echo "patches = [\"fixes/${f#*=}.patch\"]"
            # kernel/fork.c moved on in 7.x: the shadow-variable fix has a backport there.
            if [ "${f#*=}" = shadow-fork ]; then
                echo "[[fix.backport]]"; echo "kernels = [\"7.*\"]"; echo "patches = [\"fixes/shadow-fork-7.x.patch\"]"
            fi
        done
        for t in $targets; do echo "[[target]]"; echo "debian = \"$t\""; done
    } > "$rel/release-$version.toml"
}
write_release 1 "" A=new-function B=shadow-fork C=module-cold D=exar-wdt
sed 's/klp-build: livepatched\\n/klp-build: livepatched (2)\\n/' "$rel/fixes/new-function.patch" > "$rel/fixes/new-function-2.patch"
write_release 2 "$out/first" A=new-function-2 B=shadow-fork C=module-cold D=exar-wdt E=pr-debug

run() { # name args...
    local name=$1; shift
    local t0; t0=$(date +%s.%N)
    set +e; "$klp" release build "$@" > "$out/$name.txt" 2> "$out/$name.log"; local rc=$?; set -e
    printf '== %s: exit %s, %.1f s\n' "$name" "$rc" "$(echo "$(date +%s.%N) - $t0" | bc)"
    cat "$out/$name.txt"
}
rm -rf "$out/first" "$out/warm" "$out/second"
run first "$rel/release-1.toml" -o "$out/first" --force
run warm "$rel/release-1.toml" -o "$out/warm" --force
run second "$rel/release-2.toml" -o "$out/second" --force
cmp -s "$out/first/index.json" "$out/warm/index.json" && echo "== first and warm: index.json byte-identical" || echo "== first and warm: index.json DIFFERS"
du -sh "$KLP_BUILD_CACHE" | sed 's/^/== cache: /'
