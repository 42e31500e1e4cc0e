//! Putting the source tree back. Input: the tree files the build is about to change (sources it
//! swaps the patched copies into, the `.o`/`.cmd`/`.d` files kbuild writes). Output: each file as
//! it was (content, mode and mtime), or gone when it did not exist. Invariant: a file's original
//! is saved, and the journal naming it written, before the tree changes; the guard restores on
//! drop (error, panic, Ctrl-C), and a journal left by a killed run is replayed by the next build.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::interrupt;

/// One tree file as it was before the build.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    /// Relative to the tree.
    path: PathBuf,
    /// The file existed (and is saved under `files/`); else restoring deletes it.
    existed: bool,
    /// Its mtime, nanoseconds since the epoch: make compares it with the object's.
    mtime_ns: u128,
}

/// What a run changes in which tree, written before each change.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    source: PathBuf,
    entries: Vec<Entry>,
}

/// Restores the tree on drop; see the module doc.
#[derive(Debug)]
pub struct TreeGuard {
    source: PathBuf,
    dir: PathBuf,
    entries: Vec<Entry>,
    done: bool,
    _modifying: interrupt::Modifying,
}

const JOURNAL: &str = "journal.json";

impl TreeGuard {
    /// A guard for `source` keeping its saved files under `dir`.
    pub fn new(source: &Path, dir: &Path) -> anyhow::Result<TreeGuard> {
        std::fs::create_dir_all(dir.join("files"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let g = TreeGuard {
            source: source.to_path_buf(),
            dir: dir.to_path_buf(),
            entries: Vec::new(),
            done: false,
            _modifying: interrupt::Modifying::start(),
        };
        g.write_journal()?;
        Ok(g)
    }

    /// Saves `rel` as it is now (or its absence), once; later calls for the same file keep the
    /// first state.
    pub fn save(&mut self, rel: &Path) -> anyhow::Result<()> {
        if self.entries.iter().any(|e| e.path == rel) {
            return Ok(());
        }
        let file = self.source.join(rel);
        let entry = match std::fs::metadata(&file) {
            Ok(meta) => {
                let to = self.dir.join("files").join(rel);
                std::fs::create_dir_all(to.parent().expect("a file has a parent dir"))?;
                std::fs::copy(&file, &to)
                    .with_context(|| format!("saving {} to {}", file.display(), to.display()))?;
                let mtime = meta
                    .modified()?
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                Entry {
                    path: rel.to_path_buf(),
                    existed: true,
                    mtime_ns: mtime.as_nanos(),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Entry {
                path: rel.to_path_buf(),
                existed: false,
                mtime_ns: 0,
            },
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        self.entries.push(entry);
        self.write_journal()
    }

    /// Records that the build created `rel`, which did not exist before: restoring deletes it.
    pub fn created(&mut self, rel: &Path) -> anyhow::Result<()> {
        if self.entries.iter().any(|e| e.path == rel) {
            return Ok(());
        }
        self.entries.push(Entry {
            path: rel.to_path_buf(),
            existed: false,
            mtime_ns: 0,
        });
        self.write_journal()
    }

    fn write_journal(&self) -> anyhow::Result<()> {
        let j = Journal {
            source: self.source.clone(),
            entries: self.entries.clone(),
        };
        let tmp = self.dir.join(format!("{JOURNAL}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&j)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, self.dir.join(JOURNAL))
            .with_context(|| format!("writing {}", self.dir.join(JOURNAL).display()))
    }

    /// Puts every saved file back; returns how many files it restored or deleted.
    pub fn restore(&mut self) -> anyhow::Result<usize> {
        let n = restore_entries(&self.source, &self.dir, &self.entries)?;
        self.done = true;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(n)
    }
}

impl Drop for TreeGuard {
    fn drop(&mut self) {
        if !self.done {
            match self.restore() {
                Ok(n) if interrupt::interrupted() => {
                    eprintln!("klp-build: interrupted; restored {n} file(s) of {}", self.source.display())
                }
                Ok(_) => {}
                Err(e) => eprintln!(
                    "klp-build: error: restoring {}: {e:#}\n  the original files are saved in {}; the next build \
                     in this work dir restores them from {}",
                    self.source.display(),
                    self.dir.display(),
                    self.dir.join(JOURNAL).display()
                ),
            }
        }
        if interrupt::interrupted() {
            std::process::exit(interrupt::EXIT_INTERRUPTED);
        }
    }
}

fn restore_entries(source: &Path, dir: &Path, entries: &[Entry]) -> anyhow::Result<usize> {
    let mut n = 0;
    let mut failed = Vec::new();
    for e in entries {
        let file = source.join(&e.path);
        let r = if e.existed {
            restore_file(&dir.join("files").join(&e.path), &file, e.mtime_ns).map(|()| true)
        } else {
            match std::fs::remove_file(&file) {
                Ok(()) => Ok(true),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(err) => Err(err).with_context(|| format!("deleting {}", file.display())),
            }
        };
        match r {
            Ok(changed) => n += usize::from(changed),
            Err(err) => failed.push(format!("{err:#}")),
        }
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} file(s) not restored: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(n)
}

fn restore_file(saved: &Path, file: &Path, mtime_ns: u128) -> anyhow::Result<()> {
    // Rewrite in place: the file keeps its inode, owner and mode.
    let bytes =
        std::fs::read(saved).with_context(|| format!("reading saved {}", saved.display()))?;
    std::fs::write(file, bytes).with_context(|| format!("restoring {}", file.display()))?;
    let f = std::fs::OpenOptions::new().write(true).open(file)?;
    let mtime =
        SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(mtime_ns).unwrap_or(u64::MAX));
    f.set_modified(mtime)
        .with_context(|| format!("restoring the mtime of {}", file.display()))
}

/// Replays a journal that a killed run (SIGKILL, power loss) left in `dir` for `source`.
pub fn recover(dir: &Path, source: &Path) -> anyhow::Result<()> {
    let path = dir.join(JOURNAL);
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(());
    };
    let j: Journal =
        serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?;
    if j.source != source {
        anyhow::bail!(
            "{} is the journal of an interrupted build in {}, not {}: restore that tree first (run klp-build there \
             with this work dir), or use another --work-dir",
            path.display(),
            j.source.display(),
            source.display()
        );
    }
    let n = restore_entries(source, dir, &j.entries)?;
    eprintln!(
        "klp-build: restored {n} file(s) of {} left modified by an interrupted build",
        source.display()
    );
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mtime(p: &Path) -> SystemTime {
        std::fs::metadata(p).unwrap().modified().unwrap()
    }

    #[test]
    fn restores_content_mtime_and_deletes_new_files() {
        let tree = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tree.path().join("fs/proc")).unwrap();
        let c = tree.path().join("fs/proc/cmdline.c");
        std::fs::write(&c, "orig").unwrap();
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(&c)
            .unwrap()
            .set_modified(old)
            .unwrap();
        {
            let mut g = TreeGuard::new(tree.path(), &work.path().join("saved")).unwrap();
            g.save(Path::new("fs/proc/cmdline.c")).unwrap();
            g.save(Path::new("fs/proc/cmdline.o")).unwrap();
            std::fs::write(&c, "patched").unwrap();
            std::fs::write(tree.path().join("fs/proc/cmdline.o"), "obj").unwrap();
            std::fs::write(tree.path().join("fs/proc/.cmdline.o.d"), "d").unwrap();
            g.created(Path::new("fs/proc/.cmdline.o.d")).unwrap();
            // Saving again after the change keeps the first state.
            g.save(Path::new("fs/proc/cmdline.c")).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&c).unwrap(), "orig");
        assert_eq!(mtime(&c), old);
        assert!(!tree.path().join("fs/proc/cmdline.o").exists());
        assert!(!tree.path().join("fs/proc/.cmdline.o.d").exists());
        assert!(!work.path().join("saved").exists());
    }

    #[test]
    fn a_killed_runs_journal_is_replayed() {
        let tree = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let c = tree.path().join("x.c");
        std::fs::write(&c, "orig").unwrap();
        let dir = work.path().join("saved");
        let mut g = TreeGuard::new(tree.path(), &dir).unwrap();
        g.save(Path::new("x.c")).unwrap();
        std::fs::write(&c, "patched").unwrap();
        // SIGKILL: no destructor runs.
        std::mem::forget(g);
        assert!(recover(&dir, Path::new("/elsewhere"))
            .unwrap_err()
            .to_string()
            .contains("not /elsewhere"));
        recover(&dir, tree.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&c).unwrap(), "orig");
        assert!(!dir.exists());
        recover(&dir, tree.path()).unwrap(); // nothing left to do
    }
}
