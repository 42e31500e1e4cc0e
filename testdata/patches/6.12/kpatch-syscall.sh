# kpatch-syscall: sethostname(), redefined with KPATCH_SYSCALL_DEFINE2 (kpatch-syscall.h), refuses
# a name with a slash while patched.
hostname a/b || fail "kpatch-syscall: hostname a/b refused before the patch"
hostname klp-guest
load_patch livepatch-fixes-kpatch-syscall
hostname a/b 2> /dev/null && fail "kpatch-syscall: hostname a/b accepted while patched"
[ "$(hostname)" = klp-guest ] || fail "kpatch-syscall: hostname changed to $(hostname)"
hostname klp-ok || fail "kpatch-syscall: a hostname without a slash refused"
unload_patch livepatch-fixes-kpatch-syscall
hostname a/b || fail "kpatch-syscall: hostname a/b refused after the patch"
step "kpatch-syscall: sethostname refuses a slash only while patched"
