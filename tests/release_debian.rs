//! Debian kernel targets resolved from the real archive: the newest bookworm 6.1, bookworm's 6.12
//! backport, the newest trixie 6.12 (with a gcc-14 build root) and sid's 7.x (gcc-16 root). They
//! download hundreds of MB: skipped (with the reason printed) unless `KLP_TEST_NETWORK` or `CI` is
//! set; under CI anything missing fails. The cache is
//! `${KLP_LAB_CACHE:-$HOME/.cache/klp-build-lab}/release-cache`, kept across runs.
#[path = "ci_env/mod.rs"]
mod ci_env;

use klp_build::release::debian::{self, DebianError, DebianKernel, Suites};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn cache() -> Option<PathBuf> {
    let ci = ci_env::under_ci();
    if std::env::var_os("KLP_TEST_NETWORK").is_none() && !ci {
        eprintln!("skipped: hits Debian's archive and downloads hundreds of MB; set KLP_TEST_NETWORK=1 to run");
        return None;
    }
    for tool in ["apt-get", "dpkg-deb", "tar", "make"] {
        let ok = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            let msg = format!("{tool} is missing");
            assert!(!ci, "{msg}");
            eprintln!("skipped: {msg}");
            return None;
        }
    }
    let base = std::env::var_os("KLP_LAB_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/klp-build-lab")))
        .expect("HOME or KLP_LAB_CACHE");
    let dir = base.join("release-cache");
    fs::create_dir_all(&dir).expect("create the test cache");
    Some(dir)
}

fn log(line: &str) {
    eprintln!("  {line}");
}

/// The kernel release the meta package `meta` (linux-image-amd64, linux-image-6.12-amd64) points
/// at in `suite` today, read from the private index: never hard-coded, versions move weekly.
fn newest(cache: &Path, meta: &str, suites: &[&str]) -> String {
    let all = debian::package_versions(cache, meta, &Suites::default(), &mut log)
        .expect("read the private index");
    let (suite, version, deps) = all
        .iter()
        .find(|(s, _, _)| suites.contains(&s.as_str()))
        .unwrap_or_else(|| panic!("no {meta} in {suites:?}: {all:?}"));
    let image = deps
        .iter()
        .find(|d| d.starts_with("linux-image-") && d != &meta)
        .unwrap_or_else(|| {
            panic!("{meta}={version} in {suite} depends on no linux-image-*: {deps:?}")
        });
    let release = image
        .trim_start_matches("linux-image-")
        .trim_end_matches("-unsigned")
        .to_string();
    eprintln!("{meta} in {suite}: {version} -> {release}");
    release
}

fn resolve_timed(cache: &Path, release: &str) -> DebianKernel {
    let t = Instant::now();
    let k = debian::resolve(cache, release, &Suites::default(), &mut log)
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "resolved {release} ({} in {}): {:.1} s, {:.1} MB downloaded",
        k.version,
        k.suite,
        t.elapsed().as_secs_f64(),
        k.downloaded_bytes as f64 / 1e6
    );
    k
}

/// Every path exists and every package is at the kernel's version.
fn check_kernel(k: &DebianKernel, series: &str) {
    for (what, p) in [
        ("source", &k.source),
        ("kbuild", &k.kbuild),
        ("config", &k.config),
        ("modules", &k.modules),
        ("vmlinuz", &k.vmlinuz),
    ] {
        assert!(
            p.exists(),
            "{}: {what} {} is missing",
            k.kernel_release,
            p.display()
        );
    }
    let makefile = fs::read_to_string(k.source.join("Makefile")).expect("source Makefile");
    let (major, minor) = series.split_once('.').expect("series");
    assert!(
        makefile.contains(&format!("VERSION = {major}\n"))
            && makefile.contains(&format!("PATCHLEVEL = {minor}\n")),
        "{} is not {series}",
        k.source.display()
    );
    let upstream = k.version.split('-').next().unwrap_or_default();
    assert!(
        makefile.contains(&format!(
            "SUBLEVEL = {}\n",
            upstream.rsplit('.').next().unwrap_or_default()
        )),
        "source sublevel differs from {}",
        k.version
    );
    assert!(k.kbuild.join("Module.symvers").is_file());
    assert!(
        k.kbuild.join("scripts/Makefile.build").is_file(),
        "{}/scripts does not reach the private kbuild",
        k.kbuild.display()
    );
    assert!(k.modules.join("kernel").is_dir());
    if let Some(map) = &k.symbols {
        assert!(fs::metadata(map).expect("System.map").len() > 1_000_000);
    }
    let config = fs::read_to_string(&k.config).expect("config");
    assert!(config.contains(&format!("CONFIG_CC_VERSION_TEXT=\"{}\"", k.compiler)));
    assert!(!k.packages.is_empty());
    for p in &k.packages {
        assert!(
            p.ends_with(&format!("={}", k.version)),
            "{p} is not at {}",
            k.version
        );
    }
    for kind in ["linux-headers-", "linux-kbuild-", "linux-source-"] {
        assert!(
            k.packages.iter().any(|p| p.starts_with(kind)),
            "no {kind}* in {:?}",
            k.packages
        );
    }
}

fn hello_module(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    fs::write(
        dir.join("hello.c"),
        "#include <linux/module.h>\n#include <linux/init.h>\nstatic int __init hello_init(void) { pr_info(\"hello\\n\"); return 0; }\nstatic void __exit hello_exit(void) {}\nmodule_init(hello_init);\nmodule_exit(hello_exit);\nMODULE_LICENSE(\"GPL\");\n",
    )
    .unwrap();
    fs::write(dir.join("Makefile"), "obj-m += hello.o\n").unwrap();
}

fn vermagic(ko: &Path) -> String {
    let data = fs::read(ko).expect("hello.ko");
    let at = data
        .windows(9)
        .position(|w| w == b"vermagic=")
        .expect("vermagic in hello.ko");
    let rest = &data[at + 9..];
    let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

fn system_state() -> (String, Vec<String>) {
    let status = fs::read("/var/lib/dpkg/status").unwrap_or_default();
    let hash: String = Sha256::digest(&status)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut lists: Vec<String> = fs::read_dir("/var/lib/apt/lists")
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let m = e.metadata().ok();
                    format!(
                        "{} {:?} {:?}",
                        e.file_name().to_string_lossy(),
                        m.as_ref().map(|m| m.len()),
                        m.and_then(|m| m.modified().ok())
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    lists.sort();
    (hash, lists)
}

#[test]
fn bookworm_61_newest_resolves_links_a_module_and_leaves_the_system_alone() {
    let Some(cache) = cache() else { return };
    let before = system_state();
    let release = newest(
        &cache,
        "linux-image-amd64",
        &["bookworm-security", "bookworm"],
    );
    assert!(release.starts_with("6.1.0-"), "{release}");
    let k = resolve_timed(&cache, &release);
    assert_eq!(k.kernel_release, release);
    assert!(k.suite.starts_with("bookworm"), "{}", k.suite);
    check_kernel(&k, "6.1");
    assert!(k.compiler.starts_with("gcc-12 "), "{}", k.compiler);
    assert!(k.build_root.is_none(), "the host's gcc-12 is the kernel's");
    assert!(k.vmlinuz.ends_with(format!("boot/vmlinuz-{release}")));
    eprintln!("System.map: {:?} (else {})", k.symbols, k.symbols_package);

    // Warm: nothing downloaded, same answer.
    let again = resolve_timed(&cache, &release);
    assert_eq!(again.downloaded_bytes, 0);
    assert_eq!(again.kbuild, k.kbuild);

    let t = tempfile::tempdir().unwrap();
    let m = t.path().join("hello");
    hello_module(&m);
    let started = Instant::now();
    let out = Command::new("make")
        .arg("-C")
        .arg(&k.kbuild)
        .arg(format!("M={}", m.display()))
        .arg("modules")
        .output()
        .expect("run make");
    assert!(
        out.status.success(),
        "make against {} failed:\n{}{}",
        k.kbuild.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "hello.ko against the private headers: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let vm = vermagic(&m.join("hello.ko"));
    assert!(vm.starts_with(&format!("{release} ")), "vermagic {vm}");

    assert_eq!(
        system_state(),
        before,
        "the system's dpkg status or apt lists changed"
    );
}

#[test]
fn bookworm_612_backport_resolves_with_the_host_compiler() {
    let Some(cache) = cache() else { return };
    let release = newest(
        &cache,
        "linux-image-6.12-amd64",
        &["bookworm-security", "bookworm"],
    );
    assert!(release.contains("+deb12"), "{release}");
    let k = resolve_timed(&cache, &release);
    check_kernel(&k, "6.12");
    assert!(
        k.compiler.starts_with("x86_64-linux-gnu-gcc-12 "),
        "{}",
        k.compiler
    );
    assert!(k.build_root.is_none());
}

#[test]
fn missing_release_is_unavailable_naming_the_suites() {
    let Some(cache) = cache() else { return };
    match debian::resolve(&cache, "6.1.0-999-amd64", &Suites::default(), &mut log) {
        Err(e @ DebianError::Unavailable { .. }) => {
            let DebianError::Unavailable {
                kernel_release,
                searched,
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(kernel_release, "6.1.0-999-amd64");
            assert_eq!(searched, &Suites::default().0);
            let msg = e.to_string();
            assert!(
                msg.contains("bookworm-security") && msg.contains("uname -r"),
                "{msg}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// Runs `make -C kbuild M=dir modules` inside the kernel's build root.
fn module_in_root(k: &DebianKernel, dir: &Path) -> String {
    let root = k.build_root.as_ref().expect("build root");
    let headers = k
        .kbuild
        .ancestors()
        .nth(3)
        .expect("private headers root")
        .to_path_buf();
    let out = root
        .command(&[headers, dir.to_path_buf()], Path::new("make"))
        .arg("-C")
        .arg(&k.kbuild)
        .arg(format!("M={}", dir.display()))
        .arg("modules")
        .output()
        .expect("run bwrap");
    assert!(
        out.status.success(),
        "make in {} failed:\n{}{}",
        root.dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    vermagic(&dir.join("hello.ko"))
}

fn check_root(k: &DebianKernel, gcc: &str) {
    let root = k.build_root.as_ref().unwrap_or_else(|| {
        panic!(
            "{} needs a build root for `{}`",
            k.kernel_release, k.compiler
        )
    });
    let out = root
        .command(&[], Path::new(&root.compiler))
        .arg("--version")
        .output()
        .expect("run bwrap");
    let first = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(first, k.compiler, "the root's compiler is not the kernel's");
    assert!(root.compiler.ends_with(gcc), "{}", root.compiler);

    // A C file compiled by the root's compiler, in a dir bound from the host.
    let t = tempfile::tempdir_in("/tmp").unwrap();
    fs::write(
        t.path().join("a.c"),
        "int main(void) { return __GNUC__; }\n",
    )
    .unwrap();
    let out = root
        .command(&[t.path().to_path_buf()], Path::new(&root.compiler))
        .arg("-O2")
        .arg("-o")
        .arg(t.path().join("a"))
        .arg(t.path().join("a.c"))
        .output()
        .expect("run bwrap");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = root
        .command(&[t.path().to_path_buf()], &t.path().join("a"))
        .status()
        .expect("run a");
    let major: i32 = gcc.trim_start_matches("gcc-").parse().unwrap();
    assert_eq!(status.code(), Some(major));

    let m = t.path().join("hello");
    hello_module(&m);
    let vm = module_in_root(k, &m);
    assert!(
        vm.starts_with(&format!("{} ", k.kernel_release)),
        "vermagic {vm}"
    );
}

#[test]
fn trixie_612_newest_resolves_with_a_gcc14_build_root() {
    let Some(cache) = cache() else { return };
    let release = newest(&cache, "linux-image-amd64", &["trixie-security", "trixie"]);
    assert!(release.contains("+deb13"), "{release}");
    let k = resolve_timed(&cache, &release);
    check_kernel(&k, "6.12");
    assert!(
        k.modules.to_string_lossy().contains("usr/lib/modules"),
        "{}",
        k.modules.display()
    );
    check_root(&k, "gcc-14");
}

#[test]
fn sid_newest_resolves_the_split_image_with_a_gcc16_build_root() {
    let Some(cache) = cache() else { return };
    // Sid's package names change with every series (7.2 -> 7.3), so the release is read from
    // its metapackage (linux-image-amd64) each time rather than named.
    let release = newest(&cache, "linux-image-amd64", &["sid"]);
    let k = resolve_timed(&cache, &release);
    let series: String = k.version.split('.').take(2).collect::<Vec<_>>().join(".");
    check_kernel(&k, &series);
    assert!(
        k.vmlinuz.ends_with("vmlinuz.unsigned"),
        "{}",
        k.vmlinuz.display()
    );
    assert!(
        k.packages
            .iter()
            .any(|p| p.starts_with("linux-binary-unsigned-")),
        "{:?}",
        k.packages
    );
    let gcc = k
        .compiler
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_start_matches("x86_64-linux-gnu-")
        .to_string();
    check_root(&k, &gcc);
}
