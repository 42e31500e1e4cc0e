# shadow-clone: kernel_clone() attaches a shadow variable (the forker's tgid) that
# proc_pid_status() shows as KlpForker; free_task() frees it.
sleep 30 & before=$!
load_patch livepatch-fixes-shadow-clone
grep -q "^KlpForker:" /proc/$before/status && fail "a task forked before the patch has a shadow variable"
sleep 30 & child=$!
grep -q "^KlpForker:	$$\$" /proc/$child/status ||
    fail "KlpForker of $child is not $$: $(grep Klp /proc/$child/status)"
kill $child $before; wait $child $before 2>/dev/null || true
unload_patch livepatch-fixes-shadow-clone
sleep 30 & child=$!
grep -q "^KlpForker:" /proc/$child/status && fail "KlpForker shown after the patch"
kill $child; wait $child 2>/dev/null || true
step "shadow-clone: a shadow variable attached in fork, read in /proc/<pid>/status"
