//! The build stage on the lab's prepared Debian 6.1 tree, with real kbuild single targets: the
//! cmdline pair (vmlinux), a module's object (xfs), `#line` keeping `__bug_table` lines of
//! unchanged code, a compile error, a header change in a tree that was never fully built, and an
//! object the config does not build. Every test that runs make checks that the tree is left as it
//! was (content and mtime of each file involved).

mod support;

use std::path::{Path, PathBuf};
use std::time::Instant;

use object::{Object, ObjectSection};

use klp_build::contract::KlpObject;
use klp_build::kernel;
use klp_build::patch::{self, PatchSet};
use klp_build::progress::Quiet;
use klp_build::rebuild;

fn section(obj: &Path, name: &str) -> Vec<u8> {
    let data = std::fs::read(obj).unwrap();
    let file = object::read::elf::ElfFile64::<object::Endianness>::parse(&*data).unwrap();
    let s = file
        .section_by_name(name)
        .unwrap_or_else(|| panic!("{}: no section {name}", obj.display()));
    s.data().unwrap().to_vec()
}

/// The patch stage on a patch made with `diff -u` (in `dir`) that inserts `line` after line
/// `after` of `file` in the tree; returns the patch set and its work dir `<dir>/w`, which the
/// build stage then shares, as in a klp-build run.
fn insert_line(
    src: &Path,
    dir: &Path,
    file: &str,
    after: usize,
    line: &str,
) -> (PatchSet, PathBuf) {
    let text = std::fs::read_to_string(src.join(file)).unwrap();
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    let added = format!("{line}\n");
    lines.insert(after, &added);
    let (a, b) = (dir.join("a").join(file), dir.join("b").join(file));
    for (p, t) in [(&a, text.clone()), (&b, lines.concat())] {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, t).unwrap();
    }
    let out = std::process::Command::new("diff")
        .arg("-u")
        .arg(format!("a/{file}"))
        .arg(format!("b/{file}"))
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "diff -u: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let patch = dir.join(format!(
        "{}.patch",
        Path::new(file).file_stem().unwrap().to_str().unwrap()
    ));
    std::fs::write(&patch, out.stdout).unwrap();
    let w = dir.join("w");
    let set = patch::run(&[patch], src, &w.join("1-patch"), &mut Quiet).unwrap();
    (set, w)
}

/// The files a test's builds may touch, as they were before them.
struct Before<'a> {
    source: &'a Path,
    files: &'a [&'a str],
    snapshot: support::tree::Snapshot,
}

impl<'a> Before<'a> {
    fn take(source: &'a Path, files: &'a [&'a str]) -> Self {
        let snapshot = support::tree::snapshot(source, files);
        Before {
            source,
            files,
            snapshot,
        }
    }

    /// Fails with `why` unless every file has its content and mtime of before.
    fn assert_restored(&self, why: &str) {
        assert_eq!(
            support::tree::snapshot(self.source, self.files),
            self.snapshot,
            "{why}"
        );
    }
}

/// What a build of fs/proc/cmdline.o writes next to its source.
const CMDLINE_FILES: &[&str] = &[
    "fs/proc/cmdline.c",
    "fs/proc/cmdline.o",
    "fs/proc/.cmdline.o.cmd",
    "fs/proc/.cmdline.o.d",
];

#[test]
fn cmdline_orig_and_patched_objects() {
    let Some(lab) = support::lab("cmdline_orig_and_patched_objects") else {
        return;
    };
    let t = support::inputs::target(lab);
    let before = Before::take(&t.source, CMDLINE_FILES);
    let work = tempfile::tempdir().unwrap();
    let set = patch::run(
        &[support::inputs::patch("cmdline.patch")],
        &t.source,
        &work.path().join("1-patch"),
        &mut Quiet,
    )
    .unwrap();

    let start = Instant::now();
    let built = rebuild::run(&t, &set, &work.path().join("2-rebuild"), None, &mut Quiet)
        .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "build of fs/proc/cmdline.o, original and patched: {:.1} s",
        start.elapsed().as_secs_f64()
    );

    before.assert_restored("the tree must be restored");
    assert_eq!(built.pairs.len(), 1);
    let p = &built.pairs[0];
    assert_eq!(p.object, Path::new("fs/proc/cmdline.o"));
    assert_eq!(p.source_file, Path::new("fs/proc/cmdline.c"));
    assert_eq!(p.klp_object, KlpObject::Vmlinux);
    assert_eq!(p.orig, work.path().join("2-rebuild/orig/fs/proc/cmdline.o"));
    assert_eq!(
        p.patched,
        work.path().join("2-rebuild/patched/fs/proc/cmdline.o")
    );
    // One section per function (KCFLAGS), and the patched string only in the patched object.
    let orig = section(&p.orig, ".text.cmdline_proc_show");
    let patched = section(&p.patched, ".text.cmdline_proc_show");
    assert_ne!(orig, patched);
    let has = |o: &Path| {
        std::fs::read(o)
            .unwrap()
            .windows(18)
            .any(|w| w == b" klp-build=patched")
    };
    assert!(!has(&p.orig) && has(&p.patched));
    // The unchanged init function compiles to the same bytes.
    assert_eq!(
        section(&p.orig, ".init.text"),
        section(&p.patched, ".init.text")
    );
}

#[test]
fn module_object_gets_its_module_name() {
    let Some(lab) = support::lab("module_object_gets_its_module_name") else {
        return;
    };
    let t = support::inputs::target(lab);
    let files = [
        "fs/xfs/xfs_stats.c",
        "fs/xfs/xfs_stats.o",
        "fs/xfs/.xfs_stats.o.cmd",
    ];
    let before = Before::take(&t.source, &files);
    let work = tempfile::tempdir().unwrap();
    let (set, w) = insert_line(
        &t.source,
        work.path(),
        "fs/xfs/xfs_stats.c",
        10,
        "/* klp-build test */",
    );
    let built = rebuild::run(&t, &set, &w.join("2-rebuild"), None, &mut Quiet)
        .unwrap_or_else(|e| panic!("{e:#}"));
    before.assert_restored("the tree must be restored");
    assert_eq!(built.pairs[0].object, Path::new("fs/xfs/xfs_stats.o"));
    assert_eq!(built.pairs[0].klp_object, KlpObject::Module("xfs".into()));
}

/// kernel/task_work.c has `WARN_ON_ONCE(1)` at line 70 in task_work_add(); three lines added near
/// the top would move it to 73 in `__bug_table` (CONFIG_DEBUG_BUGVERBOSE records the line) and make
/// an unchanged function look changed. With the `#line` directives the table is byte-identical;
/// the plain patched copy shows the difference the directives prevent.
#[test]
fn line_directives_keep_unchanged_warn_on_lines() {
    let Some(lab) = support::lab("line_directives_keep_unchanged_warn_on_lines") else {
        return;
    };
    let t = support::inputs::target(lab);
    let files = [
        "kernel/task_work.c",
        "kernel/task_work.o",
        "kernel/.task_work.o.cmd",
    ];
    let before = Before::take(&t.source, &files);
    let work = tempfile::tempdir().unwrap();
    let (set, w) = insert_line(
        &t.source,
        work.path(),
        "kernel/task_work.c",
        5,
        "/*\n * klp-build: three new lines\n */",
    );

    let with_lines = rebuild::run(&t, &set, &w.join("2-rebuild"), None, &mut Quiet)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let p = &with_lines.pairs[0];
    assert_eq!(p.klp_object, KlpObject::Vmlinux);
    assert_eq!(
        section(&p.orig, "__bug_table"),
        section(&p.patched, "__bug_table")
    );
    assert_eq!(
        section(&p.orig, ".text.task_work_add"),
        section(&p.patched, ".text.task_work_add")
    );

    // The same patch without directives: the copy GNU patch wrote.
    let plain = PatchSet {
        fixes: set.fixes.clone(),
        files: vec![patch::TouchedFile {
            patched: w.join("1-patch/applied/kernel/task_work.c"),
            ..set.files[0].clone()
        }],
        warnings: Vec::new(),
    };
    let w2 = work.path().join("w2");
    let without = rebuild::run(&t, &plain, &w2.join("2-rebuild"), None, &mut Quiet)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_ne!(
        section(&without.pairs[0].orig, "__bug_table"),
        section(&without.pairs[0].patched, "__bug_table")
    );
    before.assert_restored("the tree must be restored");
}

#[test]
fn compile_error_shows_the_compiler_message() {
    let Some(lab) = support::lab("compile_error_shows_the_compiler_message") else {
        return;
    };
    let t = support::inputs::target(lab);
    let before = Before::take(&t.source, CMDLINE_FILES);
    let work = tempfile::tempdir().unwrap();
    let set = patch::run(
        &[support::inputs::patch("err-compile.patch")],
        &t.source,
        &work.path().join("1-patch"),
        &mut Quiet,
    )
    .unwrap();
    let err = format!(
        "{:#}",
        rebuild::run(&t, &set, &work.path().join("2-rebuild"), None, &mut Quiet).unwrap_err()
    );
    before.assert_restored("the tree must be restored after a failed build");
    // gcc quotes with ‘’ or '' depending on the locale.
    for want in [
        "compiling the patched fs/proc/cmdline.o failed",
        "fs/proc/cmdline.c:10:",
        "error: ",
        "klp_build_no_such_variable",
        "undeclared",
        "make-patched.log",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn header_change_needs_a_built_tree() {
    let Some(lab) = support::lab("header_change_needs_a_built_tree") else {
        return;
    };
    let t = support::inputs::target(lab);
    assert!(
        !kernel::is_built(&t.source),
        "the lab tree is prepared, not built"
    );
    let work = tempfile::tempdir().unwrap();
    let set = patch::run(
        &[support::inputs::patch("err-header-unbuilt.patch")],
        &t.source,
        &work.path().join("1-patch"),
        &mut Quiet,
    )
    .unwrap();
    let err = format!(
        "{:#}",
        rebuild::run(&t, &set, &work.path().join("2-rebuild"), None, &mut Quiet).unwrap_err()
    );
    for want in [
        "include/linux/seq_file.h: a header change needs a built tree",
        "Build the tree once",
        "make the change in the .c files",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

/// `make fs/ext2/inode.o` compiles even with ext2 off in Debian's config; the build stage refuses
/// before running make, since the running kernel has none of its functions.
#[test]
fn an_object_the_config_does_not_build_is_refused() {
    let Some(lab) = support::lab("an_object_the_config_does_not_build_is_refused") else {
        return;
    };
    let t = support::inputs::target(lab);
    let work = tempfile::tempdir().unwrap();
    let (set, w) = insert_line(
        &t.source,
        work.path(),
        "fs/ext2/inode.c",
        30,
        "/* klp-build test */",
    );
    let err = format!(
        "{:#}",
        rebuild::run(&t, &set, &w.join("2-rebuild"), None, &mut Quiet).unwrap_err()
    );
    let want = "fs/ext2/inode.c: fs/ext2/inode.o is not built in this configuration: CONFIG_EXT2_FS is not set \
                (fs/ext2/Makefile: obj-$(CONFIG_EXT2_FS) += ext2.o)";
    assert!(err.contains(want), "missing {want:?} in:\n{err}");
    assert!(
        !w.join("2-rebuild/make-orig.log").exists(),
        "refused before building"
    );
}
