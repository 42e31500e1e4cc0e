//! No input that can hurt, through the real binary: a closed or full stdout, out-of-range `-j`,
//! devices, FIFOs and oversized files where a file is expected, module text that would reach the
//! terminal raw, outputs onto inputs, bad patches before the tree is prepared, work dirs that are
//! the tree, compressed modules and a damaged original. Input: objects compiled by gcc from
//! `testdata/cases/call-added` with Debian 6.1's flags (no lab needed), and the lab for the one
//! test that needs a kbuild dir. Invariant: each test asserts the exit code and that the message
//! names the option or file; a test that lacks gcc or the lab skips with a printed reason, and
//! fails instead under `CI`.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use klp_build::contract::manifest::{self, Manifest, ManifestFunc, SCHEMA_VERSION};
use klp_build::contract::spec::ReplaceMode;
use klp_build::patch::Fix;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_klp-build"));
    c.stdin(Stdio::null());
    c
}

fn run(dir: &Path, args: &[&std::ffi::OsStr]) -> Output {
    bin()
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run klp-build")
}

fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Skips (prints why) without `CI`, fails under it.
fn skip(test: &str, why: &str) {
    support::ci_env::skip(test, why);
}

/// The orig and patched objects of `testdata/cases/call-added`, compiled once per test process
/// with Debian 6.1's code-generation flags; `None` without gcc.
fn objects(test: &str) -> Option<&'static (PathBuf, PathBuf)> {
    static OBJS: OnceLock<Option<(PathBuf, PathBuf)>> = OnceLock::new();
    let r = OBJS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases");
        let flags: Vec<String> = fs::read_to_string(root.join("kernel-cflags"))
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("robustness-cli");
        fs::create_dir_all(&dir).unwrap();
        let src = root.join("call-added/case.c");
        let mut out = Vec::new();
        for (name, defs) in [("orig.o", &[][..]), ("patched.o", &["-DPATCHED"][..])] {
            let o = dir.join(name);
            let st = Command::new("gcc")
                .args(&flags)
                .args(defs)
                .arg("-c")
                .arg(&src)
                .arg("-o")
                .arg(&o)
                .status()
                .ok()?;
            assert!(st.success(), "gcc failed on {}", src.display());
            out.push(o);
        }
        Some((out[0].clone(), out[1].clone()))
    });
    if r.is_none() {
        skip(
            test,
            "no gcc to compile the test objects (apt-get install gcc)",
        );
    }
    r.as_ref()
}

/// A copy of the pair in a fresh dir: (dir, orig, patched).
fn pair(test: &str) -> Option<(tempfile::TempDir, PathBuf, PathBuf)> {
    let (o, p) = objects(test)?;
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.o"), d.path().join("b.o"));
    fs::copy(o, &a).unwrap();
    fs::copy(p, &b).unwrap();
    Some((d, a, b))
}

/// Runs klp-build with stdout on a pipe whose reading end is already closed: every write fails
/// with EPIPE, deterministically.
fn with_closed_stdout(dir: &Path, args: &[&std::ffi::OsStr]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    bin()
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn with_full_stdout(dir: &Path, args: &[&std::ffi::OsStr]) -> Output {
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    bin()
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// A "module": a gcc object with a manifest attached as klp-build stamps its modules, whose
/// names, subject and function carry escape codes, a carriage return that would forge a
/// `refused` line, and a 5 MB function name.
fn crafted_module(dir: &Path, name: &str, orig: &Path) -> (PathBuf, Manifest) {
    let ko = dir.join(format!("{name}.ko"));
    fs::copy(orig, &ko).unwrap();
    let m = Manifest {
        schema_version: SCHEMA_VERSION,
        tool_version: "0.1.0".into(),
        kernel_release: "6.1.0-57-amd64\x1b]0;owned\x07".into(),
        name: format!("{name}\x1b[31m"),
        replace: ReplaceMode::Atomic,
        states: Vec::new(),
        fixes: vec![Fix {
            name: "fix\x1b[2J".into(),
            sha256: "0".repeat(64),
            subject: "harmless\rrefused check.func-overlap: forged".into(),
        }],
        functions: vec![
            ManifestFunc {
                object: "vmlinux".into(),
                name: "x".repeat(5 << 20),
                sympos: 0,
            },
            ManifestFunc {
                object: "vmlinux".into(),
                name: "cmdline_proc_show\x1b[0m\n".into(),
                sympos: 0,
            },
        ],
    };
    manifest::attach(&ko, &m).unwrap();
    (ko, m)
}

#[test]
fn closed_stdout_ends_quietly_with_141_after_diff_o_is_written() {
    let Some((d, a, b)) = pair("closed_stdout_ends_quietly_with_141_after_diff_o_is_written")
    else {
        return;
    };
    let out = d.path().join("out.o");
    let o = with_closed_stdout(d.path(), &[os("diff"), os(&a), os(&b), os("-o"), os(&out)]);
    assert_eq!(o.status.code(), Some(141), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "quiet: {}", stderr(&o));
    let written: klp_build::elf::ElfObject<klp_build::elf::Any> =
        klp_build::elf::read_file(&out).expect("-o was written before the report");
    assert!(written.section_by_name(".text.release_entry").is_some());
    // JSON reports, inspect and check go through the same writer.
    let o = with_closed_stdout(
        d.path(),
        &[os("diff"), os(&a), os(&b), os("--report"), os("json")],
    );
    assert_eq!(o.status.code(), Some(141), "{}", stderr(&o));
    let (ko, _) = crafted_module(d.path(), "livepatch-a", &a);
    for args in [
        vec![os("inspect"), os(&ko)],
        vec![os("check"), os(&ko), os("--against"), os(&ko)],
    ] {
        let o = with_closed_stdout(d.path(), &args);
        assert!(
            o.status.code() == Some(141) || o.status.code() == Some(1),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn full_stdout_is_an_error_naming_stdout() {
    let Some((d, a, b)) = pair("full_stdout_is_an_error_naming_stdout") else {
        return;
    };
    let (ko, _) = crafted_module(d.path(), "livepatch-a", &a);
    for args in [
        vec![os("diff"), os(&a), os(&b)],
        vec![os("inspect"), os(&ko)],
        vec![os("inspect"), os(&ko), os("--report"), os("json")],
    ] {
        let o = with_full_stdout(d.path(), &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with(
                "klp-build: error: writing the report to stdout: No space left on device"
            ),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn jobs_out_of_range_are_usage_errors_before_anything_runs() {
    let d = tempfile::tempdir().unwrap();
    for j in ["0", "-1", "65537", "1025", "many"] {
        let t = Instant::now();
        let o = run(d.path(), &[os("--diff"), os("x.patch"), os("-j"), os(j)]);
        assert_eq!(o.status.code(), Some(2), "-j {j}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("from 1 to 1024") && stderr(&o).contains("-j"),
            "-j {j}: {}",
            stderr(&o)
        );
        assert!(t.elapsed() < Duration::from_secs(5), "-j {j} was slow");
        assert!(!d.path().join("klp-tmp").exists(), "-j {j}: nothing ran");
    }
}

#[test]
fn devices_fifos_and_directories_are_refused_naming_the_option() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let patch = d.path().join("fix.patch");
    fs::write(&patch, "--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-a\n+b\n").unwrap();
    let cases: Vec<(Vec<&std::ffi::OsStr>, &str, &str)> = vec![
        (
            vec![os("--diff"), os("/dev/zero")],
            "--diff /dev/zero",
            "character device",
        ),
        (vec![os("--diff"), os(&fifo)], "--diff", "FIFO"),
        (vec![os("--diff"), os(d.path())], "--diff", "a directory"),
        (
            vec![os("--diff"), os(&patch), os("--config"), os("/dev/zero")],
            "--config /dev/zero",
            "character device",
        ),
        (
            vec![os("--diff"), os(&patch), os("--symbols"), os(&fifo)],
            "--symbols",
            "FIFO",
        ),
        (
            vec![os("--diff"), os(&patch), os("--previous"), os("/dev/zero")],
            "--previous /dev/zero",
            "character device",
        ),
        (
            vec![os("diff"), os("/dev/zero"), os(&patch)],
            "/dev/zero",
            "character device",
        ),
        (vec![os("inspect"), os(&fifo)], "fifo", "FIFO"),
        (
            vec![
                os("check"),
                os("/dev/zero"),
                os("--against"),
                os("/dev/zero"),
            ],
            "/dev/zero",
            "character device",
        ),
    ];
    for (args, names, what) in cases {
        let t = Instant::now();
        let o = run(d.path(), &args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
        assert!(e.contains(names) && e.contains(what), "{args:?}: {e}");
        assert!(t.elapsed() < Duration::from_secs(5), "{args:?} was slow");
    }
}

#[test]
fn oversized_inputs_name_the_bound() {
    let d = tempfile::tempdir().unwrap();
    // Sparse: no disk space, but the size a reader would see.
    let big = d.path().join("huge.patch");
    fs::File::create(&big).unwrap().set_len(65 << 20).unwrap();
    let o = run(d.path(), &[os("--diff"), os(&big)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--diff") && stderr(&o).contains("64 MiB"),
        "{}",
        stderr(&o)
    );
    let obj = d.path().join("huge.o");
    fs::File::create(&obj).unwrap().set_len(1025 << 20).unwrap();
    let o = run(d.path(), &[os("diff"), os(&obj), os(&obj)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("1024 MiB"), "{}", stderr(&o));
}

#[test]
fn module_text_is_escaped_and_cut_in_text_reports_and_exact_in_json() {
    let Some((d, a, _)) = pair("module_text_is_escaped_and_cut_in_text_reports_and_exact_in_json")
    else {
        return;
    };
    let (ko, m) = crafted_module(d.path(), "livepatch-a", &a);
    let (ko2, _) = crafted_module(d.path(), "livepatch-b", &a);
    for args in [
        vec![os("inspect"), os(&ko)],
        vec![os("check"), os(&ko2), os("--against"), os(&ko)],
    ] {
        let o = run(d.path(), &args);
        let text = String::from_utf8_lossy(&o.stdout);
        for l in text.lines().chain(stderr(&o).lines()) {
            assert!(
                !l.contains('\x1b') && !l.contains('\r') && !l.contains('\x07'),
                "{args:?}: raw control character in {l:?}"
            );
            assert!(l.len() < 2000, "{args:?}: a {}-byte line", l.len());
        }
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("refused check.func-overlap: forged")),
            "{args:?}: a forged line"
        );
        if args[0] == "inspect" {
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            assert!(text.contains("livepatch-a\\e[31m"), "{text}");
            assert!(
                text.contains("harmless\\rrefused check.func-overlap: forged"),
                "{text}"
            );
            assert!(text.contains(&format!("… ({} bytes)", 5 << 20)), "cut");
            assert!(text.contains("cmdline_proc_show\\e[0m\\n"), "{text}");
        }
    }
    let o = run(
        d.path(),
        &[os("inspect"), os(&ko), os("--report"), os("json")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["manifest"]["fixes"][0]["subject"], m.fixes[0].subject);
    assert_eq!(v["manifest"]["functions"][0]["name"], m.functions[0].name);
    assert_eq!(v["manifest"]["name"], m.name);
}

#[test]
fn outputs_onto_inputs_or_into_the_tree_are_refused_before_anything_runs() {
    let Some((d, a, b)) =
        pair("outputs_onto_inputs_or_into_the_tree_are_refused_before_anything_runs")
    else {
        return;
    };
    let before = fs::read(&a).unwrap();
    for out in [a.clone(), d.path().join("./a.o"), b.clone()] {
        let o = run(d.path(), &[os("diff"), os(&a), os(&b), os("-o"), os(&out)]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("is the input"), "{}", stderr(&o));
    }
    // A hard link is the same file under another name.
    let link = d.path().join("link.o");
    fs::hard_link(&a, &link).unwrap();
    let o = run(d.path(), &[os("diff"), os(&a), os(&b), os("-o"), os(&link)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(fs::read(&a).unwrap(), before, "the input is untouched");

    let patch = d.path().join("fix.patch");
    fs::write(&patch, "--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-a\n+b\n").unwrap();
    let o = run(d.path(), &[os("--diff"), os(&patch), os("-o"), os(&patch)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is the input --diff"), "{}", stderr(&o));
    let tree = d.path().join("linux");
    fs::create_dir_all(tree.join("fs/proc")).unwrap();
    fs::write(tree.join("Makefile"), "").unwrap();
    let inside = tree.join("fs/proc/livepatch.ko");
    let o = run(
        d.path(),
        &[
            os("--diff"),
            os(&patch),
            os("--source"),
            os(&tree),
            os("-o"),
            os(&inside),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("inside the source tree"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn work_dir_that_is_root_or_the_tree_is_refused_up_front() {
    let d = tempfile::tempdir().unwrap();
    let patch = d.path().join("fix.patch");
    fs::write(&patch, "--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-a\n+b\n").unwrap();
    let tree = d.path().join("linux");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("Makefile"), "").unwrap();
    let out = d.path().join("x.ko");
    for wd in [Path::new("/"), tree.as_path(), d.path()] {
        let o = run(
            d.path(),
            &[
                os("--diff"),
                os(&patch),
                os("--source"),
                os(&tree),
                os("-o"),
                os(&out),
                os("--work-dir"),
                os(wd),
            ],
        );
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{wd:?}: {e}");
        assert!(
            e.contains("--work-dir")
                && e.contains("choose an empty directory")
                && !e.contains("remove it"),
            "{wd:?}: {e}"
        );
    }
    // A directory of someone else's files is not cleared either, and the advice is the same.
    let other = d.path().join("notes");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("todo.txt"), "keep").unwrap();
    let o = run(
        d.path(),
        &[
            os("--diff"),
            os(&patch),
            os("--source"),
            os(&tree),
            os("-o"),
            os(&out),
            os("--work-dir"),
            os(&other),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("choose an empty directory"),
        "{}",
        stderr(&o)
    );
    assert!(other.join("todo.txt").exists());
}

#[test]
fn no_replace_with_a_replace_set_says_the_two_conflict() {
    use klp_build::contract::spec::ReplaceRequest;
    use klp_build::kernel::livepatch_api::{LivepatchApi, ReplaceField};
    let api = LivepatchApi::with_replace(ReplaceField::ReplaceSet, Some("supersedes"));
    let e = ReplaceMode::resolve(
        &ReplaceRequest {
            set: Some(2),
            supersedes: Vec::new(),
            no_replace: true,
        },
        &api,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("--no-replace and --replace-set 2 conflict") && e.contains("drop --no-replace"),
        "{e}"
    );
    assert!(
        !e.contains("give the hotfix a replace set"),
        "circular advice: {e}"
    );
}

/// Compresses `data` as `ext` (`xz`, `zst`, `gz`) with the crates klp-build reads them with.
fn compress(data: &[u8], ext: &str) -> Vec<u8> {
    use std::io::Write;
    match ext {
        "xz" => {
            let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "zst" => zstd::encode_all(data, 3).unwrap(),
        "gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        _ => unreachable!(),
    }
}

#[test]
fn compressed_modules_are_found_and_read_and_corrupt_streams_name_the_file() {
    let Some((d, a, _)) =
        pair("compressed_modules_are_found_and_read_and_corrupt_streams_name_the_file")
    else {
        return;
    };
    // A relocatable object has what the module reader needs: ET_REL and a symbol table.
    let plain = fs::read(&a).unwrap();
    let mut reference = klp_build::kernel::symbols::SymbolListing::empty(Path::new("kallsyms"));
    let ko = d.path().join("ko");
    fs::create_dir_all(&ko).unwrap();
    fs::write(ko.join("my_mod.ko"), &plain).unwrap();
    reference
        .add_module("my_mod", &ko.join("my_mod.ko"))
        .unwrap();
    for ext in ["xz", "zst", "gz"] {
        let dir = d.path().join(ext).join("kernel/drivers");
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("my-mod.ko.{ext}"));
        fs::write(&file, compress(&plain, ext)).unwrap();
        let found = klp_build::pipeline::find_module(&d.path().join(ext), "my_mod")
            .unwrap_or_else(|e| panic!("{ext}: {e:#}"));
        assert_eq!(found, file);
        let mut l = klp_build::kernel::symbols::SymbolListing::empty(Path::new("kallsyms"));
        l.add_module("my_mod", &found)
            .unwrap_or_else(|e| panic!("{ext}: {e:#}"));
        assert!(l.has_object("my_mod"), "{ext}");
        let lookup = |l: &klp_build::kernel::symbols::SymbolListing| format!("{l:?}");
        assert_eq!(
            lookup(&l),
            lookup(&reference),
            "{ext}: the same symbols as the plain .ko"
        );
        // inspect and check read modules the same way.
        let o = run(d.path(), &[os("inspect"), os(&file)]);
        assert!(
            !stderr(&o).contains("ELF") || stderr(&o).contains("livepatch"),
            "{ext}: {}",
            stderr(&o)
        );
        // A cut stream is an error naming the file, not a panic or a partial read.
        let bytes = fs::read(&file).unwrap();
        let cut = dir.join(format!("cut.ko.{ext}"));
        fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = l.add_module("cut", &cut).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains(&*cut.to_string_lossy()), "{ext}: {e}");
        let mut garbage = bytes.clone();
        let mid = garbage.len() / 2;
        garbage[mid..].iter_mut().for_each(|b| *b ^= 0x5a);
        fs::write(&cut, &garbage).unwrap();
        let e = format!("{:#}", l.add_module("cut", &cut).unwrap_err());
        assert!(e.contains(&*cut.to_string_lossy()), "{ext}: {e}");
    }
    let lab612 = Path::new("/root/.cache/klp-build-lab/lab-6.12.env");
    if !lab612.exists() {
        eprintln!(
            "NOTE: the Debian 6.12 lab ({}) is not set up; compressed modules were tested on compressed copies of a compiled object only",
            lab612.display()
        );
    }
}

#[test]
fn a_damaged_original_is_named_not_the_patched_file() {
    let Some((d, a, b)) = pair("a_damaged_original_is_named_not_the_patched_file") else {
        return;
    };
    let bytes = fs::read(&a).unwrap();
    let orig = d.path().join("damaged-orig.o");
    for cut in [16, 64, bytes.len() / 2, bytes.len() - 8] {
        fs::write(&orig, &bytes[..cut]).unwrap();
        let o = run(d.path(), &[os("diff"), os(&orig), os(&b)]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "cut at {cut}: {e}");
        assert!(e.contains("damaged-orig.o"), "cut at {cut}: {e}");
        assert!(
            !e.contains("b.o"),
            "cut at {cut}: names the patched file: {e}"
        );
    }
}

/// A patch klp-build must refuse, and the reason's words.
const BAD_PATCHES: &[(&str, &str, &str)] = &[
    ("empty", "", "no unified diff"),
    (
        "binary",
        "diff --git a/fs/proc/cmdline.c b/fs/proc/cmdline.c\nindex 1111111..2222222 100644\nGIT binary patch\nliteral 4\nLcmV+b0RR6000031\n\n",
        "binary",
    ),
    (
        "deleting",
        "--- a/fs/proc/cmdline.c\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-// SPDX-License-Identifier: GPL-2.0\n-#include <linux/fs.h>\n",
        "deleting",
    ),
    (
        "renaming",
        "diff --git a/fs/proc/cmdline.c b/fs/proc/cmdline2.c\nsimilarity index 100%\nrename from fs/proc/cmdline.c\nrename to fs/proc/cmdline2.c\n",
        "renaming",
    ),
];

#[test]
fn bad_patches_are_refused_before_the_tree_is_prepared() {
    let Some(lab) = support::lab("bad_patches_are_refused_before_the_tree_is_prepared") else {
        return;
    };
    // An unprepared tree: what the kernel stage looks for, and the file the patches name.
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("linux");
    fs::create_dir_all(tree.join("scripts")).unwrap();
    fs::create_dir_all(tree.join("fs/proc")).unwrap();
    fs::copy(lab.src.join("Makefile"), tree.join("Makefile")).unwrap();
    fs::copy(
        lab.src.join("scripts/Makefile.build"),
        tree.join("scripts/Makefile.build"),
    )
    .unwrap();
    fs::copy(
        lab.src.join("fs/proc/cmdline.c"),
        tree.join("fs/proc/cmdline.c"),
    )
    .unwrap();
    let listing = |t: &Path| {
        let mut v: Vec<String> = walk(t);
        v.sort();
        v
    };
    let before = listing(&tree);
    for (name, text, why) in BAD_PATCHES {
        let patch = d.path().join(format!("{name}.patch"));
        fs::write(&patch, text).unwrap();
        let t = Instant::now();
        let o = run(
            d.path(),
            &[
                os("--diff"),
                os(&patch),
                os("--source"),
                os(&tree),
                os("--kbuild"),
                os(&lab.kbuild),
                os("--config"),
                os(&lab.config),
                os("--symbols"),
                os(&lab.kallsyms),
                os("-o"),
                os(&d.path().join("x.ko")),
                os("--work-dir"),
                os(&d.path().join("work")),
            ],
        );
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{name}: {e}");
        assert!(
            e.contains(&format!("{name}.patch")) && e.contains(why),
            "{name}: {e}"
        );
        assert!(
            !e.contains("preparing"),
            "{name}: the tree was being prepared: {e}"
        );
        assert!(t.elapsed() < Duration::from_secs(20), "{name}: slow");
        assert!(!tree.join(".config").exists(), "{name}: .config created");
        assert_eq!(listing(&tree), before, "{name}: the tree changed");
    }
}

fn walk(d: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(d).unwrap().flatten() {
        let p = e.path();
        out.push(p.display().to_string());
        if p.is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

/// `verify --console` naming the module or a guest script is refused before anything is read or
/// booted, and the file is left as it was.
#[test]
fn verify_console_that_is_an_input_is_refused_and_the_input_kept() {
    let d = tempfile::tempdir().unwrap();
    let module = d.path().join("livepatch-x.ko");
    let check = d.path().join("check.sh");
    fs::write(&module, b"not even a module").unwrap();
    fs::write(&check, b"true\n").unwrap();
    for (console, named) in [
        (module.as_path(), "the input MODULE"),
        (check.as_path(), "the input --check"),
    ] {
        let o = run(
            d.path(),
            &[
                os("verify"),
                module.as_os_str(),
                os("--kernel"),
                os("/nonexistent/bzImage"),
                os("--check"),
                check.as_os_str(),
                os("--console"),
                console.as_os_str(),
            ],
        );
        // A usage error, as for -o naming an input.
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("--console {}: is {named}", console.display())),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(fs::read(&module).unwrap(), b"not even a module");
    assert_eq!(fs::read(&check).unwrap(), b"true\n");
}

#[test]
fn verify_quiet_says_only_the_error() {
    let Some((d, a, _)) = pair("verify_quiet_says_only_the_error") else {
        return;
    };
    let (ko, _) = crafted_module(d.path(), "livepatch-quiet", &a);
    let verify = |extra: &[&std::ffi::OsStr]| {
        let mut args = vec![os("verify")];
        args.extend_from_slice(extra);
        args.extend([ko.as_os_str(), os("--kernel"), os("/nonexistent/bzImage")]);
        run(d.path(), &args)
    };
    let loud = verify(&[]);
    assert_eq!(loud.status.code(), Some(1), "{}", stderr(&loud));
    assert!(
        stderr(&loud).contains("klp-build: finding the kernel"),
        "{}",
        stderr(&loud)
    );
    let quiet = verify(&[os("-q")]);
    assert_eq!(quiet.status.code(), Some(1), "{}", stderr(&quiet));
    let lines: Vec<String> = stderr(&quiet).lines().map(String::from).collect();
    assert_eq!(lines.len(), 1, "-q leaves only the error: {lines:?}");
    assert!(
        lines[0].starts_with("klp-build: error: --kernel /nonexistent/bzImage"),
        "{lines:?}"
    );
}

/// A name with control characters (here an ESC sequence that would clear the screen) reaches
/// stderr escaped, in an error as in a note: the message still names it, readably.
#[test]
fn control_characters_in_names_reach_stderr_escaped() {
    let d = tempfile::tempdir().unwrap();
    let o = run(
        d.path(),
        &[
            os("--diff"),
            os("fix\x1b[2J.patch"),
            os("--source"),
            d.path().as_os_str(),
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("--diff fix\\e[2J.patch"), "{err}");
    assert!(!err.contains('\x1b'), "raw ESC on stderr: {err:?}");
}
