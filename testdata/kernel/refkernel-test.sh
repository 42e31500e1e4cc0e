# refkernel-test.sh: the replace-set rules of testdata/kernel/replace-set.patch, checked in one
# boot of the reference kernel (busybox sh, run as /test.sh by lab/refkernel.sh's initramfs).
# Input: the rk_*.ko of testdata/kernel/modules in /modules. Output: one `PASS: <check>` or
# `FAIL: <check>: <what was seen>` line per check, `REFKERNEL-STEP <n> <name>` before each step
# and a sysfs listing after it; exits 1 when any check failed, so the boot's verdict is FAIL.
# Invariant: each step starts from the state the previous one left; the modules patch disjoint
# /proc files where they must coexist, so the checks of one step cannot be disturbed by another.
failed=0
LP=/sys/kernel/livepatch

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; failed=1; }

# `who FILE`: the module that /proc/FILE says patched it, or `orig`.
who() {
    line=$(head -n 1 "/proc/$1")
    case $line in
        "patched-by "*) echo "${line#patched-by }" ;;
        *) echo orig ;;
    esac
}

expect_who() {
    got=$(who "$1")
    if [ "$got" = "$2" ]; then pass "$STEP: /proc/$1 is $2"; else fail "$STEP: /proc/$1 is $2" "it is $got"; fi
}

# The enabled patches, as `name:enabled:replace_set:transition` words, sorted.
listing() {
    for d in "$LP"/*; do
        [ -d "$d" ] || continue
        echo "${d##*/}:$(cat "$d/enabled"):$(cat "$d/replace_set"):$(cat "$d/transition")"
    done | sort | tr '\n' ' '
}

# Wait (up to 30 s) until no transition is pending and exactly the patches `$*` are listed (the
# replaced ones are freed by a work item after the transition), then check that listing.
expect_patches() {
    want=$(for p in "$@"; do echo "$p"; done | sort | tr '\n' ' ')
    i=0
    while [ $i -lt 30 ]; do
        got=$(listing)
        [ "$got" = "$want" ] && break
        sleep 1
        i=$((i + 1))
    done
    echo "sysfs after $STEP: $got"
    if [ "$got" = "$want" ]; then pass "$STEP: livepatches are $want"; else fail "$STEP: livepatches are $want" "they are $got"; fi
}

snapshot() {
    echo "$(listing)|$(who cmdline) $(who version) $(who loadavg) $(who uptime)|$(lsmod | awk '{print $1}' | sort | tr '\n' ' ')"
}

# rmmod of a replaced or disabled patch: its module reference is dropped by a work item after
# the sysfs dir goes, so give it a few tries.
unload() {
    i=0
    while ! rmmod "$1" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -ge 10 ]; then fail "$STEP: $2" "rmmod $1 failed"; return; fi
        sleep 1
    done
    pass "$STEP: $2"
}

step() {
    STEP=$1
    echo "REFKERNEL-STEP $1"
}

load() {
    if insmod "/modules/$1.ko"; then pass "$STEP: insmod $1 loads"; else fail "$STEP: insmod $1 loads" "insmod failed"; fi
}

# insmod must fail with the kernel's message, and nothing may change: the patches, the patched
# behaviour and the loaded modules are the same as before.
refuse() {
    before=$(snapshot)
    n0=$(dmesg | grep -c "Livepatch patch ($1) is not compatible with the already installed livepatches." || true)
    if insmod "/modules/$1.ko" 2>/tmp/insmod.err; then
        fail "$STEP: insmod $1 is refused" "it loaded"
    else
        pass "$STEP: insmod $1 is refused ($(cat /tmp/insmod.err))"
    fi
    n1=$(dmesg | grep -c "Livepatch patch ($1) is not compatible with the already installed livepatches." || true)
    if [ "$n1" -gt "$n0" ]; then pass "$STEP: the kernel says $1 is not compatible"; else fail "$STEP: the kernel says $1 is not compatible" "no such message"; fi
    if [ -n "$2" ]; then
        if dmesg | grep -q "$2"; then pass "$STEP: the kernel names the conflict ($2)"; else fail "$STEP: the kernel names the conflict ($2)" "no such message"; fi
    fi
    after=$(snapshot)
    if [ "$before" = "$after" ]; then pass "$STEP: nothing changed"; else fail "$STEP: nothing changed" "before [$before] after [$after]"; fi
}

step "0 boot"
expect_patches
expect_who cmdline orig
expect_who version orig

step "1 set0-v1"
load rk_s0_v1
expect_patches rk_s0_v1:1:0:0
expect_who cmdline rk_s0_v1
expect_who version rk_s0_v1
if [ -e "$LP/rk_s0_v1/replace" ]; then fail "$STEP: no sysfs replace attribute" "it exists"; else pass "$STEP: no sysfs replace attribute"; fi
mode=$(ls -l "$LP/rk_s0_v1/replace_set" | awk '{print $1}')
if [ "$mode" = "-r--r--r--" ]; then pass "$STEP: replace_set is read-only"; else fail "$STEP: replace_set is read-only" "mode $mode"; fi

step "2 set0-v2-replaces-v1"
load rk_s0_v2
expect_patches rk_s0_v2:1:0:0
expect_who cmdline rk_s0_v2
expect_who version orig
n=$(dmesg | grep -c "'rk_s0_v1': starting unpatching transition" || true)
if [ "$n" = 0 ]; then pass "$STEP: rk_s0_v1 was replaced, not unpatched on its own"; else fail "$STEP: rk_s0_v1 was replaced, not unpatched on its own" "$n unpatching transitions"; fi
unload rk_s0_v1 "the replaced rk_s0_v1 unloads"

step "3 set1-coexists-with-set0"
load rk_h1
expect_patches rk_s0_v2:1:0:0 rk_h1:1:1:0
expect_who cmdline rk_s0_v2
expect_who version rk_h1

step "4 refused-shared-function"
refuse rk_x_func "rk_x_func: function 'cmdline_proc_show,1' of 'vmlinux' is already patched by 'rk_s0_v2' of replace set 0"

step "5 refused-shared-state"
refuse rk_x_state "rk_x_state: state 10 is already used by 'rk_h1' of replace set 1"

step "6 refused-missing-state"
refuse rk_h1_nostate "rk_h1_nostate: state 10 of the replaced 'rk_h1' is missing"

step "7 refused-older-state"
refuse rk_h1_oldstate "rk_h1_oldstate: state 10 has version 1, older than version 2 of the replaced 'rk_h1'"

step "8 set1-successor-replaces"
load rk_h1_v2
expect_patches rk_s0_v2:1:0:0 rk_h1_v2:1:1:0
expect_who version orig
expect_who uptime rk_h1_v2
expect_who cmdline rk_s0_v2

step "9 set2-coexists"
load rk_h2
expect_patches rk_s0_v2:1:0:0 rk_h1_v2:1:1:0 rk_h2:1:2:0
expect_who loadavg rk_h2
expect_who uptime rk_h1_v2

step "10 refused-superseded-state"
refuse rk_cum_nostate "rk_cum_nostate: state 20 of the replaced 'rk_h2' is missing"

step "11 supersedes"
load rk_cum
expect_patches rk_s0_v2:1:0:0 rk_cum:1:1:0
expect_who version rk_cum
expect_who loadavg rk_cum
expect_who uptime orig
expect_who cmdline rk_s0_v2
# One transition: rk_cum's patching transition, and none of the replaced patches unpatched on
# its own (the kernel prints "starting (un)patching transition" for each transition it starts).
n=$(dmesg | grep -c "'rk_cum': starting patching transition" || true)
if [ "$n" = 1 ]; then pass "$STEP: one patching transition of rk_cum"; else fail "$STEP: one patching transition of rk_cum" "$n seen"; fi
n=$(dmesg | grep -c "'rk_h1_v2': starting unpatching transition\|'rk_h2': starting unpatching transition" || true)
if [ "$n" = 0 ]; then
    pass "$STEP: no unpatching transition of the replaced patches"
else
    fail "$STEP: no unpatching transition of the replaced patches" "$(dmesg | grep 'starting unpatching transition')"
fi
for m in rk_h1_v2 rk_h2; do
    unload "$m" "the replaced $m unloads"
done

step "12 superseding-patch-occupies-its-own-set-only"
load rk_h2b
expect_patches rk_s0_v2:1:0:0 rk_cum:1:1:0 rk_h2b:1:2:0
expect_who uptime rk_h2b
expect_who version rk_cum
expect_who loadavg rk_cum

step "13 disable-all"
for m in rk_h2b rk_cum rk_s0_v2; do
    if ! echo 0 > "$LP/$m/enabled"; then fail "$STEP: $m disables" "writing 0 to enabled failed"; fi
    i=0
    while [ -d "$LP/$m" ] && [ $i -lt 30 ]; do sleep 1; i=$((i + 1)); done
    unload "$m" "$m disables and unloads"
done
expect_patches
for f in cmdline version loadavg uptime; do expect_who "$f" orig; done

echo "REFKERNEL-DONE failed=$failed"
[ "$failed" = 0 ]
