//! Stage 1, patch: diffs -> [`PatchSet`]: the fixes (name, sha256, subject) and every file they
//! touch, as an original copy and a patched copy with `#line` directives, under
//! `<work>/1-patch/`. Invariant: the source tree is only read; files that cannot be livepatched
//! (.S, vDSO, boot code, build files, new files) are all reported in one error, each with what
//! to do; files outside the x86_64 kernel (Documentation/, tools/, other arches) are skipped and
//! said so.

mod apply;
mod author_headers;
pub mod line_directives;
mod parse;
pub mod refuse;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

use refuse::{Change, FileVerdict};

use crate::progress::Progress;

/// The result of the patch stage.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PatchSet {
    /// The patches, in the order given (and applied).
    pub fixes: Vec<Fix>,
    /// Every file the patches change, in order of first appearance; empty when they change no
    /// file compiled into the kernel.
    pub files: Vec<TouchedFile>,
    /// Hunks that GNU patch applied with fuzz or at an offset, for the report: the result may not
    /// be what the patch's author meant (a fuzzed hunk can land in the wrong function).
    pub warnings: Vec<HunkWarning>,
}

pub use apply::HunkWarning;

/// One fix: a patch file, as the report, the manifest and `check` name it.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Fix {
    /// The file stem (`0001-proc-fix` for `0001-proc-fix.patch`).
    pub name: String,
    /// sha256 of the patch file's bytes, lower-case hex.
    pub sha256: String,
    /// The mail `Subject:` without `[PATCH ...]`, else the first line.
    pub subject: String,
}

/// One file the patches change.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TouchedFile {
    /// Relative to the source tree (`fs/proc/cmdline.c`).
    pub path: PathBuf,
    /// A copy of the tree's original, under `<work>/1-patch/orig/`.
    pub orig: PathBuf,
    /// The patched file with `#line` directives, under `<work>/1-patch/patched/`.
    pub patched: PathBuf,
}

/// One patch, parsed, with the sections to apply.
struct Planned {
    path: PathBuf,
    text: String,
    strip: usize,
    parsed: parse::ParsedPatch,
    /// Indexes into `parsed.files` of the used sections, with their tree-relative names.
    used: Vec<(String, usize)>,
    /// Files of the patch not compiled into the x86_64 kernel, with why.
    skipped: Vec<(String, &'static str)>,
}

/// What the patches would do to the tree, read without writing anything: for `--dry-run`.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct PatchPlan {
    /// The fixes, in `--diff` order.
    pub fixes: Vec<Fix>,
    /// The files the build would patch and compile, in order of first appearance.
    pub files: Vec<PlannedFile>,
    /// The files it would leave alone (documentation, tools, other architectures).
    pub skipped: Vec<SkippedFile>,
}

/// A file the build would patch.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct PlannedFile {
    /// Relative to the source tree.
    pub path: PathBuf,
    /// The fixes (by name) that change it.
    pub fixes: Vec<String>,
}

/// A file of a patch that the build leaves alone.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct SkippedFile {
    /// The fix (by name) whose patch changes it.
    pub fix: String,
    /// Relative to the source tree.
    pub path: PathBuf,
    /// Why it is left alone.
    pub why: String,
}

impl SkippedFile {
    /// The line the build says about it.
    pub fn message(&self) -> String {
        format!(
            "{}: skipping {} ({})",
            self.fix,
            self.path.display(),
            self.why
        )
    }
}

/// Reads, parses and classifies `diffs` against the tree at `source` without writing anything:
/// an unreadable, empty or binary patch, and every change that cannot be livepatched (a deleted,
/// renamed or binary file, `.S`, ...), is an error naming the patch and the file. The plan calls it
/// before the tree is prepared, so a bad patch fails in milliseconds and leaves the tree as it was.
/// Returns what the patches would do.
pub fn validate(diffs: &[PathBuf], source: &Path) -> anyhow::Result<PatchPlan> {
    let c = check_patches(diffs, source)?;
    let files = c
        .touched
        .iter()
        .map(|name| PlannedFile {
            path: PathBuf::from(name),
            fixes: c
                .planned
                .iter()
                .zip(&c.fixes)
                .filter(|(p, _)| p.used.iter().any(|(n, _)| n == name))
                .map(|(_, f)| f.name.clone())
                .collect(),
        })
        .collect();
    Ok(PatchPlan {
        files,
        skipped: c.skipped(),
        fixes: c.fixes,
    })
}

/// The patches read, parsed and classified.
struct Checked {
    fixes: Vec<Fix>,
    planned: Vec<Planned>,
    touched: Vec<String>,
}

impl Checked {
    /// Every file a patch changes that the build leaves alone.
    fn skipped(&self) -> Vec<SkippedFile> {
        self.planned
            .iter()
            .zip(&self.fixes)
            .flat_map(|(p, f)| {
                p.skipped.iter().map(|(path, why)| SkippedFile {
                    fix: f.name.clone(),
                    path: PathBuf::from(path),
                    why: why.to_string(),
                })
            })
            .collect()
    }
}

fn check_patches(diffs: &[PathBuf], source: &Path) -> anyhow::Result<Checked> {
    let mut fixes = Vec::new();
    let mut planned = Vec::new();
    let mut refusals = Vec::new();
    let mut touched: Vec<String> = Vec::new();
    for diff in diffs {
        let (fix, p, mut refused) = read_one(diff, source)?;
        fixes.push(fix);
        refusals.append(&mut refused);
        for (name, _) in &p.used {
            if !touched.contains(name) {
                touched.push(name.clone());
            }
        }
        planned.push(p);
    }
    if !refusals.is_empty() {
        bail!(
            "{} change(s) cannot be livepatched:\n  {}",
            refusals.len(),
            refusals.join("\n  ")
        );
    }

    Ok(Checked {
        fixes,
        planned,
        touched,
    })
}

/// Applies `diffs` in order to copies of the files they touch under `stage_dir` (the work dir's
/// `1-patch/`; the tree itself is never written). Skipped files, GNU patch's command lines and
/// hunks applied with fuzz are said through `progress`.
pub fn run(
    diffs: &[PathBuf],
    source: &Path,
    stage_dir: &Path,
    progress: &mut dyn Progress,
) -> anyhow::Result<PatchSet> {
    let checked = check_patches(diffs, source)?;
    for s in checked.skipped() {
        progress.note(&s.message());
    }
    let Checked {
        fixes,
        planned,
        touched,
    } = checked;
    let stage = stage_dir.to_path_buf();
    if stage.exists() {
        std::fs::remove_dir_all(&stage).with_context(|| format!("clearing {}", stage.display()))?;
    }

    let orig_root = stage.join("orig");
    let applied_root = stage.join("applied");
    let patched_root = stage.join("patched");
    for name in &touched {
        for root in [&orig_root, &applied_root] {
            let to = root.join(name);
            create_parent(&to)?;
            std::fs::copy(source.join(name), &to).with_context(|| {
                format!(
                    "copying {} to {}",
                    source.join(name).display(),
                    to.display()
                )
            })?;
        }
    }
    let mut warnings = Vec::new();
    let diffs_dir = stage.join("diffs");
    std::fs::create_dir_all(&diffs_dir)
        .with_context(|| format!("creating {}", diffs_dir.display()))?;
    for (n, p) in planned.iter().enumerate() {
        if p.used.is_empty() {
            continue;
        }
        // Only the used sections go to `patch`: a Documentation/ hunk that does not apply to
        // this tree must not fail the build.
        let filtered = p.used_text();
        let file = diffs_dir.join(format!("{:02}-{}.patch", n + 1, fixes[n].name));
        std::fs::write(&file, filtered).with_context(|| format!("writing {}", file.display()))?;
        let sections: Vec<(String, &parse::FileDiff)> = p
            .used
            .iter()
            .map(|(name, i)| (name.clone(), &p.parsed.files[*i]))
            .collect();
        warnings.extend(apply::apply(
            &file,
            &p.path,
            p.strip,
            &applied_root,
            &sections,
            progress,
        )?);
    }

    let mut files = Vec::new();
    for name in &touched {
        let orig = orig_root.join(name);
        let applied = applied_root.join(name);
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .with_context(|| format!("reading {} (not UTF-8 text?)", p.display()))
        };
        let text = line_directives::inject(&read(&orig)?, &read(&applied)?);
        let text = author_headers::point_at_copies(&text, &stage.join("include"), source)?;
        let patched = patched_root.join(name);
        create_parent(&patched)?;
        std::fs::write(&patched, text).with_context(|| format!("writing {}", patched.display()))?;
        files.push(TouchedFile {
            path: PathBuf::from(name),
            orig,
            patched,
        });
    }
    Ok(PatchSet {
        fixes,
        files,
        warnings,
    })
}

/// Reads and classifies one patch against `source`: its [`Fix`], the sections the build uses
/// (with their tree-relative names) and what cannot be livepatched, each naming the patch.
/// Sections outside the x86_64 kernel are skipped (and listed in the result).
fn read_one(diff: &Path, source: &Path) -> anyhow::Result<(Fix, Planned, Vec<String>)> {
    let bytes = std::fs::read(diff).with_context(|| format!("reading patch {}", diff.display()))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let parsed = parse::parse(&text).with_context(|| format!("{}: not a patch", diff.display()))?;
    let fix = Fix {
        name: diff.file_stem().map_or_else(
            || diff.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        ),
        sha256: Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        // A plain diff has no subject: its file name says more than its first `---` line.
        subject: if parsed.subject.is_empty() {
            diff.file_name().map_or_else(
                || diff.display().to_string(),
                |s| s.to_string_lossy().into_owned(),
            )
        } else {
            parsed.subject.clone()
        },
    };
    let strip = apply::strip_level(&parsed.files, source);
    let mut used = Vec::new();
    let mut skipped = Vec::new();
    let mut refusals = Vec::new();
    for (i, f) in parsed.files.iter().enumerate() {
        let change = if f.binary {
            Change::Binary
        } else if f.renamed {
            Change::Rename
        } else if f.old.is_none() {
            Change::Create
        } else if f.new.is_none() {
            Change::Delete
        } else {
            Change::Modify
        };
        let Some(name) = apply::target_name(f, strip, source) else {
            refusals.push(format!(
                "{}: section {} names no file",
                diff.display(),
                i + 1
            ));
            continue;
        };
        if f.hunks.is_empty() && change == Change::Modify {
            continue; // a mode change: nothing to compile
        }
        match refuse::verdict(Path::new(&name), change) {
            FileVerdict::Use if !source.join(&name).is_file() => refusals.push(format!(
                "{}: {name}: no such file in {} (tried -p{strip}); is --source the tree the patch was written for?",
                diff.display(),
                source.display()
            )),
            FileVerdict::Use => used.push((name, i)),
            FileVerdict::Ignore(why) => skipped.push((name, why)),
            FileVerdict::Refuse(what) => refusals.push(format!("{}: {name}: {what}", diff.display())),
        }
    }
    let planned = Planned {
        path: diff.to_path_buf(),
        text,
        strip,
        parsed,
        used,
        skipped,
    };
    Ok((fix, planned, refusals))
}

impl Planned {
    /// The used sections only, as one patch text: a Documentation/ hunk that does not apply to
    /// this tree must not fail the build.
    fn used_text(&self) -> String {
        let lines: Vec<&str> = self.text.lines().collect();
        let mut filtered = String::new();
        for (_, i) in &self.used {
            for l in lines
                .get(self.parsed.files[*i].lines.clone())
                .unwrap_or_default()
            {
                filtered.push_str(l);
                filtered.push('\n');
            }
        }
        filtered
    }
}

/// One patch as a release's scan sees it against one tree: its fix, the files the build would
/// compile from it, the strip level, the used sections as patch text, and why it cannot be
/// livepatched there (empty when it can).
#[derive(Debug, Clone)]
pub struct ScannedPatch {
    /// The fix (name, sha256, subject).
    pub fix: Fix,
    /// `patch -pN`.
    pub strip: usize,
    /// Tree-relative names of the files the used sections patch.
    pub files: Vec<String>,
    /// The used sections, as one patch.
    pub text: String,
    /// Refusals, each naming the patch and file.
    pub refusals: Vec<String>,
}

/// Reads `diff` against `source` as the patch stage would, without writing anything.
pub fn scan(diff: &Path, source: &Path) -> anyhow::Result<ScannedPatch> {
    let (fix, p, refusals) = read_one(diff, source)?;
    Ok(ScannedPatch {
        fix,
        strip: p.strip,
        files: p.used.iter().map(|(n, _)| n.clone()).collect(),
        text: p.used_text(),
        refusals,
    })
}

/// Creates the parent dir of `file`, saying which on failure.
fn create_parent(file: &Path) -> anyhow::Result<()> {
    match file.parent() {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
        }
        None => Ok(()),
    }
}
