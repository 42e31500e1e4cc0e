//! The main job's errors as a user meets them: the real `klp-build` binary runs against the kernel
//! lab's Debian 6.1 tree with one `testdata/patches/err-*.patch` each, and every case checks the
//! exit code (design.md: 1 error, 2 usage, 3 no functional change), that the message names the
//! thing (patch, file, hunk, symbol) and says what to do, and that the lab tree is exactly as it
//! was: the touched sources' sha256 and mtime, and every file next to them (no patched copy, no
//! stray or swapped `.o`/`.cmd`). Snapshots are taken under the tree lock klp-build itself takes,
//! so another build in the same tree is never caught half-way.

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use support::tree::FileState;

/// A bound on one klp-build run: a single-object rebuild takes seconds, a wait for the tree lock
/// behind the other cases of this binary a little more.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// One finished klp-build process.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "exit {:?}\n```stderr\n{}```\n```stdout\n{}```",
            self.code, self.stderr, self.stdout
        )
    }

    /// Fails unless stderr holds every one of `needles`, saying which is missing.
    fn says(&self, needles: &[&str]) {
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "the message lacks {n:?}:\n{}",
                self.describe()
            );
        }
    }
}

/// Runs klp-build with `args`, output to files in `dir` (no pipe to drain while waiting), killed
/// after [`RUN_LIMIT`].
fn klp_build(dir: &Path, args: &[&std::ffi::OsStr]) -> Run {
    let out_file = dir.join("stdout");
    let err_file = dir.join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(File::create(&out_file).unwrap())
        .stderr(File::create(&err_file).unwrap())
        .spawn()
        .expect("run klp-build");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for klp-build") {
            break status;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "klp-build {args:?} ran over {RUN_LIMIT:?}; its stderr so far:\n{}",
                std::fs::read_to_string(&err_file).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    Run {
        code: status.code(),
        stdout: read(&out_file),
        stderr: read(&err_file),
    }
}

/// What a build may touch in the tree: each touched source's sha256 and mtime, and every entry
/// of its directory with its size and mtime (kbuild writes `x.o`, `.x.o.cmd`, `.x.o.d` there).
#[derive(Debug, PartialEq)]
struct TreeState {
    sources: BTreeMap<PathBuf, Option<FileState>>,
    neighbours: BTreeMap<PathBuf, (u64, SystemTime)>,
}

/// The state of `touched` (paths relative to `src`), read while holding `<src>/.klp-build.lock`,
/// the lock every klp-build holds while the tree is modified.
fn tree_state(src: &Path, touched: &[&str]) -> TreeState {
    support::tree::locked(src, || {
        let mut state = TreeState {
            sources: BTreeMap::new(),
            neighbours: BTreeMap::new(),
        };
        for rel in touched {
            let file = src.join(rel);
            state
                .sources
                .insert(PathBuf::from(rel), support::tree::file_state(&file));
            let dir = file.parent().unwrap();
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let meta = entry.metadata().unwrap();
                let rel_entry = entry.path().strip_prefix(src).unwrap().to_path_buf();
                state
                    .neighbours
                    .insert(rel_entry, (meta.len(), meta.modified().unwrap()));
            }
        }
        state
    })
}

/// Fails with the differences when the tree is not as `before`.
fn assert_tree_unchanged(before: &TreeState, after: &TreeState, case: &str) {
    let mut diffs = Vec::new();
    for (rel, was) in &before.sources {
        let is = &after.sources[rel];
        if was != is {
            diffs.push(format!("{}: was {was:?}, now {is:?}", rel.display()));
        }
    }
    for (rel, was) in &before.neighbours {
        match after.neighbours.get(rel) {
            None => diffs.push(format!("{}: removed (was {was:?})", rel.display())),
            Some(is) if is != was => diffs.push(format!(
                "{}: (size, mtime) was {was:?}, now {is:?}",
                rel.display()
            )),
            Some(_) => {}
        }
    }
    for rel in after.neighbours.keys() {
        if !before.neighbours.contains_key(rel) {
            diffs.push(format!("{}: left behind (new)", rel.display()));
        }
    }
    assert!(
        diffs.is_empty(),
        "{case}: klp-build left the source tree changed:\n  {}",
        diffs.join("\n  ")
    );
}

/// A failed build of `patch_name` against the lab: runs it with its own work dir and output
/// path, checks the tree around `touched` is unchanged, that no module was written and that the
/// message has the design's form; returns the run and its dir (holding the work dir that the
/// message may point into), or `None` when the lab is absent (skip).
fn failed_build(
    test: &str,
    patch_name: &str,
    touched: &[&str],
    code: i32,
) -> Option<(Run, tempfile::TempDir)> {
    let lab = support::lab(test)?;
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let ko = tmp.path().join("out.ko");
    let patch = support::inputs::patch(patch_name);
    let before = tree_state(&lab.src, touched);
    let mut args = support::inputs::klp_build_args(lab, &patch, &work, &ko);
    args.extend(["--report", "json", "-j", "2"].map(Into::into));
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let run = klp_build(tmp.path(), &args);
    let after = tree_state(&lab.src, touched);
    assert_tree_unchanged(&before, &after, test);
    assert_eq!(run.code, Some(code), "{test}: {}", run.describe());
    assert!(
        run.stderr.contains("klp-build: error: "),
        "{test}: no `klp-build: error: ` line:\n{}",
        run.describe()
    );
    assert!(
        !ko.exists(),
        "{test}: a failed build wrote {}",
        ko.display()
    );
    // Pipelines read stdout as the JSON report: an error must not put text there.
    assert!(
        run.stdout.trim().is_empty()
            || serde_json::from_str::<serde_json::Value>(&run.stdout).is_ok(),
        "{test}: stdout under --report json is not JSON:\n{}",
        run.describe()
    );
    Some((run, tmp))
}

#[test]
fn patch_that_does_not_apply_names_the_file_and_hunk() {
    let Some((run, _dir)) = failed_build(
        "patch_that_does_not_apply_names_the_file_and_hunk",
        "err-does-not-apply.patch",
        &["fs/proc/cmdline.c"],
        1,
    ) else {
        return;
    };
    run.says(&[
        "err-does-not-apply.patch does not apply",
        "fs/proc/cmdline.c: hunk #1",
        // What to do: check the tree, and where the rejected hunk is.
        "make sure --source is the tree the patch was written for",
        "cmdline.c.rej",
    ]);
}

#[test]
fn compile_error_shows_the_compilers_message() {
    let Some((run, _dir)) = failed_build(
        "compile_error_shows_the_compilers_message",
        "err-compile.patch",
        &["fs/proc/cmdline.c"],
        1,
    ) else {
        return;
    };
    run.says(&["compiling the patched fs/proc/cmdline.o failed"]);
    // gcc's own line, at the patched file's line number: the added line follows line 9.
    let gcc = regex::Regex::new(
        r"fs/proc/cmdline\.c:10:\d+: error: .*klp_build_no_such_variable.* undeclared",
    )
    .unwrap();
    assert!(
        gcc.is_match(&run.stderr),
        "gcc's error line is not shown:\n{}",
        run.describe()
    );
    // The full log it points to exists (the work dir is kept after a failure).
    let log = regex::Regex::new(r"full log: (\S+)").unwrap();
    let log = log
        .captures(&run.stderr)
        .unwrap_or_else(|| panic!("no full log path:\n{}", run.describe()));
    let log = Path::new(&log[1]);
    assert!(
        std::fs::read_to_string(log).is_ok_and(|l| l.contains("klp_build_no_such_variable")),
        "the log {} named in the message does not hold the error",
        log.display()
    );
}

#[test]
fn comment_and_whitespace_change_is_no_functional_change() {
    let Some((run, _dir)) = failed_build(
        "comment_and_whitespace_change_is_no_functional_change",
        "err-no-change.patch",
        &["fs/proc/uptime.c"],
        3,
    ) else {
        return;
    };
    run.says(&[
        "no functional change",
        "fs/proc/uptime.o",
        "nothing to livepatch",
    ]);
}

#[test]
fn assembly_vdso_and_makefile_are_refused_in_one_run() {
    let Some((run, _dir)) = failed_build(
        "assembly_vdso_and_makefile_are_refused_in_one_run",
        "err-unpatchable.patch",
        &[
            "arch/x86/lib/memcpy_64.S",
            "arch/x86/entry/vdso/vclock_gettime.c",
            "fs/proc/Makefile",
        ],
        1,
    ) else {
        return;
    };
    run.says(&[
        "3 change(s) cannot be livepatched",
        "arch/x86/lib/memcpy_64.S: assembly cannot be livepatched",
        "rewrite the fix in C",
        "arch/x86/entry/vdso/vclock_gettime.c: vDSO code",
        "fs/proc/Makefile: a configuration or build change",
    ]);
    // Documentation is skipped with a note, never counted as a refusal.
    let error = &run.stderr[run.stderr.find("klp-build: error: ").unwrap()..];
    assert!(
        !error.contains("kernel-parameters.txt"),
        "the documentation hunk is refused:\n{}",
        run.describe()
    );
}

#[test]
fn changed_initial_value_of_static_data_is_refused() {
    let Some((run, _dir)) = failed_build(
        "changed_initial_value_of_static_data_is_refused",
        "err-changed-data.patch",
        &["kernel/ksysfs.c"],
        1,
    ) else {
        return;
    };
    let error = &run.stderr[run.stderr.find("klp-build: error: ").unwrap()..];
    for needle in [
        "data.changed kernel/ksysfs.o: notes_attr",
        "changes its initial value",
        "shadow variable",
        "klp_shadow_get_or_alloc",
    ] {
        assert!(
            error.contains(needle),
            "the error lacks {needle:?}:\n{}",
            run.describe()
        );
    }
}

#[test]
fn no_diff_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let run = klp_build(tmp.path(), &[]);
    assert_eq!(run.code, Some(2), "{}", run.describe());
    run.says(&["klp-build: error: ", "--diff FILE"]);
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().count() == 2,
        "klp-build without --diff created files in its working directory"
    );
}

#[test]
fn unknown_option_is_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let run = klp_build(tmp.path(), &["--no-such-option".as_ref()]);
    assert_eq!(run.code, Some(2), "{}", run.describe());
    run.says(&["--no-such-option", "--help"]);
}

/// Runs klp-build on the lab with `cmdline.patch` and the lab's options, `replace` swapping one
/// option's value (or adding options), and checks that it fails with `code` before anything slow:
/// no stage started (no progress line), no work dir made, the tree untouched.
fn refused_before_any_stage(
    test: &str,
    edit: impl FnOnce(&mut Vec<std::ffi::OsString>),
    code: i32,
    needles: &[&str],
) {
    let Some(lab) = support::lab(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("klp-tmp");
    let mut args = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch("cmdline.patch"),
        &work,
        &tmp.path().join("out.ko"),
    );
    edit(&mut args);
    let before = tree_state(&lab.src, &["fs/proc/cmdline.c"]);
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let run = klp_build(tmp.path(), &refs);
    assert_eq!(run.code, Some(code), "{test}: {}", run.describe());
    run.says(needles);
    for stage in ["prepare...", "patch...", "rebuild...", "diff..."] {
        assert!(
            !run.stderr.contains(stage),
            "{test}: a stage ran before the refusal:\n{}",
            run.describe()
        );
    }
    assert!(
        !work.exists(),
        "{test}: the work dir was made before the refusal"
    );
    assert_tree_unchanged(&before, &tree_state(&lab.src, &["fs/proc/cmdline.c"]), test);
}

/// Sets `option`'s value in the lab command line.
fn set(args: &mut [std::ffi::OsString], option: &str, value: &std::ffi::OsStr) {
    let i = args
        .iter()
        .position(|a| a == option)
        .unwrap_or_else(|| panic!("{option} not in {args:?}"));
    args[i + 1] = value.to_os_string();
}

#[test]
fn missing_symbols_file_is_named_before_anything_runs() {
    refused_before_any_stage(
        "missing_symbols_file_is_named_before_anything_runs",
        |a| set(a, "--symbols", "/nonexistent/kallsyms".as_ref()),
        1,
        &["--symbols /nonexistent/kallsyms: No such file or directory"],
    );
}

#[test]
fn output_in_a_missing_directory_is_refused_before_anything_runs() {
    refused_before_any_stage(
        "output_in_a_missing_directory_is_refused_before_anything_runs",
        |a| set(a, "-o", "/nonexistent/dir/fix.ko".as_ref()),
        1,
        &["-o /nonexistent/dir/fix.ko", "does not exist"],
    );
}

#[test]
fn config_that_is_not_a_kernel_config_is_refused_before_anything_runs() {
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), "hello\nworld\n").unwrap();
    let path = junk.path().to_path_buf();
    refused_before_any_stage(
        "config_that_is_not_a_kernel_config_is_refused_before_anything_runs",
        |a| set(a, "--config", path.as_os_str()),
        1,
        &["--config", "not a kernel config"],
    );
}

#[test]
fn work_dir_that_is_a_file_is_refused_before_anything_runs() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().to_path_buf();
    let Some(lab) = support::lab("work_dir_that_is_a_file_is_refused_before_anything_runs") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut args = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch("cmdline.patch"),
        &path,
        &tmp.path().join("o.ko"),
    );
    set(&mut args, "--work-dir", path.as_os_str());
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let run = klp_build(tmp.path(), &refs);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    run.says(&["--work-dir", "is a file"]);
    assert!(path.is_file(), "the file given as --work-dir is kept");
}

#[test]
fn replace_set_on_a_kernel_with_bool_replace_is_refused_with_the_alternative() {
    refused_before_any_stage(
        "replace_set_on_a_kernel_with_bool_replace_is_refused_with_the_alternative",
        |a| a.extend(["--replace-set".into(), "2".into()]),
        1,
        &["--replace-set 2", "`bool replace`", "--no-replace"],
    );
}

#[test]
fn same_state_twice_is_a_usage_error() {
    refused_before_any_stage(
        "same_state_twice_is_a_usage_error",
        |a| {
            a.extend([
                "--state".into(),
                "7:1".into(),
                "--state".into(),
                "7:2".into(),
            ])
        },
        2,
        &["--state 0x7 is given twice"],
    );
}

#[test]
fn io_error_names_the_path_once() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.o");
    let other = tmp.path().join("patched.o");
    let run = klp_build(
        tmp.path(),
        &["diff".as_ref(), missing.as_os_str(), other.as_os_str()],
    );
    assert_eq!(run.code, Some(1), "{}", run.describe());
    let shown = missing.display().to_string();
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("klp-build: error: "))
        .expect("an error line");
    assert_eq!(
        line.matches(shown.as_str()).count(),
        1,
        "the path is said once: {line}"
    );
    assert_eq!(
        line.matches("No such file or directory").count(),
        1,
        "the reason is said once: {line}"
    );
}
