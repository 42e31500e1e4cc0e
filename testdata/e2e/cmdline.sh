# Case 1: fs/proc/cmdline.c prints a tag after the command line.
grep -q "klp-build=patched" /proc/cmdline && fail "tag present before the patch"
load_patch livepatch-cmdline
cat /proc/cmdline
grep -q " klp-build=patched$" /proc/cmdline || fail "tag missing while patched"
# The loader taints the kernel with TAINT_LIVEPATCH (bit 15, 'K') only for a module whose modinfo
# says `livepatch: Y`.
[ $(( $(cat /proc/sys/kernel/tainted) & 32768 )) != 0 ] || fail "no TAINT_LIVEPATCH: not loaded as a livepatch"
unload_patch livepatch-cmdline
grep -q "klp-build=patched" /proc/cmdline && fail "tag still present after disabling"
step "restored: $(cat /proc/cmdline)"
