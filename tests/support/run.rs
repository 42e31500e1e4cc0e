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
