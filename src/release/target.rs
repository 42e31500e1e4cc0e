//! A release target's inputs: a `[[target]]` in, the paths the build command takes out (source,
//! kbuild, config, symbols, modules), and the build root its compiler needs. Input: the target's
//! spec, the cache dir and the suites. Output: [`Inputs`], or why the target is unavailable.
//! Invariant: nothing is installed on the system; Debian packages are fetched and unpacked
//! privately under the cache (`debian`), explicit trees are used where they are.

use std::path::{Path, PathBuf};

use super::debian::{self, BuildRoot, DebianError, Suites};
use super::spec::{TargetKind, TargetSpec};

/// Everything one target's build needs.
pub struct Inputs {
    /// The kernel release, when known before the build (Debian targets, built trees).
    pub kernel_release: Option<String>,
    /// The source tree.
    pub source: PathBuf,
    /// `--kbuild`.
    pub kbuild: Option<PathBuf>,
    /// The target's `.config` (the scan reads it; the build gets it as `--config`).
    pub config: PathBuf,
    /// `--symbols`.
    pub symbols: Option<PathBuf>,
    /// `--modules`.
    pub modules: Option<PathBuf>,
    /// Where every make and compiler of the target runs, when the host lacks its compiler.
    pub build_root: Option<BuildRoot>,
    /// The Debian package version the inputs came from.
    pub package_version: Option<String>,
    /// Bytes downloaded to get them.
    pub downloaded: u64,
}

/// Why a target has no inputs.
pub enum Unresolved {
    /// The kernel does not exist where it was looked for (status `unavailable`).
    Unavailable(String),
    /// Something failed while getting it (network, disk): also `unavailable`, with the error.
    Failed(anyhow::Error),
}

/// Resolves `t`'s inputs, fetching a Debian kernel's packages into `cache` when needed.
pub fn resolve(
    t: &TargetSpec,
    cache: &Path,
    suites: &[String],
    log: &mut dyn FnMut(&str),
) -> Result<Inputs, Unresolved> {
    match &t.kind {
        TargetKind::Debian(release) => {
            let k = debian::resolve(cache, release, &Suites(suites.to_vec()), log).map_err(
                |e| match e {
                    DebianError::Unavailable { .. } => Unresolved::Unavailable(e.to_string()),
                    DebianError::Other(e) => Unresolved::Failed(e),
                },
            )?;
            Ok(Inputs {
                kernel_release: Some(k.kernel_release),
                source: k.source,
                kbuild: Some(k.kbuild),
                config: k.config,
                symbols: k.symbols,
                modules: Some(k.modules),
                build_root: k.build_root,
                package_version: Some(k.version),
                downloaded: k.downloaded_bytes,
            })
        }
        TargetKind::Tree {
            source,
            symbols,
            kbuild,
            config,
            modules,
            ..
        } => {
            let config = config
                .clone()
                .or_else(|| Some(source.join(".config")).filter(|p| p.is_file()))
                .or_else(|| {
                    kbuild
                        .as_ref()
                        .map(|k| k.join(".config"))
                        .filter(|p| p.is_file())
                })
                .ok_or_else(|| {
                    Unresolved::Unavailable(format!(
                        "{}: no .config in the tree or its kbuild dir; add config = \"...\" to the target",
                        source.display()
                    ))
                })?;
            // UTS_RELEASE, what the module's vermagic names (a tree's kernel.release may say
            // less: Debian's headers have 6.1.192 there and 6.1.0-57-amd64 in UTS_RELEASE).
            let kernel_release = [kbuild.as_ref(), Some(source)]
                .into_iter()
                .flatten()
                .find_map(|d| crate::kernel::uts_release(d).ok())
                .filter(|s| super::spec::valid_kernel_release(s));
            Ok(Inputs {
                kernel_release,
                source: source.clone(),
                kbuild: kbuild.clone(),
                config,
                symbols: symbols.clone(),
                modules: modules.clone(),
                build_root: None,
                package_version: None,
                downloaded: 0,
            })
        }
    }
}
