# new-function: version_proc_show() calls version_proc_tag(), a function only the patch has.
grep -q "klp-build: livepatched" /proc/version && fail "/proc/version tagged before the patch"
load_patch livepatch-fixes-new-function
grep -q "^klp-build: livepatched$" /proc/version || fail "/proc/version lacks the tag: $(cat /proc/version)"
grep -q "^Linux version" /proc/version || fail "/proc/version lost its banner"
unload_patch livepatch-fixes-new-function
grep -q "klp-build: livepatched" /proc/version && fail "/proc/version still tagged"
step "new-function: the new function runs, and is gone with the patch"
