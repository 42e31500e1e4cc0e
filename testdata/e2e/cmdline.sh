# Case 1: fs/proc/cmdline.c prints a tag after the command line.
grep -q "klp-build=patched" /proc/cmdline && fail "tag present before the patch"
load_patch livepatch-cmdline
cat /proc/cmdline
grep -q " klp-build=patched$" /proc/cmdline || fail "tag missing while patched"
grep -q "livepatch: Y" /dev/null 2>/dev/null || true
unload_patch livepatch-cmdline
grep -q "klp-build=patched" /proc/cmdline && fail "tag still present after disabling"
step "restored: $(cat /proc/cmdline)"
