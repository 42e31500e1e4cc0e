#!/usr/bin/env bash
# lab/env.sh: print the kernel lab's KEY=VALUE lines (see lab/setup.sh) from the cache.
# Input: $LAB/lab.env, written by lab/setup.sh. Output: its lines, unchanged.
# Invariant: reads only the cache (no apt, no network, no QEMU) and fails, naming what is missing,
# unless every path it lists exists and the boot tools are installed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"

[ -f "$LAB_ENV_FILE" ] || die "the kernel lab is not set up ($LAB_ENV_FILE is missing): run bash lab/setup.sh"
for key in LAB_DIR LAB_SRC LAB_KBUILD LAB_CONFIG LAB_VMLINUZ LAB_KALLSYMS LAB_RELEASE LAB_MODULES LAB_VERSION; do
    value=$(sed -n "s/^$key=//p" "$LAB_ENV_FILE")
    [ -n "$value" ] || die "$LAB_ENV_FILE has no $key: run bash lab/setup.sh"
    case $key in
        LAB_RELEASE | LAB_VERSION) ;;
        *) [ -e "$value" ] || die "$key=$value does not exist: run bash lab/setup.sh" ;;
    esac
done
# Booting needs these too; setup.sh installs them.
for tool in qemu-system-x86_64 cpio gzip timeout flock; do
    command -v "$tool" >/dev/null || die "$tool is missing: run bash lab/setup.sh"
done
[ -x /bin/busybox ] || die "/bin/busybox is missing: run bash lab/setup.sh"
case $(readelf -lW /bin/busybox) in *INTERP*) die "/bin/busybox is not busybox-static: run bash lab/setup.sh" ;; esac
cat "$LAB_ENV_FILE"
