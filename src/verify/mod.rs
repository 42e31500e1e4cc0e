//! `klp-build verify MODULE.ko --kernel KERNEL`: the module proven on its kernel before it ships.
//! Input: the module, the kernel (a Debian release, an image, or a built tree), the target
//! modules to load first, the user's setup and check scripts. Output: a [`VerifyReport`] (text or
//! JSON) and exit 0 only when the verdict is `pass`. Invariant: every input is checked before
//! anything is fetched or booted; the verdict fails on any failed step, any kernel complaint
//! (WARNING, BUG, Oops, Call Trace, panic) after the guest started, any taint beyond what a
//! livepatch module brings (K, O, E), and on a guest that never reached its end.

pub mod console;
pub mod guest;
pub mod initramfs;
pub mod kernel;
pub mod qemu;
pub mod release;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::check::module::Livepatch;
use crate::cli::{GuestArgs, ReportFormat, VerifyArgs};
use crate::elf::{Any, ElfObject};
use crate::input::{self, Kind};
use crate::progress::Progress;
use console::{BlockingTask, Console, Problem, ScriptRun, Step};

/// The version of the verify report's JSON.
pub const SCHEMA_VERSION: u32 = 1;

/// What `verify` found.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VerifyReport {
    /// [`SCHEMA_VERSION`].
    #[schemars(extend("const" = SCHEMA_VERSION))]
    pub schema_version: u32,
    /// `pass` or `fail`.
    pub verdict: String,
    /// Why it failed, one sentence each (empty on `pass`).
    pub reasons: Vec<String>,
    /// The module as given.
    pub module: String,
    /// Its name (`/sys/kernel/livepatch/<name>`).
    pub name: String,
    /// The kernel image booted.
    pub kernel: String,
    /// Its release, from its boot header.
    pub kernel_release: String,
    /// The target modules loaded before the livepatch, dependencies first.
    pub with_modules: Vec<String>,
    /// `kvm` or `tcg`.
    pub accel: String,
    /// The boot's wall time, in seconds.
    pub boot_seconds: f64,
    /// The guest's steps: `modules`, `setup`, `load`, `transition`, `check`, `disable`, `unload`.
    pub steps: Vec<Step>,
    /// The enable transition's time, in seconds (the `transition` step's).
    pub transition_seconds: Option<f64>,
    /// The tasks a transition waited for when its time ran out, with their stacks.
    pub blocking_tasks: Vec<BlockingTask>,
    /// The kernel's complaints, with `during_verify` false for those it made while booting.
    pub problems: Vec<Problem>,
    /// `/proc/sys/kernel/tainted` before the first step.
    pub taint_before: Option<u64>,
    /// ... and after the last.
    pub taint_after: Option<u64>,
    /// The taint flags that appeared and are not a livepatch module's own (K, O, E).
    pub unexpected_taint: Vec<String>,
    /// The setup script's run.
    pub setup: Option<ScriptRun>,
    /// The check script's run.
    pub check: Option<ScriptRun>,
    /// Notes (the fall back from KVM to TCG).
    pub notes: Vec<String>,
    /// The whole guest console.
    pub console: String,
}

/// The guest's kernel command line before `--append`: the console on the first serial port, a
/// panic or oops ends the boot at once (QEMU runs with -no-reboot), and the IO-APIC timer check
/// is skipped (under emulation on a busy host it fails and panics, proving nothing about the
/// module; seen booting Debian's 6.12 while other builds ran).
const CMDLINE: &str = "console=ttyS0 panic=-1 oops=panic no_timer_check";

/// What to verify: the module, where it runs, what the guest does.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The module.
    pub module: &'a Path,
    /// `--kernel` as given.
    pub kernel: &'a str,
    /// `--modules`.
    pub modules: Option<&'a Path>,
    /// `--with-module`s.
    pub with_modules: &'a [String],
    /// The guest's options.
    pub guest: &'a GuestArgs,
    /// `--console`.
    pub console: Option<&'a Path>,
}

/// `klp-build verify`.
pub fn run(args: &VerifyArgs) -> anyhow::Result<u8> {
    let mut progress = crate::present::StderrProgress::with(args.loudness.verbosity());
    let report = verify(
        &Request {
            module: &args.module,
            kernel: &args.kernel,
            modules: args.modules.as_deref(),
            with_modules: &args.with_modules,
            guest: &args.guest,
            console: args.console.as_deref(),
        },
        &mut progress,
    )?;
    match args.report {
        ReportFormat::Json => {
            crate::stdout::writeln(&serde_json::to_string_pretty(&report)?)?;
        }
        ReportFormat::Text => crate::stdout::write(&crate::text::escape_lines(&text(&report)))?,
    }
    Ok(if report.verdict == "pass" { 0 } else { 1 })
}

/// The inputs, checked and read before anything slow.
struct Inputs {
    module: Vec<u8>,
    livepatch: Livepatch,
    setup: Option<Vec<u8>>,
    check: Option<Vec<u8>>,
}

/// A livepatch module's bytes (decompressed) and what it says about itself; `file` is the path
/// as given.
pub fn read_livepatch(path: &Path) -> anyhow::Result<(Vec<u8>, Livepatch)> {
    let module = input::read_module(path, "MODULE")?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut livepatch = if input::Compression::of(&name) == input::Compression::None {
        Livepatch::read(path)?
    } else {
        // The ELF readers take a file: a compressed module is read from a decompressed copy,
        // and what they say names the module as given.
        let tmp = tempfile::tempdir().context("making a temporary directory")?;
        let plain = tmp.path().join("livepatch.ko");
        std::fs::write(&plain, &module).with_context(|| format!("writing {}", plain.display()))?;
        Livepatch::read(&plain).map_err(|e| {
            anyhow::anyhow!(
                "{}",
                format!("{e:#}").replace(&plain.display().to_string(), &path.display().to_string())
            )
        })?
    };
    livepatch.file = path.display().to_string();
    if livepatch.name.is_empty() {
        bail!(
            "{}: its .modinfo has no name=; is it a module linked by kbuild?",
            path.display()
        );
    }
    Ok((module, livepatch))
}

/// The kernel modules a livepatch module patches (from its manifest; none when it has none).
pub fn patched_modules(module: &Path) -> anyhow::Result<Vec<String>> {
    Ok(modules_patched_by(&read_livepatch(module)?.1))
}

/// The kernel modules (not vmlinux) whose functions `l` replaces, as far as it says (klp-build's
/// manifest).
fn modules_patched_by(l: &Livepatch) -> Vec<String> {
    let mut m: Vec<String> = l
        .functions
        .iter()
        .flatten()
        .map(|f| f.object.clone())
        .filter(|o| o != "vmlinux")
        .collect();
    m.sort();
    m.dedup();
    m
}

fn read_inputs(args: &Request) -> anyhow::Result<Inputs> {
    let (module, livepatch) = read_livepatch(args.module)?;
    let script = |p: &Option<PathBuf>, opt: &str| -> anyhow::Result<Option<Vec<u8>>> {
        p.as_ref()
            .map(|p| input::read(p, Kind::Script, opt))
            .transpose()
    };
    check_guest(args.guest)?;
    Ok(Inputs {
        module,
        livepatch,
        setup: script(&args.guest.setup, "--setup")?,
        check: script(&args.guest.check, "--check")?,
    })
}

/// The guest's time limits, checked before anything runs.
pub fn check_guest(g: &GuestArgs) -> anyhow::Result<()> {
    if g.transition_timeout == 0 || g.timeout == 0 {
        bail!("--transition-timeout and --timeout: give a number of seconds above 0");
    }
    if u64::from(g.transition_timeout) * 2 >= u64::from(g.timeout) {
        bail!(
            "--transition-timeout {} must be well under --timeout {}: the guest waits that long for the enable and again for the disable transition",
            g.transition_timeout,
            g.timeout
        );
    }
    Ok(())
}

/// The modules `names` under `dir`, each after what it depends on (its `.modinfo` `depends=`),
/// as (file name in the guest, plain ELF bytes).
fn with_modules(dir: &Path, names: &[String]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut visiting: Vec<String> = Vec::new();
    fn visit(
        dir: &Path,
        name: &str,
        out: &mut Vec<(String, Vec<u8>)>,
        visiting: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let name = crate::kernel::normalize_modname(name);
        let file = format!("{name}.ko");
        if out.iter().any(|(f, _)| *f == file) {
            return Ok(());
        }
        if visiting.contains(&name) || visiting.len() > 64 {
            bail!(
                "--with-module: the dependencies of {} form a loop ({} -> {name})",
                visiting.first().map_or("?", |s| s.as_str()),
                visiting.join(" -> ")
            );
        }
        let path = crate::pipeline::find_module(dir, &name)
            .with_context(|| format!("--with-module {name}"))?;
        let bytes = input::read_module(&path, "--with-module")?;
        let obj: ElfObject<Any> = crate::elf::parse(&path, &bytes)
            .with_context(|| format!("--with-module {name}: {}", path.display()))?;
        let depends: Vec<String> = crate::check::foreign::modinfo(&obj)
            .into_iter()
            .filter(|(k, _)| k == "depends")
            .flat_map(|(_, v)| {
                v.split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        visiting.push(name.clone());
        for d in depends {
            visit(dir, &d, out, visiting)?;
        }
        visiting.pop();
        out.push((file, bytes));
        Ok(())
    }
    for n in names {
        visit(dir, n, &mut out, &mut visiting)?;
    }
    Ok(out)
}

/// Checks, boots and judges.
pub fn verify(args: &Request, progress: &mut dyn Progress) -> anyhow::Result<VerifyReport> {
    if let Some(out) = args.console {
        let mut inputs: Vec<(&str, &Path)> = vec![("MODULE", args.module)];
        if let Some(c) = &args.guest.check {
            inputs.push(("--check", c));
        }
        if let Some(c) = &args.guest.setup {
            inputs.push(("--setup", c));
        }
        crate::plan::check_output_is_no_input("--console", out, &inputs)?;
    }
    let inputs = read_inputs(args)?;
    // The guest's tools before the kernel, whose resolution may download packages.
    let mut ramfs = initramfs::Initramfs::busybox()?;
    progress.stage("finding the kernel");
    let k = kernel::resolve(args.kernel, args.modules, &mut |m| progress.note(m))?;
    let built_for = &inputs.livepatch.kernel_release;
    if !built_for.is_empty() && *built_for != k.release {
        bail!(
            "MODULE {} is built for {built_for} (its vermagic), but --kernel {} is {}: the kernel would refuse it; give the kernel it was built for",
            args.module.display(),
            args.kernel,
            k.release
        );
    }
    let modules = if args.with_modules.is_empty() {
        Vec::new()
    } else {
        let dir = k.modules.as_deref().with_context(|| {
            format!(
                "--with-module: where are the modules of {}? give --modules DIR (its lib/modules/{})",
                k.image.display(),
                k.release
            )
        })?;
        with_modules(dir, args.with_modules)?
    };
    let names: Vec<String> = modules.iter().map(|(f, _)| f.clone()).collect();
    let mut notes = Vec::new();
    for m in modules_patched_by(&inputs.livepatch) {
        if !names.contains(&format!("{}.ko", crate::kernel::normalize_modname(&m))) {
            let n = format!(
                "the module patches {m}, which is not loaded, so its functions were not exercised: add --with-module {m}"
            );
            progress.warning(&n);
            notes.push(n);
        }
    }
    for (f, bytes) in modules {
        ramfs.file(&format!("verify/{f}"), 0o644, bytes);
    }
    ramfs.file("verify/livepatch.ko", 0o644, inputs.module.clone());
    if let Some(s) = &inputs.setup {
        ramfs.file("verify/setup.sh", 0o755, s.clone());
    }
    if let Some(s) = &inputs.check {
        ramfs.file("verify/check.sh", 0o755, s.clone());
    }
    let init = guest::Guest {
        name: &inputs.livepatch.name,
        modules: &names,
        setup: inputs.setup.is_some(),
        check: inputs.check.is_some(),
        transition_timeout: args.guest.transition_timeout,
    }
    .init();
    ramfs.file("init", 0o755, init.into_bytes());
    let tmp = tempfile::tempdir().context("making a temporary directory")?;
    let cpio = tmp.path().join("initramfs.cpio.gz");
    ramfs.write(&cpio)?;
    let append = match &args.guest.append {
        Some(a) => format!("{CMDLINE} {a}"),
        None => CMDLINE.to_string(),
    };
    progress.stage(&format!("booting {} in QEMU", k.release));
    let boot = qemu::boot(
        &k.image,
        &cpio,
        &append,
        args.guest.accel,
        Duration::from_secs(u64::from(args.guest.timeout)),
        &mut |m| progress.note(m),
    )?;
    if let Some(path) = args.console {
        std::fs::write(path, &boot.console)
            .with_context(|| format!("--console {}", path.display()))?;
    }
    let c = Console::parse(&boot.console);
    let mut r = judge(args, &inputs.livepatch.name, &k, names, boot, c);
    r.notes.extend(notes);
    Ok(r)
}

fn judge(
    args: &Request,
    name: &str,
    k: &kernel::BootKernel,
    with_modules: Vec<String>,
    boot: qemu::Boot,
    c: Console,
) -> VerifyReport {
    let mut reasons = Vec::new();
    if boot.end == qemu::End::TimedOut {
        reasons.push(format!(
            "the boot did not finish in {} s (--timeout); the console ends where the guest stopped",
            args.guest.timeout
        ));
    } else if !c.done {
        reasons.push(
            "the guest never reached its last step: it panicked, oopsed or rebooted (see the console)"
                .to_string(),
        );
    }
    if c.steps.is_empty() && !boot.qemu_stderr.trim().is_empty() {
        reasons.push(format!("QEMU said: {}", boot.qemu_stderr.trim()));
    }
    for s in c.steps.iter().filter(|s| s.status != "ok") {
        reasons.push(format!(
            "step {} {}: {}",
            s.name,
            s.status,
            s.reason.as_deref().unwrap_or("")
        ));
    }
    for b in &c.blocking {
        reasons.push(format!(
            "task {} (pid {}, tid {}) blocked the {} transition in {}",
            b.comm,
            b.pid,
            b.tid,
            transition_of(&b.step),
            b.stack.first().map_or("(no stack)", |s| s.as_str())
        ));
    }
    for p in c.problems.iter().filter(|p| p.during_verify) {
        reasons.push(format!(
            "the kernel reported a {}: {}",
            p.kind,
            p.lines.first().map_or("", |l| l.as_str())
        ));
    }
    let unexpected = match (c.taint_before, c.taint_after) {
        (Some(b), Some(a)) => a & !b & !console::EXPECTED_TAINTS,
        _ => 0,
    };
    let unexpected_taint = console::describe_taint(unexpected);
    if !unexpected_taint.is_empty() {
        reasons.push(format!(
            "the kernel is now tainted {}",
            unexpected_taint.join(", ")
        ));
    }
    let mut notes: Vec<String> = boot.note.into_iter().collect();
    let boot_problems = c.problems.iter().filter(|p| !p.during_verify).count();
    if boot_problems > 0 {
        notes.push(format!(
            "the kernel complained {boot_problems} time(s) while booting, before the module was loaded; not counted against it"
        ));
    }
    VerifyReport {
        schema_version: SCHEMA_VERSION,
        verdict: if reasons.is_empty() { "pass" } else { "fail" }.into(),
        reasons,
        module: args.module.display().to_string(),
        name: name.to_string(),
        kernel: k.image.display().to_string(),
        kernel_release: k.release.clone(),
        with_modules,
        accel: boot.accel.into(),
        boot_seconds: (boot.seconds * 10.0).round() / 10.0,
        transition_seconds: c
            .steps
            .iter()
            .find(|s| s.name == "transition" && s.status == "ok")
            .and_then(|s| s.seconds),
        steps: c.steps,
        blocking_tasks: c.blocking,
        problems: c.problems,
        taint_before: c.taint_before,
        taint_after: c.taint_after,
        unexpected_taint,
        setup: c.setup,
        check: c.check,
        notes,
        console: boot.console,
    }
}

/// Which transition a step waits for.
fn transition_of(step: &str) -> &str {
    match step {
        "transition" => "enable",
        s => s,
    }
}

/// The text report, unescaped: its callers print it through [`crate::text::escape_lines`],
/// since it quotes the guest's console.
pub fn text(r: &VerifyReport) -> String {
    let mut s = format!(
        "verify {} on {} ({}, {:.1} s): {}\n",
        r.name,
        r.kernel_release,
        r.accel,
        r.boot_seconds,
        r.verdict.to_uppercase()
    );
    for step in &r.steps {
        s += &format!(
            "  {:<10} {:<10} {}{}\n",
            step.name,
            step.status,
            step.seconds.map_or(String::new(), |t| format!("{t:.2} s")),
            step.reason
                .as_ref()
                .map_or(String::new(), |r| format!("  {r}"))
        );
    }
    for b in &r.blocking_tasks {
        s += &format!(
            "  blocked the {} transition: {} (pid {}, tid {})\n",
            transition_of(&b.step),
            b.comm,
            b.pid,
            b.tid
        );
        for f in &b.stack {
            s += &format!("      {f}\n");
        }
    }
    for p in r.problems.iter().filter(|p| p.during_verify) {
        s += &format!("  kernel {}:\n", p.kind);
        for l in &p.lines {
            s += &format!("      {l}\n");
        }
    }
    if let Some(c) = &r.check {
        if c.exit != Some(0) {
            let exit = c.exit.map_or_else(
                || "unknown (the guest died in it)".to_string(),
                |e| e.to_string(),
            );
            s += &format!("  check script exit {exit}, its output:\n");
            for l in c.output.iter().rev().take(20).rev() {
                s += &format!("      {l}\n");
            }
        }
    }
    for reason in &r.reasons {
        s += &format!("  fail: {reason}\n");
    }
    for n in &r.notes {
        s += &format!("  note: {n}\n");
    }
    if r.verdict != "pass" && r.steps.is_empty() {
        s += "  the console ends:\n";
        let lines: Vec<&str> = r.console.lines().collect();
        for l in &lines[lines.len().saturating_sub(30)..] {
            s += &format!("      {l}\n");
        }
    }
    s
}
