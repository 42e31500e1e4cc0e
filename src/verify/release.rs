//! `klp-build release verify DIR`: every built module of a release verified on its own kernel.
//! Input: a release's output directory (`index.json`), kernels for the targets that are no Debian
//! kernel, the guest's options, `-j`. Output: one verdict per target (the whole `verify` report
//! each) and exit 0 only when every built module passed. Invariant: every target with a module
//! gets a verdict or a reason; none is silently left out, and nothing is booted before every
//! option and every target's kernel is known.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::cli::{ReleaseVerifyArgs, ReportFormat};
use crate::release::index::Index;
use crate::verify::{self, VerifyReport};

/// One target's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct TargetVerdict {
    /// The kernel release.
    pub kernel_release: String,
    /// How the release names the target.
    pub target: String,
    /// The module, relative to the release's directory.
    pub module: String,
    /// `pass`, `fail`, or `error` (verify could not run; see `reason`).
    pub verdict: String,
    /// Why verify could not run.
    pub reason: Option<String>,
    /// The verify report.
    pub report: Option<VerifyReport>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseVerify {
    /// The release's name and version.
    pub release: String,
    /// `pass` when every built module passed.
    pub verdict: String,
    /// One per target that has a module.
    pub targets: Vec<TargetVerdict>,
}

/// `klp-build release verify`.
pub fn run(args: &ReleaseVerifyArgs) -> anyhow::Result<u8> {
    verify::check_guest(&args.guest)?;
    if args.jobs == 0 || args.jobs > 64 {
        bail!("-j {}: give 1 to 64 guests at once", args.jobs);
    }
    let index = Index::read(&args.dir)?;
    let kernels = named_kernels(args, &index)?;
    for s in [&args.guest.check, &args.guest.setup].into_iter().flatten() {
        crate::input::read(s, crate::input::Kind::Script, "--check/--setup")?;
    }
    let (work, results) = built_targets(args, &index, &kernels);
    if work.is_empty() {
        bail!(
            "{}: no target of the release has a module (status built); nothing to verify",
            args.dir.join("index.json").display()
        );
    }
    let targets = verify_all(args, work, results)?;
    let pass = targets.iter().all(|t| t.verdict == "pass");
    let out = ReleaseVerify {
        release: format!("{} {}", index.release.name, index.release.version),
        verdict: if pass { "pass" } else { "fail" }.into(),
        targets,
    };
    print(&out, args.report)?;
    Ok(if pass { 0 } else { 1 })
}

/// A built target waiting for its guest: its place in the verdicts, its module, and the kernel
/// to boot (`None` when there is none to boot: not a Debian target and no `--kernel`).
type Job = (usize, PathBuf, Option<String>);

/// The `--kernel TARGET=KERNEL` pairs, each naming a target of the release (by its name or its
/// kernel release).
fn named_kernels(args: &ReleaseVerifyArgs, index: &Index) -> anyhow::Result<Vec<(String, String)>> {
    let mut kernels: Vec<(String, String)> = Vec::new();
    for k in &args.kernels {
        let Some((t, kernel)) = k.split_once('=') else {
            bail!("--kernel {k}: give TARGET=KERNEL, e.g. lab-tree=trees/linux-7.2");
        };
        if !index
            .targets
            .iter()
            .any(|x| x.target == t || x.kernel_release == t)
        {
            bail!(
                "--kernel {k}: the release has no target {t}; its targets: {}",
                index.release.targets.join(", ")
            );
        }
        kernels.push((t.to_string(), kernel.to_string()));
    }
    Ok(kernels)
}

/// Each built target with the kernel to boot: the one named, else its Debian release; and its
/// verdict, `error` until its guest says otherwise.
fn built_targets(
    args: &ReleaseVerifyArgs,
    index: &Index,
    kernels: &[(String, String)],
) -> (Vec<Job>, Vec<Option<TargetVerdict>>) {
    let mut work: Vec<Job> = Vec::new();
    let mut results: Vec<Option<TargetVerdict>> = Vec::new();
    for t in index.targets.iter().filter(|t| t.status == "built") {
        let Some(module) = &t.module else { continue };
        let kernel = kernels
            .iter()
            .find(|(n, _)| *n == t.target || *n == t.kernel_release)
            .map(|(_, k)| k.clone())
            .or_else(|| t.package_version.as_ref().map(|_| t.kernel_release.clone()));
        work.push((results.len(), args.dir.join(module), kernel));
        results.push(Some(TargetVerdict {
            kernel_release: t.kernel_release.clone(),
            target: t.target.clone(),
            module: module.clone(),
            verdict: "error".into(),
            reason: None,
            report: None,
        }));
    }
    (work, results)
}

/// The jobs run by `-j` guests at once, each verdict filled in (and said, unless `-q`) as its
/// guest ends; the verdicts in the release's order.
fn verify_all(
    args: &ReleaseVerifyArgs,
    work: Vec<Job>,
    results: Vec<Option<TargetVerdict>>,
) -> anyhow::Result<Vec<TargetVerdict>> {
    let results = Mutex::new(results);
    let queue = Mutex::new(work.into_iter());
    let say = Mutex::new(());
    std::thread::scope(|s| {
        for _ in 0..args.jobs.min(results.lock().map_or(1, |r| r.len())) {
            s.spawn(|| loop {
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some((i, module, kernel)) = next else {
                    break;
                };
                let outcome = match &kernel {
                    None => Err(anyhow::anyhow!(
                        "no kernel to boot: not a Debian target; give --kernel TARGET=KERNEL"
                    )),
                    Some(k) => verify_one(&module, k, &args.guest),
                };
                let _one = say.lock();
                if let Ok(mut r) = results.lock() {
                    if let Some(Some(v)) = r.get_mut(i) {
                        match outcome {
                            Ok(report) => {
                                v.verdict = report.verdict.clone();
                                v.report = Some(report);
                            }
                            Err(e) => v.reason = Some(format!("{e:#}")),
                        }
                        if !args.quiet {
                            eprintln!("klp-build: {}: {}", v.kernel_release, v.verdict);
                        }
                    }
                }
            });
        }
    });
    Ok(results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a verify thread panicked"))?
        .into_iter()
        .flatten()
        .collect())
}

/// The run's report on stdout: JSON, or each target's verify text then the release's verdict.
fn print(out: &ReleaseVerify, format: ReportFormat) -> anyhow::Result<()> {
    match format {
        ReportFormat::Json => crate::stdout::writeln(&serde_json::to_string_pretty(out)?)?,
        ReportFormat::Text => {
            let mut s = String::new();
            for t in &out.targets {
                match &t.report {
                    Some(r) => s += &verify::text(r),
                    None => {
                        s += &format!(
                            "verify {} on {}: ERROR\n  {}\n",
                            t.module,
                            t.kernel_release,
                            t.reason.as_deref().unwrap_or("")
                        )
                    }
                }
            }
            s += &format!("release {}: {}\n", out.release, out.verdict.to_uppercase());
            crate::stdout::write(&crate::text::escape_lines(&s))?;
        }
    }
    Ok(())
}

/// One target, the kernel modules it patches loaded first.
fn verify_one(
    module: &std::path::Path,
    kernel: &str,
    guest: &crate::cli::GuestArgs,
) -> anyhow::Result<VerifyReport> {
    let with = verify::patched_modules(module)?;
    verify::verify(
        &verify::Request {
            module,
            kernel,
            modules: None,
            with_modules: &with,
            guest,
            console: None,
        },
        &mut crate::progress::Quiet,
    )
    .with_context(|| format!("verify {}", module.display()))
}
