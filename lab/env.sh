#!/usr/bin/env bash
# lab/env.sh: print the kernel lab's KEY=VALUE lines (see lab/setup.sh) from the cache.
# Usage: lab/env.sh [SERIES]   (6.1, the default, or 6.12)
# Input: the series' env file ($LAB/lab.env, $LAB/lab-6.12.env), written by lab/setup.sh.
# Output: its lines, unchanged.
# Invariant: reads only the cache (no apt, no network, no QEMU) and fails, naming what is missing,
# unless every path it lists exists and the boot tools are installed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"
lab_series "${1:-}"
if [ "$LAB_SERIES" = "$LAB_SERIES_DEFAULT" ]; then setup="bash lab/setup.sh"; else setup="bash lab/setup.sh $LAB_SERIES"; fi

[ -f "$LAB_ENV_FILE" ] || die "the kernel lab is not set up ($LAB_ENV_FILE is missing): run $setup"
for key in LAB_DIR LAB_SRC LAB_KBUILD LAB_CONFIG LAB_VMLINUZ LAB_KALLSYMS LAB_RELEASE LAB_MODULES LAB_VERSION; do
    value=$(sed -n "s/^$key=//p" "$LAB_ENV_FILE")
    [ -n "$value" ] || die "$LAB_ENV_FILE has no $key: run $setup"
    case $key in
        LAB_RELEASE | LAB_VERSION) ;;
        *) [ -e "$value" ] || die "$key=$value does not exist: run $setup" ;;
    esac
done
# Booting needs these too; setup.sh installs them.
for tool in qemu-system-x86_64 cpio gzip timeout flock; do
    command -v "$tool" >/dev/null || die "$tool is missing: run $setup"
done
[ -x /bin/busybox ] || die "/bin/busybox is missing: run $setup"
case $(readelf -lW /bin/busybox) in *INTERP*) die "/bin/busybox is not busybox-static: run $setup" ;; esac
cat "$LAB_ENV_FILE"
