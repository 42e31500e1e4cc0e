//! The target's toolchain view and the compiler check. Input: the target's config (and the make
//! variables a prepared tree was configured with). Output: a [`Toolchain`], the make variables every
//! make on the target runs with, or an error naming what to install. Invariant: objects are only
//! rebuilt with the compiler that built the target kernel (another gcc emits other code for
//! unchanged functions, so every function would look changed), and kconfig sees the toolchain the
//! distro saw, so a tree prepared here gets the distro's toolchain-detected options.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use super::config::{cc_version, KConfig};

/// What `RUSTC` is set to for a target built without Rust: a program that cannot exist, so
/// kconfig's probes (`scripts/rustc-version.sh`, `rust_is_available.sh`) find no Rust, as on the
/// distro's build machine. Debian's 6.12 says `CONFIG_RUSTC_VERSION=0`; with the local `rustc`
/// visible, `make olddefconfig` wrote `CONFIG_RUSTC_LLVM_VERSION=220102` and the tree no longer
/// matched the target.
pub const NO_RUSTC: &str = "/nonexistent/klp-build/target-built-without-rust/rustc";

/// What `PAHOLE` is set to for a target built without pahole (`CONFIG_PAHOLE_VERSION=0`).
pub const NO_PAHOLE: &str = "/nonexistent/klp-build/target-built-without-pahole/pahole";

/// The toolchain the target kernel was built with, as kbuild's make variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toolchain {
    /// The C compiler kbuild runs (`CC`): the program `CONFIG_CC_VERSION_TEXT` names
    /// (`x86_64-linux-gnu-gcc-12` for Debian's 6.12, `gcc-12` for its 6.1), checked to be the same
    /// compiler version.
    pub cc: String,
    /// `(variable, value)` for every make klp-build runs on the target: preparing the tree, the
    /// single-object rebuilds and the module link. Without them kbuild would reconfigure the tree
    /// (its `include/config/auto.conf.cmd` reruns kconfig when `CC` or `RUSTC` change).
    pub vars: Vec<(String, String)>,
}

impl Toolchain {
    /// `VAR=value` arguments for a make command line.
    pub fn make_vars(&self) -> Vec<String> {
        self.vars.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// The value this toolchain gives `var`, if it sets it.
    pub fn get(&self, var: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == var)
            .map(|(_, v)| v.as_str())
    }
}

/// The make variables whose values kconfig recorded when `source` was configured: the
/// `ifneq "$(CC)" "x86_64-linux-gnu-gcc-12"` lines of `include/config/auto.conf.cmd` (kbuild reruns
/// kconfig when one of them differs). Empty for a tree that was never configured.
pub fn recorded_vars(source: &Path) -> BTreeMap<String, String> {
    let path = source.join("include/config/auto.conf.cmd");
    let text = crate::input::read(&path, crate::input::Kind::Tree, "").unwrap_or_default();
    parse_recorded_vars(&String::from_utf8_lossy(&text))
}

fn parse_recorded_vars(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("ifneq \"$(") else {
            continue;
        };
        let Some((var, rest)) = rest.split_once(")\" \"") else {
            continue;
        };
        if let Some(value) = rest.strip_suffix('"') {
            out.insert(var.to_string(), value.to_string());
        }
    }
    out
}

/// The toolchain view of a target kernel with config `config`. `recorded` are the variables a
/// prepared tree was configured with ([`recorded_vars`]): they are kept as they are, because a
/// prepared tree is never reconfigured behind the user's back (the config comparison then says
/// whether its toolchain-detected options differ). A tree still to be prepared gets the distro's
/// view: the compiler `CONFIG_CC_VERSION_TEXT` names, Rust and pahole hidden when the target was
/// built without them.
pub fn toolchain(
    config: &KConfig,
    recorded: &BTreeMap<String, String>,
) -> anyhow::Result<Toolchain> {
    let mut vars = Vec::new();
    let cc = match recorded.get("CC") {
        Some(cc) => cc.clone(),
        None => target_cc(config)?,
    };
    vars.push(("CC".to_string(), cc.clone()));

    let rust = config.get("CONFIG_RUST") == Some("y");
    match recorded.get("RUSTC") {
        Some(rustc) => vars.push(("RUSTC".to_string(), rustc.clone())),
        None if rust => check_rustc(config)?,
        None => vars.push(("RUSTC".to_string(), NO_RUSTC.to_string())),
    }
    match recorded.get("PAHOLE") {
        Some(pahole) => vars.push(("PAHOLE".to_string(), pahole.clone())),
        None if config.get("CONFIG_PAHOLE_VERSION") == Some("0") => {
            vars.push(("PAHOLE".to_string(), NO_PAHOLE.to_string()))
        }
        None => {}
    }
    Ok(Toolchain { cc, vars })
}

/// The program `CONFIG_CC_VERSION_TEXT` names, when it exists here (`gcc` for a config without
/// the option, kernels before 5.8).
fn target_cc(config: &KConfig) -> anyhow::Result<String> {
    let Some(text) = config.get("CONFIG_CC_VERSION_TEXT") else {
        return Ok("gcc".to_string());
    };
    let text = text.trim_matches('"');
    let program = text.split(' ').next().unwrap_or_default();
    if program.is_empty() || program.contains('/') {
        bail!(
            "CONFIG_CC_VERSION_TEXT {text:?} of the target's config names no compiler program; \
             is the config a kernel .config?"
        );
    }
    if find_program(program).is_none() {
        bail!(
            "the target kernel was built with {program} ({}), which is not installed here: install {} \
             (apt-get install {}); single objects must be rebuilt with the compiler that built the kernel",
            cc_version(text),
            debian_package(program, text),
            debian_package(program, text),
        );
    }
    Ok(program.to_string())
}

/// The Debian package that installs compiler `program` of version text `text`:
/// `x86_64-linux-gnu-gcc-12` and `gcc-12` come with `gcc-12`, `clang-16` with `clang-16`, `gcc`
/// of `... 12.2.0` with `gcc-12`.
pub fn debian_package(program: &str, text: &str) -> String {
    let base = program.rsplit('-').next().unwrap_or(program);
    let family = if program.contains("clang") {
        "clang"
    } else {
        "gcc"
    };
    if base.chars().all(|c| c.is_ascii_digit()) && !base.is_empty() {
        return format!("{family}-{base}");
    }
    let major = text
        .rsplit(' ')
        .next()
        .and_then(|v| v.split('.').next())
        .filter(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_digit()));
    match major {
        Some(m) => format!("{family}-{m}"),
        None => family.to_string(),
    }
}

/// A target built with Rust needs the very rustc it was built with: kconfig records its version
/// and the Rust objects' ABI depends on it.
fn check_rustc(config: &KConfig) -> anyhow::Result<()> {
    let wanted = config
        .get("CONFIG_RUSTC_VERSION_TEXT")
        .map(|t| t.trim_matches('"').to_string())
        .or_else(|| {
            config
                .get("CONFIG_RUSTC_VERSION")
                .map(|v| format!("version {v}"))
        })
        .unwrap_or_else(|| "an unknown rustc".to_string());
    let found = match find_program("rustc") {
        Some(_) => version_line("rustc").unwrap_or_default(),
        None => String::new(),
    };
    let same = match (
        config.get("CONFIG_RUSTC_VERSION_TEXT"),
        config.get("CONFIG_RUSTC_VERSION"),
    ) {
        (Some(text), _) => text.trim_matches('"') == found,
        (None, Some(number)) => {
            rustc_version_number(&found).is_some_and(|n| n.to_string() == number)
        }
        (None, None) => false,
    };
    if !same {
        bail!(
            "the target kernel was built with Rust ({wanted}) but {}: install that rustc and put it \
             first on PATH (rustup toolchain install <version>); kconfig would otherwise configure the \
             tree differently from the target",
            if found.is_empty() { "no rustc is on PATH".to_string() } else { format!("rustc here is {found:?}") }
        );
    }
    Ok(())
}

/// `rustc 1.78.0 (9b00956e5 2024-04-29)` -> 107800, as `scripts/rustc-version.sh` computes it.
fn rustc_version_number(line: &str) -> Option<u64> {
    let v = line.split(' ').nth(1)?;
    let v = v.split('-').next()?;
    let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
    let (major, minor, patch) = (parts.next()??, parts.next()??, parts.next()??);
    Some(major * 100_000 + minor * 100 + patch)
}

/// `program` found on PATH (or as given, when it has a `/`).
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| program.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The first line of `<cc> --version`.
pub fn version_line(cc: &str) -> anyhow::Result<String> {
    let out = Command::new(cc)
        .arg("--version")
        .output()
        .with_context(|| format!("running {cc} --version: is the compiler installed?"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

/// Checks that `cc` (what kbuild runs: [`Toolchain::cc`], found through PATH) is the compiler of
/// `CONFIG_CC_VERSION_TEXT`; the program name may differ (`gcc-12` vs `gcc`).
pub fn check(config: &KConfig, cc: &str) -> anyhow::Result<()> {
    let Some(wanted) = config.get("CONFIG_CC_VERSION_TEXT") else {
        return Ok(());
    };
    let found = version_line(cc)?;
    if cc_version(wanted) != cc_version(&found) {
        bail!(
            "the target kernel was built with {} but {cc} here is {found:?}; install that compiler \
             (on Debian: apt-get install {}) and put it first in PATH",
            wanted,
            debian_package(&cc_program(wanted), wanted)
        );
    }
    Ok(())
}

fn cc_program(text: &str) -> String {
    text.trim_matches('"')
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_vars_of_auto_conf_cmd() {
        let text = "deps_config := \\\n  Kconfig\n\ninclude/config/auto.conf: $(deps_config)\n\n\
                    ifneq \"$(CC)\" \"x86_64-linux-gnu-gcc-12\"\ninclude/config/auto.conf: FORCE\nendif\n\
                    ifneq \"$(RUSTC)\" \"rustc\"\ninclude/config/auto.conf: FORCE\nendif\n";
        let v = parse_recorded_vars(text);
        assert_eq!(
            v.get("CC").map(String::as_str),
            Some("x86_64-linux-gnu-gcc-12")
        );
        assert_eq!(v.get("RUSTC").map(String::as_str), Some("rustc"));
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn packages_of_compilers() {
        let t = "x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0";
        assert_eq!(debian_package("x86_64-linux-gnu-gcc-12", t), "gcc-12");
        assert_eq!(debian_package("gcc-12", t), "gcc-12");
        assert_eq!(
            debian_package("gcc", "gcc (Debian 14.2.0-19) 14.2.0"),
            "gcc-14"
        );
        assert_eq!(
            rustc_version_number("rustc 1.78.0 (9b00956e5 2024-04-29)"),
            Some(10_78_00)
        );
    }

    #[test]
    fn toolchain_of_a_target_without_rust() {
        let here = version_line("gcc").unwrap();
        let renamed = here.replacen("gcc", "gcc-klp-build-absent-99", 1);
        let e = toolchain(
            &KConfig::parse(&format!("CONFIG_CC_VERSION_TEXT=\"{renamed}\"\n")),
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("gcc-klp-build-absent-99") && e.contains("apt-get install gcc-99"),
            "{e}"
        );
        let c = KConfig::parse(&format!(
            "CONFIG_CC_VERSION_TEXT=\"{here}\"\nCONFIG_PAHOLE_VERSION=0\n"
        ));
        let t = toolchain(&c, &BTreeMap::new()).unwrap();
        assert_eq!(t.cc, "gcc");
        assert_eq!(t.get("RUSTC"), Some(NO_RUSTC));
        assert_eq!(t.get("PAHOLE"), Some(NO_PAHOLE));
        let recorded = BTreeMap::from([("CC".to_string(), "cc".to_string())]);
        let t = toolchain(&c, &recorded).unwrap();
        assert_eq!(t.make_vars()[0], "CC=cc");
    }

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
