//! The work dir: one numbered folder per stage (`1-patch 2-rebuild 3-diff 4-objects 5-kmod`), a
//! `.complete` marker per finished stage holding the stage's value, and an exclusive lock for the
//! whole run. Input: `--work-dir`, `--resume-from` and the run's inputs. Output: [`WorkDir`].
//! Invariant: the lock is taken before anything in the dir is removed, so two runs never clear
//! each other's files; a directory klp-build did not make is never cleared; a stage is reused only
//! when its marker exists and the kept dir was made from the same inputs.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The stages that own a folder, in pipeline order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Copies of the touched files, patched, with `#line` directives.
    #[value(skip)]
    Patch,
    /// The original and patched objects.
    Rebuild,
    /// The diff report.
    Diff,
    /// The output objects, resolved. (Not a `--resume-from` point: the stages after the rebuild
    /// take seconds and are always redone from the reused objects.)
    #[value(skip)]
    Objects,
    /// The module's kbuild dir.
    #[value(skip)]
    Kmod,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 5] = [
        Stage::Patch,
        Stage::Rebuild,
        Stage::Diff,
        Stage::Objects,
        Stage::Kmod,
    ];

    /// The folder name.
    pub fn dir_name(self) -> &'static str {
        match self {
            Stage::Patch => "1-patch",
            Stage::Rebuild => "2-rebuild",
            Stage::Diff => "3-diff",
            Stage::Objects => "4-objects",
            Stage::Kmod => "5-kmod",
        }
    }

    /// The name `--resume-from` takes.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Patch => "patch",
            Stage::Rebuild => "rebuild",
            Stage::Diff => "diff",
            Stage::Objects => "objects",
            Stage::Kmod => "kmod",
        }
    }
}

/// Marks a directory as klp-build's own: only such a directory is ever cleared.
const OWNER_MARKER: &str = ".klp-build-work";
/// Held (flock) for the whole run.
const LOCK_FILE: &str = ".lock";
/// What the kept stages were made from.
const INPUTS_FILE: &str = ".inputs.json";
/// A finished stage's value, in its folder.
const COMPLETE: &str = ".complete";

/// What a run's stages depend on; a kept work dir is reused only for equal inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// klp-build's version (the value layouts may change between versions).
    pub tool_version: String,
    /// sha256 of each patch, in order.
    pub diffs: Vec<String>,
    /// The source tree.
    pub source: PathBuf,
    /// sha256 of the target's config.
    pub config: String,
}

/// The locked work dir of one run.
#[derive(Debug)]
pub struct WorkDir {
    root: PathBuf,
    resume_from: Option<Stage>,
    _lock: File,
}

/// A work dir that exists must be empty or made by klp-build (its marker file): klp-build clears
/// stages in it and never removes what it did not make.
pub fn check_owned(root: &Path) -> anyhow::Result<()> {
    if root.is_dir() {
        let mut entries =
            std::fs::read_dir(root).with_context(|| format!("--work-dir {}", root.display()))?;
        if entries.next().is_some() && !root.join(OWNER_MARKER).exists() {
            bail!(
                "--work-dir {}: holds files klp-build did not make, which it never clears; choose an empty \
                 directory or one klp-build made before (the default, klp-tmp)",
                root.display()
            );
        }
    }
    Ok(())
}

impl WorkDir {
    /// Opens (creating) `root` for a run; see the module doc. With `resume_from`, the stages
    /// before it must be complete and are kept; everything from it on is cleared.
    pub fn open(
        root: &Path,
        resume_from: Option<Stage>,
        inputs: &Inputs,
    ) -> anyhow::Result<WorkDir> {
        check_owned(root)?;
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating --work-dir {}", root.display()))?;
        let lock = lock(root)?;
        std::fs::write(root.join(OWNER_MARKER), "")
            .with_context(|| format!("writing in --work-dir {}", root.display()))?;
        let dir = WorkDir {
            root: root.to_path_buf(),
            resume_from,
            _lock: lock,
        };
        if let Some(from) = resume_from {
            dir.check_resumable(from, inputs)?;
        }
        for s in Stage::ALL {
            if resume_from.is_none_or(|from| s >= from) {
                let d = dir.root.join(s.dir_name());
                if d.exists() {
                    std::fs::remove_dir_all(&d)
                        .with_context(|| format!("clearing {}", d.display()))?;
                }
            }
        }
        write_json(&dir.root.join(INPUTS_FILE), inputs)?;
        Ok(dir)
    }

    fn check_resumable(&self, from: Stage, inputs: &Inputs) -> anyhow::Result<()> {
        let path = self.root.join(INPUTS_FILE);
        let kept: Inputs = read_json(&path).with_context(|| {
            format!(
                "--resume-from {}: {} holds no finished run; run once with --keep-tmp first",
                from.name(),
                self.root.display()
            )
        })?;
        let differs = if kept.tool_version != inputs.tool_version {
            Some(format!("another klp-build ({})", kept.tool_version))
        } else if kept.diffs != inputs.diffs {
            Some("other patches (their sha256 differ)".to_string())
        } else if kept.source != inputs.source {
            Some(format!("another source tree ({})", kept.source.display()))
        } else if kept.config != inputs.config {
            Some("another config".to_string())
        } else {
            None
        };
        if let Some(d) = differs {
            bail!(
                "--resume-from {}: the work dir {} was made by {d}; run without --resume-from",
                from.name(),
                self.root.display()
            );
        }
        for s in Stage::ALL.iter().filter(|s| **s < from) {
            if !self.root.join(s.dir_name()).join(COMPLETE).is_file() {
                bail!(
                    "--resume-from {}: stage {} did not complete in {} (no {}/{COMPLETE}); resume from an earlier \
                     stage, or run without --resume-from",
                    from.name(),
                    s.name(),
                    self.root.display(),
                    s.dir_name()
                );
            }
        }
        Ok(())
    }

    /// The work dir itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of `stage`, created.
    pub fn dir(&self, stage: Stage) -> anyhow::Result<PathBuf> {
        let d = self.root.join(stage.dir_name());
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        Ok(d)
    }

    /// The value a kept stage left, when the run resumes after it.
    pub fn reused<T: DeserializeOwned>(&self, stage: Stage) -> anyhow::Result<Option<T>> {
        match self.resume_from {
            Some(from) if stage < from => {
                let path = self.root.join(stage.dir_name()).join(COMPLETE);
                read_json(&path).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Marks `stage` complete with its value.
    pub fn complete<T: Serialize>(&self, stage: Stage, value: &T) -> anyhow::Result<()> {
        write_json(&self.dir(stage)?.join(COMPLETE), value)
    }

    /// Removes the work dir (after a successful run without `--keep-tmp`), lock and all.
    pub fn remove(self) -> anyhow::Result<()> {
        std::fs::remove_dir_all(&self.root)
            .with_context(|| format!("removing the work dir {}", self.root.display()))
    }
}

fn lock(root: &Path) -> anyhow::Result<File> {
    let path = root.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening the work dir lock {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => bail!(
            "--work-dir {}: another klp-build run is using it; wait for it, or pass another --work-dir",
            root.display()
        ),
        Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// Writes JSON through a temporary file and a rename, so a marker is whole or absent.
fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let json = serde_json::to_vec_pretty(value)?;
    std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

fn read_json<T: DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let bytes = crate::input::read(path, crate::input::Kind::Tree, "")?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: malformed", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            tool_version: "0.1.0".into(),
            diffs: vec!["ab".into()],
            source: PathBuf::from("/src"),
            config: "cd".into(),
        }
    }

    #[test]
    fn a_foreign_directory_is_never_cleared() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("notes.txt"), "mine").unwrap();
        let e = WorkDir::open(d.path(), None, &inputs())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("klp-build did not make") && e.contains("choose an empty directory"),
            "{e}"
        );
        assert!(d.path().join("notes.txt").exists());
    }

    #[test]
    fn a_second_run_on_a_locked_work_dir_is_refused_and_clears_nothing() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("w");
        let first = WorkDir::open(&root, None, &inputs()).unwrap();
        first.complete(Stage::Patch, &1u32).unwrap();
        let e = WorkDir::open(&root, None, &inputs())
            .unwrap_err()
            .to_string();
        assert!(e.contains("another klp-build run is using it"), "{e}");
        assert!(
            root.join("1-patch").join(COMPLETE).is_file(),
            "the running stage's files stay"
        );
    }

    #[test]
    fn resume_reuses_completed_stages_and_clears_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("w");
        {
            let w = WorkDir::open(&root, None, &inputs()).unwrap();
            w.complete(Stage::Patch, &"patched").unwrap();
            w.complete(Stage::Rebuild, &"built").unwrap();
            w.complete(Stage::Diff, &"diffed").unwrap();
        }
        let w = WorkDir::open(&root, Some(Stage::Diff), &inputs()).unwrap();
        assert_eq!(
            w.reused::<String>(Stage::Patch).unwrap().as_deref(),
            Some("patched")
        );
        assert_eq!(
            w.reused::<String>(Stage::Rebuild).unwrap().as_deref(),
            Some("built")
        );
        assert_eq!(w.reused::<String>(Stage::Diff).unwrap(), None);
        assert!(
            !root.join("3-diff").exists(),
            "the resumed stage starts clean"
        );
    }

    #[test]
    fn resume_refuses_missing_markers_and_other_inputs() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("w");
        {
            let w = WorkDir::open(&root, None, &inputs()).unwrap();
            w.complete(Stage::Patch, &"patched").unwrap();
        }
        let e = WorkDir::open(&root, Some(Stage::Diff), &inputs())
            .unwrap_err()
            .to_string();
        assert!(e.contains("stage rebuild did not complete"), "{e}");
        let mut other = inputs();
        other.diffs = vec!["ff".into()];
        let e = WorkDir::open(&root, Some(Stage::Rebuild), &other)
            .unwrap_err()
            .to_string();
        assert!(e.contains("other patches"), "{e}");
        let e = WorkDir::open(&d.path().join("none"), Some(Stage::Rebuild), &inputs())
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds no finished run"), "{e}");
    }
}
