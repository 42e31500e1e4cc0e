#!/usr/bin/env bash
# lab/boot.sh: boot a kernel and an initramfs (lab/initramfs.sh) in QEMU and read the verdict.
# Usage: lab/boot.sh -l LOG [-t SECONDS] [-2 FILE] [-a CMDLINE] KERNEL INITRAMFS
# Input: the kernel, the initramfs, a log path; -2 connects the guest's /dev/ttyS1 to FILE for
# bulk output, -a appends to the kernel command line. Output: the console log in LOG; exit 0 when
# its last verdict line is `KLP-TEST-RESULT: PASS`, 1 when it is FAIL or missing (panic, timeout,
# hang), 2 when the boot could not be started.
# Invariant: QEMU never outlives the timeout (default 180 s) and never reads standard input.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"

usage() { echo "usage: $0 -l LOG [-t SECONDS] [-2 FILE] [-a CMDLINE] KERNEL INITRAMFS" >&2; exit 2; }
log_file='' timeout_s=180 serial2='' extra=''
while getopts "l:t:2:a:" opt; do
    case $opt in
        l) log_file=$OPTARG ;;
        t) timeout_s=$OPTARG ;;
        2) serial2=$OPTARG ;;
        a) extra=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -ne 2 ] || [ -z "$log_file" ]; then usage; fi
kernel=$1 initramfs=$2
for f in "$kernel" "$initramfs"; do
    [ -f "$f" ] || { echo "lab: error: $f does not exist" >&2; exit 2; }
done
command -v qemu-system-x86_64 >/dev/null ||
    { echo "lab: error: qemu-system-x86_64 is missing; install qemu-system-x86 (or run bash lab/setup.sh)" >&2; exit 2; }

# KVM hangs in the BIOS on this kind of machine (kernel-lab.md), so always software emulation.
# panic=-1 reboots at once on a panic and -no-reboot turns that reboot into QEMU's exit; oops=panic
# makes an oops (say, in a livepatched function) end the run rather than leave a half-dead guest.
# no_timer_check: on a busy host the emulated CPU is slow enough that the kernel's check of the
# IO-APIC timer fails and it panics ("IO-APIC + timer doesn't work!", seen booting Debian's 6.12
# while other builds ran); the check proves nothing about the code under test.
append="console=ttyS0 panic=-1 oops=panic no_timer_check ${extra}"
args=(-accel tcg -cpu max -m 1G -smp 1 -display none -no-reboot -nodefaults
      -serial "file:$log_file")
[ -z "$serial2" ] || args+=(-serial "file:$serial2")
args+=(-kernel "$kernel" -initrd "$initramfs" -append "$append")

mkdir -p "$(dirname "$log_file")"
: > "$log_file"
qemu_err=$(mktemp "${TMPDIR:-/tmp}/klp-qemu.XXXXXX")
trap 'rm -f "$qemu_err"' EXIT
start=$(date +%s)
rc=0
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 "${args[@]}" </dev/null 2>"$qemu_err" || rc=$?
secs=$(( $(date +%s) - start ))
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "[lab] QEMU timed out after $timeout_s s" >> "$log_file"
fi

verdict=$(tr -d '\r' < "$log_file" | grep -a '^KLP-TEST-RESULT: ' | tail -n 1 || true)
if [ "$verdict" = "KLP-TEST-RESULT: PASS" ]; then
    log "PASS in $secs s ($log_file)"
    exit 0
fi
{
    echo "lab: boot failed after $secs s (QEMU exit $rc): ${verdict:-no verdict line}; console log $log_file ends:"
    tr -d '\r' < "$log_file" | tail -n 40
    if [ -s "$qemu_err" ]; then echo "lab: QEMU said:"; tail -n 10 "$qemu_err"; fi
} >&2
exit 1
