//! An exclusive `flock(2)` on a lock file, waited for. Input: the lock file's path. Output: a
//! guard that holds the lock until dropped. Invariant: the lock belongs to the open file, so it
//! ends with the process however it ends (a SIGKILL leaves no stale lock behind).

use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result};

/// A held lock.
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Waits for and takes the lock of `path` (created when missing).
    pub fn exclusive(path: &Path) -> Result<Lock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        loop {
            // SAFETY: flock on a descriptor this function owns.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(Lock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
    }
}
