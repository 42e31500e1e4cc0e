//! The klp-build binary run as a user runs it, for the tests that check its whole behaviour.
//! Input: a working directory and arguments. Output: the finished process. Invariant: standard
//! input is closed (CI has none), so a prompt can never hang a test.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs klp-build with `args` in `dir` and waits for it.
pub fn klp_build<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run klp-build")
}

/// The exit code, stderr and stdout of a run, for assertion messages.
pub fn describe(o: &Output) -> String {
    format!(
        "exit {:?}\n```stderr\n{}```\n```stdout\n{}```",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    )
}

/// A release target's `compiles.json` (written by its compiler launcher): checks that only the
/// tree's files in `allowed` were compiled (the module link's own files are listed apart, under
/// `module_link`) and that at least `min_hits` compiles came from the cache; `what` names the
/// target.
pub fn assert_compiled_only(compiles: &Path, allowed: &[&str], min_hits: u64, what: &str) {
    let text = std::fs::read_to_string(compiles).unwrap_or_else(|e| {
        panic!(
            "{what}: {}: {e} (is ccache installed? apt-get install ccache)",
            compiles.display()
        )
    });
    let stats: serde_json::Value = serde_json::from_str(&text).unwrap();
    let compiled = stats["compiled"].as_array().unwrap();
    assert!(
        compiled
            .iter()
            .all(|c| c.as_str().is_some_and(|c| allowed.contains(&c))),
        "{what}: compiled more than {allowed:?}: {stats:#}"
    );
    assert!(
        stats["hits"].as_u64().unwrap() >= min_hits,
        "{what}: {stats:#}"
    );
}
