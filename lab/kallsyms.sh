#!/usr/bin/env bash
# lab/kallsyms.sh: capture /proc/kallsyms of the lab's Debian kernel, booted in QEMU.
# Usage: lab/kallsyms.sh VERSION_DIR   (the $LAB/debian-<version> dir that lab/fetch.sh printed)
# Output: VERSION_DIR/kallsyms, cached, its path printed. Debian ships no real System.map (it lives
# in the 858 MB -dbg package), so the running kernel's own listing is klp-build's --symbols input.
# Invariant: the cached file is complete (the guest's line count) and unrestricted (real addresses,
# kptr_restrict=0); addresses differ per boot (KASLR) but the order, which sympos counts, does not.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"

[ $# -eq 1 ] || die "usage: $0 VERSION_DIR"
dir=$1
out="$dir/kallsyms"
lab_lock kallsyms
if [ -f "$out" ]; then echo "$out"; exit 0; fi

vmlinuz=$(lab_vmlinuz "$dir")

work=$(mktemp -d "${TMPDIR:-/tmp}/klp-kallsyms.XXXXXX")
trap 'rm -rf "$work"' EXIT
# One open of ttyS1 for both stty and cat: raw mode keeps the tty from turning \n into \r\n.
# The close waits until the UART has sent everything, so poweroff cannot cut the listing short.
cat > "$work/test.sh" <<'EOF'
exec 3<>/dev/ttyS1
stty raw -echo <&3
cat /proc/kallsyms >&3
exec 3>&-
echo "KALLSYMS-LINES: $(wc -l < /proc/kallsyms)"
EOF
"$LAB_SCRIPTS/initramfs.sh" -o "$work/initramfs.gz" -s "$work/test.sh"
# 6.1's listing (94,000 lines) takes about 20 s on an idle machine; 6.12's has a `__pfx_` symbol
# before most functions (IBT's padding) and twice the lines, and a busy machine slows the
# emulated UART several times over: the bound is generous, the capture happens once per version.
log "capturing /proc/kallsyms of $(basename "$vmlinuz") (20-60 s on an idle machine)"
"$LAB_SCRIPTS/boot.sh" -t "${KLP_LAB_KALLSYMS_TIMEOUT:-1200}" -l "$work/console.log" -2 "$work/kallsyms" "$vmlinuz" "$work/initramfs.gz" ||
    die "the capture boot failed; console log above"

expected=$(tr -d '\r' < "$work/console.log" | sed -n 's/^KALLSYMS-LINES: \([0-9]*\)$/\1/p' | tail -n 1)
got=$(wc -l < "$work/kallsyms")
if [ -z "$expected" ] || [ "$got" != "$expected" ]; then
    die "captured $got lines of kallsyms but the guest had ${expected:-an unknown number}; rerun lab/kallsyms.sh $dir"
fi
[ "$got" -gt 50000 ] || die "captured only $got kallsyms lines (a distro kernel has ~94,000); KALLSYMS_ALL off?"
# With kptr_restrict in force every address reads as zero. A few per-CPU symbols really are at 0
# (fixed_percpu_data is the first per-CPU variable), so count, don't forbid.
zeros=$(grep -c '^0\{16\} ' "$work/kallsyms" || true)
[ "$zeros" -lt 100 ] || die "$zeros of $got kallsyms addresses are zero: kptr_restrict was in force during the capture"
grep -q ' [Tt] cmdline_proc_show$' "$work/kallsyms" || die "no cmdline_proc_show in the captured kallsyms: not a kernel listing?"
mv "$work/kallsyms" "$out"
log "kallsyms: $got lines -> $out"
echo "$out"
