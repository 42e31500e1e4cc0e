//! The patch stage on the lab's Debian 6.1 source tree (read only): patches applied to copies with
//! GNU patch, `#line` directives in the patched copy, -p0/-p1, patches applied in order, and the
//! errors: a hunk that does not apply, files that cannot be livepatched.

mod support;

use std::path::Path;

use klp_build::patch;

#[test]
fn cmdline_patch_applies_to_copies_with_line_directives() {
    let Some(lab) = support::lab("cmdline_patch_applies_to_copies_with_line_directives") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let tree_file = lab.src.join("fs/proc/cmdline.c");
    let before = support::tree::sha256(&tree_file);

    let set = patch::run(
        &[support::inputs::patch("cmdline.patch")],
        &lab.src,
        &work.path().join("1-patch"),
        &mut klp_build::progress::Quiet,
    )
    .unwrap();

    assert_eq!(
        support::tree::sha256(&tree_file),
        before,
        "the tree itself must not be patched"
    );
    assert_eq!(set.fixes.len(), 1);
    let fix = &set.fixes[0];
    assert_eq!(fix.name, "cmdline");
    assert_eq!(
        fix.subject,
        "proc: tag /proc/cmdline so a livepatch is visible"
    );
    assert_eq!(
        fix.sha256,
        support::tree::sha256(&support::inputs::patch("cmdline.patch"))
    );
    assert_eq!(set.files.len(), 1);
    let f = &set.files[0];
    assert_eq!(f.path, Path::new("fs/proc/cmdline.c"));
    assert!(
        f.orig.starts_with(work.path().join("1-patch"))
            && f.patched.starts_with(work.path().join("1-patch"))
    );
    assert_eq!(
        std::fs::read(&f.orig).unwrap(),
        std::fs::read(&tree_file).unwrap()
    );
    // The added line sits at 10; the old line 10 (`seq_putc`) moves to 11 and gets its number
    // back from a directive.
    let patched = std::fs::read_to_string(&f.patched).unwrap();
    let lines: Vec<&str> = patched.lines().collect();
    assert_eq!(lines[9], "\tseq_puts(m, \" klp-build=patched\");");
    assert_eq!(lines[10], "#line 10");
    assert_eq!(lines[11], "\tseq_putc(m, '\\n');");
    assert_eq!(lines.len(), 21, "{patched}");
}

#[test]
fn plain_diff_at_the_tree_top_is_p0_and_patches_apply_in_order() {
    let Some(lab) = support::lab("plain_diff_at_the_tree_top_is_p0_and_patches_apply_in_order")
    else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    // `diff -u fs/proc/cmdline.c.orig fs/proc/cmdline.c` made at the tree's top: -p0 names.
    let first = work.path().join("first.diff");
    let text = std::fs::read_to_string(support::inputs::patch("cmdline.patch")).unwrap();
    let hunks = &text[text.find("@@").unwrap()..];
    std::fs::write(
        &first,
        format!("--- fs/proc/cmdline.c.orig\n+++ fs/proc/cmdline.c\n{hunks}"),
    )
    .unwrap();
    // A second patch whose context is the first one's result.
    let second = work.path().join("second.patch");
    std::fs::write(
        &second,
        "--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n@@ -8,5 +8,6 @@\n {\n \tseq_puts(m, saved_command_line);\n \
         \tseq_puts(m, \" klp-build=patched\");\n+\tseq_puts(m, \" twice\");\n \tseq_putc(m, '\\n');\n \treturn 0;\n",
    )
    .unwrap();

    let set = patch::run(
        &[first, second],
        &lab.src,
        &work.path().join("w").join("1-patch"),
        &mut klp_build::progress::Quiet,
    )
    .unwrap();

    assert_eq!(
        set.fixes
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["first", "second"]
    );
    assert_eq!(
        set.fixes[0].subject, "first.diff",
        "no Subject: the patch file's name, not its first `---` line"
    );
    assert_eq!(set.files.len(), 1, "one file touched twice is one file");
    let patched = std::fs::read_to_string(&set.files[0].patched).unwrap();
    let lines: Vec<&str> = patched.lines().collect();
    assert_eq!(
        &lines[9..13],
        [
            "\tseq_puts(m, \" klp-build=patched\");",
            "\tseq_puts(m, \" twice\");",
            "#line 10",
            "\tseq_putc(m, '\\n');"
        ]
    );
}

#[test]
fn a_hunk_that_does_not_apply_names_patch_file_and_hunk() {
    let Some(lab) = support::lab("a_hunk_that_does_not_apply_names_patch_file_and_hunk") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let p = support::inputs::patch("err-does-not-apply.patch");
    let err = format!(
        "{:#}",
        patch::run(
            std::slice::from_ref(&p),
            &lab.src,
            &work.path().join("1-patch"),
            &mut klp_build::progress::Quiet,
        )
        .unwrap_err()
    );
    for want in [
        &*p.display().to_string(),
        "does not apply",
        "fs/proc/cmdline.c: hunk #1 `@@ -7,6 +7,6 @@`",
        "Hunk #1 FAILED at 7",
        "make sure --source is the tree the patch was written for",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn unpatchable_files_are_all_refused_at_once() {
    let Some(lab) = support::lab("unpatchable_files_are_all_refused_at_once") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let err = format!(
        "{:#}",
        patch::run(
            &[support::inputs::patch("err-unpatchable.patch")],
            &lab.src,
            &work.path().join("1-patch"),
            &mut klp_build::progress::Quiet,
        )
        .unwrap_err()
    );
    for want in [
        "3 change(s) cannot be livepatched",
        "arch/x86/lib/memcpy_64.S: assembly cannot be livepatched",
        "rewrite the fix in C",
        "arch/x86/entry/vdso/vclock_gettime.c: vDSO code runs in user space",
        "fs/proc/Makefile: a configuration or build change",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(
        !err.contains("Documentation"),
        "documentation is skipped, not refused:\n{err}"
    );
    assert!(
        !work.path().join("1-patch/applied").exists(),
        "nothing is applied when something is refused"
    );
}

/// A backport written for another version of the file: GNU patch applies its hunk 3 lines off and
/// with fuzz 1. The patch set says which patch, file and hunk, where it landed and how, and the
/// applied copy it names is there to check.
#[test]
fn a_fuzzed_hunk_is_reported_with_its_hunk_and_applied_copy() {
    let Some(lab) = support::lab("a_fuzzed_hunk_is_reported_with_its_hunk_and_applied_copy") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let diff = support::inputs::patch("cmdline-fuzz.patch");
    let set = patch::run(
        std::slice::from_ref(&diff),
        &lab.src,
        &work.path().join("1-patch"),
        &mut klp_build::progress::Quiet,
    )
    .unwrap();
    assert_eq!(set.warnings.len(), 1, "{:?}", set.warnings);
    let w = &set.warnings[0];
    assert_eq!(w.patch, diff);
    assert_eq!(w.file, Path::new("fs/proc/cmdline.c"));
    assert_eq!(w.hunk, 1);
    assert_eq!(w.header, "@@ -10,6 +10,7 @@ static int cmdline_proc_show");
    assert_eq!((w.line, w.fuzz, w.offset), (7, 1, -3));
    assert!(w.applied_copy.starts_with(work.path().join("1-patch")));
    let applied = std::fs::read_to_string(&w.applied_copy).unwrap();
    assert!(applied.contains("\tseq_puts(m, \" klp-build=patched\");\n\tseq_putc(m, '\\n');"));
    let said = w.to_string();
    for needle in [
        "cmdline-fuzz.patch: fs/proc/cmdline.c: hunk #1 `@@ -10,6 +10,7 @@",
        "applied at line 7 with fuzz 1, -3 line(s) off",
        "check the result in ",
    ] {
        assert!(said.contains(needle), "{needle:?} not in {said:?}");
    }
    // Machine-readable for the JSON report.
    let json = serde_json::to_value(w).unwrap();
    assert_eq!(json["fuzz"], 1);
    assert_eq!(json["offset"], -3);
    // A patch that applies exactly warns of nothing.
    let clean = patch::run(
        &[support::inputs::patch("cmdline.patch")],
        &lab.src,
        &tempfile::tempdir().unwrap().path().join("1-patch"),
        &mut klp_build::progress::Quiet,
    )
    .unwrap();
    assert!(clean.warnings.is_empty(), "{:?}", clean.warnings);
}
