//! Unified diff headers: which files a patch touches, how, and where each file's section and
//! hunks are. Input: the text of a patch (`git format-patch`, `git diff`, `diff -u`). Output:
//! [`ParsedPatch`]. Invariant: hunk bodies are skipped by their line counts, so a removed line that
//! reads `-- foo` is never taken for a `--- ` header.

use anyhow::bail;

/// One file's section of a patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDiff {
    /// The name on the `--- ` line (or `diff --git` line), `None` for `/dev/null`.
    pub old: Option<String>,
    /// The name on the `+++ ` line, `None` for `/dev/null`.
    pub new: Option<String>,
    /// From a `diff --git` header (its names always carry the `a/` and `b/` prefixes).
    pub git: bool,
    /// A git rename or copy (`rename from`, `copy from`).
    pub renamed: bool,
    /// A binary change (`GIT binary patch`, `Binary files ... differ`).
    pub binary: bool,
    /// The hunk headers, in order (`@@ -7,6 +7,7 @@ static int ...`).
    pub hunks: Vec<String>,
    /// The section's lines in the patch, `start..end` (0-based, end exclusive).
    pub lines: std::ops::Range<usize>,
}

/// A parsed patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPatch {
    /// The `Subject:` of a mail-formatted patch without its `[PATCH ...]` tag, else the first line.
    pub subject: String,
    /// The file sections, in patch order.
    pub files: Vec<FileDiff>,
}

/// A name on a `---`/`+++` line: drops the timestamp that `diff -u` appends after a tab, and the
/// quotes git puts around unusual names.
fn header_name(rest: &str) -> Option<String> {
    let name = rest.split('\t').next().unwrap_or(rest).trim_end();
    let name = name
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(name);
    (name != "/dev/null").then(|| name.to_string())
}

/// `@@ -a[,b] +c[,d] @@` -> (b, d): the line counts of the hunk body.
fn hunk_counts(line: &str) -> Option<(usize, usize)> {
    let rest = line.strip_prefix("@@ -")?;
    let (ranges, _) = rest.split_once(" @@")?;
    let (old, new) = ranges.split_once(" +")?;
    let count = |r: &str| -> Option<usize> {
        match r.split_once(',') {
            Some((_, n)) => n.parse().ok(),
            None => r.parse::<usize>().ok().map(|_| 1),
        }
    };
    Some((count(old)?, count(new)?))
}

fn subject(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.is_empty() {
            break; // end of the mail header
        }
        if let Some(s) = line.strip_prefix("Subject:") {
            let mut s = s.trim().to_string();
            for cont in lines[i + 1..]
                .iter()
                .take_while(|l| l.starts_with(' ') || l.starts_with('\t'))
            {
                s.push(' ');
                s.push_str(cont.trim());
            }
            // git mailinfo drops leading bracketed tags: `[PATCH v2 1/3] proc: fix` -> `proc: fix`.
            while let Some(rest) = s.strip_prefix('[') {
                match rest.split_once(']') {
                    Some((_, after)) => s = after.trim_start().to_string(),
                    None => break,
                }
            }
            return s;
        }
    }
    // A quilt or hand-written patch may open with a description; a plain `diff -u` opens with the
    // diff itself, whose first line is no subject (the caller names it by its file then).
    lines
        .iter()
        .find(|l| !l.trim().is_empty())
        .filter(|l| !is_diff_line(l))
        .map_or(String::new(), |l| l.trim().to_string())
}

/// A line that begins a file's diff rather than describing the patch.
fn is_diff_line(line: &str) -> bool {
    ["--- ", "+++ ", "diff ", "Index: ", "@@ ", "==="]
        .iter()
        .any(|p| line.starts_with(p))
}

/// Parses a patch. Errors name the line of the patch that is not a valid unified diff.
pub fn parse(text: &str) -> anyhow::Result<ParsedPatch> {
    let lines: Vec<&str> = text.lines().collect();
    let mut files: Vec<FileDiff> = Vec::new();
    // A `diff --git` header waiting for its `---`/`+++` lines (absent for renames, mode changes
    // and binaries).
    let mut pending: Option<FileDiff> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(rest) = line.strip_prefix("diff --git ") {
            if let Some(p) = pending.take() {
                files.push(p);
            }
            // `diff --git a/x b/x`: both names are the same for everything but renames, which
            // carry their own `rename from/to` lines.
            let (old, new) = match rest.split_once(" b/") {
                Some((a, b)) => (Some(a.to_string()), Some(format!("b/{b}"))),
                None => (None, None),
            };
            pending = Some(FileDiff {
                old,
                new,
                git: true,
                renamed: false,
                binary: false,
                hunks: vec![],
                lines: i..i + 1,
            });
            i += 1;
            continue;
        }
        if let Some(p) = pending.as_mut() {
            if line.starts_with("rename from ") || line.starts_with("copy from ") {
                p.renamed = true;
            } else if line.starts_with("new file mode") {
                p.old = None;
            } else if line.starts_with("deleted file mode") {
                p.new = None;
            } else if line.starts_with("GIT binary patch")
                || (line.starts_with("Binary files ") && line.ends_with(" differ"))
            {
                p.binary = true;
            }
        }
        if line.starts_with("--- ") && i + 1 < lines.len() && lines[i + 1].starts_with("+++ ") {
            let mut f = pending.take().unwrap_or(FileDiff {
                old: None,
                new: None,
                git: false,
                renamed: false,
                binary: false,
                hunks: vec![],
                lines: i..i,
            });
            f.old = header_name(&line[4..]);
            f.new = header_name(&lines[i + 1][4..]);
            i += 2;
            while i < lines.len() && lines[i].starts_with("@@ ") {
                let Some((mut old_left, mut new_left)) = hunk_counts(lines[i]) else {
                    bail!("line {}: malformed hunk header `{}`", i + 1, lines[i]);
                };
                f.hunks.push(lines[i].to_string());
                i += 1;
                while (old_left > 0 || new_left > 0) && i < lines.len() {
                    match lines[i].as_bytes().first() {
                        Some(b'-') => old_left = old_left.saturating_sub(1),
                        Some(b'+') => new_left = new_left.saturating_sub(1),
                        Some(b'\\') => {}
                        // A context line; mailers strip the space of an empty one.
                        Some(b' ') | None => {
                            old_left = old_left.saturating_sub(1);
                            new_left = new_left.saturating_sub(1);
                        }
                        Some(_) => bail!(
                            "line {}: hunk `{}` ends early (expected {old_left} more old and {new_left} more new lines)",
                            i + 1,
                            f.hunks.last().map_or("", |h| h.as_str())
                        ),
                    }
                    i += 1;
                }
                if lines.get(i).is_some_and(|l| l.starts_with('\\')) {
                    i += 1; // `\ No newline at end of file` after the last body line
                }
            }
            f.lines.end = i;
            files.push(f);
            continue;
        }
        if let Some(p) = pending.as_mut() {
            p.lines.end = i + 1;
        }
        i += 1;
    }
    if let Some(p) = pending.take() {
        files.push(p);
    }
    if files.is_empty() {
        bail!("no unified diff in it (no `--- a/FILE` / `+++ b/FILE` lines); make it with `git diff`, `git format-patch` or `diff -u`");
    }
    Ok(ParsedPatch {
        subject: subject(text),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIT: &str = "From 1234 Mon Sep 17 00:00:00 2001\nFrom: A <a@b>\nSubject: [PATCH v2 1/2] proc: fix a\n long subject\n\nBody.\n---\n fs/proc/cmdline.c | 1 +\n\n\
diff --git a/fs/proc/cmdline.c b/fs/proc/cmdline.c\nindex 1..2 100644\n--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n\
@@ -7,3 +7,4 @@ static int x(void)\n a\n-- removed line that looks like a header\n+--- added line that looks like a header\n+b\n c\n\
diff --git a/arch/x86/lib/memcpy_64.S b/arch/x86/lib/memcpy_64.S\n--- a/arch/x86/lib/memcpy_64.S\n+++ b/arch/x86/lib/memcpy_64.S\n@@ -1 +1 @@\n-x\n+y\n\
diff --git a/old.c b/new.c\nsimilarity index 90%\nrename from old.c\nrename to new.c\n\
diff --git a/new.h b/new.h\nnew file mode 100644\n--- /dev/null\n+++ b/new.h\n@@ -0,0 +1 @@\n+int x;\n-- \n2.39.5\n";

    #[test]
    fn git_patch_sections_hunks_and_subject() {
        let p = parse(GIT).unwrap();
        assert_eq!(p.subject, "proc: fix a long subject");
        assert_eq!(p.files.len(), 4);
        let f = &p.files[0];
        assert_eq!(
            (f.old.as_deref(), f.new.as_deref()),
            (Some("a/fs/proc/cmdline.c"), Some("b/fs/proc/cmdline.c"))
        );
        assert_eq!(
            f.hunks,
            vec!["@@ -7,3 +7,4 @@ static int x(void)".to_string()]
        );
        let section: Vec<&str> = GIT.lines().collect::<Vec<_>>()[f.lines.clone()].to_vec();
        assert_eq!(
            section.first(),
            Some(&"diff --git a/fs/proc/cmdline.c b/fs/proc/cmdline.c")
        );
        assert_eq!(section.last(), Some(&" c"));
        assert_eq!(
            p.files[1].new.as_deref(),
            Some("b/arch/x86/lib/memcpy_64.S")
        );
        assert!(p.files[2].renamed && p.files[2].hunks.is_empty());
        assert_eq!(
            (p.files[3].old.as_deref(), p.files[3].new.as_deref()),
            (None, Some("b/new.h"))
        );
    }

    #[test]
    fn plain_diff_u_with_timestamps() {
        let text = "--- linux.orig/mm/x.c\t2024-01-01 00:00:00.000000000 +0000\n+++ linux/mm/x.c\t2024-01-02\n@@ -1,2 +1,2 @@\n-a\n+b\n c\n";
        let p = parse(text).unwrap();
        assert_eq!(p.subject, "", "a plain diff has no subject of its own");
        assert_eq!(p.files[0].old.as_deref(), Some("linux.orig/mm/x.c"));
        assert_eq!(p.files[0].new.as_deref(), Some("linux/mm/x.c"));
        assert!(!p.files[0].git);
        assert_eq!(p.files[0].lines, 0..6);
    }

    #[test]
    fn a_quilt_description_is_the_subject_of_a_plain_diff() {
        let text = "Fix the frobnicator's overflow\n\n--- a/mm/x.c\n+++ b/mm/x.c\n@@ -1,2 +1,2 @@\n-a\n+b\n c\n";
        assert_eq!(
            parse(text).unwrap().subject,
            "Fix the frobnicator's overflow"
        );
        let git = "diff --git a/mm/x.c b/mm/x.c\n--- a/mm/x.c\n+++ b/mm/x.c\n@@ -1,2 +1,2 @@\n-a\n+b\n c\n";
        assert_eq!(parse(git).unwrap().subject, "");
    }

    #[test]
    fn truncated_hunk_and_no_diff_are_errors() {
        let e = parse("--- a/x.c\n+++ b/x.c\n@@ -1,3 +1,3 @@\n a\nnot a diff line\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("line 5: hunk `@@ -1,3 +1,3 @@` ends early"),
            "{e}"
        );
        let e = parse("just a mail\n").unwrap_err();
        assert!(e.to_string().contains("no unified diff"), "{e}");
    }
}
