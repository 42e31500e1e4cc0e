//! One kbuild at a time per source tree. Input: the tree. Output: a held lock, released on drop.
//! Invariant: klp-build never runs two makes in one tree (two runs writing `fs/proc/cmdline.o`
//! at once would each read the other's half-written object), and cooperates with anything that
//! takes the same lock with `flock(1)` on `<tree>/.klp-build.lock`. Kbuild's top `.gitignore`
//! ignores dot files, so the lock file never shows up in the tree's git status.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use anyhow::Context;

use crate::progress::Progress;

/// The name of the lock file at the top of a source tree.
pub const LOCK_FILE: &str = ".klp-build.lock";

/// A held lock on a source tree (an exclusive `flock` on its lock file).
#[derive(Debug)]
pub struct TreeLock {
    _file: File,
}

/// Locks `source` for building, waiting (and saying so through `progress`) while another build
/// holds it.
pub fn lock(source: &Path, progress: &mut dyn Progress) -> anyhow::Result<TreeLock> {
    let path = source.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| {
            format!(
                "opening the tree lock {}: is the source tree writable?",
                path.display()
            )
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            progress.note(&format!(
                "waiting for another build in {} (lock {})",
                source.display(),
                path.display()
            ));
            file.lock()
                .with_context(|| format!("locking {}", path.display()))?;
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
    Ok(TreeLock { _file: file })
}
