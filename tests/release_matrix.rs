//! One release for a kernel of every Debian release, from Debian's archive: the newest bookworm
//! 6.1, bookworm's newest 6.12 backport, trixie's newest 6.12 (gcc-14, built in a build root) and
//! sid's newest 7.x (gcc-16, Rust and UBSAN on), beside a kernel release Debian does not have.
//! One `klp-build release build` builds three fixes (a new function, a shadow variable, a fix in the binfmt_misc module;
//! the shadow-variable fix has a 7.x backport), plus one in a driver no Debian config builds and
//! one every kernel already has. `klp-build release verify` boots each module on its own Debian
//! kernel in QEMU, loads it after binfmt_misc, checks its behaviour, disables and unloads it,
//! without a kernel complaint. Then a second release that
//! revises a fix and adds one is checked against the first per kernel, compiling only those fixes'
//! files.
//!
//! It downloads about 1.5 GB per kernel the first time (the packages and the dbg package the
//! symbols come from), cached in `${KLP_LAB_CACHE:-~/.cache/klp-build-lab}/release-cache`. It is
//! skipped with the reason printed unless `KLP_TEST_NETWORK` or `CI` is set, and under `CI`
//! anything missing fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use klp_build::release::debian::{self, Suites};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ci() -> bool {
    support::ci_env::under_ci()
}

fn cache() -> Option<PathBuf> {
    if std::env::var_os("KLP_TEST_NETWORK").is_none() && !ci() {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIP release_matrix: it fetches four Debian kernels from the archive (GBs); set KLP_TEST_NETWORK=1 to run it\n",
        );
        return None;
    }
    let base = std::env::var_os("KLP_LAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/klp-build-lab")
        });
    Some(base.join("release-cache"))
}

/// The newest kernel release matching `pattern` in the archive today (never hard-coded: Debian's
/// versions move weekly).
fn newest(cache: &Path, pattern: &str) -> String {
    let re = regex::Regex::new(pattern).unwrap();
    let all = debian::available(cache, &Suites::default(), "amd64", &mut |m| {
        eprintln!("  {m}")
    })
    .expect("read the archive's index");
    all.iter()
        .find(|k| re.is_match(&k.kernel_release))
        .unwrap_or_else(|| panic!("the archive has no kernel matching {pattern}"))
        .kernel_release
        .clone()
}

fn klp(dir: &Path, cache: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .args(args)
        .current_dir(dir)
        .env("KLP_BUILD_CACHE", cache)
        .stdin(Stdio::null())
        .output()
        .expect("run klp-build")
}

fn copy_fix(dir: &Path, from: &Path) -> String {
    let name = from.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::copy(from, dir.join("fixes").join(&name)).unwrap();
    format!("fixes/{name}")
}

#[test]
fn one_release_for_every_debian_release_works_on_each_kernel_in_qemu() {
    let Some(cache) = cache() else { return };
    // The lab's setup installs what the guests need (QEMU, busybox-static).
    if support::lab("one_release_for_every_debian_release_works_on_each_kernel_in_qemu").is_none() {
        return;
    }
    let kernels = [
        newest(&cache, r"^6\.1\.0-\d+-amd64$"),
        newest(&cache, r"^6\.12\.\d+\+deb12-amd64$"),
        newest(&cache, r"^6\.12\.\d+\+deb13-amd64$"),
        newest(&cache, r"^\d+\.\d+\.\d+\+deb14-amd64$"),
    ];
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("klp-release-matrix");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("fixes")).unwrap();
    let p = |name: &str| {
        root()
            .join("testdata/patches/fixes")
            .join(format!("{name}.patch"))
    };
    let r = |name: &str| {
        root()
            .join("testdata/release/fixes")
            .join(format!("{name}.patch"))
    };
    let new_function = copy_fix(&dir, &p("new-function"));
    let shadow = copy_fix(&dir, &p("shadow-fork"));
    let shadow7 = copy_fix(&dir, &r("shadow-fork-7.x"));
    let module = copy_fix(&dir, &p("module-cold"));
    let wdt = copy_fix(&dir, &r("exar-wdt"));
    let newline = copy_fix(&dir, &r("cmdline-newline"));
    let pr_debug = copy_fix(&dir, &p("pr-debug"));
    let targets: String = kernels
        .iter()
        .chain(std::iter::once(&"6.1.0-999-amd64".to_string()))
        .map(|k| format!("[[target]]\ndebian = \"{k}\"\n"))
        .collect();
    let fixes = |first: &str| {
        format!(
            "[[fix]]\nid = \"CVE-2026-1001\"\npatches = [\"{first}\"]\n\
             [[fix]]\nid = \"CVE-2026-1002\"\npatches = [\"{shadow}\"]\n\
             [[fix.backport]]\nkernels = [\"7.*\"]\npatches = [\"{shadow7}\"]\n\
             [[fix]]\nid = \"CVE-2026-1003\"\npatches = [\"{module}\"]\n\
             [[fix]]\nid = \"CVE-2026-1005\"\npatches = [\"{wdt}\"]\n\
             [[fix]]\nid = \"CVE-2026-1006\"\npatches = [\"{newline}\"]\n"
        )
    };
    std::fs::write(
        dir.join("first.toml"),
        format!(
            "name = \"acme\"\nversion = \"2026.12.1\"\n{}{targets}",
            fixes(&new_function)
        ),
    )
    .unwrap();
    let o = klp(
        &dir,
        &cache,
        &["release", "build", "first.toml", "-o", "first"],
    );
    let described = support::run::describe(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the unavailable kernel must fail the release: {described}"
    );
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("first/index.json")).unwrap())
            .unwrap();
    let entry = |k: &str| -> serde_json::Value {
        index["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == k)
            .cloned()
            .unwrap_or_else(|| panic!("no target {k}: {index:#}"))
    };
    assert_eq!(entry("6.1.0-999-amd64")["status"], "unavailable");
    for k in &kernels {
        let t = entry(k);
        assert_eq!(t["status"], "built", "{k}: {t:#}\n{described}");
        assert_eq!(
            t["fixes"],
            serde_json::json!(["CVE-2026-1001", "CVE-2026-1002", "CVE-2026-1003"]),
            "{k}"
        );
        let words: Vec<&str> = t["scan"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            words,
            [
                "applies",
                "applies",
                "applies",
                "not-affected",
                "already-fixed"
            ],
            "{k}: {t:#}"
        );
        if k.starts_with("7.") {
            assert_eq!(
                t["scan"][1]["patches"],
                serde_json::json!([shadow7]),
                "{k} used the backport"
            );
        }
    }

    // Each module on its own kernel, by `release verify`: it loads binfmt_misc (the module the
    // release patches) before the livepatch, waits for the transition, runs the check, disables
    // and unloads, and fails on any kernel complaint. Two guests at once.
    let check = dir.join("three-fixes.sh");
    std::fs::copy(
        root().join("testdata/e2e/release/three-fixes-check.sh"),
        &check,
    )
    .unwrap();
    let o = klp(
        &dir,
        &cache,
        &[
            "release",
            "verify",
            "first",
            "--check",
            "three-fixes.sh",
            "--accel",
            "tcg",
            "-j",
            "2",
            "--report",
            "json",
        ],
    );
    let described = support::run::describe(&o);
    assert_eq!(o.status.code(), Some(0), "{described}");
    let verified: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(verified["verdict"], "pass", "{described}");
    let verdicts = verified["targets"].as_array().unwrap();
    assert_eq!(
        verdicts.len(),
        kernels.len(),
        "one verdict per built target: {described}"
    );
    for k in &kernels {
        let v = verdicts
            .iter()
            .find(|t| t["kernel_release"] == k.as_str())
            .unwrap_or_else(|| panic!("{k}: no verdict: {described}"));
        let r = &v["report"];
        support::schemas::assert_valid("verify", r, k);
        assert_eq!(r["verdict"], "pass", "{k}: {r:#}");
        assert_eq!(r["kernel_release"], k.as_str());
        assert_eq!(
            r["with_modules"],
            serde_json::json!(["binfmt_misc.ko"]),
            "{k}"
        );
        assert_eq!(r["check"]["exit"], 0, "{k}: {r:#}");
    }

    // The next release: CVE-2026-1001 revised, CVE-2026-1004 new.
    let revised = dir.join("fixes/new-function-2.patch");
    std::fs::write(
        &revised,
        std::fs::read_to_string(p("new-function"))
            .unwrap()
            .replace("klp-build: livepatched\\n", "klp-build: livepatched (2)\\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("second.toml"),
        format!(
            "name = \"acme\"\nversion = \"2026.12.2\"\nprevious = \"first\"\n{}\
             [[fix]]\nid = \"CVE-2026-1004\"\npatches = [\"{pr_debug}\"]\n{targets}",
            fixes("fixes/new-function-2.patch")
        ),
    )
    .unwrap();
    let o = klp(
        &dir,
        &cache,
        &["release", "build", "second.toml", "-o", "second"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", support::run::describe(&o));
    let second: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("second/index.json")).unwrap())
            .unwrap();
    for k in &kernels {
        let t = second["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == k.as_str())
            .unwrap();
        assert_eq!(t["status"], "built", "{k}: {t:#}");
        assert_eq!(
            t["previous"],
            format!("{k}/livepatch-acme-2026_12_1.ko").as_str(),
            "{k}"
        );
        // Only the new and the revised fix's files may be compiled (on a warm compiler cache,
        // not even those); the unchanged fixes' files all come from the cache.
        support::run::assert_compiled_only(
            &dir.join("second").join(k).join("compiles.json"),
            &["fs/proc/softirqs.c", "fs/proc/version.c"],
            6,
            k,
        );
    }
}
