# Two --diff fixes, two objects of two subsystems, one module: both behaviours change together
# and go back together.
f=/sys/kernel/rcu_normal
grep -q "klp-build=patched" /proc/cmdline && fail "tag present before the patch"
load_patch livepatch-cmdline-and-ksysfs
grep -q " klp-build=patched$" /proc/cmdline || fail "cmdline fix missing"
if echo 5 > $f 2>/dev/null; then fail "ksysfs fix missing: 5 accepted"; fi
unload_patch livepatch-cmdline-and-ksysfs
grep -q "klp-build=patched" /proc/cmdline && fail "cmdline tag after disabling"
echo 5 > $f || fail "restored kernel refused 5"
echo 0 > $f
step "both fixes patched and restored together"
