//! The target stage against the lab's Debian kernels: defaults (--config from --kbuild, --kbuild
//! from the config's release), the release from the headers, a config that does not match the
//! tree, a directory that is not a kernel tree, preparing a freshly unpacked 6.1 tree, and
//! preparing Debian's 6.12 tree with the distro's toolchain view.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use klp_build::kernel::config::KConfig;
use klp_build::kernel::{self, KernelOptions};

fn opts(source: &Path, kbuild: Option<&Path>, config: Option<&Path>) -> KernelOptions {
    KernelOptions {
        source: source.into(),
        kbuild: kbuild.map(Into::into),
        config: config.map(Into::into),
        jobs: 2,
    }
}

fn canon(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap()
}

#[test]
fn lab_tree_with_headers_resolves() {
    let Some(lab) = support::lab("lab_tree_with_headers_resolves") else {
        return;
    };
    let t = resolve_prepared(&opts(&lab.src, Some(&lab.kbuild), None))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(t.source, canon(&lab.src));
    assert_eq!(t.kbuild, canon(&lab.kbuild));
    assert_eq!(
        t.config,
        canon(&lab.kbuild.join(".config")),
        "--config defaults to the .config of --kbuild"
    );
    // Debian's headers say 6.1.192 in include/config/kernel.release; vermagic uses UTS_RELEASE.
    assert_eq!(t.release, lab.release);
    assert_eq!(t.jobs, 2);
    // Debian's /boot config (no BUILD_SALT, its own signing key path) matches the tree as well.
    let t = resolve_prepared(&opts(&lab.src, Some(&lab.kbuild), Some(&lab.config)))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(t.config, canon(&lab.config));
}

#[test]
fn kbuild_defaults_to_lib_modules_of_the_configs_release() {
    let Some(lab) = support::lab("kbuild_defaults_to_lib_modules_of_the_configs_release") else {
        return;
    };
    let build = Path::new("/lib/modules").join(&lab.release).join("build");
    if !build.exists() {
        // The headers package makes this link; a lab without it cannot test the default.
        support::ci_env::skip(
            "kbuild_defaults_to_lib_modules_of_the_configs_release",
            &format!(
                "{} does not exist (lab/setup.sh installs the headers)",
                build.display()
            ),
        );
        return;
    }
    // lab.config is .../boot/config-<release>: its name gives the release.
    let t = resolve_prepared(&opts(&lab.src, None, Some(&lab.config)))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(t.kbuild, canon(&build));
    assert_eq!(t.release, lab.release);
}

#[test]
fn a_config_that_differs_names_the_option_and_the_fix() {
    let Some(lab) = support::lab("a_config_that_differs_names_the_option_and_the_fix") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&lab.config).unwrap();
    assert!(text.contains("\nCONFIG_XFS_FS=m\n"));
    let config = dir.path().join("config-other");
    std::fs::write(
        &config,
        text.replace("\nCONFIG_XFS_FS=m\n", "\nCONFIG_XFS_FS=y\n"),
    )
    .unwrap();
    let err = format!(
        "{:#}",
        resolve_prepared(&opts(&lab.src, Some(&lab.kbuild), Some(&config))).unwrap_err()
    );
    for want in [
        "does not match the target's config",
        "CONFIG_XFS_FS is y in the target's config but m in the tree",
        "reconfigure the tree",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn not_a_kernel_tree() {
    let dir = tempfile::tempdir().unwrap();
    let err = format!(
        "{:#}",
        resolve_prepared(&opts(dir.path(), None, None)).unwrap_err()
    );
    assert!(err.contains("not a kernel source tree"), "{err}");
    let err = format!(
        "{:#}",
        resolve_prepared(&opts(&dir.path().join("nope"), None, None)).unwrap_err()
    );
    assert!(
        err.contains("--source") && err.contains("No such file or directory"),
        "{err}"
    );
}

/// A freshly unpacked Debian source gets configured from the distro config and prepared, once:
/// about 25 s (unpack 8 s, olddefconfig 3 s, modules_prepare 8.5 s with -j2).
#[test]
fn unprepared_tree_is_prepared_from_the_config() {
    let Some(lab) = support::lab("unprepared_tree_is_prepared_from_the_config") else {
        return;
    };
    let tarball = lab.dir.join("srcpkg/usr/src/linux-source-6.1.tar.xz");
    assert!(
        tarball.is_file(),
        "{} is part of the lab",
        tarball.display()
    );
    let dir = tempfile::tempdir_in(&lab.dir).unwrap();
    let st = Command::new("tar")
        .arg("-xJf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success(), "unpacking {}", tarball.display());
    let src = dir.path().join("linux-source-6.1");
    assert!(!src.join(".config").exists());

    let t = resolve_prepared(&opts(&src, Some(&lab.kbuild), Some(&lab.config)))
        .unwrap_or_else(|e| panic!("{e:#}"));

    for f in [
        ".config",
        "include/generated/autoconf.h",
        "scripts/basic/fixdep",
        "include/config/auto.conf",
    ] {
        assert!(src.join(f).exists(), "{f} after preparing");
    }
    let config = std::fs::read_to_string(src.join(".config")).unwrap();
    assert!(config.contains("\nCONFIG_MODULE_SIG_KEY=\"certs/signing_key.pem\"\n"));
    assert!(config.contains("\nCONFIG_SYSTEM_TRUSTED_KEYS=\"\"\n"));
    assert_eq!(t.source, canon(&src));
    // Once: a second resolve finds it prepared and leaves .config alone.
    let mtime = std::fs::metadata(src.join(".config"))
        .unwrap()
        .modified()
        .unwrap();
    resolve_prepared(&opts(&src, Some(&lab.kbuild), Some(&lab.config))).unwrap();
    assert_eq!(
        std::fs::metadata(src.join(".config"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
}

/// Resolves the options and prepares the tree, as the pipeline does before its first build.
fn resolve_prepared(o: &KernelOptions) -> anyhow::Result<kernel::Kernel> {
    let k = kernel::resolve(o)?;
    k.prepare(&mut klp_build::progress::Quiet)?;
    Ok(k)
}

/// Debian 12's second kernel, 6.12, prepared on a machine with `rustc` on PATH (CI's has it, as
/// has every machine that built klp-build from source): kconfig must see the distro's toolchain
/// (`CC=x86_64-linux-gnu-gcc-12`, no Rust), so the prepared `.config` is the distro's option for
/// option. The tree's only additions are the four options Debian strips from its
/// `/boot/config-*`, among them the signing key path preparing points at `certs/`. A plain `make
/// olddefconfig` here wrote `CONFIG_RUSTC_LLVM_VERSION=<the local LLVM>` and klp-build refused the
/// tree.
#[test]
fn debian_6_12_tree_prepared_with_rustc_on_path_has_the_distros_config() {
    let test = "debian_6_12_tree_prepared_with_rustc_on_path_has_the_distros_config";
    let Some(lab) = support::lab_series(test, "6.12") else {
        return;
    };
    if kernel::compiler::find_program("rustc").is_none() {
        support::ci_env::skip(test, "no rustc on PATH, the case this test is about");
        return;
    }
    let tarball = lab.dir.join("srcpkg/usr/src/linux-source-6.12.tar.xz");
    assert!(
        tarball.is_file(),
        "{} is part of the lab",
        tarball.display()
    );
    let dir = tempfile::tempdir_in(&lab.dir).unwrap();
    let st = Command::new("tar")
        .arg("-xJf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success(), "unpacking {}", tarball.display());
    let src = dir.path().join("linux-source-6.12");

    let t = resolve_prepared(&opts(&src, Some(&lab.kbuild), Some(&lab.config)))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(t.toolchain.cc, "x86_64-linux-gnu-gcc-12");
    assert_eq!(
        t.toolchain.get("RUSTC"),
        Some(kernel::compiler::NO_RUSTC),
        "the distro built 6.12 without Rust"
    );

    let distro = KConfig::read(&lab.config).unwrap();
    let tree = KConfig::read(&src.join(".config")).unwrap();
    for (name, value) in &distro.options {
        assert_eq!(
            tree.options.get(name),
            Some(value),
            "{name} of {} differs in the prepared tree",
            lab.config.display()
        );
    }
    let added: Vec<&str> = tree
        .options
        .keys()
        .filter(|k| !distro.options.contains_key(*k))
        .map(String::as_str)
        .collect();
    assert_eq!(
        added,
        [
            "CONFIG_BUILD_SALT",
            "CONFIG_MODULE_SIG_ALL",
            "CONFIG_MODULE_SIG_KEY",
            "CONFIG_SYSTEM_TRUSTED_KEYS"
        ],
        "options of the prepared tree that Debian's /boot/config leaves out"
    );
    assert_eq!(
        tree.get("CONFIG_MODULE_SIG_KEY"),
        Some("\"certs/signing_key.pem\"")
    );
    assert_eq!(tree.get("CONFIG_RUSTC_LLVM_VERSION"), Some("0"));
}
