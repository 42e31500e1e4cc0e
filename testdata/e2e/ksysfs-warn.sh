# Case 4: kernel/ksysfs.c with special sections: the patched rcu_expedited_store() has a
# WARN_ONCE (a __bug_table entry whose file name string must come along, and a private
# __already_done flag), and a pr_debug (a __dyndbg descriptor guarded by a __jump_table entry).
# Without the bug table entry the warning would be an invalid-opcode oops; without the jump
# table entry the pr_debug would never print.
f=/sys/kernel/rcu_expedited
mount -t debugfs none /sys/kernel/debug 2>/dev/null || true
load_patch livepatch-ksysfs-warn
echo 'module livepatch_ksysfs_warn +p' > /sys/kernel/debug/dynamic_debug/control ||
    fail "dynamic debug does not know the module's descriptor"
echo 5 > $f
[ "$(cat $f)" = 1 ] || fail "5 was not clamped to 1"
dmesg | grep -q "klp-build: rcu_expedited=5 clamped to 1" || fail "WARN_ONCE message missing"
dmesg | grep -q "WARNING: CPU.* at kernel/ksysfs.c:[0-9]* rcu_expedited_store" ||
    fail "WARNING line lacks the file and function"
dmesg | grep -q "invalid opcode" && fail "the warning trapped as an invalid opcode"
echo 3 > $f
[ "$(dmesg | grep -c 'clamped to 1')" = 1 ] || fail "WARN_ONCE warned twice"
echo 0 > $f
dmesg | grep -q "klp-build: rcu_expedited store 0" || fail "pr_debug did not print once enabled"
unload_patch livepatch-ksysfs-warn
echo 5 > $f
[ "$(cat $f)" = 5 ] || fail "restored kernel clamps"
echo 0 > $f
step "bug table, private static, dynamic debug and jump label work"
