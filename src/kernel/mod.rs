//! The target kernel: options -> [`Kernel`] (source dir, kbuild dir, .config, kernel release,
//! jobs, toolchain), and what it can do (its livepatch API, symbols, exports, config, compiler).
//! Invariant: every path in a `Kernel` exists and its compiler is the one that built the target;
//! the source tree is configured and prepared for single-object builds, with the target's
//! toolchain view, once [`Kernel::prepare`] returned.

pub mod compiler;
pub mod config;
pub mod livepatch_api;
pub mod lock;
mod prepare;
pub mod symbols;
pub mod symvers;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use compiler::Toolchain;
use config::{Impact, KConfig};

use crate::progress::Progress;

/// What the user asked for, before defaults are applied.
#[derive(Debug, Clone)]
pub struct KernelOptions {
    /// The kernel source tree to rebuild single objects in (`--source`, default `.`).
    pub source: PathBuf,
    /// The tree to link the module against (`--kbuild`).
    pub kbuild: Option<PathBuf>,
    /// The target kernel's config (`--config`).
    pub config: Option<PathBuf>,
    /// Parallel make jobs; 0 means one per CPU.
    pub jobs: usize,
}

/// A module's name as the kernel knows it: kbuild's `KBUILD_MODNAME` turns `-` into `_`
/// (`livepatch-acme.ko` is module `livepatch_acme` in sysfs and in `klp_object.name`), and
/// modprobe treats the two as one; every comparison of module names goes through this.
pub fn normalize_modname(name: &str) -> String {
    name.replace('-', "_")
}

/// The resolved target: all paths absolute and existing, the source tree prepared.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The source tree, configured and prepared (`make modules_prepare` done).
    pub source: PathBuf,
    /// The kbuild dir modules are linked against (has `Makefile` and `Module.symvers`).
    pub kbuild: PathBuf,
    /// The target kernel's config; the source tree's `.config` agrees with it.
    pub config: PathBuf,
    /// The kernel release of `kbuild` (`UTS_RELEASE`, e.g. `6.1.0-56-amd64`), what vermagic says.
    pub release: String,
    /// Parallel make jobs (at least 1).
    pub jobs: usize,
    /// The target's toolchain view: its make variables go on every make klp-build runs on this
    /// target (preparing, single-object rebuilds, the module link).
    pub toolchain: Toolchain,
}

/// Resolves the options into a [`Kernel`], without compiling anything. Defaults: `--kbuild` is
/// `--source` when that is a built tree (has `Module.symvers` and `vmlinux`), else
/// `/lib/modules/<release>/build`; `--config` is the `.config` of `--kbuild`. The toolchain is the
/// target's view ([`compiler::toolchain`]: the compiler `CONFIG_CC_VERSION_TEXT` names, Rust hidden
/// when the target was built without it, or what a prepared tree was configured with), and its
/// compiler must be the one that built the target ([`compiler::check`]).
pub fn resolve(opts: &KernelOptions) -> anyhow::Result<Kernel> {
    let source = absolute_dir(&opts.source, "--source")?;
    if !source.join("Makefile").is_file() || !source.join("scripts/Makefile.build").is_file() {
        bail!(
            "--source {}: not a kernel source tree (no Makefile and scripts/Makefile.build); pass the tree \
             the patch applies to, e.g. the unpacked linux-source package of the target kernel",
            source.display()
        );
    }
    let kbuild = match &opts.kbuild {
        Some(k) => absolute_dir(k, "--kbuild")?,
        None if is_built(&source) => source.clone(),
        None => default_kbuild(&source, opts.config.as_deref())?,
    };
    for f in ["Makefile", "Module.symvers"] {
        if !kbuild.join(f).is_file() {
            bail!(
                "--kbuild {}: no {f}; pass the target kernel's build dir (a built tree, or its installed headers, \
                 e.g. /usr/src/linux-headers-<release>)",
                kbuild.display()
            );
        }
    }
    let config = match &opts.config {
        Some(c) => c.clone(),
        None => kbuild.join(".config"),
    };
    let config = std::fs::canonicalize(&config).with_context(|| {
        format!("the target's config {} does not exist; pass --config FILE (e.g. /boot/config-<release>)", config.display())
    })?;
    let release = uts_release(&kbuild)?;
    let jobs = match opts.jobs {
        0 => default_jobs(),
        n => n,
    };
    let target_config = KConfig::read(&config)?;
    let toolchain = compiler::toolchain(&target_config, &compiler::recorded_vars(&source))?;
    compiler::check(&target_config, &toolchain.cc)?;
    Ok(Kernel {
        source,
        kbuild,
        config,
        release,
        jobs,
        toolchain,
    })
}

impl Kernel {
    /// Whether [`Kernel::prepare`] would configure and prepare the tree first (it lacks what
    /// `make modules_prepare` writes).
    pub fn needs_prepare(&self) -> bool {
        prepare::missing(&self.source).is_some()
    }

    /// Prepares the source tree for single-object builds, once (`make olddefconfig
    /// modules_prepare` from the config with the target's toolchain variables, said through `progress`: it
    /// takes a while), and checks that a prepared tree's `.config` agrees with the target's config
    /// in every option the config sets that can change compiled code (the error names what
    /// differs, and the fix; toolchain-detected differences are a note). Slow the first
    /// time, so the plan checks every option before it.
    pub fn prepare(&self, progress: &mut dyn Progress) -> anyhow::Result<()> {
        {
            let _lock = lock::lock(&self.source, progress)?;
            if prepare::missing(&self.source).is_some() {
                prepare::prepare(
                    &self.source,
                    &self.config,
                    self.jobs,
                    &self.toolchain,
                    progress,
                )?;
            }
        }
        check_config(
            &self.source,
            &self.config,
            &KConfig::read(&self.config)?,
            progress,
        )
    }
}

/// Parallel make jobs when `-j` is not given: one per CPU.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A built tree: `make` ran to the end, so it has the image and the exports.
pub fn is_built(tree: &Path) -> bool {
    tree.join("vmlinux").is_file() && tree.join("Module.symvers").is_file()
}

fn absolute_dir(path: &Path, option: &str) -> anyhow::Result<PathBuf> {
    let abs = std::fs::canonicalize(path).map_err(|e| {
        anyhow::anyhow!(
            "{option} {}: {}",
            path.display(),
            crate::input::io_reason(&e)
        )
    })?;
    if !abs.is_dir() {
        bail!("{option} {}: not a directory", path.display());
    }
    Ok(abs)
}

/// `UTS_RELEASE` of a kbuild dir: the release its modules' vermagic names. Debian's headers have
/// `include/config/kernel.release` = `6.1.192` but `UTS_RELEASE` = `6.1.0-56-amd64`; the module
/// loader compares the latter.
pub fn uts_release(kbuild: &Path) -> anyhow::Result<String> {
    let path = kbuild.join("include/generated/utsrelease.h");
    let text = crate::input::read_text(&path, crate::input::Kind::Tree, "").with_context(|| {
        format!(
            "reading {}: --kbuild {} is not a prepared kbuild dir",
            path.display(),
            kbuild.display()
        )
    })?;
    text.lines()
        .find_map(|l| l.strip_prefix("#define UTS_RELEASE "))
        .map(|v| v.trim().trim_matches('"').to_string())
        .with_context(|| format!("{}: no UTS_RELEASE", path.display()))
}

/// `/lib/modules/<release>/build` for the first release that has one, among: the name of
/// `--config` (`/boot/config-<release>`), the source tree's own release, the running kernel's.
fn default_kbuild(source: &Path, config: Option<&Path>) -> anyhow::Result<PathBuf> {
    let mut releases = Vec::new();
    if let Some(name) = config.and_then(|c| c.file_name()).and_then(|n| n.to_str()) {
        if let Some(r) = name.strip_prefix("config-") {
            releases.push(r.to_string());
        }
    }
    if let Ok(r) = uts_release(source) {
        releases.push(r);
    }
    if let Ok(r) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        releases.push(r.trim().to_string());
    }
    for r in &releases {
        let build = Path::new("/lib/modules").join(r).join("build");
        if build.join("Makefile").is_file() {
            return std::fs::canonicalize(&build)
                .with_context(|| format!("resolving {}", build.display()));
        }
    }
    let available: Vec<String> = std::fs::read_dir("/lib/modules")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().join("build/Makefile").is_file())
                .map(|e| e.path().join("build").display().to_string())
                .collect()
        })
        .unwrap_or_default();
    bail!(
        "no kbuild dir: --source {} is not a built tree and /lib/modules/<release>/build does not exist for \
         release {}; pass --kbuild DIR (the target kernel's headers{})",
        source.display(),
        releases.join(", "),
        if available.is_empty() { String::new() } else { format!(", installed: {}", available.join(", ")) }
    )
}

/// The source tree's `.config` must agree with the target's config: objects built from another
/// configuration have other struct layouts and other code, and would not match the running kernel.
/// Options kconfig only detected from another toolchain (a local rustc for a target built without
/// Rust) do not change those objects: they are noted through `progress`, not refused.
fn check_config(
    source: &Path,
    config_path: &Path,
    target: &KConfig,
    progress: &mut dyn Progress,
) -> anyhow::Result<()> {
    let tree_config = source.join(".config");
    if tree_config == config_path {
        return Ok(());
    }
    let diffs = config::differences(target, &KConfig::read(&tree_config)?);
    let (code, toolchain): (Vec<_>, Vec<_>) =
        diffs.iter().partition(|d| d.impact(target) == Impact::Code);
    if !code.is_empty() {
        const SHOWN: usize = 10;
        let mut list: Vec<String> = code.iter().take(SHOWN).map(|d| d.to_string()).collect();
        if code.len() > SHOWN {
            list.push(format!("... and {} more", code.len() - SHOWN));
        }
        let noise = if toolchain.is_empty() {
            String::new()
        } else {
            format!(
                "\n  ({} more differ only in toolchain-detected values that do not change rebuilt objects: {})",
                toolchain.len(),
                toolchain.iter().map(|d| d.option.as_str()).collect::<Vec<_>>().join(", ")
            )
        };
        bail!(
            "{} does not match the target's config {}: {} option{} that change compiled code differ:\n  {}{noise}\n  \
             objects built in this tree would not match the target kernel; reconfigure the tree (remove {} and \
             klp-build prepares it from the config), or pass the --config the tree was configured with",
            tree_config.display(),
            config_path.display(),
            code.len(),
            if code.len() == 1 { "" } else { "s" },
            list.join("\n  "),
            tree_config.display(),
        );
    }
    for d in toolchain {
        if let Impact::Toolchain(why) = d.impact(target) {
            progress.note(&format!("note: {d} (harmless for rebuilt objects: {why})"));
        }
    }
    Ok(())
}
