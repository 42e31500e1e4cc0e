# Case 5: a loadable module, fs/binfmt_misc.c. The livepatch loads first, while binfmt_misc is
# not loaded: its object waits. When binfmt_misc loads, livepatch patches it as it comes (late
# module patching) and resolves the klp relocation to the module's static `enabled`; writing
# the status file flips that variable inside the module, and the patched read must see it.
st=/proc/sys/fs/binfmt_misc/status
load_patch livepatch-binfmt-misc
obj=/sys/kernel/livepatch/livepatch_binfmt_misc/binfmt_misc
[ "$(cat $obj/patched)" = 0 ] || fail "binfmt_misc patched before it was loaded"
step "insmod binfmt_misc.ko"
insmod /modules/binfmt_misc.ko || fail "insmod binfmt_misc.ko failed"
[ "$(cat $obj/patched)" = 1 ] || fail "binfmt_misc not patched when it loaded"
mount -t binfmt_misc none /proc/sys/fs/binfmt_misc || fail "cannot mount binfmt_misc"
[ "$(cat $st)" = "enabled (klp-build)" ] || fail "status while patched: $(cat $st)"
echo 0 > $st
[ "$(cat $st)" = "disabled (klp-build)" ] || fail "patched read does not see the module's enabled: $(cat $st)"
echo 1 > $st
unload_patch livepatch-binfmt-misc
[ "$(cat $st)" = "enabled" ] || fail "status after disabling: $(cat $st)"
umount /proc/sys/fs/binfmt_misc
rmmod binfmt_misc || fail "rmmod binfmt_misc failed"
step "module binfmt_misc patched as it loaded, and restored"
