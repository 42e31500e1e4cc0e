# release verify's check of the three-fixes release (busybox sh -e, run while the module is
# enabled): new-function tags /proc/version; shadow-fork attaches a shadow variable in
# copy_process() naming the parent; module-cold patches binfmt_misc's bm_register_write(), whose
# module `release verify` loaded before the livepatch because the module patches it.
mount -t binfmt_misc none /proc/sys/fs/binfmt_misc
grep -q "^klp-build: livepatched$" /proc/version
sleep 30 & child=$!
grep -q "^KlpForker:	$$\$" /proc/$child/status
kill $child
wait $child || true
echo ":klpa:E::klpa::/bin/sh:" > /proc/sys/fs/binfmt_misc/register
dmesg | grep -q "klp-build: registering klpa"
echo "three fixes: checked"
