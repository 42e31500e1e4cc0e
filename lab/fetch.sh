#!/usr/bin/env bash
# lab/fetch.sh: fetch and unpack the Debian 6.1 kernel packages that the end-to-end tests build
# against and boot. Output: $LAB/debian-<version>/{image,src,headers.env} under the cache dir.
# Invariant: source, image and headers are all at one package version (kernel-lab.md: a source
# tree of another version rebuilds objects that do not match the running kernel).
set -euo pipefail
. "$(dirname "$0")/common.sh"

lab_need_packages
ver=$(lab_debian_version)
abi=$(lab_debian_abi)
dir="$LAB/debian-$ver"
mkdir -p "$dir"

if [ ! -f "$dir/.fetched" ]; then
    log "fetching Debian kernel packages $ver (abi $abi)"
    srcver=$(apt-cache policy linux-source-6.1 | awk '/Candidate:/ {print $2}')
    [ "$srcver" = "$ver" ] || die "linux-source-6.1 is at $srcver but linux-image-amd64 at $ver; run apt-get update"
    dl="$dir/debs"; mkdir -p "$dl"
    ( cd "$dl" && apt-get download -q "linux-image-$abi-amd64-unsigned=$ver" "linux-source-6.1=$ver" )
    rm -rf "$dir/image" "$dir/srcpkg"
    dpkg-deb -x "$dl"/linux-image-"$abi"-amd64-unsigned_*.deb "$dir/image"
    dpkg-deb -x "$dl"/linux-source-6.1_*.deb "$dir/srcpkg"
    rm -rf "$dl"
    touch "$dir/.fetched"
fi

# The headers are installed, not unpacked: their kbuild dir links into
# /usr/lib/linux-kbuild-6.1 and linux-headers-*-common, which apt wires up.
if [ ! -d "/usr/src/linux-headers-$abi-amd64" ]; then
    log "installing linux-headers-$abi-amd64=$ver"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "linux-headers-$abi-amd64=$ver" >&2
fi

if [ ! -f "$dir/modules.dep.done" ]; then
    # The image package has no modules.dep (kernel-lab.md).
    depmod -b "$dir/image" "$abi-amd64"
    touch "$dir/modules.dep.done"
fi
echo "$dir"
