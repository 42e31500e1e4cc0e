//! The stages chained for each command. Input: parsed options. Output: files and a report, and the
//! exit code. Invariant: reports are built from stage values, never scraped from tool output.

use std::path::Path;

use anyhow::{bail, Context};

use crate::build::KlpObject;
use crate::cli::{BuildArgs, DiffArgs, ReportFormat};
use crate::diff;
use crate::emit::clone;

/// Exit codes: 0 module built, 1 error, 2 usage (clap), 3 no functional change.
pub const EXIT_NO_CHANGE: u8 = 3;

/// An error that carries its own exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExitError {
    /// The exit code.
    pub code: u8,
    /// The message.
    pub message: String,
}

/// The exit code for an error.
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    e.downcast_ref::<ExitError>().map_or(1, |x| x.code)
}

fn refused(findings: &[diff::Finding]) -> anyhow::Error {
    let mut msg = format!("{} unpatchable change(s):", findings.len());
    for f in findings {
        msg.push_str(&format!("\n  {} {}: {}", f.key, f.location, f.message));
    }
    anyhow::anyhow!(msg)
}

/// `klp-build diff ORIG.o PATCHED.o`.
pub fn diff_pair(args: &DiffArgs) -> anyhow::Result<u8> {
    let klp_object = args.module.clone().map_or(KlpObject::Vmlinux, |m| {
        KlpObject::Module(m.replace('-', "_"))
    });
    let d = diff::run(&args.patched, klp_object, &args.orig, &args.patched)?;
    match args.report {
        ReportFormat::Text => print!("{d}"),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&d.findings())?),
    }
    if !d.refusals.is_empty() {
        return Err(refused(&d.refusals));
    }
    if d.is_empty() {
        return Err(ExitError {
            code: EXIT_NO_CHANGE,
            message: format!("{}: no functional change", args.patched.display()),
        }
        .into());
    }
    let out = clone::clone(&d, "0").map_err(|f| refused(&f))?;
    if let Some(path) = &args.output {
        out.elf
            .write_to(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(0)
}

/// The main job.
pub fn build_module(args: &BuildArgs) -> anyhow::Result<u8> {
    if args.diffs.is_empty() {
        bail!("nothing to do: give at least one --diff FILE (see --help)");
    }
    let _ = Path::new(".");
    bail!("not built yet")
}
