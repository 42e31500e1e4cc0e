#!/usr/bin/env bash
# lab/compare-upstream.sh: one fix built by the kernel's own scripts/livepatch/klp-build (Linux
# 7.x, sid's linux-source-7.2) and by klp-build, on the same small kernel (tinyconfig +
# testdata/kernel/refkernel.config), timed on this machine. A measurement for the README's
# comparison, not a test: it takes about half an hour on 2 cores and prints its figures.
# Usage:
#   lab/compare-upstream.sh [-p PATCH] [SOURCE_TREE]
#       SOURCE_TREE: a linux-source-7.x tree (default: the newest one the release tests unpacked
#       under $LAB/release-cache); PATCH: default testdata/patches/cmdline.patch.
# Output: KEY=VALUE lines: UPSTREAM_SECS (upstream's klp-build from a configured tree: it builds
# the kernel itself), BUILD_SECS (the one full build klp-build's built-tree target needs),
# KLP_BUILD_SECS (klp-build on that built tree), and each tool's changed functions.
# Invariant: the source tree given is copied, never written; each run works in fresh copies under
# $LAB/compare-upstream and removes them when it ends.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"

REPO=$(cd "$LAB_SCRIPTS/.." && pwd)
PATCH_FILE=$REPO/testdata/patches/cmdline.patch
FRAGMENT=$REPO/testdata/kernel/refkernel.config
while getopts "p:" opt; do
    case $opt in
        p) PATCH_FILE=$(realpath "$OPTARG") ;;
        *) die "usage: $0 [-p PATCH] [SOURCE_TREE]" ;;
    esac
done
shift $((OPTIND - 1))
SRC=${1:-}
if [ -z "$SRC" ]; then
    SRC=$(ls -d "$LAB"/release-cache/debian/kernels/7.*/*/source/linux-source-7.* 2>/dev/null | sort -V | tail -1 || true)
    [ -n "$SRC" ] || die "no linux-source-7.x tree under $LAB/release-cache: run the release tests (cargo test --test release_matrix) or give SOURCE_TREE"
fi
[ -x "$SRC/scripts/livepatch/klp-build" ] || die "$SRC has no scripts/livepatch/klp-build (Linux 6.19 or later has it)"
[ -f "$PATCH_FILE" ] || die "$PATCH_FILE does not exist"

lab_install flex bison bc libelf-dev libssl-dev libxxhash-dev patchutils gawk make gcc rsync python3
BIN=$REPO/target/release/klp-build
(cd "$REPO" && cargo build --release -q) || die "cargo build --release failed"

WORK=$LAB/compare-upstream
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

# A configured copy of the tree: tinyconfig and the reference kernel's fragment (livepatch, ORC,
# ftrace), without the reference kernel's patch; upstream's tool needs CONFIG_KLP_BUILD.
configured() {
    local dir=$1
    log "copying $SRC to $dir"
    rsync -a --exclude '*.o' --exclude '*.ko' --exclude '.*.cmd' "$SRC/" "$dir/"
    make -C "$dir" -s mrproper
    make -C "$dir" -s tinyconfig >&2
    grep -v '^CONFIG_LOCALVERSION=' "$FRAGMENT" > "$WORK/fragment.config"
    echo 'CONFIG_KLP_BUILD=y' >> "$WORK/fragment.config"
    "$dir/scripts/kconfig/merge_config.sh" -m -O "$dir" "$dir/.config" "$WORK/fragment.config" >&2
    make -C "$dir" -s olddefconfig >&2
    grep -qx 'CONFIG_KLP_BUILD=y' "$dir/.config" || die "$dir/.config lacks CONFIG_KLP_BUILD=y after olddefconfig"
}

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Upstream: from the configured tree; it builds the original and the patched kernel itself.
configured "$WORK/upstream"
log "upstream klp-build (builds the kernel twice)"
t0=$(now)
(cd "$WORK/upstream" && ./scripts/livepatch/klp-build -j "$(nproc)" -o "$WORK/upstream.ko" "$PATCH_FILE") \
    > "$WORK/upstream.log" 2>&1 || { tail -30 "$WORK/upstream.log" >&2; die "upstream klp-build failed"; }
t1=$(now)
UPSTREAM_SECS=$(secs "$t0" "$t1")
rm -rf "$WORK/upstream"

# klp-build: the same configured tree, built once (what a built-tree target is), then the fix.
configured "$WORK/ours"
log "one build of the tree (klp-build's built-tree target)"
t0=$(now)
make -C "$WORK/ours" -s -j"$(nproc)" bzImage modules >&2
t1=$(now)
BUILD_SECS=$(secs "$t0" "$t1")
log "klp-build on the built tree"
t0=$(now)
"$BIN" --diff "$PATCH_FILE" --source "$WORK/ours" --symbols "$WORK/ours/vmlinux" \
    --work-dir "$WORK/ours-work" -j "$(nproc)" -o "$WORK/ours.ko" --report json > "$WORK/ours.json" 2> "$WORK/ours.log" ||
    { tail -30 "$WORK/ours.log" >&2; die "klp-build failed"; }
t1=$(now)
KLP_BUILD_SECS=$(secs "$t0" "$t1")

echo "SOURCE=$SRC"
echo "PATCH=$PATCH_FILE"
echo "UPSTREAM_SECS=$UPSTREAM_SECS"
echo "BUILD_SECS=$BUILD_SECS"
echo "KLP_BUILD_SECS=$KLP_BUILD_SECS"
echo "UPSTREAM_CHANGED=$(grep -o 'changed function: [^ ]*' "$WORK/upstream.log" | awk '{print $3}' | sort -u | tr '\n' ' ')"
echo "KLP_BUILD_CHANGED=$(python3 -c '
import json, sys
report = json.load(open(sys.argv[1]))
print(" ".join(sorted({f["name"] for o in report["objects"] for f in o["funcs"]})))
' "$WORK/ours.json")"
