//! End to end on Debian 12's own kernels, 6.1 and 6.12 (every case runs on both, as
//! `<case>_6_1` and `<case>_6_12`): klp-build turns each patch of `testdata/patches/` into a module
//! against the distro's headers and a kallsyms listing captured from the booted kernel; QEMU boots
//! Debian's vmlinuz, loads the module and checks the patched behaviour, its removal and `rmmod`
//! (`testdata/e2e/<case>.sh`). The report's function list must match
//! `testdata/e2e/<case>.functions`, or `testdata/e2e/<series>/<case>.functions` where that kernel's
//! differs (regenerate with `KLP_BLESS=1`). A patch that does not apply to both series has a
//! variant in `testdata/patches/<series>/`.

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
    /// A klp symbol the module must bind: `(name, anchor, sympos on the default series)`: the
    /// static function `name` of the file that also defines `anchor`, at the sympos kallsyms gives it.
    binds: Option<(&'static str, &'static str, Option<u64>)>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `testdata/patches/<series>/<name>` when the series has its own variant, else
/// `testdata/patches/<name>`.
fn patch_path(lab: &support::Lab, name: &str) -> PathBuf {
    let variant = root().join("testdata/patches").join(&lab.series).join(name);
    if variant.is_file() {
        return variant;
    }
    root().join("testdata/patches").join(name)
}

/// The golden function list of a case on the lab's series: `testdata/e2e/<series>/<case>.functions`
/// when that kernel's differs, else `testdata/e2e/<case>.functions` (the default series' list).
fn golden_path(lab: &support::Lab, case: &Case) -> PathBuf {
    let file = format!("{}.functions", case.name);
    let variant = root().join("testdata/e2e").join(&lab.series).join(&file);
    if lab.series == support::lab::DEFAULT_SERIES || !variant.is_file() {
        return root().join("testdata/e2e").join(file);
    }
    variant
}

/// Builds the case's module; returns its path and the JSON report.
fn build(lab: &support::Lab, case: &Case, out: &Path) -> (PathBuf, serde_json::Value) {
    let ko = out.join(format!("{}.ko", case.module));
    let work = out.join(format!("work-{}", case.name));
    let res = Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .args(
            case.patches
                .iter()
                .flat_map(|p| ["--diff".into(), patch_path(lab, p)]),
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

fn check_golden(lab: &support::Lab, case: &Case, got: &str) {
    let path = golden_path(lab, case);
    if std::env::var_os("KLP_BLESS").is_some() {
        let base = root()
            .join("testdata/e2e")
            .join(format!("{}.functions", case.name));
        if lab.series == support::lab::DEFAULT_SERIES {
            std::fs::write(&base, got).unwrap();
        } else {
            // A series keeps its own list only where it differs from the default one.
            let variant = root()
                .join("testdata/e2e")
                .join(&lab.series)
                .join(format!("{}.functions", case.name));
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
        "\n{}: the patched functions differ from the golden list (KLP_BLESS=1 regenerates it)\n```expected\n{want}```\n```got\n{got}```",
        path.display()
    );
}

/// The module carries what it holds: the fix (name, sha256 of the patch file, subject), the
/// release, and the same functions the report lists.
fn check_manifest(lab: &support::Lab, case: &Case, ko: &Path, report: &serde_json::Value) {
    use sha2::{Digest, Sha256};
    let m = klp_build::contract::manifest::read(ko).expect("manifest");
    assert_eq!(m.fixes.len(), case.patches.len());
    for (fix, name) in m.fixes.iter().zip(case.patches) {
        let patch = std::fs::read(patch_path(lab, name)).unwrap();
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
    assert_eq!(m.replace, klp_build::contract::spec::ReplaceMode::Atomic);
    assert_eq!(
        m.schema_version,
        klp_build::contract::manifest::SCHEMA_VERSION
    );
    let mut listed: Vec<String> = m
        .functions
        .iter()
        .map(|f| format!("{}:{},{}", f.object, f.name, f.sympos))
        .collect();
    listed.sort();
    assert_eq!(
        listed.join("\n") + "\n",
        support::guest::patched_functions(report),
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

/// The `sympos` of the module's klp symbol `.klp.sym.<object>.<name>,<sympos>` for `name`, or
/// `None` when the module has no klp symbol of that name.
fn klp_sympos(ko: &Path, object: &str, name: &str) -> Option<u64> {
    use object::{Object, ObjectSymbol};
    let data = std::fs::read(ko).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let prefix = format!(".klp.sym.{object}.{name},");
    file.symbols().find_map(|s| {
        s.name()
            .ok()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|pos| pos.parse().ok())
    })
}

/// The kallsyms position (1-based, among the text symbols called `name`, in listing order) of the
/// `name` closest in the listing to `anchor`, a unique function of the same file: what sympos
/// must say to bind that file's `name`. Independent of klp-build's own counting.
fn kallsyms_sympos(kallsyms: &Path, name: &str, anchor: &str) -> u64 {
    let text = std::fs::read_to_string(kallsyms).unwrap();
    let mut same = Vec::new();
    let mut anchor_line = None;
    for (i, line) in text.lines().enumerate() {
        let mut f = line.split_whitespace();
        let (_, ty, sym) = (f.next(), f.next(), f.next());
        // Module symbols (a `[module]` column) come after vmlinux's and are not vmlinux's.
        if f.next().is_some() || !matches!(ty, Some("t" | "T")) {
            continue;
        }
        if sym == Some(name) {
            same.push(i);
        } else if sym == Some(anchor) {
            anchor_line = Some(i);
        }
    }
    let anchor_line =
        anchor_line.unwrap_or_else(|| panic!("no {anchor} in {}", kallsyms.display()));
    let closest = (0..same.len())
        .min_by_key(|&k| same[k].abs_diff(anchor_line))
        .unwrap_or_else(|| panic!("no {name} in {}", kallsyms.display()));
    closest as u64 + 1
}

fn run_case(series: &str, case: Case) {
    let test = format!("{}_{}", case.name, series);
    let Some(lab) = support::lab_series(&test, series) else {
        return;
    };
    let out = root().join("target/klp-e2e").join(series);
    std::fs::create_dir_all(&out).unwrap();
    let (ko, report) = build(lab, &case, &out);
    check_golden(lab, &case, &support::guest::patched_functions(&report));
    if let Some((name, anchor, want)) = case.binds {
        let listed = kallsyms_sympos(&lab.kallsyms, name, anchor);
        if let Some(want) = want.filter(|_| series == support::lab::DEFAULT_SERIES) {
            assert_eq!(
                listed,
                want,
                "{name} next to {anchor} in {}",
                lab.kallsyms.display()
            );
        }
        assert_eq!(
            klp_sympos(&ko, "vmlinux", name),
            Some(listed),
            "{}: the module must bind {name} at sympos {listed}, the {name} next to {anchor} in {}",
            case.name,
            lab.kallsyms.display()
        );
    }
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
    let boot = support::boot(lab, &test, &files, &guest_script(&case)).expect("boot");
    assert!(
        boot.passed,
        "{}: the guest check failed:\n{}",
        case.name, boot.log
    );
    // From /init on, when the module is loaded: on a busy host the emulated boot is slow enough
    // for the crypto self-tests to WARN before it (6.1's CTR-KDF test, seen at 124 s of boot).
    let from_init = boot
        .log
        .split_once("Run /init as init process")
        .map_or(boot.log.as_str(), |(_, after)| after);
    assert!(
        case.warns || !from_init.contains("Call Trace"),
        "{}: the kernel printed a stack trace after /init started:\n{}",
        case.name,
        boot.log
    );
}

const CMDLINE: Case = Case {
    name: "cmdline",
    patches: &["cmdline.patch"],
    module: "livepatch-cmdline",
    warns: false,
    modules: &[],
    binds: None,
};

const KSYSFS: Case = Case {
    name: "ksysfs",
    patches: &["ksysfs.patch"],
    module: "livepatch-ksysfs",
    warns: false,
    modules: &[],
    binds: None,
};

/// proc_tty.c's static t_next() is the 6th `t_next` in Debian 6.1's kallsyms.
const PROC_TTY: Case = Case {
    name: "proc-tty",
    patches: &["proc-tty.patch"],
    module: "livepatch-proc-tty",
    warns: false,
    modules: &[],
    binds: Some(("t_next", "show_tty_driver", Some(6))),
};

const KSYSFS_WARN: Case = Case {
    name: "ksysfs-warn",
    patches: &["ksysfs-warn.patch"],
    module: "livepatch-ksysfs-warn",
    warns: true,
    modules: &[],
    binds: None,
};

const BINFMT_MISC: Case = Case {
    name: "binfmt-misc",
    patches: &["binfmt-misc.patch"],
    module: "livepatch-binfmt-misc",
    warns: false,
    modules: &["kernel/fs/binfmt_misc.ko"],
    binds: None,
};

const CMDLINE_AND_KSYSFS: Case = Case {
    name: "cmdline-and-ksysfs",
    patches: &["cmdline.patch", "ksysfs.patch"],
    module: "livepatch-cmdline-and-ksysfs",
    warns: false,
    modules: &[],
    binds: None,
};

/// One test per case and kernel series: `<name>_6_1` and `<name>_6_12`.
macro_rules! on_both_kernels {
    ($($case:ident => $v61:ident, $v612:ident;)*) => {$(
        #[test]
        fn $v61() {
            run_case("6.1", $case);
        }
        #[test]
        fn $v612() {
            run_case("6.12", $case);
        }
    )*};
}

on_both_kernels! {
    CMDLINE => cmdline_patch_loads_and_works_6_1, cmdline_patch_loads_and_works_6_12;
    KSYSFS => ksysfs_patch_loads_and_works_6_1, ksysfs_patch_loads_and_works_6_12;
    PROC_TTY => proc_tty_patch_binds_t_next_by_sympos_6_1, proc_tty_patch_binds_t_next_by_sympos_6_12;
    KSYSFS_WARN => ksysfs_warn_carries_bug_table_dyndbg_and_jump_label_6_1,
        ksysfs_warn_carries_bug_table_dyndbg_and_jump_label_6_12;
    BINFMT_MISC => binfmt_misc_module_patched_as_it_loads_6_1,
        binfmt_misc_module_patched_as_it_loads_6_12;
    CMDLINE_AND_KSYSFS => two_fixes_in_two_subsystems_make_one_module_6_1,
        two_fixes_in_two_subsystems_make_one_module_6_12;
}
