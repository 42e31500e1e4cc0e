# pr-debug: show_softirqs() has a pr_debug(): a __dyndbg descriptor behind a jump label.
mount -t debugfs none /sys/kernel/debug 2>/dev/null || true
load_patch livepatch-fixes-pr-debug
cat /proc/softirqs > /dev/null
dmesg | grep -q "klp-build: /proc/softirqs shown" && fail "pr_debug printed before it was enabled"
echo 'module livepatch_fixes_pr_debug +p' > /sys/kernel/debug/dynamic_debug/control ||
    fail "dynamic debug does not know the module's descriptor"
cat /proc/softirqs > /dev/null
dmesg | grep -q "klp-build: /proc/softirqs shown" || fail "pr_debug did not print once enabled"
unload_patch livepatch-fixes-pr-debug
n=$(dmesg | grep -c "klp-build: /proc/softirqs shown")
cat /proc/softirqs > /dev/null
[ "$(dmesg | grep -c 'klp-build: /proc/softirqs shown')" = "$n" ] || fail "pr_debug still prints"
step "pr-debug: dynamic debug in a patched function"
