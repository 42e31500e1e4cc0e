//! Fixes written the way livepatch authors write them, built by the klp-build binary inside the
//! lab's built 6.12 tree (the reference kernel of `lab/refkernel.sh`: IBT, ORC, objtool checking
//! every module at its link) and loaded on that kernel in one QEMU boot. Each fix is the 6.1
//! patch of `testdata/patches/fixes/` where it applies unchanged, else its 6.12 variant in
//! `testdata/patches/6.12/`; its guest script is the 6.1 one of `testdata/e2e/fixes/` or the one
//! beside the 6.12 patch: a new function, static keys (the fix's own, and a non-exported one of
//! vmlinux), shadow variables, new data, a static local, syscalls redefined with kpatch's and the
//! kernel's helpers, and callbacks. Each build must leave objtool silent in kbuild's log (klp-build refuses
//! a module objtool warns about, so this checks the log it kept) and give every replacement
//! function ORC entries; in the guest each module loads, its behaviour is checked, the transition
//! finishes, it is disabled and unloaded, and the kernel prints no stack trace.

mod support;

use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSymbol};
use support::run::{describe, klp_build};

/// One fix: its patch and guest script, relative to `testdata/`.
#[derive(Debug, Clone, Copy)]
struct Fix {
    name: &'static str,
    patch: &'static str,
    script: &'static str,
}

impl Fix {
    fn module(&self) -> String {
        format!("livepatch-fixes-{}", self.name)
    }
}

const FIXES: &[Fix] = &[
    // A function new to the kernel, called by the replacement.
    Fix {
        name: "new-function",
        patch: "patches/fixes/new-function.patch",
        script: "e2e/fixes/new-function.sh",
    },
    // A static key defined by the fix: a __jump_table entry against the module's own key.
    Fix {
        name: "static-key",
        patch: "patches/6.12/static-key.patch",
        script: "e2e/fixes/static-key.sh",
    },
    // A jump label on a key of vmlinux that is not exported (a tracepoint's): the key is a klp
    // relocation in __jump_table, the case objtool stopped at with "can't find key reloc".
    Fix {
        name: "oom-score-adj-trace",
        patch: "patches/6.12/oom-score-adj-trace.patch",
        script: "patches/6.12/oom-score-adj-trace.sh",
    },
    // Shadow variables (klp_shadow_*) attached in kernel_clone(), read in /proc/<pid>/status.
    Fix {
        name: "shadow-clone",
        patch: "patches/fixes/shadow-clone.patch",
        script: "e2e/fixes/shadow-clone.sh",
    },
    // New initialised global data read through /proc.
    Fix {
        name: "new-global",
        patch: "patches/fixes/new-global.patch",
        script: "e2e/fixes/new-global.sh",
    },
    // A new static local that keeps its value across calls.
    Fix {
        name: "static-local",
        patch: "patches/fixes/static-local.patch",
        script: "e2e/fixes/static-local.sh",
    },
    // A syscall redefined with KPATCH_SYSCALL_DEFINE2 (kpatch-syscall.h), written for kpatch-build.
    Fix {
        name: "kpatch-syscall",
        patch: "patches/fixes/kpatch-syscall.patch",
        script: "patches/6.12/kpatch-syscall.sh",
    },
    // A syscall redefined with KLP_SYSCALL_DEFINE2 (<linux/livepatch_helpers.h>), written for the
    // kernel's own klp-build; the guest calls it through /modules/setdomain.
    Fix {
        name: "klp-syscall",
        patch: "patches/fixes/klp-syscall.patch",
        script: "patches/6.12/klp-syscall.sh",
    },
    // Pre/post patch/unpatch callbacks that print, registered with KLP_PRE_PATCH_CALLBACK() and
    // the others (<linux/livepatch_helpers.h>), in the 6.12 variant of the fix.
    Fix {
        name: "klp-callbacks-612",
        patch: "patches/fixes/klp-callbacks-612.patch",
        script: "patches/6.12/klp-callbacks-612.sh",
    },
];

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

/// Builds `fix` inside the reference kernel's tree into `dir`; returns the module.
fn build(kernel: &support::refkernel::RefKernel, dir: &Path, fix: &Fix) -> PathBuf {
    let ko = format!("{}.ko", fix.module());
    let work = format!("work-{}", fix.name);
    let patch = testdata(fix.patch);
    let out = klp_build(
        dir,
        &[
            "--diff".as_ref(),
            patch.as_os_str(),
            "--source".as_ref(),
            kernel.tree.as_os_str(),
            "--symbols".as_ref(),
            kernel.vmlinux.as_os_str(),
            "--name".as_ref(),
            fix.module().as_ref(),
            "-o".as_ref(),
            ko.as_ref(),
            "--work-dir".as_ref(),
            work.as_ref(),
            "--keep-tmp".as_ref(),
            "-j".as_ref(),
            "2".as_ref(),
        ],
    );
    assert!(out.status.success(), "{}: {}", fix.name, describe(&out));
    let log_path = dir.join(&work).join("5-kmod/kbuild.log");
    let log = std::fs::read_to_string(&log_path)
        .unwrap_or_else(|e| panic!("{}: {}: {e}", fix.name, log_path.display()));
    let noisy: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("objtool") || l.contains("WARNING: modpost"))
        .collect();
    assert!(
        noisy.is_empty(),
        "{}: the module link warned ({}):\n{}",
        fix.name,
        log_path.display(),
        noisy.join("\n")
    );
    let ko = dir.join(ko);
    check_orc(fix, &ko);
    ko
}

/// Every replacement function (`__klp_new.*`) of the module has ORC entries: objtool checked it
/// at the link and annotated it, rather than skipping it, so a task sleeping in it has a reliable
/// stack for the livepatch transition.
fn check_orc(fix: &Fix, ko: &Path) {
    let data = std::fs::read(ko).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let orc = file.section_by_name(".orc_unwind_ip").unwrap_or_else(|| {
        panic!(
            "{}: {} has no .orc_unwind_ip: objtool did not annotate the module",
            fix.name,
            ko.display()
        )
    });
    let covered: Vec<_> = orc
        .relocations()
        .filter_map(|(_, r)| match r.target() {
            object::RelocationTarget::Symbol(i) => file.symbol_by_index(i).ok()?.section_index(),
            _ => None,
        })
        .collect();
    let replacements: Vec<_> = file
        .symbols()
        .filter(|s| s.name().is_ok_and(|n| n.starts_with("__klp_new.")))
        .collect();
    assert!(
        !replacements.is_empty(),
        "{}: no replacement function in {}",
        fix.name,
        ko.display()
    );
    for s in replacements {
        assert!(
            s.section_index().is_some_and(|i| covered.contains(&i)),
            "{}: replacement function {} has no ORC entry in {}",
            fix.name,
            s.name().unwrap_or_default(),
            ko.display()
        );
    }
}

#[test]
fn fixes_built_in_the_reference_tree_load_and_work_in_one_boot() {
    let Some(kernel) = support::refkernel::ref_kernel(
        "fixes_built_in_the_reference_tree_load_and_work_in_one_boot",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut built: Vec<PathBuf> = FIXES.iter().map(|f| build(kernel, tmp.path(), f)).collect();
    built.push(support::guest::setdomain_program(tmp.path()));

    let mut script = std::fs::read_to_string(testdata("e2e/lib.sh")).unwrap();
    for fix in FIXES {
        script.push('\n');
        script.push_str(&std::fs::read_to_string(testdata(fix.script)).unwrap());
    }
    let boot = support::refkernel::boot(kernel, "refkernel-fixes", &built, &script, 600)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let failures: Vec<&str> = boot
        .log
        .lines()
        .filter(|l| l.contains("E2E-FAIL"))
        .collect();
    assert!(
        boot.passed && failures.is_empty(),
        "the guest check failed {failures:?} (log {}):\n{}",
        boot.log_file.display(),
        boot.log
    );
    for fix in FIXES {
        assert!(
            boot.log.contains(&format!("E2E-STEP: {}:", fix.name)),
            "{} did not finish its checks:\n{}",
            fix.name,
            boot.log
        );
    }
    assert!(
        !boot.log.contains("Call Trace"),
        "the kernel printed a stack trace:\n{}",
        boot.log
    );
}
