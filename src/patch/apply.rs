//! Applying one patch with GNU `patch` to copies of the files it touches. Input: the patch file,
//! its parsed sections, the strip level and the copy root. Output: the copies, patched in place.
//! Invariant: `patch` only ever sees the copy root, never the source tree; a hunk that does not
//! apply is an error naming the patch, the file, the hunk and what `patch` said.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

use super::parse::FileDiff;

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

/// Applies `filtered` (the patch's used sections) to the copies under `root` with `patch -pN`.
/// `patch_name` names the user's patch file in messages; `files` are its used sections with their
/// tree-relative names, for naming the hunk that failed.
pub fn apply(
    filtered: &Path,
    patch_name: &Path,
    p: usize,
    root: &Path,
    files: &[(String, &FileDiff)],
) -> anyhow::Result<()> {
    let out = Command::new("patch")
        .arg(format!("-p{p}"))
        // -f: never ask (a patch that looks reversed is applied as written and fails loudly);
        // no backups; rejects next to the copy, where the error points.
        .args(["-f", "--no-backup-if-mismatch", "-i"])
        .arg(filtered)
        .arg("-d")
        .arg(root)
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
            } else if rest.contains("fuzz") {
                eprintln!(
                    "klp-build: warning: {}: {file}: hunk #{number}{header} applied with fuzz ({}); check the result in {}",
                    patch_name.display(),
                    line.trim(),
                    root.join(file).display()
                );
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
