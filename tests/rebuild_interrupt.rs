//! Ctrl-C in the middle of the patched build: a child process (this test binary, running the
//! ignored `child_process_entry`) builds fs/proc/cmdline.o in the lab tree; once the patched
//! source is in the tree and its compiler runs, the parent signals it. The child must exit 130 and
//! leave the tree byte-identical: the source file (content and mtime) and no object, `.cmd` or
//! `.d` file. After a SIGKILL the make it started goes on in its own process group; the next run
//! must stop it before replaying the journal, and build again. The same holds when the patched
//! object is compiled by kbuild's recorded command (a child with an object cache). And Ctrl-C
//! while the real binary
//! links the module must stop that make too and exit 130.

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "KLP_BUILD_INTERRUPT_CHILD_WORK";
/// Set for a child that builds with an object cache (there): its patched object is compiled by
/// kbuild's recorded command, through a makefile of klp-build's own, not by kbuild's make.
const CHILD_CACHE_ENV: &str = "KLP_BUILD_INTERRUPT_CHILD_CACHE";
const FILES: [&str; 5] = [
    ".missing-syscalls.d",
    "fs/proc/cmdline.c",
    "fs/proc/cmdline.o",
    "fs/proc/.cmdline.o.cmd",
    "fs/proc/.cmdline.o.d",
];

/// [`FILES`] but kbuild's `.missing-syscalls.d`, which every make in a tree rewrites: the lab tree
/// is shared with the other test binaries (and klp-builds from before it was journaled), whose
/// makes may run between two snapshots. The test on a private copy of the tree checks it.
const LAB_FILES: [&str; 4] = [
    "fs/proc/cmdline.c",
    "fs/proc/cmdline.o",
    "fs/proc/.cmdline.o.cmd",
    "fs/proc/.cmdline.o.d",
];

/// One signalled build at a time in this binary: each waits for its own child's make.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

enum Signal {
    /// SIGINT to the child's whole process group, as a terminal's Ctrl-C.
    IntToGroup,
    /// SIGTERM to the child alone, as a supervisor's kill: make only stops if klp-build passes
    /// it on.
    TermToProcess,
    /// SIGKILL to the whole group: nothing runs in the child; the next run on the tree must
    /// replay the journal the guard left in the tree.
    KillThenRecover,
}

/// How the child compiles the patched object.
#[derive(Clone, Copy, PartialEq)]
enum Patched {
    /// kbuild's make (no object cache).
    ByMake,
    /// kbuild's recorded command (an object cache, empty: the original is built and proven).
    ByRecordedCommand,
}

fn interrupted_build_restores_the_tree(test: &str, signal: Signal, patched: Patched) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = support::lab(test) else {
        return;
    };
    let before = support::tree::snapshot(&lab.src, &LAB_FILES);
    let work = tempfile::tempdir().unwrap();
    let stderr_file = work.path().join("child.stderr");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, work.path().join("w"))
        .env(
            CHILD_CACHE_ENV,
            if patched == Patched::ByRecordedCommand {
                work.path().join("cache").into_os_string()
            } else {
                std::ffi::OsString::new()
            },
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;

    // Wait for this child to swap the patched source into the tree (its guard journals the file
    // just before) and for the compiler of the patched build to run: the journal names the tag of
    // that make, which every process make starts carries in its environment.
    let journal = lab
        .src
        .join(klp_build::rebuild::SAVED_DIR)
        .join("journal.json");
    let start = Instant::now();
    let tag = loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the child ended ({status}) before the patched build: {}",
                std::fs::read_to_string(&stderr_file).unwrap()
            );
        }
        let j = std::fs::read_to_string(&journal).unwrap_or_default();
        if j.contains("\"fs/proc/cmdline.c\"") {
            // The tag starts with the pid of the klp-build that wrote it: another run on the lab
            // tree (another test binary) writes the same journal path.
            if let Some(tag) = make_tag(&j).filter(|t| t.starts_with(&format!("{pid}-"))) {
                if tagged(&tag).iter().any(|comm| comm == "cc1") {
                    break tag;
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the patched build never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let swapped_for = Instant::now();
    // The compile that was signalled is the one the test is about.
    assert_eq!(
        work.path().join("w/2-rebuild/make-patched.mk").exists(),
        patched == Patched::ByRecordedCommand,
        "the patched object is compiled by kbuild's make only without an object cache"
    );
    // SAFETY: kill(2) on the child we spawned (or its process group, which it leads).
    match signal {
        Signal::IntToGroup => unsafe { libc::kill(-pid, libc::SIGINT) },
        Signal::TermToProcess => unsafe { libc::kill(pid, libc::SIGTERM) },
        Signal::KillThenRecover => unsafe { libc::kill(-pid, libc::SIGKILL) },
    };
    if let Signal::KillThenRecover = signal {
        let status = child.wait().unwrap();
        assert_eq!(status.code(), None, "killed by a signal");
        assert!(
            !tagged(&tag).is_empty(),
            "make runs in its own process group, so it outlives the SIGKILL of klp-build's group"
        );
        klp_build::rebuild::recover_interrupted(&lab.src, &mut klp_build::progress::Quiet)
            .expect("replay the journal");
        assert_eq!(
            tagged(&tag),
            Vec::<String>::new(),
            "the next run stops the killed run's make before it restores the tree"
        );
        // A compiler still running would write cmdline.o within a second or two.
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(
            support::tree::snapshot(&lab.src, &LAB_FILES),
            before,
            "the next run must restore the killed run's tree"
        );
        assert!(
            !lab.src.join(klp_build::rebuild::SAVED_DIR).exists(),
            "journal replayed and removed"
        );
        // And the next build works: no half-written object, no false "does not build".
        let t = support::inputs::target(lab);
        let next = work.path().join("next");
        let set = klp_build::patch::run(
            &[support::inputs::patch("cmdline.patch")],
            &t.source,
            &next.join("1-patch"),
            &mut klp_build::progress::Quiet,
        )
        .expect("patch stage of the next run");
        let built = klp_build::rebuild::run(
            &t,
            &set,
            &next.join("2-rebuild"),
            None,
            &mut klp_build::progress::Quiet,
        )
        .expect("the next build succeeds");
        assert_eq!(built.pairs.len(), 1);
        assert_eq!(
            support::tree::snapshot(&lab.src, &LAB_FILES),
            before,
            "the next build leaves the tree as it was"
        );
        return;
    }
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            swapped_for.elapsed() < Duration::from_secs(60),
            "the child did not stop after the signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&stderr_file).unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "exit status {status}; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("klp-build: interrupted; restored"),
        "stderr:\n{stderr}"
    );
    assert_eq!(
        support::tree::snapshot(&lab.src, &LAB_FILES),
        before,
        "the tree must be as before the build"
    );
    assert!(
        !lab.src.join(klp_build::rebuild::SAVED_DIR).exists(),
        "nothing left to recover"
    );
}

#[test]
fn sigint_to_the_process_group_restores_the_tree() {
    interrupted_build_restores_the_tree(
        "sigint_to_the_process_group_restores_the_tree",
        Signal::IntToGroup,
        Patched::ByMake,
    );
}

#[test]
fn sigterm_to_the_process_alone_restores_the_tree() {
    interrupted_build_restores_the_tree(
        "sigterm_to_the_process_alone_restores_the_tree",
        Signal::TermToProcess,
        Patched::ByMake,
    );
}

#[test]
fn sigkill_leaves_a_journal_that_the_next_run_replays() {
    interrupted_build_restores_the_tree(
        "sigkill_leaves_a_journal_that_the_next_run_replays",
        Signal::KillThenRecover,
        Patched::ByMake,
    );
}

#[test]
fn sigint_during_a_recorded_command_restores_the_tree() {
    interrupted_build_restores_the_tree(
        "sigint_during_a_recorded_command_restores_the_tree",
        Signal::IntToGroup,
        Patched::ByRecordedCommand,
    );
}

#[test]
fn sigkill_during_a_recorded_command_leaves_a_journal_that_the_next_run_replays() {
    interrupted_build_restores_the_tree(
        "sigkill_during_a_recorded_command_leaves_a_journal_that_the_next_run_replays",
        Signal::KillThenRecover,
        Patched::ByRecordedCommand,
    );
}

/// The child side of the tests above; it only runs when they start it. It exits as klp-build's
/// `main` would: 130 for an interrupted build.
#[test]
#[ignore = "the child process of the interrupt tests, which run it themselves"]
fn child_process_entry() {
    let work = PathBuf::from(std::env::var_os(CHILD_ENV).expect("run by the interrupt tests only"));
    let lab = support::lab("child_process_entry").expect("the parent checked the lab");
    let t = support::inputs::target(lab);
    let patch = support::inputs::patch("cmdline.patch");
    let set = klp_build::patch::run(
        &[patch],
        &t.source,
        &work.join("1-patch"),
        &mut klp_build::progress::Quiet,
    )
    .unwrap();
    let cache = std::env::var_os(CHILD_CACHE_ENV)
        .filter(|c| !c.is_empty())
        .map(|c| klp_build::rebuild::ObjectCache::new(c.into()));
    match klp_build::rebuild::run(
        &t,
        &set,
        &work.join("2-rebuild"),
        cache.as_ref(),
        &mut klp_build::progress::Quiet,
    ) {
        Ok(b) => panic!(
            "the build returned {} pair(s) instead of being interrupted",
            b.pairs.len()
        ),
        Err(e) => {
            eprintln!("klp-build: error: {e:#}");
            std::process::exit(i32::from(klp_build::present::exit_code_of(&e)));
        }
    }
}

/// The `KLP_BUILD_MAKE_TAG` the journal names (the make running), if any.
fn make_tag(journal: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(journal).ok()?;
    v.get("make_tag")?.as_str().map(str::to_string)
}

/// The command names of the live processes that carry `tag` in their environment.
fn tagged(tag: &str) -> Vec<String> {
    let needle = format!("KLP_BUILD_MAKE_TAG={tag}");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            out.push(comm.trim().to_string());
        }
    }
    out
}

/// The live processes whose command line holds `needle`.
fn processes_with_arg(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            out.push(cmdline);
        }
    }
    out
}

/// Ctrl-C while the real binary links the module with kbuild: make (and its compilers) stop,
/// klp-build exits 130 and says it was interrupted while linking, and no make of that module dir
/// is left running.
#[test]
fn sigint_during_the_module_link_stops_make() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = support::lab("sigint_during_the_module_link_stops_make") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("w");
    let args = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch("cmdline.patch"),
        &work,
        &dir.path().join("out.ko"),
    );
    let stderr_file = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    // The link's make writes its log into the module dir as it starts; wait for a make whose
    // command line names that dir (M=<dir>).
    let start = Instant::now();
    let module_dir = loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "klp-build ended ({status}) before the link: {}",
                std::fs::read_to_string(&stderr_file).unwrap()
            );
        }
        let log = walk(&work).into_iter().find(|p| p.ends_with("kbuild.log"));
        if let Some(dir) = log.as_ref().and_then(|l| l.parent()) {
            let m = format!("M={}", dir.display());
            if !processes_with_arg(&m).is_empty() {
                break dir.to_path_buf();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the link never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    // SAFETY: kill(2) of the process group of the child we spawned, as a terminal's Ctrl-C.
    unsafe { libc::kill(-pid, libc::SIGINT) };
    let signalled = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(60),
            "klp-build did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&stderr_file).unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "status {status}; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("interrupted by SIGINT while linking the module"),
        "stderr:\n{stderr}"
    );
    assert_eq!(
        processes_with_arg(&format!("M={}", module_dir.display())),
        Vec::<String>::new(),
        "the link's make must be stopped"
    );
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Runs the real klp-build on `source` (the lab's headers, config and kallsyms) with the cmdline
/// patch, in its own process group, stderr to `stderr`.
fn spawn_klp_build(lab: &support::Lab, source: &Path, work: &Path, stderr: &Path) -> Child {
    let mut args = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch("cmdline.patch"),
        work,
        &work.with_extension("ko"),
    );
    let at = args.iter().position(|a| a == "--source").unwrap() + 1;
    args[at] = source.into();
    Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .process_group(0)
        .spawn()
        .unwrap()
}

fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(start.elapsed() < limit, "klp-build ran over {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A copy of the prepared lab tree (cp -a: same mtimes, another path). Kbuild's host tools record
/// absolute paths, so a build in the copy would recompile tools/objtool and resolve_btfids in it:
/// klp-build refuses before touching it and says how to prepare it at its path. Once prepared
/// there, a run killed by SIGKILL in the middle of its make leaves a journal and an orphaned make;
/// the tree is then moved, and the next run through the new path stops that make and replays the
/// journal: every file as before, content and mtime.
#[test]
fn a_copied_tree_keeps_its_host_tools_and_a_moved_trees_journal_is_replayed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) =
        support::lab("a_copied_tree_keeps_its_host_tools_and_a_moved_trees_journal_is_replayed")
    else {
        return;
    };
    const TOOLS: [&str; 5] = [
        "tools/objtool/objtool",
        "tools/objtool/check.o",
        "tools/objtool/.check.o.cmd",
        "tools/bpf/resolve_btfids/resolve_btfids",
        "tools/bpf/resolve_btfids/.main.o.cmd",
    ];
    let top = tempfile::tempdir_in(&lab.dir).unwrap();
    let a = top.path().join("linux-a");
    let copied = support::tree::locked(&lab.src, || {
        Command::new("cp")
            .arg("-a")
            .arg(&lab.src)
            .arg(&a)
            .status()
            .unwrap()
    });
    assert!(
        copied.success(),
        "cp -a {} {}",
        lab.src.display(),
        a.display()
    );
    let a = a.canonicalize().unwrap();
    let lab_src = lab.src.canonicalize().unwrap();
    let files: Vec<&str> = FILES.iter().chain(TOOLS.iter()).copied().collect();

    // 1. The copy: refused, nothing changed.
    let before = support::tree::snapshot(&a, &files);
    let err = top.path().join("refused.stderr");
    let mut run = spawn_klp_build(lab, &a, &top.path().join("w1"), &err);
    let status = wait_bounded(&mut run, Duration::from_secs(600));
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    for needle in [
        format!("{} was prepared at {}", a.display(), lab_src.display()),
        format!("make -C {}", a.display()),
        "modules_prepare".to_string(),
    ] {
        assert!(stderr.contains(&needle), "{needle:?} not in:\n{stderr}");
    }
    assert_eq!(
        support::tree::snapshot(&a, &files),
        before,
        "a refused build leaves the copy's host tools and objects as they were"
    );

    // 2. Prepared at its path, as the message says; then a run killed in its make.
    let prepared = Command::new("make")
        .arg("-C")
        .arg(&a)
        .args(["-s", "-j2", "modules_prepare"])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(
        prepared.success(),
        "make modules_prepare in {}",
        a.display()
    );
    let before = support::tree::snapshot(&a, &FILES);
    let err = top.path().join("killed.stderr");
    let mut run = spawn_klp_build(lab, &a, &top.path().join("w2"), &err);
    let pid = run.id() as libc::pid_t;
    let journal = a.join(klp_build::rebuild::SAVED_DIR).join("journal.json");
    let start = Instant::now();
    let tag = loop {
        if let Some(status) = run.try_wait().unwrap() {
            panic!(
                "klp-build ended ({status}) before its make: {}",
                std::fs::read_to_string(&err).unwrap()
            );
        }
        let j = std::fs::read_to_string(&journal).unwrap_or_default();
        if let Some(tag) = make_tag(&j).filter(|t| t.starts_with(&format!("{pid}-"))) {
            if tagged(&tag).iter().any(|comm| comm == "cc1") {
                break tag;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "no make started"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    // SAFETY: kill(2) of the process group of the child we spawned.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    assert_eq!(run.wait().unwrap().code(), None);
    assert!(!tagged(&tag).is_empty(), "its make outlives it");

    // 3. Moved: the next run, through the new path, stops that make and replays the journal
    // (then refuses the tree, whose host tools now name the old path).
    let b = top.path().join("linux-b");
    std::fs::rename(&a, &b).unwrap();
    let err = top.path().join("next.stderr");
    let mut run = spawn_klp_build(lab, &b, &top.path().join("w3"), &err);
    let status = wait_bounded(&mut run, Duration::from_secs(600));
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert_eq!(tagged(&tag), Vec::<String>::new(), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "of {} (journaled when it was reached as {}) left modified by an interrupted build",
            b.display(),
            a.display()
        )),
        "stderr:\n{stderr}"
    );
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("was prepared at {}", a.display())),
        "stderr:\n{stderr}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        support::tree::snapshot(&b, &FILES),
        before,
        "the moved tree is as before the killed run"
    );
    assert!(!b.join(klp_build::rebuild::SAVED_DIR).exists());
}
