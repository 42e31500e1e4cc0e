#!/usr/bin/env bash
# lab/fetch.sh: fetch and unpack the Debian 12 kernel packages of one series that the end-to-end
# tests build against and boot.
# Usage: lab/fetch.sh [SERIES]   (6.1, the default, or 6.12). Output: $LAB/debian-<version>/{image,srcpkg} under the cache dir, the matching
# linux-headers package installed; prints the version dir.
# Invariant: source, image and headers are all at one package version (kernel-lab.md: a source
# tree of another version rebuilds objects that do not match the running kernel).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"
lab_series "${1:-}"
lab_lock fetch

lab_need_packages
ver=$(lab_debian_version)
[ -n "$ver" ] || die "apt knows no $LAB_META; check /etc/apt/sources.list (Debian 12 bookworm and bookworm-security)"
abi=$(lab_debian_abi "$ver")
[ -n "$abi" ] || die "cannot read the ABI of $LAB_META=$ver from apt-cache show"
dir="$LAB/debian-$ver"
mkdir -p "$dir"

if [ ! -f "$dir/.fetched" ]; then
    log "fetching Debian kernel packages $ver (abi $abi)"
    # The source package of the image's own version, not apt's candidate: the security archive
    # publishes a new linux-source (6.12.118) while the image metapackage still points at the
    # previous build (6.12.117), and both versions stay in the archive for a while.
    if ! apt-cache madison "linux-source-$LAB_SERIES" | awk '{print $3}' | grep -qxF "$ver"; then
        die "the archive has no linux-source-$LAB_SERIES=$ver beside $LAB_META=$ver (it has: $(apt-cache madison "linux-source-$LAB_SERIES" | awk '{print $3}' | tr '\n' ' ')); run apt-get update, or pin another version with KLP_LAB_DEBIAN_VERSION"
    fi
    dl="$dir/debs"
    rm -rf "$dl"
    mkdir -p "$dl"
    ( cd "$dl" && apt-get download -q "linux-image-$abi-amd64-unsigned=$ver" "linux-source-$LAB_SERIES=$ver" >&2 )
    rm -rf "$dir/image" "$dir/srcpkg"
    dpkg-deb -x "$dl"/linux-image-"$abi"-amd64-unsigned_*.deb "$dir/image"
    dpkg-deb -x "$dl"/linux-source-"$LAB_SERIES"_*.deb "$dir/srcpkg"
    rm -rf "$dl"
    touch "$dir/.fetched"
fi

# The headers are installed, not unpacked: their kbuild dir links into
# /usr/lib/linux-kbuild-<series> and linux-headers-*-common, which apt wires up.
if [ ! -f "/usr/src/linux-headers-$abi-amd64/Module.symvers" ]; then
    [ "$(id -u)" = 0 ] || die "linux-headers-$abi-amd64 is not installed; install it as root (apt-get install linux-headers-$abi-amd64=$ver)"
    log "installing linux-headers-$abi-amd64=$ver"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "linux-headers-$abi-amd64=$ver" >&2
fi

if [ ! -f "$dir/modules.decompressed" ]; then
    # Debian's 6.12 ships its modules as .ko.xz: klp-build reads the symbol tables of --modules
    # as ELF, and busybox's insmod in the guest loads plain ELF only. (6.1's are plain .ko.)
    find "$dir/image/lib/modules" -name '*.ko.xz' -print0 | xargs -0 -r -n 64 -P 2 xz -d
    find "$dir/image/lib/modules" -name '*.ko.zst' -print0 | xargs -0 -r -n 64 -P 2 zstd -q -d --rm
    rm -f "$dir/modules.dep.done"
    touch "$dir/modules.decompressed"
fi
if [ ! -f "$dir/modules.dep.done" ]; then
    # The image package has no modules.dep (kernel-lab.md).
    depmod -b "$dir/image" "$abi-amd64"
    touch "$dir/modules.dep.done"
fi
echo "$dir"
