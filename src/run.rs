//! The stages chained for each command. Input: parsed options. Output: files and a report, and the
//! exit code. Invariant: reports are built from stage values, never scraped from tool output.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};

use crate::cli::{BuildArgs, DiffArgs, InspectArgs, ReportFormat};
use crate::emit::out_object;
use crate::kernel::symbols::SymbolListing;
use crate::kernel::symvers::Exports;
use crate::rebuild::KlpObject;
use crate::{diff, emit, kernel, patch, rebuild};

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

/// `klp-build inspect MODULE.ko`.
pub fn inspect(args: &InspectArgs) -> anyhow::Result<u8> {
    let m = emit::manifest::read(&args.module)?;
    match args.report {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&m)?),
        ReportFormat::Text => {
            println!(
                "{} for {} (klp-build {})",
                m.name, m.kernel_release, m.tool_version
            );
            println!("replace: {}", m.replace.describe());
            for s in &m.states {
                println!("state {:#x} version {}", s.id, s.version);
            }
            for f in &m.fixes {
                println!("fix {}: {} (sha256 {})", f.name, f.subject, f.sha256);
            }
            for f in &m.functions {
                println!("patches {}:{},{}", f.object, f.name, f.sympos);
            }
        }
    }
    Ok(0)
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
    let out = out_object::extract(&d, "0").map_err(|f| refused(&f))?;
    if let Some(path) = &args.output {
        out.elf
            .write_to(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(0)
}

/// Wall time of each stage, for the report and the benchmark.
#[derive(Debug, Default, serde::Serialize)]
pub struct Timings(pub Vec<(String, f64)>);

impl Timings {
    fn time<T>(&mut self, stage: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        progress(&format!("{stage}..."));
        let t = Instant::now();
        let r = f();
        self.0.push((stage.to_string(), t.elapsed().as_secs_f64()));
        r
    }
}

fn progress(msg: &str) {
    eprintln!("klp-build: {msg}");
}

/// The report of the main job.
#[derive(Debug, serde::Serialize)]
pub struct BuildReport {
    /// Module name (as `insmod` and sysfs know it, `-` as `_`).
    pub name: String,
    /// The module written.
    pub module: PathBuf,
    /// Kernel release the module is built for.
    pub kernel_release: String,
    /// The fixes inside.
    pub fixes: Vec<FixReport>,
    /// Per object: functions, bindings.
    pub objects: Vec<emit::module::EmittedObject>,
    /// Klp relocation sections and symbols created.
    pub post_link: emit::post_link::PostLink,
    /// Wall time per stage, in seconds.
    pub timings: Timings,
}

/// A fix (one `--diff`).
#[derive(Debug, serde::Serialize)]
pub struct FixReport {
    /// Name (the patch file's stem).
    pub name: String,
    /// sha256 of the patch file.
    pub sha256: String,
    /// Its subject line.
    pub subject: String,
}

/// The default module name: `livepatch-<stem of the first patch>`, with characters that module
/// names cannot hold replaced, and short enough for `MODULE_NAME_LEN` (56 with the NUL).
pub fn default_name(first_patch: &Path) -> String {
    let stem = first_patch
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    sanitize_name(&format!("livepatch-{stem}"))
}

fn sanitize_name(n: &str) -> String {
    let mut s: String = n
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(55);
    s
}

/// Prepares the work dir: it must be new, empty, or one klp-build made (marker file), never a
/// directory of the user's that happens to have that name.
fn prepare_work_dir(dir: &Path) -> anyhow::Result<()> {
    const MARKER: &str = ".klp-build-work";
    if dir.exists() {
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !empty && !dir.join(MARKER).exists() {
            bail!("work dir {} exists and was not made by klp-build; remove it or pass another --work-dir", dir.display());
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("clearing work dir {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating work dir {}", dir.display()))?;
    std::fs::write(dir.join(MARKER), "")?;
    Ok(())
}

/// The main job: `klp-build --diff fix.patch ...`.
pub fn link_module(args: &BuildArgs) -> anyhow::Result<u8> {
    if args.diffs.is_empty() {
        bail!("nothing to do: give at least one --diff FILE (see --help)");
    }
    let total = Instant::now();
    let mut t = Timings::default();
    let name = match &args.name {
        Some(n) if sanitize_name(n) != *n || n.is_empty() => {
            bail!("--name {n:?}: a module name may hold only letters, digits, '-' and '_', at most 55 of them")
        }
        Some(n) => n.clone(),
        None => default_name(&args.diffs[0]),
    };
    prepare_work_dir(&args.work_dir)?;
    let work = &std::fs::canonicalize(&args.work_dir)?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));

    let opts = kernel::KernelOptions {
        source: args.source.clone(),
        kbuild: args.kbuild.clone(),
        config: args.config.clone(),
        jobs,
    };
    let target = t.time("target", || kernel::resolve(&opts))?;
    kernel::compiler::check(&kernel::config::KConfig::read(&target.config)?, "gcc")?;
    rebuild::recover_interrupted(&target.source)?;
    let patch = t.time("patch", || patch::run(&args.diffs, &target.source, work))?;
    if patch.files.is_empty() {
        return Err(ExitError {
            code: EXIT_NO_CHANGE,
            message:
                "no functional change: the patches touch no file that is compiled into the kernel \
                      (documentation, tools or other architectures only)"
                    .into(),
        }
        .into());
    }
    let built = t.time("build", || rebuild::run(&target, &patch, work))?;
    let diffs = t.time("diff", || {
        built
            .pairs
            .iter()
            .map(|p| diff::run(&p.object, p.klp_object.clone(), &p.orig, &p.patched))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let diff_dir = work.join("3-diff");
    std::fs::create_dir_all(&diff_dir)?;
    let mut report_text = String::new();
    for d in &diffs {
        report_text.push_str(&d.to_string());
    }
    std::fs::write(diff_dir.join("report.txt"), &report_text)?;
    let refusals: Vec<_> = diffs
        .iter()
        .flat_map(|d| d.refusals.iter().cloned())
        .collect();
    if !refusals.is_empty() {
        return Err(refused(&refusals));
    }
    if diffs.iter().all(|d| d.is_empty()) {
        return Err(ExitError {
            code: EXIT_NO_CHANGE,
            message: format!(
                "no functional change: the patch changes no function's code in {}; nothing to livepatch",
                built.pairs.iter().map(|p| p.object.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        }
        .into());
    }

    let symbols_path = match &args.symbols {
        Some(p) => p.clone(),
        None => default_symbols(&target)?,
    };
    let (listing, exports) = t.time("symbols", || {
        let mut listing = SymbolListing::load(&symbols_path)
            .with_context(|| format!("reading the symbol listing {}", symbols_path.display()))?;
        add_module_listings(&mut listing, &diffs, args, &target)?;
        let symvers = target.kbuild.join("Module.symvers");
        let exports = Exports::load(&symvers)
            .with_context(|| format!("reading exports from {}", symvers.display()))?;
        Ok((listing, exports))
    })?;
    let objects = t.time("resolve", || {
        emit::module::objects(&diffs, &listing, &exports, &work.join("4-objects"))
    })?;
    let spec = emit::spec::ModuleSpec {
        name: name.clone(),
        replace: emit::spec::ReplaceMode::Atomic,
        states: Vec::new(),
    };
    let module = t.time("emit", || {
        emit::module::module(&objects, &spec, &target.kbuild, &work.join("5-kmod"), jobs)
    })?;
    let manifest = emit::manifest::Manifest {
        tool_version: env!("CARGO_PKG_VERSION").into(),
        kernel_release: target.release.clone(),
        name: name.replace('-', "_"),
        schema_version: emit::manifest::SCHEMA_VERSION,
        replace: spec.replace.clone(),
        states: spec.states.clone(),
        fixes: patch
            .fixes
            .iter()
            .map(|f| emit::manifest::ManifestFix {
                name: f.name.clone(),
                sha256: f.sha256.clone(),
                subject: f.subject.clone(),
            })
            .collect(),
        functions: objects
            .iter()
            .flat_map(|o| o.funcs.iter())
            .map(|f| emit::manifest::ManifestFunc {
                object: f.object.clone(),
                name: f.name.clone(),
                sympos: f.sympos,
            })
            .collect(),
    };
    emit::manifest::attach(&module.path, &manifest)?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}.ko")));
    std::fs::copy(&module.path, &output)
        .with_context(|| format!("writing {}", output.display()))?;
    t.0.push(("total".into(), total.elapsed().as_secs_f64()));

    let report = BuildReport {
        name: name.replace('-', "_"),
        module: output.clone(),
        kernel_release: target.release.clone(),
        fixes: patch
            .fixes
            .iter()
            .map(|f| FixReport {
                name: f.name.clone(),
                sha256: f.sha256.clone(),
                subject: f.subject.clone(),
            })
            .collect(),
        objects,
        post_link: module.post_link,
        timings: t,
    };
    match args.report {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ReportFormat::Text => print!("{report_text}{}", render_text(&report)),
    }
    if !args.keep_tmp {
        let _ = std::fs::remove_dir_all(work);
    }
    Ok(0)
}

fn render_text(r: &BuildReport) -> String {
    let mut s = String::new();
    for o in &r.objects {
        for f in &o.funcs {
            s.push_str(&format!(
                "patched {}:{},{} ({})\n",
                f.object, f.name, f.sympos, f.why
            ));
        }
        for (n, b) in &o.bindings {
            if let Some(k) = b.klp_symbol() {
                s.push_str(&format!("klp symbol {k} (for {n})\n"));
            }
        }
        for w in &o.warnings {
            s.push_str(&format!(
                "warning: {} {}: {}\n",
                w.key, w.location, w.message
            ));
        }
    }
    s.push_str("time:");
    for (st, secs) in &r.timings.0 {
        s.push_str(&format!(" {st} {secs:.1}s"));
    }
    s.push_str(&format!(
        "\nbuilt {} for {}\n",
        r.module.display(),
        r.kernel_release
    ));
    s
}

/// A patched module's symbols come from its `.ko` when the listing lacks them (a /proc/kallsyms
/// captured while the module was not loaded): the `.ko`'s symbol table order is the order the
/// kernel counts sympos in once it is loaded.
fn add_module_listings(
    listing: &mut SymbolListing,
    diffs: &[diff::ObjectDiff],
    args: &BuildArgs,
    target: &kernel::Kernel,
) -> anyhow::Result<()> {
    let dir = args
        .modules
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/lib/modules/{}", target.release)));
    for d in diffs {
        let KlpObject::Module(m) = &d.klp_object else {
            continue;
        };
        if d.is_empty() || listing.has_object(m) {
            continue;
        }
        let ko = find_module(&dir, m)?;
        progress(&format!("symbols of module {m} from {}", ko.display()));
        listing.add_module(m, &ko)?;
    }
    Ok(())
}

/// `<dir>/**/<name>.ko`, where `-` and `_` in file names are the same (as modprobe treats them).
fn find_module(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    let mut compressed = None;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let file = e.file_name().to_string_lossy().replace('-', "_");
            if file == format!("{name}.ko") {
                return Ok(path);
            }
            if file.starts_with(&format!("{name}.ko.")) {
                compressed = Some(path);
            }
        }
    }
    if let Some(c) = compressed {
        bail!(
            "module {name}: {} is compressed; decompress it (xz -dk, zstd -d) into a directory and pass that as --modules",
            c.display()
        );
    }
    bail!(
        "module {name}: no {name}.ko under {}; pass --modules with the target kernel's modules (its /lib/modules/<release>, \
         or lib/modules/<release> of its unpacked linux-image package), or a --symbols listing captured with the module loaded",
        dir.display()
    )
}

/// Without `--symbols`: the built tree's vmlinux, else this machine's /proc/kallsyms when it runs
/// the target release.
fn default_symbols(target: &kernel::Kernel) -> anyhow::Result<PathBuf> {
    let vmlinux = target.kbuild.join("vmlinux");
    if vmlinux.exists() {
        return Ok(vmlinux);
    }
    let running = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    if running.trim() == target.release {
        return Ok(PathBuf::from("/proc/kallsyms"));
    }
    bail!(
        "no symbol listing for kernel {}: pass --symbols with its vmlinux, System.map, or a /proc/kallsyms \
         captured on a machine running it (as root, with kernel.kptr_restrict=0)",
        target.release
    )
}
