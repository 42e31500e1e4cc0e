# Case 3: kernel/ksysfs.c: /sys/kernel/rcu_normal accepts only 0 and 1 once patched.
f=/sys/kernel/rcu_normal
echo 5 > $f || fail "unpatched kernel refused 5"
[ "$(cat $f)" = 5 ] || fail "unpatched kernel did not store 5"
echo 0 > $f
load_patch livepatch-ksysfs
if echo 5 > $f 2>/dev/null; then fail "patched kernel accepted 5"; fi
[ "$(cat $f)" = 0 ] || fail "refused write changed the value"
echo 1 > $f || fail "patched kernel refused 1"
[ "$(cat $f)" = 1 ] || fail "patched kernel did not store 1"
echo 0 > $f
unload_patch livepatch-ksysfs
echo 5 > $f || fail "restored kernel refused 5"
echo 0 > $f
step "rcu_normal validation patched and restored"
