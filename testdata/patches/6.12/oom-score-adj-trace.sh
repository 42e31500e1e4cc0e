# oom-score-adj-trace: the patched __set_oom_adj() logs each change, and its tracepoint (a jump
# label on __tracepoint_oom_score_adj_update, a key of vmlinux the module reaches through a klp
# relocation in __jump_table) fires from the patched function once the event is enabled.
T=/sys/kernel/tracing
[ -d $T/events ] || mount -t tracefs nodev $T || fail "cannot mount tracefs"
ev=$T/events/oom/oom_score_adj_update
[ -d $ev ] || fail "no oom_score_adj_update event"
load_patch livepatch-fixes-oom-score-adj-trace
sh -c 'echo 123 > /proc/self/oom_score_adj' || fail "writing oom_score_adj failed"
dmesg | grep -q "klp-build: oom_score_adj of [0-9]* set to 123 by" || fail "the patched __set_oom_adj() did not log"
grep -q "oom_score_adj=123" $T/trace && fail "the event fired while disabled"
echo 1 > $ev/enable
sh -c 'echo 321 > /proc/self/oom_score_adj' || fail "writing oom_score_adj failed"
dmesg | grep -q "set to 321 by" || fail "the patched __set_oom_adj() did not log 321"
grep -q "oom_score_adj=321" $T/trace || fail "the tracepoint did not fire from the patched function: $(cat $T/trace)"
echo 0 > $ev/enable
unload_patch livepatch-fixes-oom-score-adj-trace
sh -c 'echo 222 > /proc/self/oom_score_adj'
dmesg | grep -q "set to 222 by" && fail "__set_oom_adj() still logs after the patch"
step "oom-score-adj-trace: a jump label on a key of vmlinux, switched by the kernel in the patched function"
