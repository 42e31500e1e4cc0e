#!/usr/bin/env bash
# lab/initramfs.sh: build the gzip cpio initramfs that every lab boot runs.
# Usage: lab/initramfs.sh -o OUT.cpio.gz -s TEST.sh [FILE...]
# Input: a test script and files (e.g. .ko modules); output: an initramfs whose /init mounts proc,
# sys and devtmpfs, sets kptr_restrict to 0, runs /test.sh with `sh -e`, prints exactly one
# verdict line, `KLP-TEST-RESULT: PASS` or `KLP-TEST-RESULT: FAIL (<exit code>)`, on the console
# and powers off. FILEs land in /modules/<basename>.
# Invariant: nothing is cached; the result depends only on the arguments and busybox-static.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"

usage() { die "usage: $0 -o OUT.cpio.gz -s TEST.sh [FILE...]"; }
out='' script=''
while getopts "o:s:" opt; do
    case $opt in
        o) out=$OPTARG ;;
        s) script=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
if [ -z "$out" ] || [ -z "$script" ]; then usage; fi
[ -f "$script" ] || die "test script $script does not exist"

busybox=/bin/busybox
[ -x "$busybox" ] || die "$busybox is missing; install busybox-static (apt-get install busybox-static)"
# The initramfs has no libc: a dynamically linked busybox (package `busybox`) cannot run there.
case $(readelf -lW "$busybox") in
    *INTERP*) die "$busybox is dynamically linked; install busybox-static (apt-get install busybox-static)" ;;
esac

tree=$(mktemp -d "${TMPDIR:-/tmp}/klp-initramfs.XXXXXX")
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,modules}
cp "$busybox" "$tree/bin/busybox"
for applet in $("$busybox" --list-full); do
    [ -e "$tree/$applet" ] || ln -s /bin/busybox "$tree/$applet"
done
for f in "$@"; do
    [ -f "$f" ] || die "file $f does not exist"
    cp "$f" "$tree/modules/"
done
cp "$script" "$tree/test.sh"

# The kernel opens /dev/console before /init runs; without a device node in the archive it runs
# /init without stdio, so /init takes the console from devtmpfs first.
cat > "$tree/init" <<'EOF'
#!/bin/sh
mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
echo 0 > /proc/sys/kernel/kptr_restrict
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/
cd /
sh -e /test.sh
rc=$?
# Kernel messages printed while the verdict is written could split its line: quiet them first.
echo 1 > /proc/sys/kernel/printk
echo
if [ "$rc" = 0 ]; then echo "KLP-TEST-RESULT: PASS"; else echo "KLP-TEST-RESULT: FAIL ($rc)"; fi
sync
poweroff -f
EOF
chmod 755 "$tree/init" "$tree/test.sh"

mkdir -p "$(dirname "$out")"
( cd "$tree" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet ) | gzip -1 > "$out.tmp"
mv "$out.tmp" "$out"
