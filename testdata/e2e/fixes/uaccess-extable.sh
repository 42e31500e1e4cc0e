# uaccess-extable: write_sysrq_trigger() reads the key with unsafe_get_user() (an __ex_table entry).
load_patch livepatch-fixes-uaccess-extable
echo K > /proc/sysrq-trigger || fail "write to sysrq-trigger failed"
dmesg | grep -q "klp-build: sysrq-trigger K ignored" || fail "the patched trigger did not see K"
echo h > /proc/sysrq-trigger || fail "sysrq h failed while patched"
dmesg | grep -q "sysrq: HELP" || fail "other keys no longer reach sysrq"
unload_patch livepatch-fixes-uaccess-extable
echo K > /proc/sysrq-trigger
[ "$(dmesg | grep -c 'klp-build: sysrq-trigger K ignored')" = 1 ] || fail "K still ignored after the patch"
step "uaccess-extable: an inline user access in a patched function"
