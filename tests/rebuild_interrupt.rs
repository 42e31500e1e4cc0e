//! Ctrl-C in the middle of the patched build: a child process (this test binary, running the
//! ignored `child_process_entry`) builds fs/proc/cmdline.o in the lab tree; once the patched
//! source is in the tree, the parent signals it. The child must exit 130 and leave the tree
//! byte-identical: the source file (content and mtime) and no object, `.cmd` or `.d` file.

mod support;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "KLP_BUILD_INTERRUPT_CHILD_WORK";
const FILES: [&str; 4] = [
    "fs/proc/cmdline.c",
    "fs/proc/cmdline.o",
    "fs/proc/.cmdline.o.cmd",
    "fs/proc/.cmdline.o.d",
];

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

fn interrupted_build_restores_the_tree(test: &str, signal: Signal) {
    // One at a time: the journal lives in the tree, so a parent must only ever see its own
    // child's journal.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lab) = support::lab(test) else {
        return;
    };
    let before = support::tree::snapshot(&lab.src, &FILES);
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
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;

    // Wait for this child to swap the patched source into the tree (its guard journals the file
    // just before), then give make time to start compiling it (about a second for cmdline.o).
    let journal = lab
        .src
        .join(klp_build::rebuild::SAVED_DIR)
        .join("journal.json");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the child ended ({status}) before the patched build: {}",
                std::fs::read_to_string(&stderr_file).unwrap()
            );
        }
        if std::fs::read_to_string(&journal).is_ok_and(|j| j.contains("\"fs/proc/cmdline.c\"")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the patched build never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    let swapped_for = Instant::now();
    // SAFETY: kill(2) on the child we spawned (or its process group, which it leads).
    match signal {
        Signal::IntToGroup => unsafe { libc::kill(-pid, libc::SIGINT) },
        Signal::TermToProcess => unsafe { libc::kill(pid, libc::SIGTERM) },
        Signal::KillThenRecover => unsafe { libc::kill(-pid, libc::SIGKILL) },
    };
    if let Signal::KillThenRecover = signal {
        let status = child.wait().unwrap();
        assert_eq!(status.code(), None, "killed by a signal");
        klp_build::rebuild::recover_interrupted(&lab.src).expect("replay the journal");
        assert_eq!(
            support::tree::snapshot(&lab.src, &FILES),
            before,
            "the next run must restore the killed run's tree"
        );
        assert!(
            !lab.src.join(klp_build::rebuild::SAVED_DIR).exists(),
            "journal replayed and removed"
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
        support::tree::snapshot(&lab.src, &FILES),
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
    );
}

#[test]
fn sigterm_to_the_process_alone_restores_the_tree() {
    interrupted_build_restores_the_tree(
        "sigterm_to_the_process_alone_restores_the_tree",
        Signal::TermToProcess,
    );
}

#[test]
fn sigkill_leaves_a_journal_that_the_next_run_replays() {
    interrupted_build_restores_the_tree(
        "sigkill_leaves_a_journal_that_the_next_run_replays",
        Signal::KillThenRecover,
    );
}

/// The child side of the tests above; it only runs when they start it.
#[test]
#[ignore = "the child process of the interrupt tests, which run it themselves"]
fn child_process_entry() {
    let work = PathBuf::from(std::env::var_os(CHILD_ENV).expect("run by the interrupt tests only"));
    let lab = support::lab("child_process_entry").expect("the parent checked the lab");
    let t = support::inputs::target(lab);
    let patch = support::inputs::patch("cmdline.patch");
    let set = klp_build::patch::run(&[patch], &t.source, &work.join("1-patch")).unwrap();
    let r = klp_build::rebuild::run(&t, &set, &work.join("2-rebuild"));
    panic!(
        "the build returned instead of exiting 130: {:?}",
        r.map(|b| b.pairs.len())
    );
}
