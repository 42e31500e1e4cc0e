//! The make runs of klp-build, stoppable. Input: a `make` command. Output: its exit status, or
//! `interrupt::Interrupted` once make and everything it started are gone. Invariant: make runs in a
//! process group of its own, so a signal that reaches only klp-build (SIGTERM from a supervisor)
//! still stops every compiler: klp-build passes it on to the whole group and waits; and each make
//! of the tree build carries a tag in its environment, which every compiler it starts inherits,
//! so that the next run can find and stop the makes of a klp-build that was SIGKILLed
//! ([`stop_tagged`]) before it puts the tree back.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::interrupt;
use crate::progress::Progress;

/// The environment variable that tags a make of the tree build and all its descendants.
pub const TAG_VAR: &str = "KLP_BUILD_MAKE_TAG";

/// How long a stopped make gets to clean up (remove its half-written target) before the next,
/// harder signal.
const GRACE: Duration = Duration::from_secs(5);

/// A tag no other run uses: pid, time and a counter.
pub fn new_tag() -> String {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{}-{nanos}-{n}", std::process::id())
}

/// Runs `cmd` (a make) in a process group of its own and waits for it. On SIGINT, SIGTERM or
/// SIGHUP of klp-build, passes SIGINT to the group (make removes its half-written targets),
/// SIGTERM after [`GRACE`], SIGKILL after twice that, and returns `interrupt::Interrupted` once make has
/// ended; `what` says what it was doing, for the message.
pub fn run(cmd: &mut Command, what: &str) -> anyhow::Result<ExitStatus> {
    interrupt::install();
    let _defer = interrupt::Defer::start();
    interrupt::check(what)?;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd.process_group(0).spawn().with_context(|| {
        format!("running {program}: install make and gcc (apt-get install make gcc)")
    })?;
    let group = child.id() as libc::pid_t;
    let mut stopping: Option<(Instant, i32)> = None;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        let next = match stopping {
            None if interrupt::interrupted() => Some(libc::SIGINT),
            Some((at, libc::SIGINT)) if at.elapsed() > GRACE => Some(libc::SIGTERM),
            Some((at, libc::SIGTERM)) if at.elapsed() > GRACE => Some(libc::SIGKILL),
            _ => None,
        };
        if let Some(signal) = next {
            // SAFETY: kill(2) with a negative pid signals the process group that make leads.
            unsafe { libc::kill(-group, signal) };
            stopping = Some((Instant::now(), signal));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if interrupt::interrupted() {
        // A compiler that outlived make must not write once the tree is restored.
        // SAFETY: as above; ESRCH (the group is gone) is the usual answer.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
    interrupt::check(what)?;
    Ok(status)
}

/// The live (not zombie) processes whose environment holds `TAG_VAR=tag`.
fn tagged(tag: &str) -> Vec<(libc::pid_t, String)> {
    let needle = format!("{TAG_VAR}={tag}");
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // A zombie's environ reads empty; one that ended since the listing is skipped.
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            out.push((pid, comm.trim().to_string()));
        }
    }
    out
}

/// Stops every process tagged `tag` (the makes and compilers of a killed klp-build that still
/// write into `tree`): SIGTERM, then SIGKILL after [`GRACE`], until none is left. Returns how many
/// there were; an error when some survive SIGKILL.
pub fn stop_tagged(tag: &str, tree: &Path, progress: &mut dyn Progress) -> anyhow::Result<usize> {
    let found = tagged(tag);
    if found.is_empty() {
        return Ok(0);
    }
    progress.note(&format!(
        "stopping {} process(es) of an interrupted build still running in {}: {}",
        found.len(),
        tree.display(),
        found
            .iter()
            .map(|(pid, comm)| format!("{comm} ({pid})"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    // Counted over every round: a process in the middle of an exec reads as untagged for that
    // moment (its environ is empty while the new image is set up), and one forked between two
    // listings shows up only in the next.
    let mut seen: std::collections::BTreeSet<libc::pid_t> = found.iter().map(|(p, _)| *p).collect();
    let start = Instant::now();
    loop {
        let left = tagged(tag);
        if left.is_empty() {
            return Ok(seen.len());
        }
        seen.extend(left.iter().map(|(p, _)| *p));
        let signal = if start.elapsed() < GRACE {
            libc::SIGTERM
        } else {
            libc::SIGKILL
        };
        if start.elapsed() > 3 * GRACE {
            anyhow::bail!(
                "cannot stop the make of an interrupted build in {}: {} still run after SIGKILL; the tree is \
                 left as it is (stop them, then run klp-build again)",
                tree.display(),
                left.iter()
                    .map(|(pid, comm)| format!("{comm} ({pid})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for (pid, _) in &left {
            // Re-signalled on each round: a process forked between two listings is caught by
            // the next. SIGTERM lets make remove its half-written target.
            // SAFETY: kill(2) of a process that carries our tag, found just above.
            unsafe { libc::kill(*pid, signal) };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Quiet;

    #[test]
    fn tagged_processes_are_found_and_stopped() {
        let tag = new_tag();
        let mut child = Command::new("sh")
            .args(["-c", "sleep 60 & sleep 60; wait"])
            .env(TAG_VAR, &tag)
            .spawn()
            .unwrap();
        let start = Instant::now();
        // Both sleeps exec'd: until then a forked shell is in the middle of becoming one.
        let settled = |t: &[(libc::pid_t, String)]| {
            t.len() == 3 && t.iter().filter(|(_, comm)| comm == "sleep").count() == 2
        };
        while !settled(&tagged(&tag)) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{:?}",
                tagged(&tag)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            stop_tagged(&tag, Path::new("/tree"), &mut Quiet).unwrap(),
            3
        );
        child.wait().unwrap();
        assert!(tagged(&tag).is_empty());
        assert_eq!(
            stop_tagged(&tag, Path::new("/tree"), &mut Quiet).unwrap(),
            0
        );
    }
}
