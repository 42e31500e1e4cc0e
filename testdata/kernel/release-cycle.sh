# release-cycle.sh: the release cycle of replace-set.md replayed on the reference kernel with
# modules klp-build built (tests/release_cycle.rs), in one boot. Input: /modules/klp-*.ko. Output:
# `PASS: <check>` / `FAIL: <check>: <seen>` lines and a sysfs listing after every step; exits 1
# when a check failed. Each fix makes the first line of one /proc file `patched-by <fix>`.
failed=0
LP=/sys/kernel/livepatch
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; failed=1; }
who() {
    line=$(head -n 1 "/proc/$1")
    case $line in "patched-by "*) echo "${line#patched-by }" ;; *) echo orig ;; esac
}
# `name:enabled:replace_set:transition` of every livepatch, sorted.
listing() {
    for d in "$LP"/*; do
        [ -d "$d" ] || continue
        echo "${d##*/}:$(cat "$d/enabled"):$(cat "$d/replace_set"):$(cat "$d/transition")"
    done | sort | tr '\n' ' '
}
# expect PATCHES... -- cmdline version loadavg uptime: waits for the transition (replaced patches
# are freed by a work item), then checks the listing and what each /proc file shows.
expect() {
    want=""
    while [ "$1" != "--" ]; do want="$want$1 "; shift; done
    shift
    want=$(for p in $want; do echo "$p"; done | sort | tr '\n' ' ')
    i=0
    while [ $i -lt 30 ]; do
        got=$(listing)
        [ "$got" = "$want" ] && break
        sleep 1
        i=$((i + 1))
    done
    echo "sysfs after $STEP: $got"
    if [ "$got" = "$want" ]; then pass "$STEP: livepatches $want"; else fail "$STEP: livepatches $want" "$got"; fi
    for f in cmdline version loadavg uptime; do
        w=$1; shift
        g=$(who $f)
        if [ "$g" = "$w" ]; then pass "$STEP: /proc/$f is $w"; else fail "$STEP: /proc/$f is $w" "$g"; fi
    done
}
load() {
    m=$1; shift
    if insmod "/modules/$m.ko" "$@"; then pass "$STEP: insmod $m"; else fail "$STEP: insmod $m" "refused"; fi
}
refuse() {
    before="$(listing)|$(who cmdline) $(who version) $(who loadavg) $(who uptime)"
    if insmod "/modules/$1.ko"; then fail "$STEP: insmod $1 is refused" "it loaded"; return; fi
    name=$(echo "$1" | tr - _)
    if dmesg | grep -q "Livepatch patch ($name) is not compatible"; then
        pass "$STEP: the kernel says $1 is not compatible"
    else
        fail "$STEP: the kernel says $1 is not compatible" "no message"
    fi
    after="$(listing)|$(who cmdline) $(who version) $(who loadavg) $(who uptime)"
    if [ "$before" = "$after" ]; then pass "$STEP: nothing changed"; else fail "$STEP: nothing changed" "$before -> $after"; fi
}

STEP=wed; load klp-1a
expect klp_1a:1:1:0 -- fix-a orig orig orig
STEP=thu; load klp-1b
expect klp_1a:1:1:0 klp_1b:1:2:0 -- fix-a fix-b orig orig
STEP=thu-x; refuse klp-1x
STEP=fri; load klp-1c
expect klp_1a:1:1:0 klp_1c:1:2:0 -- fix-a fix-b2 orig orig
STEP=mon; load klp-2a
expect klp_2a:1:1:0 -- fix-a fix-b2 fix-c orig
STEP=mon-state; refuse klp-st
STEP=tue; load klp-2b
expect klp_2a:1:1:0 klp_2b:1:2:0 -- fix-a fix-b2 fix-c fix-d
# The administrator resolves 1x's conflict by atomic replace of set 1 at load.
STEP=also; load klp-1x also_replace_sets=1
expect klp_1x:1:3:0 klp_2b:1:2:0 -- fix-x orig orig fix-d
for m in klp_1a klp_1b klp_1c klp_2a; do
    rmmod "$m" 2>/dev/null || { sleep 2; rmmod "$m" 2>/dev/null; } || fail "also: rmmod $m" "busy"
done
if dmesg | grep -q "Call Trace"; then fail "no stack trace in dmesg" "$(dmesg | grep -m1 -B5 'Call Trace')"; else pass "no stack trace in dmesg"; fi
exit $failed
