//! The guest's `/init`: what `klp-build verify` does inside the booted kernel. Input: the
//! livepatch's name, the modules to load first (in order), whether there are setup and check
//! scripts, the transition time limit. Output: a busybox shell script. Invariant: every step the
//! host must judge is framed by `KLP-VERIFY:` lines on the console (see [`super::console`]), the
//! guest always powers off, and a step that fails still disables and unloads what it can, so one
//! boot reports every problem.

/// The marker of the guest's protocol lines.
pub const MARK: &str = "KLP-VERIFY:";

/// What the guest does.
pub struct Guest<'a> {
    /// The livepatch's module name (`/sys/kernel/livepatch/<name>`).
    pub name: &'a str,
    /// The kernel's modules to load before the livepatch, in order, as files under `/verify`.
    pub modules: &'a [String],
    /// `/verify/setup.sh` exists.
    pub setup: bool,
    /// `/verify/check.sh` exists.
    pub check: bool,
    /// Seconds to wait for each transition.
    pub transition_timeout: u32,
}

impl Guest<'_> {
    /// The `/init` script.
    pub fn init(&self) -> String {
        let modules = self
            .modules
            .iter()
            .map(|m| format!("/verify/{m}"))
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            r#"#!/bin/sh
# klp-build verify: the guest's part (src/verify/guest.rs).
mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo 0 > /proc/sys/kernel/kptr_restrict
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/
cd /
M='{MARK}'
NAME='{name}'
LP=/sys/kernel/livepatch/$NAME
now() {{ read -r up _ < /proc/uptime; echo "$up"; }}
begin() {{ echo "$M begin $1 $(now)"; }}
ok() {{ echo "$M ok $1 $(now)"; }}
fail() {{ echo "$M fail $1 $(now) $2"; failed=1; }}
failed=0
# The tasks a transition waits for: those whose patch_state is not yet the target state.
blockers() {{
    for st in /proc/[0-9]*/task/[0-9]*/patch_state; do
        s=$(cat "$st" 2>/dev/null) || continue
        [ "$s" = -1 ] && continue
        [ "$s" = "$1" ] && continue
        d=${{st%/patch_state}}
        tid=${{d##*/}}
        pid=${{d#/proc/}}; pid=${{pid%%/*}}
        echo "$M blocked $pid $tid $(cat "$d/comm" 2>/dev/null)"
        sed "s|^|$M stack $tid |" "$d/stack" 2>/dev/null
    done
}}
# wait_transition STEP TARGET: polls $LP/transition until the guest's clock passes the limit,
# then names the blockers.
wait_transition() {{
    read -r up _ < /proc/uptime
    end=$(( ${{up%%.*}} + {timeout} ))
    while [ "$(cat "$LP/transition" 2>/dev/null)" = 1 ]; do
        read -r up _ < /proc/uptime
        if [ "${{up%%.*}}" -ge "$end" ]; then
            blockers "$2"
            fail "$1" "the transition did not finish in {timeout} s"
            return 1
        fi
        usleep 100000
    done
    ok "$1"
}}
echo "$M taint-before $(cat /proc/sys/kernel/tainted)"
echo "$M uname $(uname -r)"
begin modules
loaded=1
for m in {modules}; do
    insmod "$m" || {{ fail modules "insmod $m exited $?"; loaded=0; break; }}
done
[ "$loaded" = 1 ] && ok modules
if [ "$loaded" = 1 ] && [ -f /verify/setup.sh ]; then
    begin setup
    echo "$M output-begin setup"
    sh -e /verify/setup.sh; rc=$?
    echo "$M output-end setup $rc"
    if [ "$rc" = 0 ]; then ok setup; else fail setup "exit $rc"; fi
fi
if [ "$loaded" = 1 ]; then
    begin load
    if insmod /verify/livepatch.ko; then
        ok load
        begin transition
        if [ -d "$LP" ]; then
            wait_transition transition 1
        else
            fail transition "$LP does not exist after the module loaded"
        fi
        if [ -f /verify/check.sh ]; then
            begin check
            echo "$M output-begin check"
            sh -e /verify/check.sh; rc=$?
            echo "$M output-end check $rc"
            if [ "$rc" = 0 ]; then ok check; else fail check "exit $rc"; fi
        fi
        begin disable
        if [ -d "$LP" ] && echo 0 > "$LP/enabled"; then
            wait_transition disable 0
        else
            fail disable "writing 0 to $LP/enabled failed"
        fi
        begin unload
        # The module's kobjects go away shortly after the transition; retry for a moment.
        n=0
        until rmmod "$NAME" 2>/dev/null; do
            n=$((n + 1))
            if [ "$n" -ge 50 ]; then fail unload "rmmod $NAME failed"; break; fi
            usleep 100000
        done
        [ "$n" -lt 50 ] && ok unload
    else
        fail load "insmod exited $?"
    fi
fi
echo "$M taint-after $(cat /proc/sys/kernel/tainted)"
# Kernel messages printed while the last line is written could split it: quiet them first.
echo 1 > /proc/sys/kernel/printk
echo
echo "$M done $failed"
sync
# QEMU runs with -no-reboot, so a reboot ends it, also on kernels without ACPI (where poweroff halts).
reboot -f
"#,
            name = self.name,
            timeout = self.transition_timeout,
        )
    }
}
