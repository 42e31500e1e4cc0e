# klp-callbacks-612: fscaps_show() is tagged while patched, and the four callbacks registered with
# KLP_PRE_PATCH_CALLBACK() and the others (<linux/livepatch_helpers.h>) print, in the kernel's order.
dmesg -c > /dev/null
grep -q "^[01]$" /sys/kernel/fscaps || fail "klp-callbacks-612: fscaps reads $(cat /sys/kernel/fscaps) before the patch"
load_patch livepatch-fixes-klp-callbacks-612
grep -q "^[01] klp612$" /sys/kernel/fscaps || fail "klp-callbacks-612: fscaps reads $(cat /sys/kernel/fscaps) while patched"
unload_patch livepatch-fixes-klp-callbacks-612
grep -q "^[01]$" /sys/kernel/fscaps || fail "klp-callbacks-612: fscaps reads $(cat /sys/kernel/fscaps) after the patch"
got=$(dmesg | grep -o "klp-build: klp612 .*" | tr '\n' ';')
want="klp-build: klp612 pre-patch callback;klp-build: klp612 post-patch callback;klp-build: klp612 pre-unpatch callback;klp-build: klp612 post-unpatch callback;"
[ "$got" = "$want" ] || fail "klp-callbacks-612: callbacks printed '$got', want '$want'"
step "klp-callbacks-612: fscaps tagged while patched, callbacks in order"
