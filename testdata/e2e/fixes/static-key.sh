# static-key: rcu_normal_show() tests a static key of the patch; rcu_normal_store() enables it.
f=/sys/kernel/rcu_normal
[ "$(cat $f)" = 0 ] || fail "rcu_normal is $(cat $f) before the patch"
load_patch livepatch-fixes-static-key
[ "$(cat $f)" = 0 ] || fail "the key is on before it was enabled: $(cat $f)"
echo 2 > $f || fail "writing 2 failed"
[ "$(cat $f)" = "0 (verbose)" ] || fail "the key did not switch the branch: $(cat $f)"
echo 0 > $f
[ "$(cat $f)" = "0 (verbose)" ] || fail "the key did not stay on: $(cat $f)"
unload_patch livepatch-fixes-static-key
[ "$(cat $f)" = 0 ] || fail "rcu_normal reads $(cat $f) after the patch"
step "static-key: a static key defined and flipped by the patch"
