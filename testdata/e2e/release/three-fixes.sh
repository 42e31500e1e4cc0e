# release: one module of a release with three fixes (new-function: a function new to the kernel
# in /proc/version; shadow-fork: a shadow variable attached in copy_process(); module-cold:
# binfmt_misc's bm_register_write(), a loadable module loaded before the livepatch). @MODULE@ is
# the release's module name, substituted by the test.
reg=/proc/sys/fs/binfmt_misc/register
step "insmod binfmt_misc.ko"
insmod /modules/binfmt_misc.ko || fail "insmod binfmt_misc.ko failed"
mount -t binfmt_misc none /proc/sys/fs/binfmt_misc || fail "cannot mount binfmt_misc"
grep -q "klp-build: livepatched" /proc/version && fail "/proc/version tagged before the patch"
load_patch @MODULE@
grep -q "^klp-build: livepatched$" /proc/version || fail "/proc/version lacks the tag: $(cat /proc/version)"
sleep 30 & child=$!
grep -q "^KlpForker:	$$\$" /proc/$child/status ||
    fail "KlpForker of $child is not $$: $(grep Klp /proc/$child/status)"
kill $child; wait $child 2>/dev/null || true
echo ":klpa:E::klpa::/bin/sh:" > $reg || fail "register klpa failed"
dmesg | grep -q "klp-build: registering klpa" || fail "binfmt_misc's patched write did not run"
unload_patch @MODULE@
grep -q "klp-build: livepatched" /proc/version && fail "/proc/version still tagged after unload"
echo ":klpb:E::klpb::/bin/sh:" > $reg || fail "register klpb failed"
dmesg | grep -q "klp-build: registering klpb" && fail "binfmt_misc still patched after unload"
dmesg | grep -q "Call Trace" && fail "the kernel printed a stack trace: $(dmesg | grep -B5 -A20 'Call Trace')"
step "release: three fixes in one module work, and are gone after unload"
