# new-global: uptime_proc_show() prints and bumps uptime_proc_reads, a new global (= 1000) in .data.
[ "$(wc -w < /proc/uptime)" = 2 ] || fail "/proc/uptime has a third field before the patch"
load_patch livepatch-fixes-new-global
set -- $(cat /proc/uptime)
[ "$3" = 1001 ] || fail "first read: third field is '$3', not 1001 (the initial value 1000 plus one)"
set -- $(cat /proc/uptime)
[ "$3" = 1002 ] || fail "second read: third field is '$3', not 1002"
unload_patch livepatch-fixes-new-global
[ "$(wc -w < /proc/uptime)" = 2 ] || fail "/proc/uptime keeps a third field after the patch"
step "new-global: new initialised global data read through /proc, one copy"
