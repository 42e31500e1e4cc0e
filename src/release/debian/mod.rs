//! Placeholder until the Debian fetcher lands: every Debian target is unavailable.
use std::path::{Path, PathBuf};
use std::process::Command;
pub struct DebianKernel {
    pub kernel_release: String,
    pub version: String,
    pub suite: String,
    pub source: PathBuf,
    pub kbuild: PathBuf,
    pub config: PathBuf,
    pub symbols: Option<PathBuf>,
    pub modules: PathBuf,
    pub vmlinuz: PathBuf,
    pub compiler: String,
    pub build_root: Option<BuildRoot>,
    pub downloaded_bytes: u64,
}
pub struct Suites(pub Vec<String>);
#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    #[error("{kernel_release}: not found in {searched:?}")]
    Unavailable {
        kernel_release: String,
        searched: Vec<String>,
    },
    #[error(transparent)]
    Other(anyhow::Error),
}
pub fn resolve(
    _cache: &Path,
    kernel_release: &str,
    suites: &Suites,
    _log: &mut dyn FnMut(&str),
) -> Result<DebianKernel, DebianError> {
    Err(DebianError::Unavailable {
        kernel_release: kernel_release.into(),
        searched: suites.0.clone(),
    })
}
pub struct BuildRoot {
    pub dir: PathBuf,
    pub suite: String,
    pub compiler: String,
}
impl BuildRoot {
    pub fn has_program(&self, p: &str) -> bool {
        self.dir.join("usr/bin").join(p).exists()
    }
    pub fn command(&self, _binds: &[PathBuf], program: &Path) -> Command {
        Command::new(program)
    }
}
