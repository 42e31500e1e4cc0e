//! `--keep-tmp` and `--resume-from` with the real binary on the lab tree: a kept work dir holds a
//! `.complete` marker per stage; resuming from `diff` reuses the rebuilt objects (no rebuild runs,
//! the tree is not touched) and gives a module with the same functions; resuming with another patch
//! is refused; a second run on a work dir in use is refused without clearing it.

mod support;

use std::path::Path;
use support::run::{describe, klp_build};

#[test]
fn resume_from_diff_reuses_the_rebuilt_objects() {
    let Some(lab) = support::lab("resume_from_diff_reuses_the_rebuilt_objects") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("klp-tmp");
    let ko = tmp.path().join("livepatch-cmdline.ko");
    let patch = support::inputs::patch("cmdline.patch");
    let mut args = support::inputs::klp_build_args(lab, &patch, &work, &ko);
    args.extend(["--keep-tmp".into(), "--report".into(), "json".into()]);

    let first = klp_build(tmp.path(), &args);
    assert!(first.status.success(), "{}", describe(&first));
    for stage in ["1-patch", "2-rebuild", "3-diff", "4-objects", "5-kmod"] {
        assert!(
            work.join(stage).join(".complete").is_file(),
            "{stage} has no .complete marker"
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    support::schemas::assert_valid("report", &report, "the build's --report json");
    assert_eq!(
        report["work_dir"],
        serde_json::json!(work.display().to_string())
    );
    let functions = |r: &serde_json::Value| r["manifest"]["functions"].clone();

    let cmdline_o = work.join("2-rebuild/patched/fs/proc/cmdline.o");
    let mtime = std::fs::metadata(&cmdline_o).unwrap().modified().unwrap();
    let before = support::tree::snapshot(&lab.src, &["fs/proc/cmdline.c", "fs/proc/cmdline.o"]);
    std::fs::remove_file(&ko).unwrap();
    let mut resumed_args = args.clone();
    resumed_args.extend(["--resume-from".into(), "diff".into()]);
    let resumed = klp_build(tmp.path(), &resumed_args);
    assert!(resumed.status.success(), "{}", describe(&resumed));
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        !stderr.contains("rebuild...") && !stderr.contains("patch..."),
        "stages were redone:\n{stderr}"
    );
    assert!(
        stderr.contains("diff...") && stderr.contains("emit..."),
        "{stderr}"
    );
    assert!(ko.is_file(), "the resumed run wrote the module");
    assert_eq!(
        std::fs::metadata(&cmdline_o).unwrap().modified().unwrap(),
        mtime,
        "the kept object was reused as it was"
    );
    let again: serde_json::Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(
        functions(&again),
        functions(&report),
        "the same functions are patched"
    );
    assert_eq!(
        support::tree::snapshot(&lab.src, &["fs/proc/cmdline.c", "fs/proc/cmdline.o"]),
        before
    );

    // Another patch: the kept stages are not its stages.
    let other =
        support::inputs::klp_build_args(lab, &support::inputs::patch("ksysfs.patch"), &work, &ko)
            .into_iter()
            .chain(["--resume-from".into(), "diff".into()])
            .collect::<Vec<_>>();
    let refused = klp_build(tmp.path(), &other);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("other patches"),
        "{}",
        describe(&refused)
    );
    assert!(
        work.join("2-rebuild/.complete").is_file(),
        "a refused resume clears nothing"
    );
}

#[test]
fn work_dir_in_use_is_refused_and_kept() {
    let Some(lab) = support::lab("work_dir_in_use_is_refused_and_kept") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("klp-tmp");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join(".klp-build-work"), "").unwrap();
    std::fs::write(work.join("keep-me"), "a file of the running build").unwrap();
    // Hold the work dir's lock as a running klp-build does.
    let lock = std::fs::File::create(work.join(".lock")).unwrap();
    lock.lock().unwrap();
    let args = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch("cmdline.patch"),
        &work,
        &tmp.path().join("x.ko"),
    );
    let run = klp_build(tmp.path(), &args);
    assert_eq!(run.status.code(), Some(1), "{}", describe(&run));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("another klp-build run is using it"),
        "{}",
        describe(&run)
    );
    assert!(
        work.join("keep-me").is_file(),
        "nothing in a work dir in use is removed"
    );
}

#[test]
fn failed_write_of_the_output_says_where_the_module_is() {
    let Some(lab) = support::lab("failed_write_of_the_output_says_where_the_module_is") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("klp-tmp");
    // /dev/full passes the plan's check (its directory is writable) and fails the write.
    let args = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch("cmdline.patch"),
        &work,
        Path::new("/dev/full"),
    );
    let run = klp_build(tmp.path(), &args);
    assert_eq!(run.status.code(), Some(1), "{}", describe(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    let kept = work.join("5-kmod/livepatch-cmdline.ko");
    assert!(
        stderr.contains("-o /dev/full: No space left on device")
            && stderr.contains(&format!("the built module is {}", kept.display())),
        "{}",
        describe(&run)
    );
    assert!(kept.is_file(), "the module named in the message is there");
}

#[test]
fn pipeline_runs_twice_in_one_process() {
    use clap::Parser as _;
    let Some(lab) = support::lab("pipeline_runs_twice_in_one_process") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut modules = Vec::new();
    for patch in ["cmdline.patch", "ksysfs.patch"] {
        let work = tmp.path().join(format!("work-{patch}"));
        let ko = tmp.path().join(format!("{patch}.ko"));
        let args = std::iter::once("klp-build".into()).chain(support::inputs::klp_build_args(
            lab,
            &support::inputs::patch(patch),
            &work,
            &ko,
        ));
        let cli = klp_build::cli::Cli::try_parse_from(args).unwrap();
        let plan =
            klp_build::plan::Plan::resolve(&cli.build).unwrap_or_else(|e| panic!("{patch}: {e:#}"));
        let outcome = klp_build::pipeline::run(&plan, &mut klp_build::pipeline::Quiet)
            .unwrap_or_else(|e| panic!("{patch}: {e:#}"));
        let klp_build::pipeline::Outcome::Built(report) = outcome else {
            panic!("{patch}: {outcome:?}");
        };
        assert_eq!(report.module, ko);
        assert!(
            !work.exists(),
            "{patch}: the work dir is removed after success"
        );
        modules.push((patch, report.manifest.functions.clone()));
    }
    let names: Vec<Vec<String>> = modules
        .iter()
        .map(|(_, f)| f.iter().map(|f| f.name.clone()).collect())
        .collect();
    assert_eq!(
        names,
        [
            vec!["cmdline_proc_show".to_string()],
            vec!["rcu_normal_store".to_string()]
        ]
    );
}
