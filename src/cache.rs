//! Where klp-build keeps what it may rebuild. Input: the environment. Output: the cache
//! directory. Invariant: one place for every cache, so that `release cache` sees all of it.

use std::path::PathBuf;

/// klp-build's cache: the originals of single-object rebuilds (`objects/`), and a release's
/// fetched packages, unpacked trees, build roots and work dirs:
/// `$KLP_BUILD_CACHE`, else `$XDG_CACHE_HOME/klp-build`, else `~/.cache/klp-build`.
pub fn dir() -> anyhow::Result<PathBuf> {
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
