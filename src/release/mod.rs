//! The release flow: one set of fixes, many kernels (docs/release.md). Input: a release file and
//! the `release` subcommand's options. Output: `scan`'s table, `build`'s output directory
//! (`index.json`, one directory per kernel with its module and report), `plan`'s CI job matrix,
//! `collect`'s merged release. Invariant: the release file and the output directory are checked
//! before anything is fetched or built; each target is built by the same stages as the build
//! command (a child `klp-build` per target, inside the target's build root when the host lacks
//! its compiler); outputs appear only when complete (a partial directory is removed on error or
//! Ctrl-C, and by the next run after a SIGKILL).

pub mod build;
pub mod ci;
pub mod debian;
pub mod index;
pub mod launcher;
pub mod lock;
pub mod progress;
pub mod scan;
pub mod spec;
pub mod target;

use std::path::PathBuf;

use crate::cli::{ReleaseArgs, ReleaseCommand};

/// `klp-build release ...`.
pub fn run(args: &ReleaseArgs) -> anyhow::Result<u8> {
    match &args.command {
        ReleaseCommand::Build(a) => build::build(a),
        ReleaseCommand::Scan(a) => build::scan(a),
        ReleaseCommand::Plan(a) => ci::plan(a),
        ReleaseCommand::Collect(a) => ci::collect(a),
    }
}

/// The cache of fetched packages, unpacked trees, build roots and work dirs:
/// `$KLP_BUILD_CACHE`, else `$XDG_CACHE_HOME/klp-build`, else `~/.cache/klp-build`.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("KLP_BUILD_CACHE").filter(|d| !d.is_empty()) {
        return Ok(std::path::absolute(PathBuf::from(d))?);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("klp-build"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".cache/klp-build")),
        None => anyhow::bail!(
            "no cache directory: set KLP_BUILD_CACHE (or HOME) to a directory klp-build may fill"
        ),
    }
}
