//! What the user sees: progress on stderr, the report on stdout (text or JSON), and the exit code
//! of an outcome or error. Input: stage values and errors. Output: text and an exit code.
//! Invariant: the only place that prints a build's result and decides its exit code; reports are
//! rendered from values, never scraped from tool output.

use std::io::IsTerminal as _;

use serde::Serialize;

use crate::cli::ReportFormat;
use crate::contract::REPORT_SCHEMA_VERSION;
use crate::diff::Finding;
use crate::pipeline::{BuildReport, Outcome};
use crate::progress::{Progress, Verbosity};
use crate::text::{field, field_max};

/// Exit code: the patches change no function's code.
pub const EXIT_NO_CHANGE: u8 = 3;
/// Exit code: a usage error (clap's own code).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: interrupted (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// An error that carries its own exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExitError {
    /// The exit code.
    pub code: u8,
    /// The message.
    pub message: String,
}

/// The exit code for an error: usage errors 2, interruptions 130, errors that carry a code
/// theirs, everything else 1.
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    if is_quiet(e) {
        return crate::stdout::EXIT_CLOSED;
    }
    if e.downcast_ref::<crate::cli::UsageError>().is_some() {
        return EXIT_USAGE;
    }
    if e.chain().any(|c| {
        c.downcast_ref::<crate::rebuild::interrupt::Interrupted>()
            .is_some()
    }) {
        return EXIT_INTERRUPTED;
    }
    e.downcast_ref::<ExitError>().map_or(1, |x| x.code)
}

/// An error that ends the program without a message: stdout's reader went away, so the report has
/// no one to read it (see `stdout`).
pub fn is_quiet(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.downcast_ref::<crate::stdout::Closed>().is_some())
}

/// Progress as lines on stderr: `klp-build: rebuild...`. On a terminal the stage lines carry the
/// time since the start, so a slow stage shows where the time goes. `-q` shows none of it (errors
/// and the report remain), `-v` adds every command run (`klp-build: run: make -C ...`).
pub struct StderrProgress {
    start: std::time::Instant,
    terminal: bool,
    verbosity: Verbosity,
}

impl StderrProgress {
    /// Progress that starts now, at the default verbosity.
    pub fn new() -> Self {
        Self::with(Verbosity::Normal)
    }

    /// Progress that starts now and shows what `verbosity` asks for.
    pub fn with(verbosity: Verbosity) -> Self {
        StderrProgress {
            start: std::time::Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            verbosity,
        }
    }
}

impl Default for StderrProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for StderrProgress {
    fn stage(&mut self, name: &str) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        if self.terminal {
            eprintln!(
                "klp-build: [{:5.1}s] {name}...",
                self.start.elapsed().as_secs_f64()
            );
        } else {
            eprintln!("klp-build: {name}...");
        }
    }

    fn note(&mut self, message: &str) {
        if self.verbosity > Verbosity::Quiet {
            eprintln!("klp-build: {}", crate::text::message(message));
        }
    }

    fn command(&mut self, line: &str) {
        if self.verbosity == Verbosity::Verbose {
            eprintln!("klp-build: run: {}", crate::text::message(line));
        }
    }

    fn detail(&mut self, message: &str) {
        if self.verbosity == Verbosity::Verbose {
            eprintln!("klp-build: {}", crate::text::message(message));
        }
    }
}

/// The JSON document of a run that built nothing.
#[derive(Serialize, schemars::JsonSchema)]
pub struct NotBuilt<'a> {
    /// [`REPORT_SCHEMA_VERSION`].
    #[schemars(extend("const" = REPORT_SCHEMA_VERSION))]
    pub schema_version: u32,
    /// `no_change` or `refused`.
    #[schemars(extend("enum" = ["no_change", "refused"]))]
    pub outcome: &'static str,
    /// Why nothing was built.
    pub reason: &'a str,
    /// The refusals (empty for `no_change`).
    pub findings: &'a [Finding],
}

/// Prints the plan of a `--dry-run`; exit 0.
pub fn dry_run(d: &crate::dry_run::DryRun, format: ReportFormat) -> anyhow::Result<u8> {
    match format {
        ReportFormat::Json => crate::stdout::writeln(&serde_json::to_string_pretty(d)?)?,
        ReportFormat::Text => crate::stdout::write(&d.to_string())?,
    }
    Ok(0)
}

/// Prints the outcome's report and returns its exit code; a refusal's findings go to stderr as
/// the error (and into the JSON report).
pub fn outcome(o: &Outcome, format: ReportFormat) -> anyhow::Result<u8> {
    match o {
        Outcome::Built(r) => {
            match format {
                ReportFormat::Json => crate::stdout::writeln(&serde_json::to_string_pretty(r)?)?,
                ReportFormat::Text => {
                    crate::stdout::write(&format!("{}{}", r.diff_report, build_text(r)))?
                }
            }
            Ok(0)
        }
        Outcome::NoChange { reason, report } => {
            match format {
                ReportFormat::Json => {
                    crate::stdout::writeln(&serde_json::to_string_pretty(&NotBuilt {
                        schema_version: REPORT_SCHEMA_VERSION,
                        outcome: "no_change",
                        reason,
                        findings: &[],
                    })?)?
                }
                ReportFormat::Text => crate::stdout::write(&report.to_string())?,
            }
            Err(ExitError {
                code: EXIT_NO_CHANGE,
                message: format!("no functional change: {reason}; nothing to livepatch"),
            }
            .into())
        }
        Outcome::Refused { findings, report } => {
            match format {
                ReportFormat::Json => {
                    crate::stdout::writeln(&serde_json::to_string_pretty(&NotBuilt {
                        schema_version: REPORT_SCHEMA_VERSION,
                        outcome: "refused",
                        reason: "changes that cannot be livepatched",
                        findings,
                    })?)?
                }
                ReportFormat::Text => crate::stdout::write(&report.to_string())?,
            }
            Err(crate::diff::Refused(findings.clone()).into())
        }
    }
}

/// The text report of a built module, after the diff report.
pub fn build_text(r: &BuildReport) -> String {
    let mut s = String::new();
    s.push_str(&format!("replace: {}\n", r.manifest.replace.describe()));
    for st in &r.manifest.states {
        s.push_str(&format!("state {:#x} version {}\n", st.id, st.version));
    }
    for o in &r.objects {
        for f in &o.funcs {
            s.push_str(&format!(
                "patched {}:{},{} ({})\n",
                field(&f.object),
                field(&f.name),
                f.sympos,
                f.why
            ));
        }
        for (n, b) in &o.bindings {
            if let Some(k) = b.klp_symbol() {
                s.push_str(&format!("klp symbol {k} (for {n})\n"));
            }
        }
        for w in &o.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
    }
    if let Some(c) = &r.check {
        for w in c.warnings() {
            s.push_str(&format!("warning: {}: {}\n", w.key, w.message));
        }
    }
    for w in &r.patch_warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    if let Some(sig) = &r.signature {
        s.push_str(&format!("signed: {}\n", field_max(&sig.to_string(), 1000)));
    }
    s.push_str("time:");
    for (st, secs) in &r.timings.0 {
        s.push_str(&format!(" {st} {secs:.1}s"));
    }
    if let Some(w) = &r.work_dir {
        s.push_str(&format!("\nwork dir kept: {}", w.display()));
    }
    s.push_str(&format!(
        "\nbuilt {} for {}\n",
        r.module.display(),
        r.kernel_release
    ));
    s
}
