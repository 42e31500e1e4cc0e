//! `klp-build check` and `inspect` on real modules, compared with golden outputs in
//! `testdata/check/*.golden`. The modules are the kernel's own `samples/livepatch` built with kbuild
//! against the lab's Debian 6.1 headers (modules of another tool: no `.klp_build.manifest`), and
//! copies of the sample stamped with manifests through `contract::manifest::attach`, as klp-build stamps
//! its modules, for the release scenarios of replace-set.md. The goldens are compared exactly;
//! `KLP_BLESS=1 cargo test --test check_golden` rewrites them (and the test then fails, so a
//! regeneration is never silent).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use klp_build::check::{self, Livepatch};
use klp_build::contract::manifest::{self, Manifest, ManifestFunc, SCHEMA_VERSION};
use klp_build::contract::spec::{ReplaceMode, SetField, StateSpec};
use klp_build::elf::{read_file, Any, Content, ElfObject};
use klp_build::patch::Fix;

/// The samples built, once per test process.
struct Samples {
    dir: PathBuf,
    release: String,
    src: PathBuf,
}

const SAMPLES: [&str; 3] = [
    "livepatch-sample",
    "livepatch-callbacks-demo",
    "livepatch-shadow-fix1",
];

static BUILT: OnceLock<Result<Samples, String>> = OnceLock::new();

/// The samples of the lab's kernel source, built with kbuild against its headers (about 10 s).
fn samples(test: &str) -> Option<&'static Samples> {
    let lab = support::lab(test)?;
    let built = BUILT.get_or_init(|| {
        // One dir, emptied by each run (cargo runs one process of a test binary at a time), so
        // runs do not pile up copies.
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("check-samples");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut kbuild = String::new();
        for s in SAMPLES {
            let c = lab.src.join(format!("samples/livepatch/{s}.c"));
            std::fs::copy(&c, dir.join(format!("{s}.c")))
                .map_err(|e| format!("{}: {e}", c.display()))?;
            kbuild.push_str(&format!("obj-m += {s}.o\n"));
        }
        std::fs::write(dir.join("Kbuild"), kbuild).map_err(|e| e.to_string())?;
        let out = Command::new("make")
            .arg("-C")
            .arg(&lab.kbuild)
            .arg(format!("M={}", dir.display()))
            .arg("-j2")
            .arg("modules")
            .output()
            .map_err(|e| format!("make: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "building samples/livepatch against {}: {}",
                lab.kbuild.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(Samples {
            dir,
            release: lab.release.clone(),
            src: lab.src.clone(),
        })
    });
    match built {
        Ok(s) => Some(s),
        Err(e) => panic!("{test}: {e}"),
    }
}

/// A fresh work dir holding copies of the samples.
fn work(s: &Samples) -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for name in SAMPLES {
        std::fs::copy(
            s.dir.join(format!("{name}.ko")),
            dir.path().join(format!("{name}.ko")),
        )
        .unwrap();
    }
    dir
}

/// How a stamped module relates to the ones before it.
fn set(n: u32, supersedes: &[u32]) -> ReplaceMode {
    ReplaceMode::Set {
        field: SetField::ReplaceSet,
        set: n,
        supersedes: supersedes.to_vec(),
    }
}

/// `<dir>/<name>.ko`: a copy of the real livepatch-sample.ko with a manifest attached, as klp-build
/// stamps its modules. `funcs` are vmlinux functions, `name` or `name,sympos`.
fn stamp(
    s: &Samples,
    dir: &Path,
    name: &str,
    replace: ReplaceMode,
    fixes: &[&str],
    funcs: &[&str],
    states: &[(u64, u32)],
) {
    let ko = dir.join(format!("{name}.ko"));
    std::fs::copy(s.dir.join("livepatch-sample.ko"), &ko).unwrap();
    let m = Manifest {
        schema_version: SCHEMA_VERSION,
        tool_version: "0.1.0".into(),
        kernel_release: s.release.clone(),
        name: name.replace('-', "_"),
        replace,
        states: states
            .iter()
            .map(|&(id, version)| StateSpec { id, version })
            .collect(),
        fixes: fixes
            .iter()
            .map(|f| Fix {
                name: (*f).into(),
                sha256: format!("{:064x}", f.len()),
                subject: format!("[PATCH] {f}: the fix"),
            })
            .collect(),
        functions: funcs
            .iter()
            .map(|f| {
                let (n, pos) = f.split_once(',').unwrap_or((f, "0"));
                ManifestFunc {
                    object: "vmlinux".into(),
                    name: n.into(),
                    sympos: pos.parse().unwrap(),
                }
            })
            .collect(),
    };
    manifest::attach(&ko, &m).unwrap();
}

/// Runs `klp-build <args>` in `dir`; the transcript as a golden holds it.
fn run(s: &Samples, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "$ klp-build {}\nexit {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        out.status.code().map_or("signal".into(), |c| c.to_string()),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.replace(&s.release, "<release>")
}

/// `klp-build inspect` of `ko`, as the text and JSON the function behind the subcommand prints.
fn inspect(s: &Samples, dir: &Path, ko: &str) -> String {
    let mut m = Livepatch::read(&dir.join(ko)).unwrap();
    // As the subcommand names it when run in `dir`.
    m.file = ko.to_string();
    let text = format!(
        "$ klp-build inspect {ko}\n{}$ klp-build inspect --report json {ko}\n{}\n",
        check::inspect::text(&m),
        serde_json::to_string_pretty(&m).unwrap()
    );
    text.replace(&s.release, "<release>")
}

/// Compares `actual` with `testdata/check/<name>.golden`; `KLP_BLESS=1` rewrites it and fails.
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/check")
        .join(format!("{name}.golden"));
    if std::env::var_os("KLP_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        panic!(
            "{}: rewritten (KLP_BLESS=1); review the diff and run again without it",
            path.display()
        );
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with KLP_BLESS=1 and review it",
            path.display()
        )
    });
    if expected != actual {
        let diff = similar::TextDiff::from_lines(expected.as_str(), actual)
            .unified_diff()
            .header("expected", "actual")
            .to_string();
        panic!(
            "{} differs (KLP_BLESS=1 to accept):\n{diff}",
            path.display()
        );
    }
}

#[test]
fn a_release_that_drops_a_fix_is_refused_unless_allowed() {
    let Some(s) = samples("a_release_that_drops_a_fix_is_refused_unless_allowed") else {
        return;
    };
    let w = work(s);
    let d = w.path();
    stamp(
        s,
        d,
        "cumulative-v1",
        ReplaceMode::Atomic,
        &["cmdline-fix", "uptime-fix"],
        &["cmdline_proc_show", "uptime_proc_show"],
        &[],
    );
    stamp(
        s,
        d,
        "cumulative-v2",
        ReplaceMode::Atomic,
        &["cmdline-fix"],
        &["cmdline_proc_show"],
        &[],
    );
    let mut t = run(
        s,
        d,
        &["check", "cumulative-v2.ko", "--against", "cumulative-v1.ko"],
    );
    t += &run(
        s,
        d,
        &[
            "check",
            "cumulative-v2.ko",
            "--against",
            "cumulative-v1.ko",
            "--allow-drop",
            "uptime-fix",
        ],
    );
    t += &run(
        s,
        d,
        &[
            "check",
            "cumulative-v2.ko",
            "--against",
            "cumulative-v1.ko",
            "--report",
            "json",
        ],
    );
    golden("fix-dropped", &t);
}

#[test]
fn a_release_that_lowers_or_drops_a_state_is_refused() {
    let Some(s) = samples("a_release_that_lowers_or_drops_a_state_is_refused") else {
        return;
    };
    let w = work(s);
    let d = w.path();
    stamp(
        s,
        d,
        "klp-1a",
        set(1, &[]),
        &["fix-a"],
        &["cmdline_proc_show"],
        &[(0x4b4c_5001, 2)],
    );
    stamp(
        s,
        d,
        "klp-1a-v2",
        set(1, &[]),
        &["fix-a"],
        &["cmdline_proc_show"],
        &[(0x4b4c_5001, 1)],
    );
    stamp(
        s,
        d,
        "klp-1a-v3",
        set(1, &[]),
        &["fix-a"],
        &["cmdline_proc_show"],
        &[],
    );
    stamp(
        s,
        d,
        "klp-2b",
        set(2, &[]),
        &["fix-d"],
        &["loadavg_proc_show"],
        &[(0x4b4c_5001, 2)],
    );
    let mut t = run(s, d, &["check", "klp-1a-v2.ko", "--against", "klp-1a.ko"]);
    t += &run(s, d, &["check", "klp-1a-v3.ko", "--against", "klp-1a.ko"]);
    t += &run(s, d, &["check", "klp-2b.ko", "--against", "klp-1a.ko"]);
    golden("state-lowered", &t);
}

#[test]
fn a_function_overlap_across_sets_is_refused_naming_both() {
    let Some(s) = samples("a_function_overlap_across_sets_is_refused_naming_both") else {
        return;
    };
    let w = work(s);
    let d = w.path();
    stamp(
        s,
        d,
        "klp-1a",
        set(1, &[]),
        &["fix-a"],
        &["cmdline_proc_show"],
        &[],
    );
    stamp(
        s,
        d,
        "klp-1b",
        set(2, &[]),
        &["fix-b"],
        &["version_proc_show"],
        &[],
    );
    stamp(
        s,
        d,
        "klp-1x",
        set(3, &[]),
        &["fix-x"],
        &["cmdline_proc_show,1"],
        &[],
    );
    let t = run(
        s,
        d,
        &["check", "klp-1x.ko", "--against", "klp-1a.ko", "klp-1b.ko"],
    );
    golden("func-overlap", &t);
}

#[test]
fn the_release_cycle_with_a_same_set_replacement_that_reverts() {
    let Some(s) = samples("the_release_cycle_with_a_same_set_replacement_that_reverts") else {
        return;
    };
    let w = work(s);
    let d = w.path();
    stamp(
        s,
        d,
        "klp-1a",
        set(1, &[]),
        &["fix-a"],
        &["cmdline_proc_show"],
        &[],
    );
    stamp(
        s,
        d,
        "klp-1b",
        set(2, &[]),
        &["fix-b"],
        &["version_proc_show", "loadavg_proc_show"],
        &[],
    );
    stamp(
        s,
        d,
        "klp-1c",
        set(2, &[]),
        &["fix-b"],
        &["version_proc_show"],
        &[],
    );
    stamp(
        s,
        d,
        "klp-2a",
        set(1, &[2]),
        &["fix-a", "fix-b", "fix-c"],
        &[
            "cmdline_proc_show",
            "version_proc_show",
            "meminfo_proc_show",
        ],
        &[],
    );
    stamp(
        s,
        d,
        "klp-2b",
        set(2, &[]),
        &["fix-d"],
        &["loadavg_proc_show"],
        &[],
    );
    let mut t = run(
        s,
        d,
        &["check", "klp-1c.ko", "--against", "klp-1a.ko", "klp-1b.ko"],
    );
    t += &run(
        s,
        d,
        &[
            "check",
            "klp-2b.ko",
            "--against",
            "klp-1a.ko",
            "klp-1b.ko",
            "klp-1c.ko",
            "klp-2a.ko",
        ],
    );
    golden("same-set-reverts", &t);
}

#[test]
fn stacked_patches_on_one_function_are_warned_on_a_stock_kernel() {
    let Some(s) = samples("stacked_patches_on_one_function_are_warned_on_a_stock_kernel") else {
        return;
    };
    let w = work(s);
    let d = w.path();
    stamp(
        s,
        d,
        "cumulative",
        ReplaceMode::Atomic,
        &["cmdline-fix"],
        &["cmdline_proc_show"],
        &[],
    );
    stamp(
        s,
        d,
        "hotfix",
        ReplaceMode::Stacked,
        &["hot-fix"],
        &["cmdline_proc_show", "uptime_proc_show"],
        &[],
    );
    stamp(
        s,
        d,
        "cumulative-2",
        ReplaceMode::Atomic,
        &["cmdline-fix", "hot-fix"],
        &["cmdline_proc_show", "uptime_proc_show"],
        &[],
    );
    let mut t = run(s, d, &["check", "hotfix.ko", "--against", "cumulative.ko"]);
    t += &run(
        s,
        d,
        &[
            "check",
            "cumulative-2.ko",
            "--against",
            "cumulative.ko",
            "hotfix.ko",
        ],
    );
    golden("stacked-same-func", &t);
}

#[test]
fn modules_of_another_tool_are_read_from_their_elf() {
    let Some(s) = samples("modules_of_another_tool_are_read_from_their_elf") else {
        return;
    };
    let w = work(s);
    let d = w.path();
    stamp(
        s,
        d,
        "cumulative",
        ReplaceMode::Atomic,
        &["cmdline-fix"],
        &["cmdline_proc_show"],
        &[],
    );
    let mut t = String::new();
    for name in SAMPLES {
        t += &inspect(s, d, &format!("{name}.ko"));
    }
    t += &run(
        s,
        d,
        &["check", "livepatch-sample.ko", "--against", "cumulative.ko"],
    );
    t += &run(
        s,
        d,
        &[
            "check",
            "cumulative.ko",
            "--against",
            "livepatch-sample.ko",
            "livepatch-shadow-fix1.ko",
        ],
    );
    golden("other-tool", &t);
}

#[test]
fn inspect_shows_set_supersedes_states_fixes_and_functions() {
    let Some(s) = samples("inspect_shows_set_supersedes_states_fixes_and_functions") else {
        return;
    };
    let w = work(s);
    let d = w.path();
    stamp(
        s,
        d,
        "klp-2a",
        set(1, &[2, 3]),
        &["fix-a", "fix-b"],
        &["cmdline_proc_show", "show_stat,2"],
        &[(0x4b4c_5001, 2), (7, 0)],
    );
    golden("inspect-klp-build", &inspect(s, d, "klp-2a.ko"));
}

/// A second reading of the samples: the `.old_name` strings of their C source are the functions
/// that the ELF reading found, object by object.
#[test]
fn functions_read_from_the_elf_are_those_of_the_c_source() {
    let Some(s) = samples("functions_read_from_the_elf_are_those_of_the_c_source") else {
        return;
    };
    let re = regex::Regex::new(r#"\.old_name\s*=\s*"([^"]+)""#).unwrap();
    for name in SAMPLES {
        let c = std::fs::read_to_string(s.src.join(format!("samples/livepatch/{name}.c"))).unwrap();
        let mut want: Vec<String> = re.captures_iter(&c).map(|m| m[1].to_string()).collect();
        let m = Livepatch::read(&s.dir.join(format!("{name}.ko"))).unwrap();
        let mut got: Vec<String> = m.functions.unwrap().into_iter().map(|f| f.name).collect();
        want.sort();
        got.sort();
        assert!(!want.is_empty());
        assert_eq!(got, want, "{name}");
    }
}

/// A relocation that points past its target section, a cut file and a module that is no
/// livepatch: errors naming the file and the section, never a panic.
#[test]
fn malformed_modules_are_errors_that_name_file_and_section() {
    let Some(s) = samples("malformed_modules_are_errors_that_name_file_and_section") else {
        return;
    };
    let w = work(s);
    let ko = w.path().join("livepatch-sample.ko");
    let mut obj: ElfObject<Any> = read_file(&ko).unwrap();
    let data = obj.section_by_name(".data").unwrap();
    let rela = obj.relocs_for(data).unwrap();
    if let Content::Relocs { relocs, .. } = &mut obj.section_mut(rela).content {
        for r in relocs.iter_mut() {
            if obj_sym_is_str(r.sym.index(), &ko) {
                r.r_addend = 0x10_0000;
            }
        }
    }
    let bad = w.path().join("bad-reloc.ko");
    obj.write_to(&bad).unwrap();
    let e = format!("{:#}", Livepatch::read(&bad).unwrap_err());
    assert!(
        e.contains("bad-reloc.ko")
            && e.contains(".rodata.str1.1")
            && e.contains("section .data")
            && e.contains("past the end"),
        "{e}"
    );

    let bytes = std::fs::read(&ko).unwrap();
    for cut in [0usize, 10, 64, bytes.len() / 2, bytes.len() - 1] {
        let p = w.path().join("cut.ko");
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let e = format!("{:#}", Livepatch::read(&p).unwrap_err());
        assert!(e.contains("cut.ko"), "cut at {cut}: {e}");
    }

    // Every 251st byte set to 0xff in turn, and the klp structures' bytes one by one: an answer
    // or an error each time, never a panic.
    let data = obj_data_range(&ko);
    let p = w.path().join("flipped.ko");
    for at in (0..bytes.len()).step_by(251).chain(data) {
        let mut b = bytes.clone();
        b[at] ^= 0xff;
        std::fs::write(&p, &b).unwrap();
        let _ = Livepatch::read(&p);
    }

    let e = format!(
        "{:#}",
        Livepatch::read(&s.dir.join("livepatch-sample.mod.o")).unwrap_err()
    );
    assert!(
        e.contains("not a livepatch module") && e.contains("livepatch=Y"),
        "{e}"
    );
}

/// The symbol of index `i` in `ko` is the section symbol of the string section.
fn obj_sym_is_str(i: usize, ko: &Path) -> bool {
    let obj: ElfObject<Any> = read_file(ko).unwrap();
    let sym = &obj.symbols()[i];
    match sym.section_id() {
        Some(sec) => obj.section(sec).name.starts_with(".rodata.str"),
        None => false,
    }
}

/// A module klp-build itself built from `testdata/patches/cmdline.patch` on the lab: `inspect`
/// reads its manifest; with the manifest taken out, what its ELF says (its `klp_patch` is built at
/// run time by the runtime core, so only the klp relocations are left); `check` of it against the
/// kernel's sample, which patches the same function.
#[test]
fn a_module_built_by_klp_build_and_the_kernel_sample() {
    let test = "a_module_built_by_klp_build_and_the_kernel_sample";
    let Some(s) = samples(test) else {
        return;
    };
    let Some(lab) = support::lab(test) else {
        return;
    };
    let w = work(s);
    let d = w.path();
    let ko = d.join("livepatch-cmdline.ko");
    let args = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch("cmdline.patch"),
        &d.join("klp-tmp"),
        &ko,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .args(&args)
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "klp-build: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut obj: ElfObject<Any> = read_file(&ko).unwrap();
    let sec = obj.section_by_name(manifest::SECTION).unwrap();
    obj.section_mut(sec).deleted = true;
    obj.write_to(&d.join("no-manifest.ko")).unwrap();

    let mut t = inspect(s, d, "livepatch-cmdline.ko");
    t += &inspect(s, d, "no-manifest.ko");
    t += &run(
        s,
        d,
        &[
            "check",
            "livepatch-sample.ko",
            "--against",
            "livepatch-cmdline.ko",
        ],
    );
    t += &run(
        s,
        d,
        &[
            "check",
            "livepatch-cmdline.ko",
            "--against",
            "livepatch-sample.ko",
        ],
    );
    golden(
        "klp-build-module",
        &t.replace(env!("CARGO_PKG_VERSION"), "<version>"),
    );
}

/// The file offsets of `.data` and `.rela.data` of `ko`: where its klp_patch, klp_object and
/// klp_func arrays and their relocations are.
fn obj_data_range(ko: &Path) -> Vec<usize> {
    let bytes = std::fs::read(ko).unwrap();
    let file = object::read::elf::ElfFile64::<object::LittleEndian>::parse(&*bytes).unwrap();
    use object::{Object, ObjectSection};
    let mut out = Vec::new();
    for name in [".data", ".rela.data"] {
        let sec = file.section_by_name(name).unwrap();
        let (off, size) = sec.file_range().unwrap();
        out.extend(off as usize..(off + size) as usize);
    }
    out
}
