# warn-bug: drop_caches_sysctl_handler() gets a WARN_ON() and a BUG_ON() (never taken), and keeps
# using the kernel's static stfu: a 4 written while patched silences the unpatched handler too.
f=/proc/sys/vm/drop_caches
echo 1 > $f
[ "$(dmesg | grep -c 'drop_caches: 1')" = 1 ] || fail "the unpatched handler did not report"
load_patch livepatch-fixes-warn-bug
echo 3 > $f
dmesg | grep -q "klp-build: drop_caches=4" && fail "WARN_ON taken for 3"
echo 4 > $f
dmesg | grep -q "klp-build: drop_caches=4 drops nothing" || fail "WARN_ON not taken for 4"
dmesg | grep -q "WARNING: CPU.* at fs/drop_caches.c:[0-9]* drop_caches_sysctl_handler" ||
    fail "WARNING line lacks the file and function"
dmesg | grep -q "invalid opcode" && fail "the warning trapped as an invalid opcode"
echo 4 > $f
[ "$(dmesg | grep -c 'klp-build: drop_caches=4')" = 2 ] || fail "WARN_ON is not taken each time"
unload_patch livepatch-fixes-warn-bug
echo 4 > $f
[ "$(dmesg | grep -c 'klp-build: drop_caches=4')" = 2 ] || fail "WARN_ON still taken after the patch"
echo 1 > $f
[ "$(dmesg | grep -c 'drop_caches: 1')" = 1 ] || fail "the patch did not share the kernel's static stfu"
step "warn-bug: WARN_ON and BUG_ON in a patched function, the kernel's static local shared"
