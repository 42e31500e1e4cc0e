# static-local: loadavg_proc_show() keeps a read count in a new static local (= 41).
grep -q "klp-build reads" /proc/loadavg && fail "/proc/loadavg counts reads before the patch"
load_patch livepatch-fixes-static-local
[ "$(sed -n 2p /proc/loadavg)" = "klp-build reads: 42" ] || fail "first read: '$(sed -n 2p /proc/loadavg)'"
[ "$(sed -n 2p /proc/loadavg)" = "klp-build reads: 43" ] || fail "the static local did not keep its value"
unload_patch livepatch-fixes-static-local
grep -q "klp-build reads" /proc/loadavg && fail "/proc/loadavg still counts reads"
step "static-local: the static local keeps its value across calls"
