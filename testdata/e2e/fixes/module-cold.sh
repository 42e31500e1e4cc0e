# module-cold: bm_register_write() of the binfmt_misc module, with a .text.unlikely cold part.
# First the module is loaded before the livepatch, then after it.
reg=/proc/sys/fs/binfmt_misc/register
register() { echo ":$1:E::$1::/bin/sh:" > $reg || fail "register $1 failed"; }
mods() {
    step "insmod binfmt_misc.ko"
    insmod /modules/binfmt_misc.ko || fail "insmod binfmt_misc.ko failed"
    mount -t binfmt_misc none /proc/sys/fs/binfmt_misc || fail "cannot mount binfmt_misc"
}
unmods() {
    echo -1 > /proc/sys/fs/binfmt_misc/status
    umount /proc/sys/fs/binfmt_misc
    rmmod binfmt_misc || fail "rmmod binfmt_misc failed"
}
obj=/sys/kernel/livepatch/livepatch_fixes_module_cold/binfmt_misc
mods
load_patch livepatch-fixes-module-cold
[ "$(cat $obj/patched)" = 1 ] || fail "the loaded binfmt_misc was not patched"
register klpa
dmesg | grep -q "klp-build: registering klpa" || fail "module loaded first: the patched write did not run"
unload_patch livepatch-fixes-module-cold
register klpb
dmesg | grep -q "klp-build: registering klpb" && fail "module loaded first: still patched after disabling"
unmods
load_patch livepatch-fixes-module-cold
[ "$(cat $obj/patched)" = 0 ] || fail "binfmt_misc patched before it was loaded"
mods
[ "$(cat $obj/patched)" = 1 ] || fail "binfmt_misc not patched when it loaded"
register klpc
dmesg | grep -q "klp-build: registering klpc" || fail "module loaded second: the patched write did not run"
unmods
[ "$(cat $obj/patched)" = 0 ] || fail "still patched after rmmod"
unload_patch livepatch-fixes-module-cold
step "module-cold: a module function with a cold part, module loaded before and after"
