//! Applying one patch with GNU `patch` to copies of the files it touches. Input: the patch file,
//! its parsed sections, the strip level and the copy root. Output: the copies, patched in place,
//! and a [`HunkWarning`] for each hunk applied with fuzz or at an offset. Invariant: `patch` only
//! ever sees the copy root, never the source tree; a hunk that does not apply is an error naming
//! the patch, the file, the hunk and what `patch` said.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

use super::parse::FileDiff;
use crate::progress::{self, Progress};

/// Which of `-p1` or `-p0` makes the patch's names exist in `source`, as `git apply` guesses for
/// a patch not made by git: `diff -u linux.orig/fs/x.c linux/fs/x.c` and `a/`/`b/` names are -p1,
/// `diff -u fs/x.c.orig fs/x.c` run at the tree's top is -p0. git's own patches are always -p1.
pub fn strip_level(files: &[FileDiff], source: &Path) -> usize {
    if files.iter().all(|f| f.git) {
        return 1;
    }
    let resolves = |p: usize| {
        files.iter().all(|f| {
            [&f.old, &f.new].iter().any(|n| {
                n.as_deref()
                    .and_then(|n| strip(n, p))
                    .is_some_and(|n| source.join(n).exists())
            })
        })
    };
    if !resolves(1) && resolves(0) {
        0
    } else {
        1
    }
}

/// `name` without its first `p` components, as `patch -pN` strips them.
pub fn strip(name: &str, p: usize) -> Option<String> {
    let mut rest = name;
    for _ in 0..p {
        rest = rest.split_once('/')?.1.trim_start_matches('/');
    }
    (!rest.is_empty()).then(|| rest.to_string())
}

/// The file a section patches, relative to the tree: the old name when it exists there (GNU
/// patch's rule for a `diff -u` pair of different names), else the new one.
pub fn target_name(f: &FileDiff, p: usize, source: &Path) -> Option<String> {
    let old = f.old.as_deref().and_then(|n| strip(n, p));
    let new = f.new.as_deref().and_then(|n| strip(n, p));
    match (old, new) {
        (Some(o), Some(n)) => Some(if source.join(&o).exists() || !source.join(&n).exists() {
            o
        } else {
            n
        }),
        (o, n) => o.or(n),
    }
}

/// A hunk that GNU patch applied, but not exactly where and as its header says: `Hunk #2
/// succeeded at 7 with fuzz 1 (offset 3 lines).` A backport written for another kernel version
/// applies this way, and a fuzzed hunk can land in the wrong place, so the user is told which hunk
/// and where to look.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct HunkWarning {
    /// The user's patch file.
    pub patch: PathBuf,
    /// The file the hunk patches, relative to the tree.
    pub file: PathBuf,
    /// The hunk's number within that file's section, from 1 (as GNU patch counts).
    pub hunk: usize,
    /// The hunk's `@@ -a,b +c,d @@ context` line, when the patch has it.
    pub header: String,
    /// The line of the file the hunk was applied at.
    pub line: usize,
    /// Context lines that patch ignored (0: the context matched).
    pub fuzz: usize,
    /// Lines between where the header says and where it applied (0: no offset).
    pub offset: i64,
    /// The applied copy of the file, kept in the work dir for the user to check.
    pub applied_copy: PathBuf,
}

impl std::fmt::Display for HunkWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut how = Vec::new();
        if self.fuzz > 0 {
            how.push(format!("with fuzz {}", self.fuzz));
        }
        if self.offset != 0 {
            how.push(format!("{} line(s) off", self.offset));
        }
        let header = if self.header.is_empty() {
            String::new()
        } else {
            format!(" `{}`", self.header)
        };
        write!(
            f,
            "{}: {}: hunk #{}{header} applied at line {} {}; check the result in {}",
            self.patch.display(),
            self.file.display(),
            self.hunk,
            self.line,
            how.join(", "),
            self.applied_copy.display()
        )
    }
}

/// Parses the rest of GNU patch's `Hunk #N succeeded at L[ with fuzz F][ (offset O lines)].`
/// after `Hunk #`: `(N, L, F, O)`.
fn parse_succeeded(rest: &str) -> Option<(usize, usize, usize, i64)> {
    let (number, rest) = rest.split_once(" succeeded at ")?;
    let number = number.trim().parse().ok()?;
    let digits = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .collect()
    };
    let line = digits(rest).parse().ok()?;
    let fuzz = match rest.split_once("with fuzz ") {
        Some((_, f)) => digits(f).parse().ok()?,
        None => 0,
    };
    let offset = match rest.split_once("(offset ") {
        Some((_, o)) => digits(o).parse().ok()?,
        None => 0,
    };
    Some((number, line, fuzz, offset))
}

/// Applies `filtered` (the patch's used sections) to the copies under `root` with `patch -pN`.
/// `patch_name` names the user's patch file in messages; `files` are its used sections with their
/// tree-relative names, for naming the hunk that failed. Returns the hunks applied with fuzz or
/// at an offset, each also a warning through `progress` as it is found (a later stage may fail,
/// and the user must still learn which hunk to check).
pub fn apply(
    filtered: &Path,
    patch_name: &Path,
    p: usize,
    root: &Path,
    files: &[(String, &FileDiff)],
    progress: &mut dyn Progress,
) -> anyhow::Result<Vec<HunkWarning>> {
    let mut cmd = Command::new("patch");
    cmd.arg(format!("-p{p}"))
        // -f: never ask (a patch that looks reversed is applied as written and fails loudly);
        // no backups; rejects next to the copy, where the error points.
        .args(["-f", "--no-backup-if-mismatch", "-i"])
        .arg(filtered)
        .arg("-d")
        .arg(root);
    progress.command(&progress::command_line(&cmd));
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .context("running GNU patch: install it (apt-get install patch)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut current: Option<&str> = None;
    let mut failures = Vec::new();
    let mut rejects = Vec::new();
    let mut warnings = Vec::new();
    for line in text.lines() {
        if let Some(f) = line.strip_prefix("patching file ") {
            current = Some(f.trim_matches(['\'', '"', '`']));
        } else if let Some(rest) = line.strip_prefix("Hunk #") {
            let number: usize = rest
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let file = current.unwrap_or("?");
            let header = files
                .iter()
                .find(|(name, _)| name == file)
                .and_then(|(_, f)| f.hunks.get(number.wrapping_sub(1)))
                .map_or(String::new(), |h| format!(" `{h}`"));
            if let Some((_, at)) = rest.split_once("FAILED") {
                failures.push(format!(
                    "{file}: hunk #{number}{header} failed{}",
                    at.trim_end_matches('.')
                ));
                if !rejects.contains(&file) {
                    rejects.push(file);
                }
            } else if let Some((number, line, fuzz, offset)) = parse_succeeded(rest) {
                if fuzz == 0 && offset == 0 {
                    continue;
                }
                let w = HunkWarning {
                    patch: patch_name.to_path_buf(),
                    file: PathBuf::from(file),
                    hunk: number,
                    header: header.trim().trim_matches('`').to_string(),
                    line,
                    fuzz,
                    offset,
                    applied_copy: root.join(file),
                };
                progress.warning(&w.to_string());
                warnings.push(w);
            }
        }
    }
    if !out.status.success() || !failures.is_empty() {
        let said = text
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n");
        let what = if failures.is_empty() {
            "it does not apply".to_string()
        } else {
            failures.join("\n  ")
        };
        let rejects = if rejects.is_empty() {
            String::new()
        } else {
            let files: Vec<String> = rejects
                .iter()
                .map(|f| root.join(format!("{f}.rej")).display().to_string())
                .collect();
            format!("; the rejected hunks are in {}", files.join(", "))
        };
        bail!(
            "{} does not apply to the source tree:\n  {what}\n  patch said:\n{said}\n  make sure --source is the tree the \
             patch was written for (and that it is not applied already){rejects}",
            patch_name.display(),
        );
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_patch_s_hunk_lines() {
        assert_eq!(
            parse_succeeded("1 succeeded at 7 with fuzz 1 (offset 3 lines)."),
            Some((1, 7, 1, 3))
        );
        assert_eq!(
            parse_succeeded("2 succeeded at 40 (offset -2 lines)."),
            Some((2, 40, 0, -2))
        );
        assert_eq!(
            parse_succeeded("3 succeeded at 12 with fuzz 2."),
            Some((3, 12, 2, 0))
        );
        assert_eq!(parse_succeeded("1 FAILED at 7."), None);
    }

    #[test]
    fn strips_components() {
        assert_eq!(
            strip("a/fs/proc/cmdline.c", 1).as_deref(),
            Some("fs/proc/cmdline.c")
        );
        assert_eq!(
            strip("fs/proc/cmdline.c", 0).as_deref(),
            Some("fs/proc/cmdline.c")
        );
        assert_eq!(strip("cmdline.c", 1), None);
    }
}
