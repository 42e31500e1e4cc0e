# Guest-side helpers for the end-to-end scripts (busybox sh). Sourced by each case's script,
# which the test harness concatenates after this file into /test.sh.

fail() { echo "E2E-FAIL: $*"; exit 1; }
step() { echo "E2E-STEP: $*"; }

# Runs "$@" and prints its stdout between "$1-BEGIN" and "$1-END" (the tag comes first) with the
# kernel's console messages held back (they stay in dmesg), so that no kernel line lands inside
# output a test parses: the reference kernel prints without timestamps, and its "clocksource:
# Switched to clocksource tsc" once came in the middle of a JSON report. Returns "$@"'s status.
framed() {
    _tag=$1
    shift
    _rc=0
    "$@" > /tmp/framed.out || _rc=$?
    _level=$(cut -f1 /proc/sys/kernel/printk 2>/dev/null || echo 7)
    dmesg -n 1
    echo "$_tag-BEGIN"
    cat /tmp/framed.out
    echo "$_tag-END"
    dmesg -n "$_level"
    return $_rc
}

# Waits until the livepatch $1 (sysfs name) has finished its transition.
wait_transition() {
    i=0
    while [ -e "/sys/kernel/livepatch/$1/transition" ] && [ "$(cat /sys/kernel/livepatch/$1/transition)" != 0 ]; do
        i=$((i + 1))
        [ $i -lt 300 ] || fail "$1: transition did not finish in 30 s"
        sleep 0.1
    done
}

# Loads a livepatch module and checks that it is enabled and its transition finished.
load_patch() {
    step "insmod $1.ko"
    insmod "/modules/$1.ko" || fail "insmod $1.ko failed"
    name=$(echo "$1" | tr - _)
    [ "$(cat /sys/kernel/livepatch/$name/enabled)" = 1 ] || fail "$name not enabled"
    wait_transition "$name"
}

# Disables a livepatch, waits for the kernel to free it, and unloads its module.
unload_patch() {
    name=$(echo "$1" | tr - _)
    step "disable $name"
    echo 0 > "/sys/kernel/livepatch/$name/enabled" || fail "cannot disable $name"
    i=0
    while [ -d "/sys/kernel/livepatch/$name" ]; do
        i=$((i + 1))
        [ $i -lt 300 ] || fail "$name still present 30 s after disabling"
        sleep 0.1
    done
    step "rmmod $name"
    rmmod "$name" || fail "rmmod $name failed"
    grep -q "^$name " /proc/modules && fail "$name still loaded"
    true
}
