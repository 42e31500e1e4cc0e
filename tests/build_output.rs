//! What the build says, on the lab's tree: `--dry-run` prints the plan (objects and why, replace
//! modes, module name and path) and touches nothing; its options are still checked; `-q` leaves
//! only the error and the result, `-v` adds every command run.

mod support;

use std::ffi::OsString;
use std::path::Path;

use support::run::{describe, klp_build};

fn args(lab: &support::Lab, patch: &str, dir: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut a = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch(patch),
        &dir.join("klp-tmp"),
        &dir.join("out.ko"),
    );
    a.extend(extra.iter().map(OsString::from));
    a
}

#[test]
fn dry_run_prints_the_plan_and_touches_nothing() {
    let Some(lab) = support::lab("dry_run_prints_the_plan_and_touches_nothing") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let before = support::tree::snapshot(&lab.src, &["fs/proc/cmdline.c", "fs/proc/cmdline.o"]);
    let o = klp_build(
        tmp.path(),
        &args(
            lab,
            "cmdline.patch",
            tmp.path(),
            &["--dry-run", "--no-replace"],
        ),
    );
    assert!(o.status.success(), "{}", describe(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    for want in [
        "dry run: nothing is compiled or written",
        &format!(
            "module livepatch_cmdline -> {} for {}",
            tmp.path().join("out.ko").display(),
            lab.release
        ),
        "allowed: stacked: --no-replace",
        "replace: stacked (replaces nothing)",
        "patch fs/proc/cmdline.c (by cmdline)",
        "rebuild fs/proc/cmdline.o for ",
        ": fs/proc/cmdline.c changed",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    assert!(o.stderr.is_empty(), "{}", describe(&o));
    assert!(!tmp.path().join("klp-tmp").exists(), "a work dir was made");
    assert!(!tmp.path().join("out.ko").exists(), "a module was written");
    assert_eq!(
        support::tree::snapshot(&lab.src, &["fs/proc/cmdline.c", "fs/proc/cmdline.o"]),
        before,
        "the tree changed"
    );
}

#[test]
fn dry_run_still_checks_the_options() {
    let Some(lab) = support::lab("dry_run_still_checks_the_options") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let o = klp_build(
        tmp.path(),
        &args(
            lab,
            "cmdline.patch",
            tmp.path(),
            &["--dry-run", "--replace-set", "2"],
        ),
    );
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--replace-set 2"),
        "{}",
        describe(&o)
    );
    let o = klp_build(
        tmp.path(),
        &args(lab, "err-unpatchable.patch", tmp.path(), &["--dry-run"]),
    );
    assert_ne!(o.status.code(), Some(0), "{}", describe(&o));
}

#[test]
fn quiet_says_only_the_error_and_verbose_adds_the_commands() {
    let Some(lab) = support::lab("quiet_says_only_the_error_and_verbose_adds_the_commands") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // No functional change: every stage up to the diff runs, and the run ends with exit 3.
    let quiet = klp_build(
        tmp.path(),
        &args(lab, "err-no-change.patch", tmp.path(), &["-q"]),
    );
    assert_eq!(quiet.status.code(), Some(3), "{}", describe(&quiet));
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("klp-build: error: no functional change"),
        "{}",
        describe(&quiet)
    );

    let verbose = klp_build(
        tmp.path(),
        &args(lab, "err-no-change.patch", tmp.path(), &["-v"]),
    );
    assert_eq!(verbose.status.code(), Some(3), "{}", describe(&verbose));
    let stderr = String::from_utf8_lossy(&verbose.stderr);
    for want in [
        "klp-build: patch...",
        "klp-build: rebuild...",
        "klp-build: run: patch -p1 -f --no-backup-if-mismatch -i ",
        // kbuild's make, or (with the original in the object cache) a makefile of kbuild's
        // recorded commands, both run in the tree.
        &format!("klp-build: run: make -C {} ", lab.src.display()),
        "fs/proc/uptime.o",
    ] {
        assert!(stderr.contains(want), "no {want:?} in:\n{stderr}");
    }

    let normal = klp_build(
        tmp.path(),
        &args(lab, "err-no-change.patch", tmp.path(), &[]),
    );
    let stderr = String::from_utf8_lossy(&normal.stderr);
    assert!(stderr.contains("klp-build: rebuild..."), "{stderr}");
    assert!(!stderr.contains("klp-build: run: "), "{stderr}");

    let both = klp_build(
        tmp.path(),
        &args(lab, "err-no-change.patch", tmp.path(), &["-q", "-v"]),
    );
    assert_eq!(both.status.code(), Some(2), "{}", describe(&both));
}
