//! `klp-build release` on the kernel lab's Debian 6.1 tree (a `source = ...` target with the
//! lab's headers, config, kallsyms and modules): a release of three fixes is built, its module
//! booted in QEMU and checked; the next release (a revised and a new fix) is checked against it and
//! compiles only what changed; a dropped fix is refused; a build is byte-identical to another in
//! another directory; the CI plan's jobs, collected, equal a one-machine build; fixes that are
//! already in the kernel or in code its config does not build give no module. The checks that
//! need no kernel (the release file, options, output directories, collect's refusals) run first
//! and always.
//!
//! The lab tests skip with a printed reason without the lab, and fail under `CI`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use support::run::describe;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The release cache of these tests: downloads, work dirs and the compiler cache, under the lab's
/// cache dir so that CI keeps it between runs.
fn cache() -> PathBuf {
    let lab = std::env::var_os("KLP_LAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/klp-build-lab")
        });
    lab.join("release-cache")
}

/// A fresh directory under cargo's target dir for one test.
fn scratch(name: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let d = tmp.parent().unwrap_or(tmp).join("klp-release").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs klp-build in `dir` with the tests' release cache.
fn klp(dir: &Path, args: &[&str]) -> Output {
    klp_with_cache(dir, &cache(), args)
}

fn klp_with_cache(dir: &Path, cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .args(args)
        .current_dir(dir)
        .env("KLP_BUILD_CACHE", cache)
        .stdin(Stdio::null())
        .output()
        .expect("run klp-build")
}

/// Copies the named fixes into `dir/fixes/` and writes `dir/release.toml` with them (`id` ->
/// patch file under testdata) and `targets` (TOML text), plus `extra` top-level lines.
fn release_file(
    dir: &Path,
    version: &str,
    fixes: &[(&str, PathBuf)],
    extra: &str,
    targets: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir.join("fixes")).unwrap();
    let mut toml = format!("name = \"acme\"\nversion = \"{version}\"\n{extra}\n");
    for (id, patch) in fixes {
        let name = patch.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(patch, dir.join("fixes").join(&name)).unwrap();
        toml.push_str(&format!(
            "[[fix]]\nid = \"{id}\"\npatches = [\"fixes/{name}\"]\n"
        ));
    }
    toml.push_str(targets);
    let f = dir.join("release.toml");
    std::fs::write(&f, toml).unwrap();
    f
}

fn fix(name: &str) -> PathBuf {
    root()
        .join("testdata/patches/fixes")
        .join(format!("{name}.patch"))
}

fn release_fix(name: &str) -> PathBuf {
    root()
        .join("testdata/release/fixes")
        .join(format!("{name}.patch"))
}

fn lab_target(lab: &support::Lab) -> String {
    format!(
        "[[target]]\nname = \"lab\"\nsource = \"{}\"\nkbuild = \"{}\"\nconfig = \"{}\"\nsymbols = \"{}\"\nmodules = \"{}\"\n",
        lab.src.display(),
        lab.kbuild.display(),
        lab.config.display(),
        lab.kallsyms.display(),
        lab.modules.display()
    )
}

fn index(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("index.json"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("index.json").display()));
    let doc = serde_json::from_str(&text).unwrap();
    support::schemas::assert_valid("index", &doc, &dir.join("index.json").display().to_string());
    doc
}

fn target<'a>(index: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    index["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == key)
        .unwrap_or_else(|| panic!("no target {key} in {index:#}"))
}

// ---- without a kernel ----

#[test]
fn a_bad_release_file_is_refused_with_its_line_before_anything_runs() {
    let d = scratch("bad-file");
    std::fs::create_dir_all(d.join("fixes")).unwrap();
    std::fs::write(d.join("fixes/a.patch"), "x").unwrap();
    std::fs::write(
        d.join("release.toml"),
        "name = \"acme\"\nversion = \"1\"\n[[fix]]\nid = \"A\"\npatches = [\"fixes/a.patch\", \"fixes/missing.patch\"]\n\
         [[target]]\ndebian = \"6.1.0-57-amd64\"\nsymbols = \"x\"\n",
    )
    .unwrap();
    let o = klp(&d, &["release", "build", "release.toml", "-o", "out"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("release.toml:5: fix \"A\": patch"), "{err}");
    assert!(
        err.contains("release.toml:6: a debian target takes its inputs"),
        "{err}"
    );
    assert!(
        !d.join("out").exists(),
        "an output directory was made for a refused file"
    );

    let o = klp(&d, &["release", "scan", "missing.toml"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.toml"));
}

#[test]
fn options_and_output_directories_are_checked_before_the_first_fetch() {
    let d = scratch("options");
    let f = release_file(
        &d,
        "1",
        &[("A", release_fix("exar-wdt"))],
        "",
        "[[target]]\ndebian = \"6.1.0-57-amd64\"\n",
    );
    let f = f.to_str().unwrap();
    let o = klp(
        &d,
        &[
            "release",
            "build",
            f,
            "-o",
            "out",
            "--target",
            "7.0.0-1-amd64",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("it has: 6.1.0-57-amd64"));
    let o = klp(&d, &["release", "build", f, "-o", "out", "-j", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    // An output directory holding something else is not overwritten.
    std::fs::create_dir_all(d.join("other")).unwrap();
    std::fs::write(d.join("other/notes.txt"), "mine").unwrap();
    let o = klp(&d, &["release", "build", f, "-o", "other"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty and not a release's output"));
    assert_eq!(
        std::fs::read_to_string(d.join("other/notes.txt")).unwrap(),
        "mine"
    );
    // The release file's own directory (whose fixes/ it reads) is refused too.
    let o = klp(&d, &["release", "build", f, "-o", "."]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("release file's own directory"));
}

#[test]
fn plan_writes_one_job_per_target_for_each_ci_system() {
    let d = scratch("plan");
    release_file(
        &d,
        "1",
        &[("A", release_fix("exar-wdt"))],
        "",
        "[[target]]\ndebian = \"6.1.0-57-amd64\"\n[[target]]\ndebian = \"6.12.118+deb13-amd64\"\n",
    );
    let o = klp(
        &d,
        &[
            "release",
            "plan",
            "release.toml",
            "--format",
            "json",
            "-o",
            "rel",
        ],
    );
    assert!(o.status.success(), "{}", describe(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let jobs = plan["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        jobs[1]["command"],
        serde_json::json!([
            "klp-build",
            "release",
            "build",
            "release.toml",
            "--target",
            "6.12.118+deb13-amd64",
            "-o",
            "part-6.12.118+deb13-amd64"
        ])
    );
    assert_eq!(
        plan["collect"],
        serde_json::json!([
            "klp-build",
            "release",
            "collect",
            "part-6.1.0-57-amd64",
            "part-6.12.118+deb13-amd64",
            "-o",
            "rel"
        ])
    );
    let o = klp(
        &d,
        &["release", "plan", "release.toml", "--format", "github"],
    );
    let gh: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(gh["include"][0]["target"], "6.1.0-57-amd64");
    let o = klp(
        &d,
        &["release", "plan", "release.toml", "--format", "gitlab"],
    );
    let gl = String::from_utf8_lossy(&o.stdout);
    assert!(gl.contains("parallel:\n    matrix:\n      - TARGET:\n          - \"6.1.0-57-amd64\"\n          - \"6.12.118+deb13-amd64\""), "{gl}");
    assert!(
        gl.contains("klp-build release collect part-* -o \"release\""),
        "{gl}"
    );
}

// ---- on the lab's 6.1 tree ----

/// The first release, built once per test process: three fixes for the lab tree, and a Debian
/// kernel release that does not exist. Its output dir.
fn first_release() -> Option<&'static (PathBuf, Output)> {
    static FIRST: OnceLock<Option<(PathBuf, Output)>> = OnceLock::new();
    FIRST
        .get_or_init(|| {
            let lab = support::lab("release")?;
            let d = scratch("first");
            release_file(
                &d,
                "2026.12.1",
                &[
                    ("CVE-2026-1001", fix("new-function")),
                    ("CVE-2026-1002", fix("shadow-fork")),
                    ("CVE-2026-1003", fix("module-cold")),
                    ("CVE-2026-1005", release_fix("exar-wdt")),
                ],
                "",
                &format!(
                    "{}[[target]]\ndebian = \"6.1.0-999-amd64\"\n",
                    lab_target(lab)
                ),
            );
            let o = klp(
                &d,
                &["release", "build", "release.toml", "-o", "out", "-j", "2"],
            );
            Some((d.join("out"), o))
        })
        .as_ref()
}

#[test]
fn a_release_builds_every_target_and_its_module_works_in_qemu() {
    let Some(lab) = support::lab("a_release_builds_every_target_and_its_module_works_in_qemu")
    else {
        return;
    };
    let (out, o) = first_release().unwrap();
    // A kernel Debian does not have fails the release (exit 1), the others are still built.
    assert_eq!(o.status.code(), Some(1), "{}", describe(o));
    let idx = index(out);
    assert_eq!(idx["schema_version"], 1);
    let unknown = target(&idx, "6.1.0-999-amd64");
    assert_eq!(unknown["status"], "unavailable", "{unknown:#}");
    let why = unknown["reason"].as_str().unwrap();
    assert!(
        why.contains("bookworm-security") && why.contains("sid"),
        "{why}"
    );
    let t = target(&idx, "lab");
    assert_eq!(t["status"], "built", "{t:#}");
    assert_eq!(t["kernel_release"], lab.release.as_str());
    assert_eq!(
        t["fixes"],
        serde_json::json!(["CVE-2026-1001", "CVE-2026-1002", "CVE-2026-1003"])
    );
    let scan: Vec<&str> = t["scan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert_eq!(scan, ["applies", "applies", "applies", "not-affected"]);
    let module = out.join(t["module"].as_str().unwrap());
    assert_eq!(
        module.file_name().unwrap(),
        "livepatch-acme-2026_12_1.ko",
        "the module is named by the release's name and version"
    );
    assert_eq!(
        support::tree::sha256(&module),
        t["sha256"].as_str().unwrap()
    );
    assert!(out.join(&lab.release).join("report.json").is_file());
    // The manifest names the fixes by their release ids.
    let i = klp(
        out,
        &["inspect", module.to_str().unwrap(), "--report", "json"],
    );
    let m: serde_json::Value = serde_json::from_slice(&i.stdout).unwrap();
    let names: Vec<&str> = m["manifest"]["fixes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["CVE-2026-1001", "CVE-2026-1002", "CVE-2026-1003"]);

    let script = std::fs::read_to_string(root().join("testdata/e2e/lib.sh")).unwrap()
        + "\n"
        + &std::fs::read_to_string(root().join("testdata/e2e/release/three-fixes.sh"))
            .unwrap()
            .replace("@MODULE@", "livepatch-acme-2026_12_1");
    let binfmt = lab.modules.join("kernel/fs/binfmt_misc.ko");
    let boot = support::boot(lab, "release-lab", &[&module, &binfmt], &script).expect("boot");
    assert!(
        boot.passed,
        "the guest check failed ({}):\n{}",
        boot.log_file.display(),
        boot.log
    );
    assert!(
        boot.log.contains("E2E-STEP: release: three fixes"),
        "{}",
        boot.log
    );
}

#[test]
fn the_next_release_is_checked_against_the_first_and_compiles_only_what_changed() {
    let Some(lab) = support::lab(
        "the_next_release_is_checked_against_the_first_and_compiles_only_what_changed",
    ) else {
        return;
    };
    let (first, _) = first_release().unwrap();
    let d = scratch("second");
    // CVE-2026-1001 revised (another tag), CVE-2026-1004 new.
    let revised = d.join("new-function.patch");
    std::fs::write(
        &revised,
        std::fs::read_to_string(fix("new-function"))
            .unwrap()
            .replace("klp-build: livepatched\\n", "klp-build: livepatched (2)\\n"),
    )
    .unwrap();
    release_file(
        &d,
        "2026.12.2",
        &[
            ("CVE-2026-1001", revised),
            ("CVE-2026-1002", fix("shadow-fork")),
            ("CVE-2026-1003", fix("module-cold")),
            ("CVE-2026-1004", fix("pr-debug")),
            ("CVE-2026-1005", release_fix("exar-wdt")),
        ],
        &format!("previous = \"{}\"", first.display()),
        &lab_target(lab),
    );
    let o = klp(&d, &["release", "build", "release.toml", "-o", "out"]);
    assert!(o.status.success(), "{}", describe(&o));
    let idx = index(&d.join("out"));
    assert_eq!(idx["release"]["previous"], "2026.12.1");
    let change = |id: &str| {
        idx["fixes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(change("CVE-2026-1001")["change"], "revised");
    assert_eq!(
        change("CVE-2026-1001")["previous_sha256"][0]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert_eq!(change("CVE-2026-1002")["change"], "same");
    assert_eq!(change("CVE-2026-1004")["change"], "new");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("fix CVE-2026-1001: revised (sha256 "),
        "{text}"
    );
    let t = target(&idx, "lab");
    assert_eq!(
        t["previous"],
        format!("{}/livepatch-acme-2026_12_1.ko", lab.release).as_str()
    );
    // The build ran `check` against the previous module.
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("out").join(&lab.release).join("report.json")).unwrap(),
    )
    .unwrap();
    assert!(
        !report["check"].is_null(),
        "no --previous check in {report:#}"
    );
    // Only the new and the revised fix's files may be compiled (on a warm compiler cache, not
    // even those); the unchanged fixes' files all come from the cache.
    support::run::assert_compiled_only(
        &d.join("out").join(&lab.release).join("compiles.json"),
        &["fs/proc/softirqs.c", "fs/proc/version.c"],
        5,
        &lab.release,
    );
}

#[test]
fn a_release_that_drops_a_fix_is_refused_before_building_unless_allowed() {
    let Some(lab) =
        support::lab("a_release_that_drops_a_fix_is_refused_before_building_unless_allowed")
    else {
        return;
    };
    let (first, _) = first_release().unwrap();
    let d = scratch("drop");
    let fixes = [
        ("CVE-2026-1001", fix("new-function")),
        ("CVE-2026-1002", fix("shadow-fork")),
        ("CVE-2026-1005", release_fix("exar-wdt")),
    ];
    let previous = format!("previous = \"{}\"", first.display());
    release_file(&d, "2026.12.3", &fixes, &previous, &lab_target(lab));
    let o = klp(&d, &["release", "build", "release.toml", "-o", "out"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("drops fix(es) CVE-2026-1003")
            && err.contains("allow-drop = [\"CVE-2026-1003\"]"),
        "{err}"
    );
    assert!(
        !err.contains("building"),
        "it built before refusing:\n{err}"
    );
    assert!(!d.join("out").exists());

    release_file(
        &d,
        "2026.12.3",
        &fixes,
        &format!("{previous}\nallow-drop = [\"CVE-2026-1003\"]"),
        &lab_target(lab),
    );
    let o = klp(&d, &["release", "build", "release.toml", "-o", "out"]);
    assert!(o.status.success(), "{}", describe(&o));
    let idx = index(&d.join("out"));
    assert_eq!(idx["dropped"], serde_json::json!(["CVE-2026-1003"]));
    assert_eq!(
        target(&idx, "lab")["fixes"],
        serde_json::json!(["CVE-2026-1001", "CVE-2026-1002"])
    );
}

#[test]
fn two_builds_of_one_release_are_byte_identical() {
    let Some(_lab) = support::lab("two_builds_of_one_release_are_byte_identical") else {
        return;
    };
    let (first, _) = first_release().unwrap();
    let d = scratch("again");
    std::fs::copy(
        first.parent().unwrap().join("release.toml"),
        d.join("release.toml"),
    )
    .unwrap();
    copy_tree(&first.parent().unwrap().join("fixes"), &d.join("fixes"));
    let o = klp(&d, &["release", "build", "release.toml", "-o", "elsewhere"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    same_release(first, &d.join("elsewhere"));
}

#[test]
fn the_plans_jobs_built_apart_and_collected_equal_a_one_machine_build() {
    let test = "the_plans_jobs_built_apart_and_collected_equal_a_one_machine_build";
    let (Some(lab), Some(lab612)) = (support::lab(test), support::lab_series(test, "6.12")) else {
        return;
    };
    let d = scratch("jobs");
    release_file(
        &d,
        "2026.12.1",
        &[("CVE-2026-1001", fix("new-function"))],
        "",
        &format!(
            "{}{}",
            lab_target(lab),
            lab_target(lab612).replace("name = \"lab\"", "name = \"lab612\"")
        ),
    );
    let one = klp(&d, &["release", "build", "release.toml", "-o", "one"]);
    assert!(one.status.success(), "{}", describe(&one));
    let plan = klp(&d, &["release", "plan", "release.toml", "-o", "collected"]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    for job in plan["jobs"].as_array().unwrap() {
        let argv: Vec<&str> = job["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(argv[0], "klp-build");
        // Each job in its own process with its own cache, as on another machine.
        let own_cache = d.join(format!("cache-{}", job["target"].as_str().unwrap()));
        let o = klp_with_cache(&d, &own_cache, &argv[1..]);
        assert!(o.status.success(), "{}", describe(&o));
    }
    let collect: Vec<&str> = plan["collect"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let o = klp(&d, &collect[1..]);
    assert!(o.status.success(), "{}", describe(&o));
    same_release(&d.join("one"), &d.join("collected"));

    // A part changed after it was built is refused.
    let part = d.join("part-lab");
    let idx = index(&part);
    let ko = part.join(target(&idx, "lab")["module"].as_str().unwrap());
    let mut bytes = std::fs::read(&ko).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&ko, bytes).unwrap();
    let o = klp(&d, &collect[1..]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("sha256 differs"),
        "{}",
        describe(&o)
    );
    // So is a missing part.
    let o = klp(&d, &["release", "collect", "part-lab612", "-o", "partial"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no part has target(s) lab"),
        "{}",
        describe(&o)
    );
    assert!(
        !d.join("partial").exists(),
        "collect wrote a partial release"
    );
}

#[test]
fn fixes_already_in_the_kernel_or_in_code_it_does_not_build_give_no_module() {
    let Some(lab) =
        support::lab("fixes_already_in_the_kernel_or_in_code_it_does_not_build_give_no_module")
    else {
        return;
    };
    let d = scratch("nothing");
    release_file(
        &d,
        "1",
        &[("OLD-1", release_fix("cmdline-newline"))],
        "",
        &lab_target(lab),
    );
    let o = klp(&d, &["release", "build", "release.toml", "-o", "old"]);
    assert!(o.status.success(), "{}", describe(&o));
    let t = target(&index(&d.join("old")), "lab").clone();
    assert_eq!(t["status"], "already-fixed", "{t:#}");
    assert!(t["module"].is_null());

    release_file(
        &d,
        "1",
        &[("WDT-1", release_fix("exar-wdt"))],
        "",
        &lab_target(lab),
    );
    let o = klp(&d, &["release", "scan", "release.toml"]);
    assert!(o.status.success(), "{}", describe(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("not-affected: drivers/watchdog/exar_wdt.o is not built with this config (CONFIG_EXAR_WDT is not set)"),
        "{text}"
    );
    let o = klp(&d, &["release", "build", "release.toml", "-o", "wdt"]);
    assert!(o.status.success(), "{}", describe(&o));
    let t = target(&index(&d.join("wdt")), "lab").clone();
    assert_eq!(t["status"], "not-affected", "{t:#}");
    assert!(
        !d.join("wdt").join(&lab.release).join("build.log").exists(),
        "it ran a build"
    );
}

/// Same index.json and same module bytes in two release directories.
fn same_release(a: &Path, b: &Path) {
    let ia = std::fs::read(a.join("index.json")).unwrap();
    let ib = std::fs::read(b.join("index.json")).unwrap();
    assert!(
        ia == ib,
        "index.json differs:\n{}\n{}",
        String::from_utf8_lossy(&ia),
        String::from_utf8_lossy(&ib)
    );
    let idx = index(a);
    for t in idx["targets"].as_array().unwrap() {
        if let Some(m) = t["module"].as_str() {
            let (x, y) = (
                std::fs::read(a.join(m)).unwrap(),
                std::fs::read(b.join(m)).unwrap(),
            );
            assert!(
                x == y,
                "{m} differs between {} and {}",
                a.display(),
                b.display()
            );
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn ctrl_c_during_a_release_restores_the_tree_and_leaves_no_partial_output() {
    let Some(lab) =
        support::lab("ctrl_c_during_a_release_restores_the_tree_and_leaves_no_partial_output")
    else {
        return;
    };
    let d = scratch("interrupt");
    // A version of its own: its module, work dir and compiles are new, so the build is still
    // compiling when the signal comes.
    let version = format!("int.{}", std::process::id());
    release_file(
        &d,
        &version,
        &[("CVE-2026-1002", fix("shadow-fork"))],
        "",
        &lab_target(lab),
    );
    let files = [
        "kernel/fork.c",
        "fs/proc/array.c",
        "kernel/fork.o",
        "fs/proc/array.o",
    ];
    let before = support::tree::snapshot(&lab.src, &files);
    let mut child = Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .args([
            "release",
            "build",
            "release.toml",
            "-o",
            "out",
            "--compiler-launcher",
            "none",
        ])
        .current_dir(&d)
        .env("KLP_BUILD_CACHE", cache())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = d.join("out/.klp-build-partial/lab/build.log");
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("rebuild...")
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the release ended before its rebuild started"
        );
        assert!(start.elapsed().as_secs() < 600, "no rebuild in 10 minutes");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    assert!(
        !d.join("out").exists(),
        "the partial output is left: {}",
        d.join("out").display()
    );
    assert_eq!(
        support::tree::snapshot(&lab.src, &files),
        before,
        "the tree was not restored"
    );
    // The cache is consistent: the same release builds afterwards.
    let o = klp(&d, &["release", "build", "release.toml", "-o", "out"]);
    assert!(o.status.success(), "{}", describe(&o));
}

#[test]
fn a_targets_compiles_go_through_a_distccd_on_localhost() {
    let Some(lab) = support::lab("a_targets_compiles_go_through_a_distccd_on_localhost") else {
        return;
    };
    if Command::new("distccd").arg("--version").output().is_err() {
        support::ci_env::skip(
            "a_targets_compiles_go_through_a_distccd_on_localhost",
            "distccd is missing (apt-get install distcc)",
        );
        return;
    }
    let d = scratch("distcc");
    let port = 36320 + (std::process::id() % 1000) as u16;
    let server_log = d.join("distccd.log");
    // distccd drops root for its own user before it opens the log: the file must exist, writable.
    std::fs::write(&server_log, "").unwrap();
    std::fs::set_permissions(
        &server_log,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let mut server = Command::new("distccd")
        .args([
            "--daemon",
            "--no-detach",
            "--listen",
            "127.0.0.1",
            "--allow",
            "127.0.0.1",
            "--jobs",
            "2",
        ])
        .args([
            "--port",
            &port.to_string(),
            "--log-level",
            "info",
            "--log-file",
        ])
        .arg(&server_log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let version = format!("distcc.{}", std::process::id());
    release_file(
        &d,
        &version,
        &[("CVE-2026-1001", fix("new-function"))],
        "",
        &lab_target(lab),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .args([
            "release",
            "build",
            "release.toml",
            "-o",
            "out",
            "--compiler-launcher",
            "distcc",
        ])
        .current_dir(&d)
        .env("KLP_BUILD_CACHE", cache())
        .env("DISTCC_HOSTS", format!("127.0.0.1:{port}"))
        .env("DISTCC_FALLBACK", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(o.status.success(), "{}", describe(&o));
    let served = std::fs::read_to_string(&server_log).unwrap_or_default();
    let compiled: Vec<&str> = served
        .lines()
        .filter(|l| l.contains("COMPILE_OK") && l.contains("fs/proc/version.c"))
        .collect();
    assert!(
        compiled.len() >= 2,
        "distccd did not compile fs/proc/version.c (original and patched):\n{served}"
    );
}
