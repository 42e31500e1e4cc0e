#!/usr/bin/env bash
# lab/refkernel.sh: the reference kernel of replace-set.md: Debian's linux-source-6.12 with
# testdata/kernel/replace-set.patch, built small (tinyconfig + testdata/kernel/refkernel.config).
# Usage (each form takes a leading `--variant NAME` for a variant of the kernel, see below):
#   lab/refkernel.sh                      build (or find in the cache) and print KEY=VALUE lines:
#       REF_TREE (the built tree: kbuild dir for M= modules and klp-build's built-tree target),
#       REF_BZIMAGE, REF_VMLINUX, REF_SYMVERS, REF_CONFIG, REF_RELEASE (uname -r),
#       REF_VERSION (Debian package version), REF_KEY (cache key)
#   lab/refkernel.sh cached               the same lines when the current key is built, else fail
#       (no apt-get, no build): for tests run by hand, which skip then
#   lab/refkernel.sh initramfs -o OUT.cpio.gz -s TEST.sh [-x SRC[:DEST]]... [FILE...]
#       an initramfs for this kernel: /init mounts proc, sys, devtmpfs and debugfs, runs /test.sh
#       with `sh -e`, prints `KLP-TEST-RESULT: PASS|FAIL (rc)` and ends with `reboot -f`
#       (tinyconfig has no ACPI, so `poweroff -f` would halt; lab/boot.sh's -no-reboot turns the
#       reboot into QEMU's exit). FILEs land in /modules/<basename>. Each -x copies the host
#       program SRC to DEST (default /usr/local/bin/<basename>, first on PATH) with the shared
#       libraries ldd names, for guest scripts that need more than busybox: the kernel's
#       selftests want bash, kmod's insmod messages and GNU date, stat and sysctl options.
#   lab/refkernel.sh boot -l LOG [-t SECONDS] INITRAMFS
#       boot REF_BZIMAGE with lab/boot.sh (TCG, -no-reboot, bounded, verdict from the console).
# Variants: `--variant sig` adds testdata/kernel/refkernel-sig.config (modules must be signed by
#   the build's own key, certs/signing_key.pem, which kbuild makes at the first build) and is
#   built and cached beside the plain kernel, its lines kept in refkernel-sig.env.
# Invariant: the build is keyed by source version + patch hash + fragment hash under
# $LAB/refkernel, idempotent and safe to run concurrently (flock); a tree is used only when its
# marker says the build completed, a half-built one is removed and built again. The tree stays a
# complete built tree (vmlinux, Module.symvers, .config, objects with their .cmd files) at the path
# it was built at, because its .cmd files and klp-build refer to it by that path.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"

REPO=$(cd "$LAB_SCRIPTS/.." && pwd)
PATCH_FILE=$REPO/testdata/kernel/replace-set.patch
FRAGMENT=$REPO/testdata/kernel/refkernel.config
VARIANT=''
if [ "${1:-}" = --variant ]; then
    VARIANT=${2:-}
    shift 2 || die "usage: $0 --variant NAME [...]"
    [ -f "$REPO/testdata/kernel/refkernel-$VARIANT.config" ] ||
        die "no variant $VARIANT: testdata/kernel/refkernel-$VARIANT.config does not exist"
fi
VARIANT_FRAGMENT=${VARIANT:+$REPO/testdata/kernel/refkernel-$VARIANT.config}
ENV_FILE_NAME=refkernel${VARIANT:+-$VARIANT}.env
ROOT=$LAB/refkernel
SERIES=6.12

ref_initramfs() {
    local out='' script='' opt OPTIND=1 usage
    local -a programs=()
    usage="usage: $0 initramfs -o OUT.cpio.gz -s TEST.sh [-x SRC[:DEST]]... [FILE...]"
    while getopts "o:s:x:" opt; do
        case $opt in
            o) out=$OPTARG ;;
            s) script=$OPTARG ;;
            x) programs+=("$OPTARG") ;;
            *) die "$usage" ;;
        esac
    done
    shift $((OPTIND - 1))
    [ -n "$out" ] && [ -n "$script" ] || die "$usage"
    [ -f "$script" ] || die "test script $script does not exist"
    local busybox=/bin/busybox
    [ -x "$busybox" ] || die "$busybox is missing; install busybox-static (apt-get install busybox-static)"
    case $(readelf -lW "$busybox") in
        *INTERP*) die "$busybox is dynamically linked; install busybox-static" ;;
    esac
    local tree
    tree=$(mktemp -d "${TMPDIR:-/tmp}/klp-refinitramfs.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$tree'" EXIT
    mkdir -p "$tree"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,modules}
    cp "$busybox" "$tree/bin/busybox"
    local applet f
    for applet in $("$busybox" --list-full); do
        [ -e "$tree/$applet" ] || ln -s /bin/busybox "$tree/$applet"
    done
    local program src dest lib
    for program in "${programs[@]}"; do
        src=${program%%:*}
        dest=${program#*:}
        [ "$dest" != "$program" ] || dest=/usr/local/bin/$(basename "$src")
        [ -x "$src" ] || die "-x $program: $src is not an executable file"
        case $dest in /*) ;; *) die "-x $program: $dest is not an absolute path" ;; esac
        mkdir -p "$tree$(dirname "$dest")"
        # A busybox applet of that name is replaced, not written through its symlink.
        rm -f "$tree$dest"
        cp -L "$src" "$tree$dest"
        for lib in $(ldd "$src" 2>/dev/null | grep -o '/[^ ]*'); do
            [ -e "$tree$lib" ] && continue
            mkdir -p "$tree$(dirname "$lib")"
            cp -L "$lib" "$tree$lib"
        done
    done
    for f in "$@"; do
        [ -f "$f" ] || die "file $f does not exist"
        cp "$f" "$tree/modules/"
    done
    cp "$script" "$tree/test.sh"
    # /dev/console comes from devtmpfs: the archive has no device nodes.
    cat > "$tree/init" <<'INIT'
#!/bin/sh
mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# Where the kernel has debugfs (the selftests' dynamic_debug control is there); quiet otherwise.
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
echo 0 > /proc/sys/kernel/kptr_restrict
export PATH=/usr/local/bin:/bin:/sbin:/usr/bin:/usr/sbin HOME=/
cd /
sh -e /test.sh
rc=$?
# Kernel messages printed while the verdict is written could split its line: quiet them first.
echo 1 > /proc/sys/kernel/printk
echo
if [ "$rc" = 0 ]; then echo "KLP-TEST-RESULT: PASS"; else echo "KLP-TEST-RESULT: FAIL ($rc)"; fi
sync
reboot -f
INIT
    chmod 755 "$tree/init" "$tree/test.sh"
    mkdir -p "$(dirname "$out")"
    ( cd "$tree" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet ) | gzip -1 > "$out.tmp"
    mv "$out.tmp" "$out"
}

# The Debian version of linux-source-6.12, read from apt (it moves with security updates);
# KLP_REFKERNEL_VERSION pins it for a reproducer.
ref_version() {
    if [ -n "${KLP_REFKERNEL_VERSION:-}" ]; then echo "$KLP_REFKERNEL_VERSION"; return; fi
    local v
    v=$(apt-cache policy "linux-source-$SERIES" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -z "$v" ] || [ "$v" = "(none)" ]; then
        [ "$(id -u)" = 0 ] || die "apt does not know linux-source-$SERIES; run apt-get update as root"
        log "apt does not know linux-source-$SERIES yet: apt-get update"
        apt-get update -q >&2
        v=$(apt-cache policy "linux-source-$SERIES" | awk '/Candidate:/ {print $2}')
    fi
    [ -n "$v" ] && [ "$v" != "(none)" ] || die "no linux-source-$SERIES in apt's lists (Debian 12 has it in bookworm and bookworm-security)"
    echo "$v"
}

# The source tarball of version $1, downloaded and unpacked once per version.
ref_fetch() {
    local ver=$1 dir=$ROOT/debian-$1
    if [ ! -f "$dir/.fetched" ]; then
        log "downloading linux-source-$SERIES=$ver"
        rm -rf "$dir"
        mkdir -p "$dir/dl"
        # apt's sandbox user may not write into root's cache; it falls back to root with a warning.
        (cd "$dir/dl" && apt-get download -q "linux-source-$SERIES=$ver" >&2 2>&1) ||
            die "apt-get download linux-source-$SERIES=$ver failed (is the version still in the archive? run apt-get update)"
        local deb
        deb=$(ls "$dir"/dl/linux-source-"$SERIES"_*.deb)
        dpkg-deb -x "$deb" "$dir/pkg"
        rm -f "$deb"
        [ -f "$dir/pkg/usr/src/linux-source-$SERIES.tar.xz" ] ||
            die "$deb has no usr/src/linux-source-$SERIES.tar.xz"
        touch "$dir/.fetched"
    fi
    echo "$dir/pkg/usr/src/linux-source-$SERIES.tar.xz"
}

# The cache key of version $1: the build depends on the source, the patch and the fragments.
ref_key() {
    [ -f "$PATCH_FILE" ] || die "$PATCH_FILE is missing"
    [ -f "$FRAGMENT" ] || die "$FRAGMENT is missing"
    local key
    key="$1-$(sha256sum "$PATCH_FILE" | cut -c1-12)-$(sha256sum "$FRAGMENT" | cut -c1-12)"
    [ -z "$VARIANT" ] || key="$key-$VARIANT-$(sha256sum "$VARIANT_FRAGMENT" | cut -c1-12)"
    echo "$key"
}

# Print the KEY=VALUE lines of the built tree of key $2, version $1 (also kept in
# refkernel.env, or refkernel-<variant>.env).
ref_env() {
    local ver=$1 key=$2
    local tree=$ROOT/build-$key/linux-source-$SERIES
    local release
    release=$(cat "$tree/include/config/kernel.release")
    local env_tmp="$ROOT/$ENV_FILE_NAME.tmp.$$"
    cat > "$env_tmp" <<EOT
REF_TREE=$tree
REF_BZIMAGE=$tree/arch/x86/boot/bzImage
REF_VMLINUX=$tree/vmlinux
REF_SYMVERS=$tree/Module.symvers
REF_CONFIG=$tree/.config
REF_RELEASE=$release
REF_VERSION=$ver
REF_KEY=$key
EOT
    mv "$env_tmp" "$ROOT/$ENV_FILE_NAME"
    cat "$ROOT/$ENV_FILE_NAME"
}

# `cached`: the lines of the current key's build when it is complete, without apt-get, building
# or installing anything; fails naming what is missing (for tests run by hand, which skip then).
ref_cached() {
    local tool
    for tool in qemu-system-x86_64 cpio gzip timeout flock make gcc; do
        command -v "$tool" >/dev/null || die "$tool is missing: run bash lab/refkernel.sh as root"
    done
    [ -x /bin/busybox ] || die "/bin/busybox is missing: run bash lab/refkernel.sh as root"
    local ver
    if [ -n "${KLP_REFKERNEL_VERSION:-}" ]; then
        ver=$KLP_REFKERNEL_VERSION
    else
        ver=$(apt-cache policy "linux-source-$SERIES" 2>/dev/null | awk '/Candidate:/ {print $2}')
        [ -n "$ver" ] && [ "$ver" != "(none)" ] || die "apt does not know linux-source-$SERIES: run bash lab/refkernel.sh"
    fi
    local key
    key=$(ref_key "$ver")
    [ -f "$ROOT/build-$key/.built" ] ||
        die "the reference kernel $key is not built (no $ROOT/build-$key/.built): run bash lab/refkernel.sh${VARIANT:+ --variant $VARIANT} (about 5 minutes)"
    ref_env "$ver" "$key"
}

ref_build() {
    lab_install flex bison bc libelf-dev libssl-dev make gcc libc6-dev xz-utils cpio busybox-static qemu-system-x86 kmod procps diffutils
    lab_lock refkernel
    local ver key tarball build tree start
    start=$(date +%s)
    ver=$(ref_version)
    key=$(ref_key "$ver")
    build=$ROOT/build-$key
    tree=$build/linux-source-$SERIES
    if [ ! -f "$build/.built" ]; then
        tarball=$(ref_fetch "$ver")
        # A tree without the marker is the rest of an interrupted build (this one or another
        # key's: the lock is held, so no build is running): start over, and free the space.
        local stale
        for stale in "$ROOT"/build-*; do
            [ -d "$stale" ] && [ ! -f "$stale/.built" ] && rm -rf "$stale"
        done
        mkdir -p "$build"
        log "unpacking $tarball"
        tar -xJf "$tarball" -C "$build"
        [ -f "$tree/Makefile" ] || die "$tarball has no linux-source-$SERIES/Makefile"
        log "applying $PATCH_FILE"
        patch -d "$tree" -p1 --batch --forward -s < "$PATCH_FILE" ||
            die "$PATCH_FILE does not apply to linux-source-$SERIES $ver; update the patch for this version"
        local fragments=("$FRAGMENT") fragment line
        [ -z "$VARIANT" ] || fragments+=("$VARIANT_FRAGMENT")
        log "configuring: tinyconfig + ${fragments[*]}"
        make -C "$tree" -s tinyconfig >&2
        "$tree/scripts/kconfig/merge_config.sh" -m -O "$tree" "$tree/.config" "${fragments[@]}" >&2
        make -C "$tree" -s olddefconfig >&2
        for fragment in "${fragments[@]}"; do
            while read -r line; do
                case $line in CONFIG_*) ;; *) continue ;; esac
                grep -qxF "$line" "$tree/.config" ||
                    die "$tree/.config lacks $line after olddefconfig (a dependency of it is missing); fix $fragment"
            done < "$fragment"
        done
        log "building bzImage and modules (about 5 minutes on 2 cores)"
        make -C "$tree" -s -j"$(nproc)" bzImage modules >&2 ||
            die "the reference kernel did not build in $tree; see the compiler output above"
        for f in vmlinux Module.symvers arch/x86/boot/bzImage; do
            [ -s "$tree/$f" ] || die "the build left no $tree/$f"
        done
        echo "$VARIANT" > "$build/.variant"
        touch "$build/.built"
        log "built in $(( $(date +%s) - start )) s"
        # Builds of this variant under older keys (another patch or fragment) are no longer
        # used: free their space (about 2 GB each). The lock is held, so none is being built.
        local old
        for old in "$ROOT"/build-*; do
            [ "$old" != "$build" ] && [ -f "$old/.built" ] || continue
            [ "$(cat "$old/.variant" 2>/dev/null)" = "$VARIANT" ] || continue
            log "removing $old, a build of an older key"
            rm -rf "$old"
        done
    fi
    ref_env "$ver" "$key"
}

mkdir -p "$ROOT"
case ${1:-} in
    initramfs) shift; ref_initramfs "$@" ;;
    boot)
        shift
        env_file=$ROOT/$ENV_FILE_NAME
        [ -f "$env_file" ] || die "the reference kernel is not built ($env_file is missing): run bash lab/refkernel.sh"
        bz=$(sed -n 's/^REF_BZIMAGE=//p' "$env_file")
        [ -f "$bz" ] || die "REF_BZIMAGE=$bz does not exist: run bash lab/refkernel.sh"
        log_file='' timeout_s=180
        while getopts "l:t:" opt; do
            case $opt in
                l) log_file=$OPTARG ;;
                t) timeout_s=$OPTARG ;;
                *) die "usage: $0 boot -l LOG [-t SECONDS] INITRAMFS" ;;
            esac
        done
        shift $((OPTIND - 1))
        [ $# = 1 ] && [ -n "$log_file" ] || die "usage: $0 boot -l LOG [-t SECONDS] INITRAMFS"
        exec "$LAB_SCRIPTS/boot.sh" -l "$log_file" -t "$timeout_s" "$bz" "$1"
        ;;
    "") ref_build ;;
    cached) ref_cached ;;
    *) die "usage: $0 [cached | initramfs -o OUT -s TEST.sh [-x SRC[:DEST]]... [FILE...] | boot -l LOG [-t SECONDS] INITRAMFS]" ;;
esac
