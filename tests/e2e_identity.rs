//! Identity livepatch of whole translation units on Debian's 6.1 kernel: every ftrace-able
//! function of fs/proc/base.c, kernel/sys.c and fs/readdir.c is replaced by its own copy, in one
//! module. What the
//! small e2e cases cannot reach gets exercised at scale here: hundreds of klp relocations, two
//! objects in one module, one-past-the-end array pointers, anonymous `.rodata` literals, and the
//! entries of `.smp_locks`, `__bug_table`, `__jump_table`, `.static_call_sites`,
//! `.altinstructions`, `__ex_table`, `.retpoline_sites`, `.return_sites`, `__mcount_loc` and ORC. The guest
//! reads /proc and makes the syscalls of both files while patched, then unpatches and unloads.

mod kobj;
mod support;

use std::path::Path;

use klp_build::contract::spec::{ModuleSpec, ReplaceMode};
use klp_build::contract::KlpObject;
use klp_build::diff::{self, Changed, ObjectDiff};
use klp_build::elf::{read_file, Any, ElfObject};
use klp_build::emit::module;
use klp_build::kernel::symbols::SymbolListing;
use klp_build::kernel::symvers::Exports;

/// The diff of an object with itself, with every function that livepatch can redirect marked
/// changed (not `__init`, not a `.cold` part, with an ftrace call site).
fn identity(lab: &support::Lab, rel: &str) -> ObjectDiff {
    let o = kobj::kernel_object(&lab.src, &lab.dir, rel);
    let mut d = diff::run(Path::new(rel), KlpObject::Vmlinux, &o, &o).unwrap();
    assert!(d.is_empty(), "{rel}: an object differs from itself:\n{d}");
    let mut all = Vec::new();
    for (ps, s) in d.patched.live_symbols() {
        let Some(sec) = s.section_id() else { continue };
        let secname = &d.patched.section(sec).name;
        if !s.is_func()
            || secname.starts_with(".init")
            || secname.starts_with(".exit")
            || s.name.contains(".cold")
        {
            continue;
        }
        let os = d.twins.orig(ps).expect("an object is its own twin");
        if diff::checks::has_fentry(&d.orig, os) {
            all.push(Changed {
                sym: ps,
                orig: os,
                why: "identity".into(),
                rule: diff::correlate::Rule::Exact,
            });
        }
    }
    assert!(
        all.len() > 10,
        "{rel}: only {} patchable functions",
        all.len()
    );
    diff::drop_aliases(&d.patched, &mut all);
    d.changed = all;
    d
}

fn section_size(obj: &ElfObject<Any>, name: &str) -> u64 {
    obj.section_by_name(name).map_or(0, |s| obj.section_size(s))
}

const GUEST: &str = r#"
name=livepatch_identity
set -x  # the console log shows the command that failed
wait_for() { i=0; until "$@"; do i=$((i + 1)); [ $i -lt 1200 ] || { echo "timeout: $*"; dmesg | grep -E "sleeping on|unreliable|is running" | sort | uniq -c | sort -rn | head -20; exit 9; }; sleep 0.1; done; }
idle() { [ "$(cat /sys/kernel/livepatch/$name/transition)" = 0 ]; }
gone() { [ ! -d /sys/kernel/livepatch/$name ]; }

# klp_try_switch_task() says why a task does not switch; shown if the transition stalls.
mount -t debugfs none /sys/kernel/debug
echo 'file kernel/livepatch/transition.c +p' > /sys/kernel/debug/dynamic_debug/control
insmod /modules/livepatch-identity.ko
wait_for idle
[ "$(cat /sys/kernel/livepatch/$name/enabled)" = 1 ]
# fs/proc/base.c
grep -q "^Name:" /proc/self/status
[ "$(tr '\0' ' ' < /proc/1/cmdline)" = "/bin/sh /init " ]
ls /proc/self/fd /proc/self/task > /dev/null
[ "$(cut -d' ' -f2 /proc/self/stat)" = "(cut)" ]
echo 100 > /proc/self/oom_score_adj; [ "$(cat /proc/self/oom_score_adj)" = 100 ]
grep -q "HOME=/" /proc/self/environ
grep -q "^Max open files" /proc/self/limits
[ "$(readlink /proc/self/exe)" = /bin/busybox ]
head -n 1 /proc/self/mountinfo | grep -q rootfs
# fs/readdir.c: getdents64 fills the buffer with unsafe_put_user(), whose faults __ex_table fixes
[ "$(ls /proc/self/ | grep -c -E '^(status|environ|fd)$')" = 3 ]
ls -la /dev > /dev/null
# kernel/sys.c
uname -a | grep -q 6.1.0
hostname klp-identity; [ "$(hostname)" = klp-identity ]
ulimit -n 512; [ "$(ulimit -n)" = 512 ]
umask 027; [ "$(umask)" = 0027 ]
if dmesg | grep -E "Oops|BUG:|invalid opcode|WARNING:|Call Trace"; then exit 7; fi
echo 0 > /sys/kernel/livepatch/$name/enabled
wait_for gone
rmmod $name
echo "identity: patched, exercised, unpatched"
"#;

#[test]
fn identity_patch_of_three_files_loads_and_runs() {
    let Some(lab) = support::lab("identity_patch_of_three_files_loads_and_runs") else {
        return;
    };
    kobj::prepared(lab);
    let diffs = vec![
        identity(lab, "fs/proc/base.o"),
        identity(lab, "kernel/sys.o"),
        identity(lab, "fs/readdir.o"),
    ];
    let listing = SymbolListing::load(&lab.kallsyms).unwrap();
    let exports = Exports::load(&lab.kbuild.join("Module.symvers")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let objs = module::objects(&diffs, &listing, &exports, &dir.path().join("4-objects")).unwrap();
    assert_eq!(objs.len(), 3);
    let klp: usize = objs.iter().map(|o| o.klp_relocs).sum();
    assert!(klp > 100, "only {klp} klp relocations");

    // The special sections this test is about must really be in the output objects.
    let base: ElfObject<Any> = read_file(&objs[0].path).unwrap();
    let sys: ElfObject<Any> = read_file(&objs[1].path).unwrap();
    let readdir: ElfObject<Any> = read_file(&objs[2].path).unwrap();
    for (obj, name) in [
        (&base, ".smp_locks"),
        (&base, "__bug_table"),
        (&base, "__jump_table"),
        (&base, ".static_call_sites"),
        (&base, ".orc_unwind_ip"),
        (&sys, ".altinstructions"),
        (&sys, ".altinstr_replacement"),
        (&sys, ".rodata"),
        (&readdir, "__ex_table"),
    ] {
        assert!(
            section_size(obj, name) > 0,
            "{}: no {name} entries",
            obj.display()
        );
    }

    let m = module::module(
        &objs,
        &ModuleSpec {
            name: "livepatch-identity".into(),
            replace: ReplaceMode::Atomic,
            states: Vec::new(),
            api: klp_build::kernel::livepatch_api::LivepatchApi::detect(
                &lab.kbuild,
                &lab.src,
                None,
            )
            .unwrap(),
        },
        &lab.kbuild,
        &dir.path().join("5-kmod"),
        2,
        &[],
        &mut klp_build::progress::Quiet,
    )
    .unwrap();
    assert!(
        m.post_link.sections.len() > 50,
        "{:?}",
        m.post_link.sections
    );
    let boot = support::boot(lab, "identity", &[m.path.as_path()], GUEST).expect("boot");
    assert!(
        boot.passed,
        "the identity patch failed in the guest:\n{}",
        boot.log
    );
    assert!(
        boot.log.contains("identity: patched, exercised, unpatched"),
        "{}",
        boot.log
    );
}
