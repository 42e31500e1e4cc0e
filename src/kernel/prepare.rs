//! Configuring and preparing a source tree for single-object builds. Input: an unpacked kernel
//! source and the target's config. Output: the tree with `.config`, `include/config/auto.conf`,
//! `include/generated/autoconf.h` and `scripts/basic/fixdep` (what `make <dir>/<file>.o` needs).
//! Invariant: done once per tree; a prepared tree is never reconfigured behind the user's back.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

use super::compiler::Toolchain;
use super::config;
use crate::progress::{self, Progress};

/// Files that exist once `make modules_prepare` ran on a configured tree.
const PREPARED: &[&str] = &[
    ".config",
    "include/generated/autoconf.h",
    "scripts/basic/fixdep",
    "include/config/auto.conf",
];

/// The first file of [`PREPARED`] that `source` lacks, or `None` when the tree is prepared.
pub fn missing(source: &Path) -> Option<&'static str> {
    PREPARED.iter().copied().find(|f| !source.join(f).exists())
}

/// Configures `source` from `config_path` and runs `make modules_prepare` (kernel-lab.md: 3 s for
/// `olddefconfig`, 8.5 s for `modules_prepare` with -j2 on the Debian 6.1 tree), both with the
/// target's toolchain variables: kconfig detects `CONFIG_CC_VERSION_TEXT`, `CONFIG_RUSTC_*` and
/// `CONFIG_PAHOLE_VERSION` by running the programs they name, so a plain `make olddefconfig` on a
/// machine with rustc on PATH does not give Debian 6.12's config back.
pub fn prepare(
    source: &Path,
    config_path: &Path,
    jobs: usize,
    toolchain: &Toolchain,
    progress: &mut dyn Progress,
) -> anyhow::Result<()> {
    progress.note(&format!(
        "preparing {} from {} (once)",
        source.display(),
        config_path.display()
    ));
    let text = crate::input::read_text(
        config_path,
        crate::input::Kind::Config,
        "the target's config",
    )?;
    let dot_config = source.join(".config");
    std::fs::write(&dot_config, config::for_preparing(&text))
        .with_context(|| format!("writing {}", dot_config.display()))?;
    let vars = toolchain.make_vars();
    make(source, &vars, &["olddefconfig".to_string()], progress)?;
    make(
        source,
        &vars,
        &[format!("-j{jobs}"), "modules_prepare".to_string()],
        progress,
    )?;
    if let Some(f) = missing(source) {
        bail!("{}: `make modules_prepare` did not produce {f}; is this a kernel source tree of the target's version?", source.display());
    }
    Ok(())
}

fn make(
    source: &Path,
    vars: &[String],
    args: &[String],
    progress: &mut dyn Progress,
) -> anyhow::Result<()> {
    let mut cmd = Command::new("make");
    cmd.arg("-C").arg(source).args(vars).args(args);
    progress.command(&progress::command_line(&cmd));
    let out = cmd.stdin(Stdio::null()).output().with_context(|| {
        "running make: install make and gcc (apt-get install make gcc)".to_string()
    })?;
    if !out.status.success() {
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(25)..].join("\n  ");
        bail!(
            "preparing {}: `make {} {}` failed ({}):\n  {tail}\n\
             the tree needs the kernel build dependencies (apt-get install flex bison bc libssl-dev libelf-dev)",
            source.display(),
            vars.join(" "),
            args.join(" "),
            out.status
        );
    }
    Ok(())
}
