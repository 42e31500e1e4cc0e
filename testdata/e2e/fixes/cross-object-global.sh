# cross-object-global: version_proc_show() calls klp_cross_note() and reads klp_cross_limit, new
# globals of fs/proc/cmdline.c that nothing in cmdline.c uses.
grep -q klp-cross /proc/version && fail "/proc/version has klp-cross before the patch"
load_patch livepatch-fixes-cross-object-global
grep -q "^klp-cross 1/7$" /proc/version || fail "first read: $(grep klp-cross /proc/version)"
grep -q "^klp-cross 2/7$" /proc/version || fail "second read: $(grep klp-cross /proc/version)"
grep -q "^Linux version" /proc/version || fail "/proc/version lost its banner"
unload_patch livepatch-fixes-cross-object-global
grep -q klp-cross /proc/version && fail "/proc/version keeps klp-cross after the patch"
step "cross-object-global: new globals of one file used from another file of the patch"
