//! `klp-build status` run inside Debian's 6.1 kernel in QEMU (the binary, its debug info
//! stripped, run through the dynamic loader with its libraries beside it): with a cumulative
//! module (`cmdline.patch`) and a stacked hotfix (`proc-tty.patch`, `--no-replace`) enabled, it
//! lists both in load order with their replace modes and module files, and predicts that a third,
//! cumulative module (`ksysfs.patch`) replaces both, dropping their fixes (a release's policy,
//! not a reason the kernel refuses it). The kernel then loads that module, and what
//! it has enabled afterwards is what the prediction said; a second `status` lists it alone.
//!
//! On the replace-set reference kernel, with set 1 (`cmdline.patch`) and set 2 (`ksysfs.patch`)
//! enabled, a new set-2 module (`proc-tty.patch`) is predicted to replace set 2 only and to stay
//! beside set 1, and the kernel then does exactly that.
//!
//! Skips with a printed reason without the lab, and fails under `CI`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::run::describe;
use support::Lab;

/// A fresh directory of one test (the tests of this file run in parallel).
fn scratch(name: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let d = tmp
        .parent()
        .unwrap_or(tmp)
        .join("klp-e2e-status")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn build(lab: &Lab, d: &Path, patch: &str, extra: &[&str]) -> PathBuf {
    let stem = patch.trim_end_matches(".patch");
    let ko = d.join(format!("livepatch-{stem}.ko"));
    let mut args = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch(patch),
        &d.join(format!("work-{stem}")),
        &ko,
    );
    args.extend(extra.iter().map(Into::into));
    let o = support::run::klp_build(d, &args);
    assert!(o.status.success(), "building {patch}: {}", describe(&o));
    ko
}

/// klp-build without its debug info, and the shared libraries `ldd` says it needs.
fn binary_and_libraries(d: &Path) -> Vec<PathBuf> {
    let bin = d.join("klp-build");
    let o = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(env!("CARGO_BIN_EXE_klp-build"))
        .arg(&bin)
        .output()
        .expect("run objcopy (binutils)");
    assert!(o.status.success(), "objcopy: {}", describe(&o));
    let o = Command::new("ldd").arg(&bin).output().expect("run ldd");
    assert!(o.status.success(), "ldd: {}", describe(&o));
    let mut files = vec![bin];
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or `/lib64/ld-linux-x86-64.so.2 (0x...)`.
        let path = match l.split_once("=>") {
            Some((_, r)) => r.split_whitespace().next(),
            None => l.split_whitespace().next().filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            let src = Path::new(p);
            let dst = d.join(src.file_name().unwrap());
            std::fs::copy(std::fs::canonicalize(src).unwrap(), &dst).unwrap();
            files.push(dst);
        }
    }
    files
}

/// The JSON between `<tag>-BEGIN` and `<tag>-END` on the console (lib.sh's `framed`, which holds
/// the kernel's console messages back meanwhile, so every line between is the report's).
fn section(log: &str, tag: &str) -> serde_json::Value {
    let begin = format!("{tag}-BEGIN");
    let end = format!("{tag}-END");
    let text: String = log
        .lines()
        .skip_while(|l| l.trim() != begin)
        .skip(1)
        .take_while(|l| l.trim() != end)
        .collect::<Vec<_>>()
        .join("\n");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{tag}: not JSON ({e}):\n{text}\n{log}"))
}

fn names(status: &serde_json::Value) -> Vec<String> {
    status["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn status_in_the_guest_lists_the_enabled_patches_and_predicts_what_the_kernel_then_does() {
    let name =
        "status_in_the_guest_lists_the_enabled_patches_and_predicts_what_the_kernel_then_does";
    let Some(lab) = support::lab(name) else {
        return;
    };
    let d = scratch("6.1");
    let a = build(lab, &d, "cmdline.patch", &[]);
    let b = build(lab, &d, "proc-tty.patch", &["--no-replace"]);
    let c = build(lab, &d, "ksysfs.patch", &[]);
    let mut files = binary_and_libraries(&d);
    files.extend([a, b, c]);
    let script = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/e2e/lib.sh"),
    )
    .unwrap()
        + r#"
kb() { /modules/ld-linux-x86-64.so.2 --library-path /modules /modules/klp-build "$@"; }
load_patch livepatch-cmdline
load_patch livepatch-proc-tty
framed STATUS kb status /modules/livepatch-ksysfs.ko --modules /modules --report json || true
load_patch livepatch-ksysfs
# The replaced patches leave sysfs once the kernel has freed them.
i=0
while [ "$(ls /sys/kernel/livepatch | wc -l)" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
echo "AFTER: $(ls /sys/kernel/livepatch | tr '\n' ' ')"
framed STATUS2 kb status --modules /modules --report json
"#;
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let boot = support::boot(lab, "status", &refs, &script).unwrap();
    assert!(boot.passed, "{}:\n{}", boot.log_file.display(), boot.log);

    let before = section(&boot.log, "STATUS");
    support::schemas::assert_valid("status", &before, "status NEW.ko");
    assert_eq!(before["kernel_release"], lab.release.as_str());
    assert_eq!(
        names(&before),
        ["livepatch_cmdline", "livepatch_proc_tty"],
        "load order: {before:#}"
    );
    for p in before["patches"].as_array().unwrap() {
        assert_eq!(p["enabled"], true, "{p:#}");
        assert_eq!(p["transition"], false, "{p:#}");
        assert!(
            p["module_file"].as_str().unwrap().starts_with("/modules/"),
            "{p:#}"
        );
    }
    assert!(
        before["patches"][0]["replace"]
            .as_str()
            .unwrap()
            .contains("cumulative"),
        "{before:#}"
    );
    assert!(
        before["patches"][1]["replace"]
            .as_str()
            .unwrap()
            .contains("stacked"),
        "{before:#}"
    );
    let new = &before["new"];
    assert_eq!(new["loads"], true, "{new:#}");
    assert_eq!(
        new["replaces"],
        serde_json::json!(["livepatch_cmdline", "livepatch_proc_tty"]),
        "{new:#}"
    );
    assert_eq!(new["coexists"], serde_json::json!([]), "{new:#}");
    // A release's policy, not the kernel's: said, not refused.
    assert_eq!(
        new["drops"],
        serde_json::json!(["cmdline", "proc-tty"]),
        "{new:#}"
    );

    // What the kernel did: exactly the predicted set is enabled.
    let after: Vec<&str> = boot
        .log
        .lines()
        .find_map(|l| l.strip_prefix("AFTER: "))
        .unwrap_or_else(|| panic!("no AFTER line:\n{}", boot.log))
        .split_whitespace()
        .collect();
    assert_eq!(after, ["livepatch_ksysfs"], "{}", boot.log);
    let status2 = section(&boot.log, "STATUS2");
    support::schemas::assert_valid("status", &status2, "status");
    assert_eq!(names(&status2), ["livepatch_ksysfs"], "{status2:#}");
    assert_eq!(status2["new"], serde_json::Value::Null);
}

#[test]
fn status_on_the_reference_kernel_predicts_a_replace_within_one_set_beside_another() {
    let name = "status_on_the_reference_kernel_predicts_a_replace_within_one_set_beside_another";
    let Some(kernel) = support::refkernel::ref_kernel(name) else {
        return;
    };
    let d = scratch("refkernel");
    let build_set = |patch: &str, set: &str| -> PathBuf {
        let stem = patch.trim_end_matches(".patch");
        let ko = d.join(format!("livepatch-{stem}.ko"));
        let mut args = support::refkernel::klp_build_args(
            kernel,
            &support::inputs::patch(patch),
            &d.join(format!("work-{stem}")),
            &ko,
        );
        args.extend(["--replace-set".into(), set.into()]);
        let o = support::run::klp_build(&d, &args);
        assert!(o.status.success(), "building {patch}: {}", describe(&o));
        ko
    };
    let mut files = binary_and_libraries(&d);
    files.push(build_set("cmdline.patch", "1"));
    files.push(build_set("ksysfs.patch", "2"));
    files.push(build_set("proc-tty.patch", "2"));
    let script = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/e2e/lib.sh"),
    )
    .unwrap()
        + r#"
kb() { /modules/ld-linux-x86-64.so.2 --library-path /modules /modules/klp-build "$@"; }
load_patch livepatch-cmdline
load_patch livepatch-ksysfs
framed STATUS kb status /modules/livepatch-proc-tty.ko --modules /modules --report json || true
load_patch livepatch-proc-tty
i=0
while [ "$(ls /sys/kernel/livepatch | wc -l)" != 2 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
echo "AFTER: $(ls /sys/kernel/livepatch | tr '\n' ' ')"
"#;
    let boot = support::refkernel::boot(kernel, "status-refkernel", &files, &script, 600)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(boot.passed, "{}:\n{}", boot.log_file.display(), boot.log);
    let before = section(&boot.log, "STATUS");
    support::schemas::assert_valid("status", &before, "status NEW.ko");
    assert_eq!(
        names(&before),
        ["livepatch_cmdline", "livepatch_ksysfs"],
        "{before:#}"
    );
    assert_eq!(
        before["patches"][0]["replace"], "replace set 1",
        "{before:#}"
    );
    assert_eq!(
        before["patches"][1]["replace"], "replace set 2",
        "{before:#}"
    );
    let new = &before["new"];
    assert_eq!(new["loads"], true, "{new:#}");
    assert_eq!(
        new["replaces"],
        serde_json::json!(["livepatch_ksysfs"]),
        "{new:#}"
    );
    assert_eq!(
        new["coexists"],
        serde_json::json!(["livepatch_cmdline"]),
        "{new:#}"
    );
    let mut after: Vec<&str> = boot
        .log
        .lines()
        .find_map(|l| l.strip_prefix("AFTER: "))
        .unwrap_or_else(|| panic!("no AFTER line:\n{}", boot.log))
        .split_whitespace()
        .collect();
    after.sort_unstable();
    assert_eq!(
        after,
        ["livepatch_cmdline", "livepatch_proc_tty"],
        "{}",
        boot.log
    );
}
