//! Files of a kernel tree as the build tests see them. Input: the tree and files relative to it.
//! Output: each file's sha256 and mtime (`None` when it does not exist). Invariant: snapshots are
//! read while holding the tree lock klp-build itself takes (`<tree>/.klp-build.lock`), so a build
//! in the same tree is never caught half-way between swapping a source in and restoring it.

use std::path::Path;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// What a test compares of one file: a build that restored it must leave both unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    /// sha256 of the contents, lowercase hex.
    pub sha256: String,
    /// Modification time: make rebuilds what is newer than its object, so a restored source
    /// must keep it.
    pub mtime: SystemTime,
}

/// (file, state) of each file of a snapshot, in the order asked for.
pub type Snapshot = Vec<(String, Option<FileState>)>;

/// sha256 of the file at `path`, lowercase hex; a file that cannot be read fails the test.
pub fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!("{:x}", Sha256::digest(bytes))
}

/// The state of `path`, `None` when it does not exist; any other error fails the test.
pub fn file_state(path: &Path) -> Option<FileState> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("{}: {e}", path.display()),
    };
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("mtime of {}: {e}", path.display()));
    Some(FileState {
        sha256: format!("{:x}", Sha256::digest(bytes)),
        mtime,
    })
}

/// Runs `read` while holding the tree lock of `src`.
pub fn locked<T>(src: &Path, read: impl FnOnce() -> T) -> T {
    let _lock = klp_build::kernel::lock::lock(src, &mut klp_build::progress::Quiet)
        .unwrap_or_else(|e| panic!("the tree lock of {}: {e:#}", src.display()));
    read()
}

/// The state of each of `files` (relative to `src`), read under the tree lock.
pub fn snapshot(src: &Path, files: &[&str]) -> Snapshot {
    locked(src, || {
        files
            .iter()
            .map(|f| (f.to_string(), file_state(&src.join(f))))
            .collect()
    })
}
