#!/usr/bin/env bash
# lab/setup.sh: make the kernel lab ready, from a fresh Debian 12 machine or from the cache.
# Usage: lab/setup.sh [SERIES]   (Debian 12's kernel series: 6.1, the default, or 6.12)
# Output: KEY=VALUE lines on stdout (LAB_DIR LAB_SRC LAB_KBUILD LAB_CONFIG LAB_VMLINUZ LAB_KALLSYMS
# LAB_RELEASE LAB_MODULES LAB_VERSION LAB_SERIES), also kept in the series' env file ($LAB/lab.env
# for 6.1, $LAB/lab-<series>.env for the others) for lab/env.sh; progress on stderr.
# Steps: system packages, Debian kernel packages (fetch.sh), the unpacked source tree, kallsyms.
# Invariant: idempotent and safe to run concurrently (one flock); each step leaves a marker only
# when complete, so an interrupted run resumes; the source tree is unpacked but never configured,
# because klp-build prepares its own tree from --config.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"
lab_series "${1:-}"
lab_lock "setup-$LAB_SERIES"
start=$(date +%s)

dir=$("$LAB_SCRIPTS/fetch.sh" "$LAB_SERIES")
ver=${dir##*/debian-}
vmlinuz=$(lab_vmlinuz "$dir")
release=${vmlinuz##*/vmlinuz-}

# The source tree, unpacked into a scratch dir and renamed, so a tree at its final path is whole.
tarball="$dir/srcpkg/usr/src/linux-source-$LAB_SERIES.tar.xz"
src="$dir/src/linux-source-$LAB_SERIES"
marker="$dir/src/.linux-source-$LAB_SERIES.unpacked"
mkdir -p "$dir/src"
if [ ! -f "$marker" ] && [ -d "$src" ]; then
    # A tree from before the marker existed: keep it when every file of the tarball is there
    # (it may be prepared and in use), else unpack again.
    log "checking the unmarked source tree $src against $tarball"
    absent=$(tar -tJf "$tarball" | grep -v '/$' | (cd "$dir/src" && while read -r f; do
        [ -e "$f" ] || { echo "$f"; break; }; done))
    if [ -z "$absent" ]; then
        touch "$marker"
    else
        log "the tree lacks $absent: unpacking again"
        rm -rf "$src"
    fi
fi
if [ ! -f "$marker" ]; then
    log "unpacking $tarball"
    scratch=$(mktemp -d "$dir/src/.unpack.XXXXXX")
    tar -xJf "$tarball" -C "$scratch"
    [ -f "$scratch/linux-source-$LAB_SERIES/Makefile" ] || die "$tarball has no linux-source-$LAB_SERIES/Makefile"
    mv "$scratch/linux-source-$LAB_SERIES" "$src"
    rmdir "$scratch"
    touch "$marker"
fi

kallsyms=$("$LAB_SCRIPTS/kallsyms.sh" "$dir")

env_tmp="$LAB_ENV_FILE.tmp.$$"
cat > "$env_tmp" <<EOT
LAB_DIR=$dir
LAB_SRC=$src
LAB_KBUILD=/usr/src/linux-headers-$release
LAB_CONFIG=$dir/image/boot/config-$release
LAB_VMLINUZ=$vmlinuz
LAB_KALLSYMS=$kallsyms
LAB_RELEASE=$release
LAB_MODULES=$dir/image/lib/modules/$release
LAB_VERSION=$ver
LAB_SERIES=$LAB_SERIES
EOT
mv "$env_tmp" "$LAB_ENV_FILE"
"$LAB_SCRIPTS/env.sh" "$LAB_SERIES"
log "ready in $(( $(date +%s) - start )) s"
