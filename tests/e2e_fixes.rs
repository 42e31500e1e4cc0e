//! Fixes written the way livepatch authors write them, against Debian's own 6.1 and 6.12 sources
//! (`testdata/patches/fixes/<name>.patch`, or `testdata/patches/<series>/fixes/<name>.patch` where
//! the fix does not apply to that series' source as it is), each built by klp-build into its own
//! module against the lab's headers, kallsyms and module tree. Every boot test runs on both
//! series: `<test>` on 6.1, `<test>_6_12` on 6.12, whose kbuild runs objtool on the whole module
//! at its link (IBT), so each fix's output object must also read to objtool the way the kernel's
//! own objects do. Fixes that work are loaded one after another in as few QEMU
//! boots of Debian's vmlinuz as is sound (they patch different functions, so they cannot
//! interfere): each guest script (`testdata/e2e/fixes/<name>.sh`) loads its module, checks the
//! behaviour and that the transition finished, disables it, checks the kernel's own behaviour is
//! back and unloads it (`testdata/e2e/<series>/fixes/<name>.sh` where that series needs its own).
//! The patched functions must match `testdata/e2e/fixes/<name>.functions`, or
//! `testdata/e2e/<series>/fixes/<name>.functions` where that kernel's differ (regenerate with
//! `KLP_BLESS=1`). Fixes that must be refused are checked for their exit code and
//! message without QEMU. Fixes written for kpatch-build's and the kernel's own headers are in
//! `tests/e2e_author_headers.rs`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

/// What klp-build does with a fix.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Builds; the module is booted and its guest script checks it.
    Works,
    /// Must be refused: the exit code and a fragment of stderr.
    Refused { code: i32, message: &'static str },
}

#[derive(Debug, Clone, Copy)]
struct Fix {
    name: &'static str,
    expect: Expect,
}

impl Fix {
    fn module(&self) -> String {
        format!("livepatch-fixes-{}", self.name)
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn out_dir(lab: &support::Lab) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp
        .parent()
        .unwrap_or(tmp)
        .join("klp-e2e-fixes")
        .join(&lab.series);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `dir/<series>/fixes/<file>` when the lab's series has its own, else `dir/fixes/<file>`.
fn series_file(lab: &support::Lab, dir: &str, file: &str) -> PathBuf {
    let variant = root().join(dir).join(&lab.series).join("fixes").join(file);
    if lab.series != support::lab::DEFAULT_SERIES && variant.is_file() {
        return variant;
    }
    root().join(dir).join("fixes").join(file)
}

fn patch(lab: &support::Lab, fix: &Fix) -> PathBuf {
    series_file(lab, "testdata/patches", &format!("{}.patch", fix.name))
}

/// Runs klp-build on one fix: (exit code, stdout, stderr, module path).
fn klp_build(lab: &support::Lab, fix: &Fix) -> (Option<i32>, String, String, PathBuf) {
    let out = out_dir(lab);
    let ko = out.join(format!("{}.ko", fix.module()));
    let work = out.join(format!("work-{}", fix.name));
    let _ = std::fs::remove_file(&ko);
    let res = Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .args(support::inputs::klp_build_args(
            lab,
            &patch(lab, fix),
            &work,
            &ko,
        ))
        .arg("--modules")
        .arg(&lab.modules)
        .arg("--name")
        .arg(fix.module())
        .args(["--report", "json", "-j", "2"])
        .output()
        .expect("run klp-build");
    (
        res.status.code(),
        String::from_utf8_lossy(&res.stdout).into_owned(),
        String::from_utf8_lossy(&res.stderr).into_owned(),
        ko,
    )
}

fn check_golden(lab: &support::Lab, fix: &Fix, got: &str) {
    let file = format!("{}.functions", fix.name);
    let path = series_file(lab, "testdata/e2e", &file);
    if std::env::var_os("KLP_BLESS").is_some() {
        let base = root().join("testdata/e2e/fixes").join(&file);
        if lab.series == support::lab::DEFAULT_SERIES {
            std::fs::write(&base, got).unwrap();
        } else {
            // A series keeps its own list only where it differs from the default one.
            let variant = root()
                .join("testdata/e2e")
                .join(&lab.series)
                .join("fixes")
                .join(&file);
            if std::fs::read_to_string(&base).is_ok_and(|b| b == got) {
                let _ = std::fs::remove_file(&variant);
            } else {
                std::fs::create_dir_all(variant.parent().unwrap()).unwrap();
                std::fs::write(&variant, got).unwrap();
            }
        }
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        want,
        got,
        "\n{}: the patched functions differ from the golden list (KLP_BLESS=1 regenerates it)",
        path.display()
    );
}

/// Builds each fix and checks it against its expectation; returns the modules of the fixes that
/// work, in table order.
fn build_all(lab: &support::Lab, fixes: &[Fix]) -> Vec<(Fix, PathBuf)> {
    let mut built = Vec::new();
    for fix in fixes {
        let (code, stdout, stderr, ko) = klp_build(lab, fix);
        match fix.expect {
            Expect::Works => {
                assert_eq!(
                    code,
                    Some(0),
                    "klp-build failed for {}:\n{stderr}",
                    fix.name
                );
                let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
                check_golden(lab, fix, &support::guest::patched_functions(&report));
                let modinfo = Command::new("modinfo").arg(&ko).output().expect("modinfo");
                let modinfo = String::from_utf8_lossy(&modinfo.stdout);
                assert!(
                    modinfo
                        .lines()
                        .any(|l| l.starts_with("livepatch:") && l.ends_with('Y')),
                    "{}: modinfo lacks livepatch: Y\n{modinfo}",
                    fix.name
                );
                assert!(
                    modinfo.contains(&lab.release),
                    "{}: vermagic is not {}",
                    fix.name,
                    lab.release
                );
                built.push((*fix, ko));
            }
            Expect::Refused {
                code: want,
                message,
            } => {
                assert_eq!(
                    code,
                    Some(want),
                    "{}: expected exit {want} with \"{message}\"; got {code:?}\n{stderr}",
                    fix.name
                );
                assert!(
                    stderr.contains(message),
                    "{}: the refusal does not say \"{message}\":\n{stderr}",
                    fix.name
                );
                assert!(
                    !ko.exists(),
                    "{}: a refused fix left {}",
                    fix.name,
                    ko.display()
                );
            }
        }
    }
    built
}

/// Boots once with every built module (and `extra` distro modules), running the fixes' guest
/// scripts one after another.
fn boot_all(lab: &support::Lab, name: &str, built: &[(Fix, PathBuf)], extra: &[&str], warns: bool) {
    if built.is_empty() {
        return;
    }
    let mut script = std::fs::read_to_string(root().join("testdata/e2e/lib.sh")).unwrap();
    for (fix, _) in built {
        let body = std::fs::read_to_string(series_file(
            lab,
            "testdata/e2e",
            &format!("{}.sh", fix.name),
        ))
        .unwrap();
        script.push('\n');
        script.push_str(&body);
    }
    let extra: Vec<PathBuf> = extra.iter().map(|m| lab.modules.join(m)).collect();
    let mut files: Vec<&Path> = built.iter().map(|(_, ko)| ko.as_path()).collect();
    files.extend(extra.iter().map(PathBuf::as_path));
    let boot = support::boot(lab, name, &files, &script).expect("boot");
    assert!(
        boot.passed,
        "{name}: the guest check failed (log {}):\n{}",
        boot.log_file.display(),
        boot.log
    );
    for (fix, _) in built {
        assert!(
            boot.log.contains(&format!("E2E-STEP: {}:", fix.name)),
            "{name}: {} did not finish its checks:\n{}",
            fix.name,
            boot.log
        );
    }
    assert!(
        warns || !boot.log.contains("Call Trace"),
        "{name}: the kernel printed a stack trace:\n{}",
        boot.log
    );
}

/// The fixes that load in one boot: none warns, each patches its own functions.
const ONE_BOOT: &[Fix] = &[
    Fix {
        name: "new-function",
        expect: Expect::Works,
    },
    Fix {
        name: "new-global",
        expect: Expect::Works,
    },
    Fix {
        name: "static-local",
        expect: Expect::Works,
    },
    // static_cpu_has(): the patched function carries its fragment of .altinstr_aux.
    Fix {
        name: "meminfo-cpu-has",
        expect: Expect::Works,
    },
    Fix {
        name: "static-key",
        expect: Expect::Works,
    },
    Fix {
        name: "uaccess-extable",
        expect: Expect::Works,
    },
    Fix {
        name: "pr-debug",
        expect: Expect::Works,
    },
    // Attached in copy_process(), which (through its inlined FPU and cpufeature helpers) uses
    // static_cpu_has(): its .altinstr_aux fragments come along.
    Fix {
        name: "shadow-fork",
        expect: Expect::Works,
    },
    // The same shadow variable attached in kernel_clone(), right after copy_process() returns.
    Fix {
        name: "shadow-clone",
        expect: Expect::Works,
    },
    Fix {
        name: "module-cold",
        expect: Expect::Works,
    },
    Fix {
        name: "cross-object-global",
        expect: Expect::Works,
    },
    Fix {
        name: "jump-label-cold",
        expect: Expect::Works,
    },
];

/// Builds every fix of [`ONE_BOOT`] for `series` and loads them in one boot.
fn one_boot(test: &str, series: &str) {
    let Some(lab) = support::lab_series(test, series) else {
        return;
    };
    let started = std::time::Instant::now();
    let built = build_all(lab, ONE_BOOT);
    let extra: &[&str] = if built.iter().any(|(f, _)| f.name == "module-cold") {
        // Debian's 6.1 and 6.12 both build binfmt_misc as a module (the lab's are uncompressed).
        &["kernel/fs/binfmt_misc.ko"]
    } else {
        &[]
    };
    let builds = started.elapsed();
    boot_all(
        lab,
        &format!("fixes-one-boot-{series}"),
        &built,
        extra,
        false,
    );
    eprintln!(
        "{test}: {} fixes built in {:.0?}, booted in {:.0?}",
        built.len(),
        builds,
        started.elapsed() - builds
    );
}

#[test]
fn fixes_load_work_and_restore_in_one_boot() {
    one_boot("fixes_load_work_and_restore_in_one_boot", "6.1");
}

#[test]
fn fixes_load_work_and_restore_in_one_boot_6_12() {
    one_boot("fixes_load_work_and_restore_in_one_boot_6_12", "6.12");
}

/// WARN_ON prints a stack trace on purpose: its own boot, so the other fixes are still checked
/// for traces.
fn warn_bug_boot(test: &str, series: &str) {
    let Some(lab) = support::lab_series(test, series) else {
        return;
    };
    let built = build_all(
        lab,
        &[Fix {
            name: "warn-bug",
            expect: Expect::Works,
        }],
    );
    boot_all(lab, &format!("fixes-warn-bug-{series}"), &built, &[], true);
}

#[test]
fn warn_on_and_bug_on_fix_warns_in_its_own_boot() {
    warn_bug_boot("warn_on_and_bug_on_fix_warns_in_its_own_boot", "6.1");
}

#[test]
fn warn_on_and_bug_on_fix_warns_in_its_own_boot_6_12() {
    warn_bug_boot("warn_on_and_bug_on_fix_warns_in_its_own_boot_6_12", "6.12");
}

#[test]
fn fixes_that_cannot_be_livepatched_are_refused_with_their_message() {
    let Some(lab) = support::lab("fixes_that_cannot_be_livepatched_are_refused_with_their_message")
    else {
        return;
    };
    build_all(
        lab,
        &[
            Fix {
                name: "err-changed-data",
                expect: Expect::Refused {
                    code: 1,
                    message: "shadow variable",
                },
            },
            Fix {
                name: "err-init",
                expect: Expect::Refused {
                    code: 1,
                    message: "__init",
                },
            },
            Fix {
                name: "err-line-only",
                expect: Expect::Refused {
                    code: 3,
                    message: "no functional change",
                },
            },
        ],
    );
}
