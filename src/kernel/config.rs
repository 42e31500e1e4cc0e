//! Kernel `.config` files: read into option -> value maps, compared in the options that change
//! compiled objects, and rewritten for a tree that must build without the distro's signing keys.
//! Invariant: an option the target's config chose explicitly (set, or `# ... is not set`) holds in
//! the source tree's `.config` too, or the comparison names it.

use std::collections::BTreeMap;
use std::path::Path;

/// A parsed `.config`: option name (with `CONFIG_`) -> value, `None` for `# CONFIG_X is not set`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KConfig {
    /// Options in file order of their names (sorted, so comparisons report deterministically).
    pub options: BTreeMap<String, Option<String>>,
}

/// Options that never change a single compiled object, or that preparing a tree rewrites on
/// purpose. Each needs a reason: everything else the target's config sets must hold in the tree.
const IGNORED: &[(&str, &str)] = &[
    // Only the `.note.Linux` build-salt note of vmlinux and of linked modules (emit links
    // against --kbuild, which has the right salt); Debian's boot config leaves it out.
    ("CONFIG_BUILD_SALT", "build-id salt of linked images"),
    // Preparing a distro tree points these at files that exist (kernel-lab.md): the distro's
    // own keys are not shipped.
    ("CONFIG_MODULE_SIG_KEY", "signing key path"),
    ("CONFIG_SYSTEM_TRUSTED_KEYS", "certificate bundle path"),
    ("CONFIG_SYSTEM_REVOCATION_KEYS", "certificate bundle path"),
    ("CONFIG_MODULE_SIG_ALL", "signs at modules_install only"),
];

impl KConfig {
    /// Parses `.config` text. Lines that are neither `CONFIG_X=value` nor `# CONFIG_X is not set`
    /// are comments and skipped.
    pub fn parse(text: &str) -> KConfig {
        let mut options = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# ") {
                if let Some(name) = rest.strip_suffix(" is not set") {
                    if name.starts_with("CONFIG_") && !name.contains(' ') {
                        options.insert(name.to_string(), None);
                    }
                }
            } else if let Some((name, value)) = line.split_once('=') {
                if name.starts_with("CONFIG_") {
                    options.insert(name.to_string(), Some(value.to_string()));
                }
            }
        }
        KConfig { options }
    }

    /// Reads and parses a `.config` file.
    pub fn read(path: &Path) -> anyhow::Result<KConfig> {
        let text = crate::input::read_text(path, crate::input::Kind::Config, "kernel config")?;
        Ok(KConfig::parse(&text))
    }

    /// The value of an option, `None` when unset or absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.options.get(name).and_then(|v| v.as_deref())
    }
}

/// One option that differs between the target's config and the tree's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// `CONFIG_...`.
    pub option: String,
    /// Its value in the target's config (`None`: not set).
    pub wanted: Option<String>,
    /// Its value in the tree (`None`: not set or absent).
    pub found: Option<String>,
}

/// Options kconfig detects from the toolchain (it runs `$(CC) --version`, `rustc`, `pahole`, `as`,
/// `ld` while configuring), with why a difference in them leaves the objects klp-build rebuilds
/// as the target's. Only version numbers and version strings are here: the features a toolchain
/// has (`CONFIG_CC_HAS_*`, `CONFIG_AS_HAS_*`) choose code and are compared as code.
const TOOLCHAIN_DETECTED: &[(&str, &str)] = &[
    (
        "CONFIG_CC_VERSION_TEXT",
        "the compiler's name and version; the compiler check compares the version",
    ),
    (
        "CONFIG_GCC_VERSION",
        "the compiler check compares the compiler's version",
    ),
    (
        "CONFIG_CLANG_VERSION",
        "the compiler check compares the compiler's version",
    ),
    (
        "CONFIG_AS_VERSION",
        "the assembler's version number, not its features",
    ),
    (
        "CONFIG_LD_VERSION",
        "the linker's version; single objects are not linked",
    ),
    (
        "CONFIG_LLD_VERSION",
        "the linker's version; single objects are not linked",
    ),
    (
        "CONFIG_PAHOLE_VERSION",
        "BTF is generated at link time, never for a single object",
    ),
];

/// Rust toolchain options: they only change Rust code, so they matter when the target was built
/// with `CONFIG_RUST` and are toolchain noise otherwise (Debian's 6.12: `CONFIG_RUSTC_VERSION=0`,
/// a tree configured with a local rustc on PATH: `CONFIG_RUSTC_LLVM_VERSION=220102`).
const RUST_DETECTED: &[&str] = &[
    "CONFIG_RUSTC_VERSION",
    "CONFIG_RUSTC_VERSION_TEXT",
    "CONFIG_RUSTC_LLVM_VERSION",
    "CONFIG_RUST_IS_AVAILABLE",
    "CONFIG_BINDGEN_VERSION_TEXT",
];

/// Whether a difference can change the objects klp-build rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impact {
    /// A toolchain-detected value that compiled C objects do not depend on; the reason why.
    Toolchain(&'static str),
    /// Anything else: the option may change compiled code or data layout.
    Code,
}

impl Difference {
    /// How this difference matters, given the target's config (`CONFIG_RUST` decides whether
    /// the Rust toolchain's options matter).
    pub fn impact(&self, target: &KConfig) -> Impact {
        if let Some((_, why)) = TOOLCHAIN_DETECTED.iter().find(|(n, _)| *n == self.option) {
            return Impact::Toolchain(why);
        }
        let rust_option = RUST_DETECTED.contains(&self.option.as_str())
            || self.option.starts_with("CONFIG_RUSTC_HAS_");
        if rust_option && target.get("CONFIG_RUST") != Some("y") {
            return Impact::Toolchain("the target was built without Rust (CONFIG_RUST is off)");
        }
        Impact::Code
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "not set".to_string());
        write!(
            f,
            "{} is {} in the target's config but {} in the tree",
            self.option,
            show(&self.wanted),
            show(&self.found)
        )
    }
}

/// The compiler part of `CONFIG_CC_VERSION_TEXT` without the program name: `gcc-12 (Debian
/// 12.2.0-14+deb12u1) 12.2.0` -> `(Debian 12.2.0-14+deb12u1) 12.2.0`.
pub fn cc_version(text: &str) -> &str {
    let t = text.trim_matches('"');
    t.split_once(' ').map_or(t, |(_, rest)| rest)
}

/// Every option the target's config chooses explicitly that the tree does not have the same way.
/// Options absent from the target's config are not compared: `make olddefconfig` fills in the
/// defaults of options an older or stripped config (Debian's `/boot/config-*`) does not list.
pub fn differences(wanted: &KConfig, tree: &KConfig) -> Vec<Difference> {
    let mut out = Vec::new();
    for (name, value) in &wanted.options {
        if IGNORED.iter().any(|(n, _)| n == name) {
            continue;
        }
        let found = tree.options.get(name).cloned().flatten();
        let same = match (name.as_str(), value, &found) {
            // Debian's headers say `gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0`, a tree prepared
            // with `gcc` says `gcc (Debian ...) 12.2.0`: the same compiler.
            ("CONFIG_CC_VERSION_TEXT", Some(a), Some(b)) => cc_version(a) == cc_version(b),
            _ => *value == found,
        };
        if !same {
            out.push(Difference {
                option: name.clone(),
                wanted: value.clone(),
                found,
            });
        }
    }
    out
}

/// The `.config` text for preparing a distro tree: the distro's own certificates are not shipped,
/// so blank the trusted keys and point the signing key at `certs/signing_key.pem`, which kbuild
/// generates when it needs it (kernel-lab.md).
pub fn for_preparing(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.starts_with("CONFIG_SYSTEM_TRUSTED_KEYS=") {
            out.push_str("CONFIG_SYSTEM_TRUSTED_KEYS=\"\"");
        } else if line.starts_with("CONFIG_SYSTEM_REVOCATION_KEYS=") {
            out.push_str("CONFIG_SYSTEM_REVOCATION_KEYS=\"\"");
        } else if line.starts_with("CONFIG_MODULE_SIG_KEY=") {
            out.push_str("CONFIG_MODULE_SIG_KEY=\"certs/signing_key.pem\"");
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_set_unset_and_comments() {
        let c = KConfig::parse(
            "#\n# General setup\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\n",
        );
        assert_eq!(c.get("CONFIG_A"), Some("y"));
        assert_eq!(c.options.get("CONFIG_B"), Some(&None));
        assert_eq!(c.get("CONFIG_C"), Some("\"x y\""));
        assert_eq!(c.options.len(), 3);
    }

    #[test]
    fn compares_explicit_choices_only() {
        let wanted = KConfig::parse("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_D=m\n");
        let tree = KConfig::parse("CONFIG_A=y\nCONFIG_B=y\nCONFIG_D=m\nCONFIG_NEW=y\n");
        let d = differences(&wanted, &tree);
        assert_eq!(
            d,
            vec![Difference {
                option: "CONFIG_B".into(),
                wanted: None,
                found: Some("y".into())
            }]
        );
        assert_eq!(
            d[0].to_string(),
            "CONFIG_B is not set in the target's config but y in the tree"
        );
    }

    #[test]
    fn compiler_compared_without_program_name() {
        let wanted =
            KConfig::parse("CONFIG_CC_VERSION_TEXT=\"gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0\"\n");
        let same =
            KConfig::parse("CONFIG_CC_VERSION_TEXT=\"gcc (Debian 12.2.0-14+deb12u1) 12.2.0\"\n");
        let other = KConfig::parse("CONFIG_CC_VERSION_TEXT=\"gcc (Debian 14.2.0-19) 14.2.0\"\n");
        assert!(differences(&wanted, &same).is_empty());
        assert_eq!(
            differences(&wanted, &other)[0].option,
            "CONFIG_CC_VERSION_TEXT"
        );
    }

    #[test]
    fn toolchain_detected_options_are_told_apart_from_code() {
        let no_rust = KConfig::parse("# CONFIG_RUST is not set\nCONFIG_RUSTC_VERSION=0\n");
        let tree =
            KConfig::parse("CONFIG_RUSTC_VERSION=108200\nCONFIG_RUSTC_LLVM_VERSION=190101\n");
        let wanted = KConfig::parse(
            "CONFIG_RUSTC_VERSION=0\nCONFIG_RUSTC_LLVM_VERSION=0\nCONFIG_PAHOLE_VERSION=124\nCONFIG_X86_KERNEL_IBT=y\n",
        );
        let d = differences(&wanted, &tree);
        let impacts: Vec<(&str, bool)> = d
            .iter()
            .map(|d| (d.option.as_str(), d.impact(&no_rust) == Impact::Code))
            .collect();
        assert_eq!(
            impacts,
            vec![
                ("CONFIG_PAHOLE_VERSION", false),
                ("CONFIG_RUSTC_LLVM_VERSION", false),
                ("CONFIG_RUSTC_VERSION", false),
                ("CONFIG_X86_KERNEL_IBT", true),
            ]
        );
        let rust = KConfig::parse("CONFIG_RUST=y\n");
        assert_eq!(d[1].impact(&rust), Impact::Code);
    }

    #[test]
    fn signing_options_ignored_and_rewritten() {
        let wanted = KConfig::parse("CONFIG_MODULE_SIG_KEY=\"output/signing_key.pem\"\nCONFIG_BUILD_SALT=\"6.1.0-56-amd64\"\n");
        let tree = KConfig::parse(
            "CONFIG_MODULE_SIG_KEY=\"certs/signing_key.pem\"\nCONFIG_BUILD_SALT=\"\"\n",
        );
        assert!(differences(&wanted, &tree).is_empty());
        let text = for_preparing("CONFIG_X=y\nCONFIG_SYSTEM_TRUSTED_KEYS=\"debian/certs/x.pem\"\nCONFIG_MODULE_SIG_KEY=\"output/k.pem\"\n");
        assert_eq!(text, "CONFIG_X=y\nCONFIG_SYSTEM_TRUSTED_KEYS=\"\"\nCONFIG_MODULE_SIG_KEY=\"certs/signing_key.pem\"\n");
    }
}
