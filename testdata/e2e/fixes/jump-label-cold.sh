# jump-label-cold: devinfo_show() enables a static key of the patch on the first read of
# /proc/devices and prints from the key's unlikely branch, in devinfo_show.cold, on later reads.
# One read(2) each (dd): how often a tool makes seq_file show the first record varies (busybox
# `grep -q` shows it twice), and the first show must find the key off.
msg="klp-build: /proc/devices read again"
read_once() { dd if=/proc/devices of=/dev/null bs=16k count=1 2>/dev/null || fail "reading /proc/devices"; }
read_once
dmesg | grep -q "$msg" && fail "printed before the patch"
load_patch livepatch-fixes-jump-label-cold
read_once
dmesg | grep -q "$msg" && fail "printed on the first read: the key was on before it was enabled"
read_once
[ "$(dmesg | grep -c "$msg")" = 1 ] || fail "the second read did not take the key's branch once"
grep -q "^Character devices:" /proc/devices || fail "/proc/devices lost its header"
unload_patch livepatch-fixes-jump-label-cold
n=$(dmesg | grep -c "$msg")
read_once
[ "$(dmesg | grep -c "$msg")" = "$n" ] || fail "still printing after the patch"
step "jump-label-cold: a jump label whose branch lands in the function's .cold part"
