//! The compiler check. Input: the target's config and the compiler kbuild will run. Output: Ok,
//! or an error naming both compilers. Invariant: objects are only rebuilt with the compiler that
//! built the target kernel: another gcc emits other code for unchanged functions (every function
//! would look changed) and may disagree on layout-affecting options the config was tested for.

use std::process::Command;

use anyhow::{bail, Context};

use super::config::{cc_version, KConfig};

/// The first line of `<cc> --version`.
pub fn version_line(cc: &str) -> anyhow::Result<String> {
    let out = Command::new(cc)
        .arg("--version")
        .output()
        .with_context(|| format!("running {cc} --version: is the compiler installed?"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

/// Checks that `cc` (what kbuild runs: its Makefile sets `CC = gcc`, found through PATH) is the
/// compiler of `CONFIG_CC_VERSION_TEXT`; the program name may differ (`gcc-12` vs `gcc`).
pub fn check(config: &KConfig, cc: &str) -> anyhow::Result<()> {
    let Some(wanted) = config.get("CONFIG_CC_VERSION_TEXT") else {
        return Ok(());
    };
    let found = version_line(cc)?;
    if cc_version(wanted) != cc_version(&found) {
        bail!(
            "the target kernel was built with {} but {cc} here is {found:?}; install that compiler \
             (on Debian the gcc package of the kernel's release) and put a `gcc` that runs it first in PATH",
            wanted
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machines_gcc_against_configs() {
        let here = version_line("gcc").unwrap();
        assert!(here.starts_with("gcc"), "{here}");
        let same = KConfig::parse(&format!("CONFIG_CC_VERSION_TEXT=\"{here}\"\n"));
        check(&same, "gcc").unwrap();
        let renamed = here.replacen("gcc", "gcc-99", 1);
        check(
            &KConfig::parse(&format!("CONFIG_CC_VERSION_TEXT=\"{renamed}\"\n")),
            "gcc",
        )
        .unwrap();
        let other = KConfig::parse("CONFIG_CC_VERSION_TEXT=\"gcc (Debian 14.2.0-19) 14.2.0\"\n");
        let e = check(&other, "gcc").unwrap_err().to_string();
        assert!(e.contains("14.2.0-19") && e.contains(&here), "{e}");
    }
}
