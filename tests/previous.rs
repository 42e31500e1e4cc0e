//! `--previous` with the real binary on the lab: a cumulative release is checked against the
//! release it follows before its module is linked. Dropping a fix the predecessor carried is
//! refused (naming the fix and the predecessor) unless `--allow-drop` names it; then the module is
//! built and the report warns about the function the new release reverts.

mod support;

use support::run::{describe, klp_build};

#[test]
fn a_build_whose_previous_release_carries_a_fix_it_drops_is_refused_unless_allowed() {
    let Some(lab) = support::lab(
        "a_build_whose_previous_release_carries_a_fix_it_drops_is_refused_unless_allowed",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let v1 = tmp.path().join("v1.ko");
    let args = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch("cmdline.patch"),
        &tmp.path().join("w1"),
        &v1,
    );
    let built = klp_build(tmp.path(), &args);
    assert!(built.status.success(), "{}", describe(&built));

    // v2 carries ksysfs only: cmdline's fix is dropped.
    let v2 = tmp.path().join("v2.ko");
    let mut args = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch("ksysfs.patch"),
        &tmp.path().join("w2"),
        &v2,
    );
    args.extend(["--previous".into(), v1.clone().into()]);
    let refused = klp_build(tmp.path(), &args);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--previous")
            && stderr.contains("check.fix-dropped")
            && stderr.contains("cmdline"),
        "{}",
        describe(&refused)
    );
    assert!(!v2.exists(), "no module is written for a refused release");

    args.extend(["--allow-drop".into(), "cmdline".into()]);
    let allowed = klp_build(tmp.path(), &args);
    assert!(allowed.status.success(), "{}", describe(&allowed));
    let stdout = String::from_utf8_lossy(&allowed.stdout);
    assert!(
        stdout.contains("warning: check.reverts") && stdout.contains("cmdline_proc_show"),
        "the report names the function v2 reverts:\n{}",
        describe(&allowed)
    );
    assert!(v2.is_file());
}

#[test]
fn allow_drop_without_previous_is_a_usage_error() {
    let Some(lab) = support::lab("allow_drop_without_previous_is_a_usage_error") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut args = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch("cmdline.patch"),
        &tmp.path().join("w"),
        &tmp.path().join("x.ko"),
    );
    args.extend(["--allow-drop".into(), "cmdline".into()]);
    let run = klp_build(tmp.path(), &args);
    assert_eq!(run.status.code(), Some(2), "{}", describe(&run));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("--previous OLD.ko"),
        "{}",
        describe(&run)
    );
}

#[test]
fn state_declared_in_the_patch_reaches_the_manifest_and_modinfo() {
    let Some(lab) = support::lab("state_declared_in_the_patch_reaches_the_manifest_and_modinfo")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let ko = tmp.path().join("state.ko");
    let mut args = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch("state-decl.patch"),
        &tmp.path().join("w"),
        &ko,
    );
    args.extend(["--report".into(), "json".into()]);
    let run = klp_build(tmp.path(), &args);
    assert!(run.status.success(), "{}", describe(&run));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        report["manifest"]["states"],
        serde_json::json!([{ "id": 0x4b4c_5001u64, "version": 2 }]),
        "{}",
        describe(&run)
    );
    let modinfo = std::process::Command::new("modinfo")
        .arg(&ko)
        .output()
        .expect("modinfo");
    let text = String::from_utf8_lossy(&modinfo.stdout);
    assert!(
        text.contains("klp_build_states:") && text.contains(&format!("{}:2", 0x4b4c_5001u64)),
        "{text}"
    );
}
