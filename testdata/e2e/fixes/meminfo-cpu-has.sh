# meminfo-cpu-has: meminfo_proc_show() uses static_cpu_has(), whose alternative refers to .altinstr_aux.
grep -q "^KlpBuildFpu:" /proc/meminfo && fail "/proc/meminfo has KlpBuildFpu before the patch"
load_patch livepatch-fixes-meminfo-cpu-has
grep -q "^KlpBuildFpu: *1$" /proc/meminfo || fail "KlpBuildFpu missing or not 1: $(grep Klp /proc/meminfo)"
grep -q "^MemTotal:" /proc/meminfo || fail "/proc/meminfo lost MemTotal"
unload_patch livepatch-fixes-meminfo-cpu-has
grep -q "^KlpBuildFpu:" /proc/meminfo && fail "/proc/meminfo keeps KlpBuildFpu"
step "meminfo-cpu-has: static_cpu_has() in a patched function"
