//! End to end on Debian's own 6.1 kernel: klp-build turns each patch of `testdata/patches/` into a
//! module against the distro's headers and a kallsyms listing captured from the booted kernel;
//! QEMU boots Debian's vmlinuz, loads the module and checks the patched behaviour, its removal
//! and `rmmod` (`testdata/e2e/<case>.sh`). The report's function list must match
//! `testdata/e2e/<case>.functions` (regenerate with `KLP_BLESS=1`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

struct Case {
    name: &'static str,
    /// Applied in order, one `--diff` each.
    patches: &'static [&'static str],
    module: &'static str,
    /// The case triggers a WARN on purpose, which prints a stack trace.
    warns: bool,
    /// Distro modules the guest needs, relative to the image's lib/modules/<release>.
    modules: &'static [&'static str],
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the case's module; returns its path and the JSON report.
fn build(lab: &support::Lab, case: &Case, out: &Path) -> (PathBuf, serde_json::Value) {
    let ko = out.join(format!("{}.ko", case.module));
    let work = out.join(format!("work-{}", case.name));
    let res = Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .args(
            case.patches
                .iter()
                .flat_map(|p| ["--diff".into(), root().join("testdata/patches").join(p)]),
        )
        .arg("--source")
        .arg(&lab.src)
        .arg("--kbuild")
        .arg(&lab.kbuild)
        .arg("--config")
        .arg(&lab.config)
        .arg("--symbols")
        .arg(&lab.kallsyms)
        .arg("--modules")
        .arg(&lab.modules)
        .arg("--name")
        .arg(case.module)
        .arg("--work-dir")
        .arg(&work)
        .args(["--report", "json", "-j", "2", "-o"])
        .arg(&ko)
        .output()
        .expect("run klp-build");
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        res.status.success(),
        "klp-build failed for {}:\n{stderr}",
        case.name
    );
    let report: serde_json::Value = serde_json::from_slice(&res.stdout).expect("JSON report");
    (ko, report)
}

/// `object:function,sympos` of every patched function, sorted: the golden list.
fn functions(report: &serde_json::Value) -> String {
    let mut v: Vec<String> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| o["funcs"].as_array().unwrap().clone())
        .map(|f| {
            format!(
                "{}:{},{}",
                f["object"].as_str().unwrap(),
                f["name"].as_str().unwrap(),
                f["sympos"]
            )
        })
        .collect();
    v.sort();
    v.join("\n") + "\n"
}

fn check_golden(case: &Case, got: &str) {
    let path = root()
        .join("testdata/e2e")
        .join(format!("{}.functions", case.name));
    if std::env::var_os("KLP_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        want,
        got,
        "\n{}: the patched functions differ from the golden list (KLP_BLESS=1 regenerates it)\n```expected\n{want}```\n```got\n{got}```",
        path.display()
    );
}

/// The module carries what it holds: the fix (name, sha256 of the patch file, subject), the
/// release, and the same functions the report lists.
fn check_manifest(lab: &support::Lab, case: &Case, ko: &Path, report: &serde_json::Value) {
    use sha2::{Digest, Sha256};
    let m = klp_build::emit::manifest::read(ko).expect("manifest");
    assert_eq!(m.fixes.len(), case.patches.len());
    for (fix, name) in m.fixes.iter().zip(case.patches) {
        let patch = std::fs::read(root().join("testdata/patches").join(name)).unwrap();
        let sha: String = Sha256::digest(&patch)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(fix.name, name.trim_end_matches(".patch"));
        assert_eq!(fix.sha256, sha);
        assert!(!fix.subject.is_empty());
    }
    assert_eq!(m.kernel_release, lab.release);
    assert_eq!(m.name, case.module.replace('-', "_"));
    assert_eq!(m.replace, klp_build::emit::spec::ReplaceMode::Atomic);
    assert_eq!(m.schema_version, klp_build::emit::manifest::SCHEMA_VERSION);
    let mut listed: Vec<String> = m
        .functions
        .iter()
        .map(|f| format!("{}:{},{}", f.object, f.name, f.sympos))
        .collect();
    listed.sort();
    assert_eq!(
        listed.join("\n") + "\n",
        functions(report),
        "manifest and report disagree"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .arg("inspect")
        .arg(ko)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in &m.functions {
        assert!(
            text.contains(&format!("patches {}:{},{}", f.object, f.name, f.sympos)),
            "inspect:\n{text}"
        );
    }
    assert!(text.contains(&m.fixes[0].subject), "inspect:\n{text}");
}

fn guest_script(case: &Case) -> String {
    let lib = std::fs::read_to_string(root().join("testdata/e2e/lib.sh")).unwrap();
    let body = std::fs::read_to_string(
        root()
            .join("testdata/e2e")
            .join(format!("{}.sh", case.name)),
    )
    .unwrap();
    format!("{lib}\n{body}\n")
}

fn run_case(case: Case) {
    let Some(lab) = support::lab(case.name) else {
        return;
    };
    let out = root().join("target/klp-e2e");
    std::fs::create_dir_all(&out).unwrap();
    let (ko, report) = build(lab, &case, &out);
    check_golden(&case, &functions(&report));
    check_manifest(lab, &case, &ko, &report);
    let modinfo = Command::new("modinfo").arg(&ko).output().expect("modinfo");
    let modinfo = String::from_utf8_lossy(&modinfo.stdout);
    assert!(
        modinfo
            .lines()
            .any(|l| l.starts_with("livepatch:") && l.ends_with('Y')),
        "modinfo lacks livepatch: Y\n{modinfo}"
    );
    assert!(
        modinfo.contains(&lab.release),
        "vermagic is not {}:\n{modinfo}",
        lab.release
    );
    let extra: Vec<PathBuf> = case.modules.iter().map(|m| lab.modules.join(m)).collect();
    let mut files = vec![ko.as_path()];
    files.extend(extra.iter().map(PathBuf::as_path));
    let boot = support::boot(lab, case.name, &files, &guest_script(&case)).expect("boot");
    assert!(
        boot.passed,
        "{}: the guest check failed:\n{}",
        case.name, boot.log
    );
    assert!(
        case.warns || !boot.log.contains("Call Trace"),
        "{}: the kernel printed a stack trace:\n{}",
        case.name,
        boot.log
    );
}

#[test]
fn cmdline_patch_loads_and_works() {
    run_case(Case {
        name: "cmdline",
        patches: &["cmdline.patch"],
        module: "livepatch-cmdline",
        warns: false,
        modules: &[],
    });
}

#[test]
fn ksysfs_patch_loads_and_works() {
    run_case(Case {
        name: "ksysfs",
        patches: &["ksysfs.patch"],
        module: "livepatch-ksysfs",
        warns: false,
        modules: &[],
    });
}

#[test]
fn proc_tty_patch_binds_sympos_6() {
    run_case(Case {
        name: "proc-tty",
        patches: &["proc-tty.patch"],
        module: "livepatch-proc-tty",
        warns: false,
        modules: &[],
    });
}

#[test]
fn ksysfs_warn_carries_bug_table_dyndbg_and_jump_label() {
    run_case(Case {
        name: "ksysfs-warn",
        patches: &["ksysfs-warn.patch"],
        module: "livepatch-ksysfs-warn",
        warns: true,
        modules: &[],
    });
}

#[test]
fn binfmt_misc_module_patched_as_it_loads() {
    run_case(Case {
        name: "binfmt-misc",
        patches: &["binfmt-misc.patch"],
        module: "livepatch-binfmt-misc",
        warns: false,
        modules: &["kernel/fs/binfmt_misc.ko"],
    });
}

#[test]
fn two_fixes_in_two_subsystems_make_one_module() {
    run_case(Case {
        name: "cmdline-and-ksysfs",
        patches: &["cmdline.patch", "ksysfs.patch"],
        module: "livepatch-cmdline-and-ksysfs",
        warns: false,
        modules: &[],
    });
}
