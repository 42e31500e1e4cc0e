#!/usr/bin/env bash
# lab/demo.sh: the README's first command. From a fresh Debian 12 machine: installs what it
# needs, builds klp-build, sets up the kernel lab (lab/setup.sh), turns
# testdata/patches/cmdline.patch into livepatch-cmdline.ko for Debian's own 6.1 kernel, then boots
# that kernel in QEMU and shows /proc/cmdline before the patch, patched, and restored after the
# patch is disabled and removed.
# Usage: lab/demo.sh [OUT_DIR]   (default target/demo; the module, the boot log and klp-tmp/ go there)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lab/common.sh
. lab/common.sh
out=$(mkdir -p "${1:-target/demo}" && cd "${1:-target/demo}" && pwd)

if ! command -v cargo >/dev/null; then export PATH="$HOME/.cargo/bin:$PATH"; fi
command -v cargo >/dev/null || die "cargo is not installed: install Rust with rustup (https://rustup.rs)"
lab_install ca-certificates gcc make binutils kmod patch util-linux

step() { printf '\n== %s\n' "$*" >&2; }

step "cargo build --release"
cargo build --release

step "bash lab/setup.sh (the Debian kernel, its source, headers and kallsyms; cached)"
lab_env=$(bash lab/setup.sh)
while IFS='=' read -r key value; do
    case $key in LAB_*) printf -v "$key" '%s' "$value" ;; esac
done <<<"$lab_env"
echo "$lab_env" >&2

ko="$out/livepatch-cmdline.ko"
cmd=(target/release/klp-build --diff testdata/patches/cmdline.patch
     --source "$LAB_SRC" --kbuild "$LAB_KBUILD" --config "$LAB_CONFIG" --symbols "$LAB_KALLSYMS"
     --work-dir "$out/klp-tmp" -o "$ko")
step "${cmd[*]}"
rm -f "$ko"
start=$(date +%s)
"${cmd[@]}"
[ -f "$ko" ] || die "klp-build exited 0 but wrote no $ko"
echo "built $ko in $(( $(date +%s) - start )) s" >&2

# The guest's part: busybox sh -e, so any failed check ends the run with a FAIL verdict.
cat > "$out/test.sh" <<'GUEST'
patch=livepatch_cmdline
sysfs=/sys/kernel/livepatch/$patch
# Waits (up to 30 s) until the condition "$@" holds: transitions finish when every task has left
# the old code, which takes a moment on an emulated CPU.
wait_for() {
    i=0
    until "$@"; do
        i=$((i + 1))
        if [ $i -ge 300 ]; then echo "demo: timed out waiting for: $*"; exit 1; fi
        sleep 0.1
    done
}
no_transition() { [ "$(cat $sysfs/transition)" = 0 ]; }
patch_gone() { [ ! -e $sysfs ]; }

echo "demo: /proc/cmdline before: $(cat /proc/cmdline)"
if grep -q klp-build /proc/cmdline; then echo "demo: already patched?"; exit 1; fi

echo "demo: insmod /modules/livepatch-cmdline.ko"
insmod /modules/livepatch-cmdline.ko
[ "$(cat $sysfs/enabled)" = 1 ]
wait_for no_transition
echo "demo: /proc/cmdline patched: $(cat /proc/cmdline)"
grep -q klp-build /proc/cmdline

echo "demo: echo 0 > $sysfs/enabled"
echo 0 > $sysfs/enabled
wait_for patch_gone
echo "demo: /proc/cmdline restored: $(cat /proc/cmdline)"
if grep -q klp-build /proc/cmdline; then echo "demo: still patched after disabling"; exit 1; fi

echo "demo: rmmod $patch"
rmmod $patch
if grep -q "^$patch " /proc/modules; then echo "demo: $patch is still loaded"; exit 1; fi
GUEST

step "boot $LAB_VMLINUZ in QEMU (software emulation) and load the module"
bash lab/initramfs.sh -o "$out/initramfs.gz" -s "$out/test.sh" "$ko"
rc=0
bash lab/boot.sh -l "$out/console.log" "$LAB_VMLINUZ" "$out/initramfs.gz" || rc=$?
# From /init on: the script's lines and the kernel's livepatch messages between them.
tr -d '\r' < "$out/console.log" | sed -n '/Run \/init as init process/,/^KLP-TEST-RESULT:/p' |
    grep -E 'demo:|livepatch|KLP-TEST-RESULT' >&2 || true
[ "$rc" = 0 ] || die "the demo boot failed; the whole console log is $out/console.log"
echo "demo: done; module $ko, console log $out/console.log" >&2
