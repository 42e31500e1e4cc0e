//! One kbuild run of single targets. Input: the tree, the objects, a log file and the tag of the
//! run. Output: the objects built, or the compiler's messages. Invariant: make is started and
//! stopped by `child::run` (its own process group, stopped before the tree is restored) and carries
//! the tag the guard journaled, so a make orphaned by a SIGKILL is found by the next run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

use super::child;
use crate::kernel::Kernel;
use crate::progress::{self, Progress};

/// The flags klp-build adds to the kernel's own (design.md): one section per function and per
/// data object, so the diff stage compares and extracts them one by one.
pub const KCFLAGS: &str = "-ffunction-sections -fdata-sections";

/// How a make run ended.
#[derive(Debug)]
pub enum MakeOutcome {
    /// Every target was built.
    Built,
    /// make failed: its diagnostics (compiler messages, without make's own `make[N]: ***` lines).
    Failed(Vec<String>),
}

/// The arguments of every single-object make after `-C TREE -jN`: silent, klp-build's
/// [`KCFLAGS`], the target's toolchain variables. They are part of the object cache's key: the
/// same tree and arguments give the same command.
pub fn args(target: &Kernel) -> Vec<String> {
    let mut args = vec!["-s".to_string(), format!("KCFLAGS={KCFLAGS}")];
    args.extend(target.toolchain.make_vars());
    args
}

/// Runs `make -C source -jN ARGS... targets...` ([`args`]) in the target's tree with its jobs,
/// its output going to `log`, tagged `tag` (see `child`); `what` names the build for an
/// interruption's message, and the command line goes to `progress`. The toolchain variables in
/// `ARGS` ([`crate::kernel::compiler::Toolchain::make_vars`]) are the same as when the tree was
/// prepared, else kbuild reconfigures the tree before building. With `record`, make also runs
/// with `--debug=v` and writes that trace (stdout) there: the makefiles it read and the files it
/// considered, which the object cache keys on ([`super::makelog`]); errors stay in `log`.
pub fn make(
    target: &Kernel,
    targets: &[PathBuf],
    log: &Path,
    record: Option<&Path>,
    tag: &str,
    what: &str,
    progress: &mut dyn Progress,
) -> anyhow::Result<MakeOutcome> {
    let (source, jobs) = (&target.source, target.jobs);
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let stdout = match record {
        Some(r) => std::fs::File::create(r).with_context(|| format!("creating {}", r.display()))?,
        None => out
            .try_clone()
            .with_context(|| format!("opening {}", log.display()))?,
    };
    let mut cmd = Command::new("make");
    cmd.arg("-C").arg(source).arg(format!("-j{jobs}"));
    if record.is_some() {
        cmd.arg("--debug=v");
    }
    cmd.args(args(target))
        .args(targets)
        .env(child::TAG_VAR, tag)
        // make's own messages, which the trace is read from, untranslated; kbuild's tools and
        // compilers do not read LC_MESSAGES for anything but their messages.
        .env("LC_MESSAGES", "C")
        .env_remove("LANGUAGE")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(out);
    progress.command(&progress::command_line(&cmd));
    let status = child::run(&mut cmd, what)?;
    Ok(outcome(status, log))
}

/// [`MakeOutcome`] of a make that ended with `status` and wrote its errors to `log`.
pub fn outcome(status: std::process::ExitStatus, log: &Path) -> MakeOutcome {
    if status.success() {
        return MakeOutcome::Built;
    }
    let text = std::fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut diagnostics: Vec<String> = text
        .lines()
        .filter(|l| !(l.starts_with("make[") || l.starts_with("make:")))
        .map(str::to_string)
        .collect();
    if diagnostics.is_empty() {
        diagnostics = text.lines().map(str::to_string).collect();
    }
    MakeOutcome::Failed(diagnostics)
}

/// The compiler's messages cut to what a terminal shows: the first error and what follows it,
/// `max` lines at most.
pub fn excerpt(diagnostics: &[String], max: usize) -> String {
    let start = diagnostics
        .iter()
        .position(|l| l.contains("error"))
        .map_or(0, |i| {
            // Keep the `In function 'x':` line that gcc prints before the first error.
            if i > 0 && diagnostics[i - 1].contains("In function") {
                i - 1
            } else {
                i
            }
        });
    let shown: Vec<&str> = diagnostics[start..]
        .iter()
        .take(max)
        .map(String::as_str)
        .collect();
    let mut s = shown.join("\n    ");
    let rest = diagnostics.len() - start - shown.len();
    if rest > 0 {
        s.push_str(&format!("\n    ... ({rest} more lines)"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_starts_at_the_first_error() {
        let d: Vec<String> = [
            "fs/proc/cmdline.c: In function 'cmdline_proc_show':",
            "fs/proc/cmdline.c:10:9: error: 'x' undeclared",
            "10 | x;",
            "a",
            "b",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            excerpt(&d, 3),
            "fs/proc/cmdline.c: In function 'cmdline_proc_show':\n    fs/proc/cmdline.c:10:9: error: 'x' undeclared\n    \
             10 | x;\n    ... (2 more lines)"
        );
    }
}
