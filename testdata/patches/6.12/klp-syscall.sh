# klp-syscall: setdomainname(), redefined with KLP_SYSCALL_DEFINE2 (<linux/livepatch_helpers.h>),
# refuses a name with a slash while patched. busybox has no applet that calls setdomainname(), and
# /proc/sys/kernel/domainname does not go through the syscall: /modules/setdomain calls it.
/modules/setdomain a/b || fail "klp-syscall: setdomainname a/b refused before the patch"
/modules/setdomain klp-domain
load_patch livepatch-fixes-klp-syscall
out=$(/modules/setdomain a/b) && fail "klp-syscall: setdomainname a/b accepted while patched"
[ "$out" = "setdomainname: Invalid argument" ] || fail "klp-syscall: setdomainname a/b said '$out'"
[ "$(cat /proc/sys/kernel/domainname)" = klp-domain ] || fail "klp-syscall: domainname changed"
unload_patch livepatch-fixes-klp-syscall
/modules/setdomain a/b || fail "klp-syscall: setdomainname a/b refused after the patch"
step "klp-syscall: setdomainname refuses a slash only while patched"
