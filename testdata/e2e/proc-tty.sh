# Case 2: fs/proc/proc_tty.c: the new code calls the file's static t_next() (sympos 6 in
# Debian's 6.1 kallsyms) and reads its static proc_tty_driver. Binding t_next to another of the
# six same-named functions would walk the wrong list: the marker would be missing, repeated or
# the kernel would oops.
f=/proc/tty/drivers
grep -q "^# end of drivers" $f && fail "marker present before the patch"
n=$(wc -l < $f)
load_patch livepatch-proc-tty
cat $f
[ "$(grep -c '^# end of drivers' $f)" = 1 ] || fail "marker not exactly once"
[ "$(tail -n 1 $f)" = "# end of drivers, /proc/tty/driver present" ] || fail "marker not last or wrong: $(tail -n 1 $f)"
[ "$(wc -l < $f)" = $((n + 1)) ] || fail "listing changed beyond the marker"
unload_patch livepatch-proc-tty
grep -q "^# end of drivers" $f && fail "marker still present after disabling"
step "proc-tty patched and restored"
