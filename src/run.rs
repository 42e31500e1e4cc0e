//! The subcommands, each a short chain: the main job is plan -> pipeline -> presenter; `diff`
//! works on one object pair (`check` and `inspect` live in `check`). Input: parsed options. Output: the exit
//! code (errors are returned, and `main` maps them). Invariant: nothing here exits the process.

use anyhow::Context;

use crate::cli::{BuildArgs, DiffArgs, ReleaseArgs, ReleaseCommand, ReportFormat};
use crate::contract::KlpObject;
use crate::diff;
use crate::emit::out_object;
use crate::pipeline;
use crate::plan::Plan;
use crate::present::{self, ExitError, StderrProgress, EXIT_NO_CHANGE};

/// The main job: `klp-build --diff fix.patch ...` (with `--dry-run`, plan -> presenter).
pub fn build(args: &BuildArgs) -> anyhow::Result<u8> {
    let mut progress = StderrProgress::with(args.verbosity());
    let plan = Plan::resolve(args)?;
    if args.dry_run {
        return present::dry_run(&crate::dry_run::plan(&plan, &args.previous)?, plan.report);
    }
    let outcome = pipeline::run(&plan, &mut progress)?;
    present::outcome(&outcome, plan.report)
}

/// `klp-build diff ORIG.o PATCHED.o`.
pub fn diff_pair(args: &DiffArgs) -> anyhow::Result<u8> {
    let klp_object = args.module.clone().map_or(KlpObject::Vmlinux, |m| {
        KlpObject::Module(crate::kernel::normalize_modname(&m))
    });
    if let Some(out) = &args.output {
        crate::plan::check_output_is_no_input(
            "-o",
            out,
            &[("ORIG", &args.orig), ("PATCHED", &args.patched)],
        )?;
    }
    let d = diff::run(&args.patched, klp_object, &args.orig, &args.patched)?;
    if let Some(func) = &args.explain {
        let e = diff::explain::explain(&d, func)
            .with_context(|| format!("--explain {func} ({})", args.patched.display()))?;
        match args.report {
            ReportFormat::Text => crate::stdout::write(&e.to_string())?,
            ReportFormat::Json => crate::stdout::writeln(&serde_json::to_string_pretty(&e)?)?,
        }
        return Ok(0);
    }
    let report = match args.report {
        ReportFormat::Text => d.to_string(),
        ReportFormat::Json => format!("{}\n", serde_json::to_string_pretty(&d.findings())?),
    };
    if !d.refusals.is_empty() {
        crate::stdout::write(&report)?;
        return Err(diff::Refused(d.refusals.clone()).into());
    }
    if d.is_empty() {
        crate::stdout::write(&report)?;
        return Err(ExitError {
            code: EXIT_NO_CHANGE,
            message: if d.line_only.is_empty() {
                format!("{}: no functional change", args.patched.display())
            } else {
                format!(
                    "{}: no functional change (only __LINE__ values differ)",
                    args.patched.display()
                )
            },
        }
        .into());
    }
    // The object is written before the report: a reader that closes stdout early (`| head`)
    // must not cost the -o file.
    let out = match out_object::extract(&d, "0") {
        Ok(out) => out,
        Err(refusals) => {
            crate::stdout::write(&report)?;
            return Err(diff::Refused(refusals).into());
        }
    };
    if let Some(path) = &args.output {
        out.elf
            .write_to(path)
            .with_context(|| format!("-o {}", path.display()))?;
    }
    crate::stdout::write(&report)?;
    Ok(0)
}

/// `klp-build release ...`, each subcommand to its module. `release verify` is verify's: it reads
/// a release's index and boots its kernels, so verify depends on the release and not the other
/// way round.
pub fn release(args: &ReleaseArgs) -> anyhow::Result<u8> {
    use crate::release::{build, cache, ci, kernels};
    match &args.command {
        ReleaseCommand::Build(a) => build::build(a),
        ReleaseCommand::Scan(a) => build::scan(a),
        ReleaseCommand::Plan(a) => ci::plan(a),
        ReleaseCommand::Collect(a) => ci::collect(a),
        ReleaseCommand::Kernels(a) => kernels(a),
        ReleaseCommand::Cache(a) => cache::list_command(a),
        ReleaseCommand::Prune(a) => cache::prune_command(a),
        ReleaseCommand::Verify(a) => crate::verify::release::run(a),
    }
}
