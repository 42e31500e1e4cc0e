//! Putting the source tree back. Input: the tree files the build is about to change (sources it
//! swaps the patched copies into, the `.o`/`.cmd`/`.d` files kbuild writes) and the makes it runs.
//! Output: each file as it was (content, mode and mtime), or gone when it did not exist.
//! Invariant: a file's original is saved, and the journal naming it written, before the tree
//! changes; the journal also names the tag of the make that is running (see `child`). The guard
//! restores on drop (error, panic, Ctrl-C). The journal and the saved files live in the tree
//! itself (`<tree>/.klp-build-saved/`, paths relative to the tree), never in the work dir: a
//! journal left by a killed run (SIGKILL, power loss) belongs to its tree, and the next build on
//! that tree, with any work dir and by any path to the tree (moved, bind-mounted, symlinked),
//! first stops the killed run's make and then replays it.

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{child, interrupt};
use crate::progress::Progress;

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

/// What a run changes in its tree, written before each change. Nothing in it depends on where
/// the tree is: a moved tree's journal still applies.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Journal {
    /// Where the tree was when the journal was written; only said in messages.
    #[serde(default, alias = "source")]
    written_in: Option<PathBuf>,
    /// The tag of the make that was running (`child::TAG_VAR`), if any.
    #[serde(default)]
    make_tag: Option<String>,
    entries: Vec<Entry>,
}

/// Restores the tree on drop; see the module doc.
#[derive(Debug)]
pub struct TreeGuard {
    source: PathBuf,
    dir: PathBuf,
    entries: Vec<Entry>,
    make_tag: Option<String>,
    done: bool,
    _defer: interrupt::Defer,
}

const JOURNAL: &str = "journal.json";

impl TreeGuard {
    /// A guard for `source` keeping its journal and saved files under `dir` (in the tree). Fails
    /// with [`interrupt::Interrupted`] when a signal came before anything was changed.
    pub fn new(source: &Path, dir: &Path) -> anyhow::Result<TreeGuard> {
        let defer = interrupt::Defer::start();
        interrupt::check("before the build changed the tree")?;
        let files = dir.join("files");
        std::fs::create_dir_all(&files).with_context(|| format!("creating {}", files.display()))?;
        let g = TreeGuard {
            source: source.to_path_buf(),
            dir: dir.to_path_buf(),
            entries: Vec::new(),
            make_tag: None,
            done: false,
            _defer: defer,
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
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                std::fs::copy(&file, &to)
                    .with_context(|| format!("saving {} to {}", file.display(), to.display()))?;
                let mtime = meta
                    .modified()
                    .with_context(|| format!("reading the mtime of {}", file.display()))?
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

    /// Journals `tag` as the make about to run (before it is started), or none (`None`, once it
    /// has ended): a run killed meanwhile leaves the tag for the next run to stop that make.
    pub fn running_make(&mut self, tag: Option<&str>) -> anyhow::Result<()> {
        self.make_tag = tag.map(str::to_string);
        self.write_journal()
    }

    fn write_journal(&self) -> anyhow::Result<()> {
        let j = Journal {
            written_in: Some(self.source.clone()),
            make_tag: self.make_tag.clone(),
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
        if self.done {
            return;
        }
        match self.restore() {
            Ok(n) if interrupt::interrupted() => {
                eprintln!("klp-build: interrupted; restored {n} file(s) of {}", self.source.display())
            }
            Ok(_) => {}
            Err(e) => eprintln!(
                "klp-build: error: restoring {}: {e:#}\n  the original files are saved in {}; the next build on \
                 this tree restores them from {}",
                self.source.display(),
                self.dir.display(),
                self.dir.join(JOURNAL).display()
            ),
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
    let mtime =
        SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(mtime_ns).unwrap_or(u64::MAX));
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .and_then(|f| f.set_modified(mtime))
        .with_context(|| format!("restoring the mtime of {}", file.display()))
}

/// A journal entry must name a file inside the tree: a damaged journal must not make the replay
/// write or delete anything else.
fn inside_tree(p: &Path) -> bool {
    p.components().next().is_some() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Replays a journal that a killed run (SIGKILL, power loss) left in `dir`, the saved-files dir
/// inside `source`: stops that run's make if it still runs, then puts the files back. The
/// journal's paths are relative to the tree, so it is replayed wherever the tree is now.
pub fn recover(dir: &Path, source: &Path, progress: &mut dyn Progress) -> anyhow::Result<()> {
    let path = dir.join(JOURNAL);
    let _defer = interrupt::Defer::start();
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Killed between creating the dir and writing the first journal: nothing changed.
            if dir.exists() {
                std::fs::remove_dir_all(dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
            }
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let j: Journal = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "reading {}: not a journal of klp-build; restore the tree's files from {} by hand, then remove {}",
            path.display(),
            dir.join("files").display(),
            dir.display()
        )
    })?;
    if let Some(bad) = j.entries.iter().find(|e| !inside_tree(&e.path)) {
        anyhow::bail!(
            "{}: names {}, which is not a file inside the tree: the journal is damaged; restore the tree's files \
             from {} by hand, then remove {}",
            path.display(),
            bad.path.display(),
            dir.join("files").display(),
            dir.display()
        );
    }
    if let Some(tag) = &j.make_tag {
        child::stop_tagged(tag, source, progress)?;
    }
    let n = restore_entries(source, dir, &j.entries)?;
    let moved = match &j.written_in {
        Some(was) if was != source => {
            format!(" (journaled when it was reached as {})", was.display())
        }
        _ => String::new(),
    };
    progress.note(&format!(
        "restored {n} file(s) of {}{moved} left modified by an interrupted build",
        source.display()
    ));
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Quiet;

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
    fn a_killed_runs_journal_is_replayed_in_the_moved_tree() {
        let top = tempfile::tempdir().unwrap();
        let tree = top.path().join("linux");
        std::fs::create_dir_all(tree.join("fs")).unwrap();
        let c = tree.join("fs/x.c");
        std::fs::write(&c, "orig").unwrap();
        let mut g = TreeGuard::new(&tree, &tree.join(".saved")).unwrap();
        g.save(Path::new("fs/x.c")).unwrap();
        std::fs::write(&c, "patched").unwrap();
        // SIGKILL: no destructor runs.
        std::mem::forget(g);
        let moved = top.path().join("linux-moved");
        std::fs::rename(&tree, &moved).unwrap();
        recover(&moved.join(".saved"), &moved, &mut Quiet).unwrap();
        assert_eq!(
            std::fs::read_to_string(moved.join("fs/x.c")).unwrap(),
            "orig"
        );
        assert!(!moved.join(".saved").exists());
        recover(&moved.join(".saved"), &moved, &mut Quiet).unwrap(); // nothing left to do
    }

    #[test]
    fn a_journal_naming_a_file_outside_the_tree_is_refused() {
        let top = tempfile::tempdir().unwrap();
        let tree = top.path().join("linux");
        let saved = tree.join(".saved");
        std::fs::create_dir_all(&saved).unwrap();
        std::fs::write(top.path().join("victim"), "keep").unwrap();
        for bad in ["../victim", "/etc/passwd", ""] {
            let j = format!(r#"{{"entries":[{{"path":"{bad}","existed":false,"mtime_ns":0}}]}}"#);
            std::fs::write(saved.join(JOURNAL), j).unwrap();
            let e = recover(&saved, &tree, &mut Quiet).unwrap_err().to_string();
            assert!(e.contains("not a file inside the tree"), "{bad}: {e}");
        }
        assert!(top.path().join("victim").exists());
    }

    #[test]
    fn a_journal_of_the_old_format_is_still_replayed() {
        let tree = tempfile::tempdir().unwrap();
        let saved = tree.path().join(".saved");
        std::fs::create_dir_all(&saved).unwrap();
        std::fs::write(tree.path().join("x.o"), "stale").unwrap();
        // The restore half: a patched source file whose original the old run saved.
        std::fs::create_dir_all(tree.path().join("fs")).unwrap();
        std::fs::write(tree.path().join("fs/x.c"), "patched").unwrap();
        std::fs::create_dir_all(saved.join("files/fs")).unwrap();
        std::fs::write(saved.join("files/fs/x.c"), "original").unwrap();
        let mtime_ns: u64 = 1_000_000 * 1_000_000_000;
        let j = format!(
            r#"{{"source":"/old/place","entries":[{{"path":"x.o","existed":false,"mtime_ns":0}},{{"path":"fs/x.c","existed":true,"mtime_ns":{mtime_ns}}}]}}"#
        );
        std::fs::write(saved.join(JOURNAL), j).unwrap();
        recover(&saved, tree.path(), &mut Quiet).unwrap();
        assert!(!tree.path().join("x.o").exists(), "the new file is deleted");
        let c = tree.path().join("fs/x.c");
        assert_eq!(std::fs::read_to_string(&c).unwrap(), "original");
        assert_eq!(
            mtime(&c),
            SystemTime::UNIX_EPOCH + Duration::from_nanos(mtime_ns),
            "the original's mtime is restored, so make does not rebuild from it"
        );
        assert!(
            !saved.exists(),
            "the journal dir is removed after the replay"
        );
    }
}
