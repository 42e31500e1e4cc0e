//! The main job as a chain of typed stages: a [`Plan`] in, an [`Outcome`] out. Each stage
//! borrows the previous stage's value and returns a new one, in its own folder of the work dir.
//! Invariant: the pipeline prints nothing and exits nowhere; progress goes through [`Progress`],
//! the result is a value, so it can run many times in one process (a matrix of targets, a bench).
//!
//! | # | stage | value | code |
//! |---|---|---|---|
//! | 0 | plan | [`Plan`]: options resolved and checked, the tree prepared | `plan`, `kernel` |
//! | 1 | patch | `PatchSet`: fixes, copies of the touched files, `#line`-fixed | `patch::run` |
//! | 2 | rebuild | `BuiltObjects`: orig/patched `.o` pairs, klp object of each | `rebuild::run` |
//! | 3 | diff | `ObjectDiff` per pair: changed and new functions, refusals | `diff::run` |
//! | 4 | resolve | `EmittedObject`s: output objects, bindings, klp relocation records | `emit::module::objects` |
//! | 5 | emit | `Module`: kbuild link, `.klp.rela` rewrite, manifest | `emit::module::module` |
//! | 6 | sign | `Signature`: the target's sign-file appends it, read back (`--sign-key`) | `sign::Signer::sign` |

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::check::CheckReport;
use crate::contract::manifest::{self, Manifest, ManifestFunc};
use crate::contract::spec::ModuleSpec;
use crate::contract::KlpObject;
use crate::diff::{self, Finding, ObjectDiff};
use crate::emit::module::EmittedObject;
use crate::emit::post_link::PostLink;
use crate::kernel::symbols::SymbolListing;
use crate::kernel::symvers::Exports;
use crate::patch::Fix;
use crate::plan::Plan;
use crate::rebuild::BuiltObjects;
use crate::workdir::{Inputs, Stage, WorkDir};
use crate::{emit, patch, rebuild};

/// What a run ends with, besides errors (which are `Err`).
#[derive(Debug)]
pub enum Outcome {
    /// The module was built and written to the plan's output.
    Built(Box<BuildReport>),
    /// The patches change no function's code: nothing to livepatch.
    NoChange {
        /// Why, naming the objects or files.
        reason: String,
        /// The diff report, when objects were compared.
        report: String,
    },
    /// Changes that cannot be livepatched, all of them.
    Refused {
        /// The refusals.
        findings: Vec<Finding>,
        /// The diff report.
        report: String,
    },
}

pub use crate::progress::{Progress, Quiet};

/// Wall time of each stage, for the report and the benchmark.
#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Timings(pub Vec<(String, f64)>);

impl Timings {
    fn time<T>(
        &mut self,
        stage: &str,
        progress: &mut dyn Progress,
        f: impl FnOnce(&mut dyn Progress) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        progress.stage(stage);
        let t = Instant::now();
        let r = f(progress);
        self.0.push((stage.to_string(), t.elapsed().as_secs_f64()));
        r
    }
}

/// The report of a built module.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BuildReport {
    /// The layout version of the report ([`crate::contract::REPORT_SCHEMA_VERSION`]).
    #[schemars(extend("const" = crate::contract::REPORT_SCHEMA_VERSION))]
    pub schema_version: u32,
    /// Always `built`.
    #[schemars(extend("const" = "built"))]
    pub outcome: &'static str,
    /// Module name as `insmod` and sysfs know it (`-` as `_`).
    pub name: String,
    /// The module written.
    pub module: PathBuf,
    /// Kernel release the module is built for.
    pub kernel_release: String,
    /// The manifest stored in the module.
    pub manifest: Manifest,
    /// The fixes inside.
    pub fixes: Vec<Fix>,
    /// Per object: functions, bindings, warnings.
    pub objects: Vec<EmittedObject>,
    /// Klp relocation sections and symbols created.
    pub post_link: PostLink,
    /// The module's signature as read back from it (`--sign-key`), verified against `--sign-cert`.
    pub signature: Option<crate::sign::Signature>,
    /// Hunks applied with fuzz or at an offset; the work dir holding their applied copies is kept.
    pub patch_warnings: Vec<patch::HunkWarning>,
    /// The diff report, per object.
    #[serde(skip)]
    pub diff_report: String,
    /// The `--previous` check: its warnings (reverted functions, allowed drops).
    pub check: Option<CheckReport>,
    /// The work dir, when kept.
    pub work_dir: Option<PathBuf>,
    /// Wall time per stage, in seconds.
    pub timings: Timings,
}

/// Runs stages 1-5 of `plan`; see the module doc.
pub fn run(plan: &Plan, progress: &mut dyn Progress) -> anyhow::Result<Outcome> {
    let total = Instant::now();
    let mut run = Run::open(plan, progress)?;
    let patch = run.patch()?;
    if patch.files.is_empty() {
        return Ok(Outcome::NoChange {
            reason: "the patches touch no file that is compiled into the kernel (documentation, tools or other \
                     architectures only)"
                .into(),
            report: String::new(),
        });
    }
    let built = run.rebuild(&patch)?;
    let spec = with_declared_states(&plan.spec, &built)?;
    let (diffs, report) = run.diff(&built)?;
    if let Some(stop) = nothing_to_build(&built, &diffs, &report) {
        return Ok(stop);
    }
    run.work.complete(Stage::Diff, &())?;
    let objects = run.resolve(&diffs)?;
    let manifest = manifest_of(plan, &spec, &patch.fixes, &objects);
    let check = run.check(&manifest)?;
    let (module, signature) = run.emit(&objects, &spec, &manifest)?;
    let (work_dir, timings) = run.finish(&module, &patch, total)?;
    Ok(Outcome::Built(Box::new(BuildReport {
        schema_version: crate::contract::REPORT_SCHEMA_VERSION,
        outcome: "built",
        name: plan.spec.kernel_name(),
        module: plan.output.clone(),
        kernel_release: plan.kernel.release.clone(),
        fixes: patch.fixes.clone(),
        manifest,
        objects,
        post_link: module.post_link,
        signature,
        patch_warnings: patch.warnings.clone(),
        diff_report: report,
        check,
        work_dir,
        timings,
    })))
}

/// One run in progress: the plan, its work dir (opened, the tree prepared) and the time each
/// stage took so far. Each method is one stage; a stage kept in the work dir from an earlier run
/// is reused instead of run again.
struct Run<'a> {
    plan: &'a Plan,
    work: WorkDir,
    t: Timings,
    progress: &'a mut dyn Progress,
}

impl<'a> Run<'a> {
    /// The work dir opened for `plan`'s inputs (reusing what `--resume-from` keeps) and the
    /// kernel tree prepared.
    fn open(plan: &'a Plan, progress: &'a mut dyn Progress) -> anyhow::Result<Self> {
        let mut t = Timings::default();
        let work = WorkDir::open(&plan.work_dir, plan.resume_from, &inputs(plan)?)?;
        t.time("prepare", progress, |p| plan.kernel.prepare(p))?;
        Ok(Run {
            plan,
            work,
            t,
            progress,
        })
    }

    /// Stage 1: the fixes applied to copies of the touched files.
    fn patch(&mut self) -> anyhow::Result<patch::PatchSet> {
        if let Some(p) = self.work.reused::<patch::PatchSet>(Stage::Patch)? {
            return Ok(p);
        }
        let plan = self.plan;
        let source = &plan.kernel.source;
        rebuild::recover_interrupted(source, self.progress)?;
        let p = self.t.time("patch", self.progress, |p| {
            patch::run(&plan.diffs, source, &self.work.dir(Stage::Patch)?, p)
        })?;
        self.work.complete(Stage::Patch, &p)?;
        Ok(p)
    }

    /// Stage 2: the orig/patched object pairs of the touched files.
    fn rebuild(&mut self, patch: &patch::PatchSet) -> anyhow::Result<BuiltObjects> {
        if let Some(b) = self.work.reused::<BuiltObjects>(Stage::Rebuild)? {
            return Ok(b);
        }
        let plan = self.plan;
        let b = self.t.time("rebuild", self.progress, |p| {
            rebuild::run(
                &plan.kernel,
                patch,
                &self.work.dir(Stage::Rebuild)?,
                plan.object_cache.as_ref(),
                p,
            )
        })?;
        self.work.complete(Stage::Rebuild, &b)?;
        Ok(b)
    }

    /// Stage 3: each pair compared, and the report of all of them (also written to the work
    /// dir, where it stays whatever the outcome).
    fn diff(&mut self, built: &BuiltObjects) -> anyhow::Result<(Vec<ObjectDiff>, String)> {
        let diffs = self.t.time("diff", self.progress, |_| {
            built
                .pairs
                .iter()
                .map(|p| diff::run(&p.object, p.klp_object.clone(), &p.orig, &p.patched))
                .collect::<anyhow::Result<Vec<_>>>()
        })?;
        let report: String = diffs.iter().map(ToString::to_string).collect();
        let diff_dir = self.work.dir(Stage::Diff)?;
        write(&diff_dir.join("report.txt"), report.as_bytes())?;
        Ok((diffs, report))
    }

    /// Stage 4: the symbols the changed code uses bound to the target kernel's, and the output
    /// objects written. The notes (a module's symbols read from its `.ko`) go to the progress.
    fn resolve(&mut self, diffs: &[ObjectDiff]) -> anyhow::Result<Vec<EmittedObject>> {
        let plan = self.plan;
        let mut notes = Vec::new();
        let (listing, exports) = self.t.time("symbols", self.progress, |_| {
            let listing = with_module_listings(plan, diffs, &mut notes)?;
            let symvers = plan.kernel.kbuild.join("Module.symvers");
            let exports = Exports::load(&symvers)
                .with_context(|| format!("reading exports from {}", symvers.display()))?;
            Ok((listing, exports))
        })?;
        for n in &notes {
            self.progress.note(n);
        }
        let objects = self.t.time("resolve", self.progress, |_| {
            emit::module::objects(diffs, &listing, &exports, &self.work.dir(Stage::Objects)?)
        })?;
        self.work.complete(Stage::Objects, &())?;
        Ok(objects)
    }

    /// `--previous`, when given: the new manifest checked after its predecessors.
    fn check(&mut self, manifest: &Manifest) -> anyhow::Result<Option<CheckReport>> {
        if self.plan.previous.is_empty() {
            return Ok(None);
        }
        let plan = self.plan;
        let report = self
            .t
            .time("check", self.progress, |_| check_previous(plan, manifest))?;
        Ok(Some(report))
    }

    /// Stages 5 and 6: the module linked, the manifest attached, then signed when a signer is
    /// given.
    fn emit(
        &mut self,
        objects: &[EmittedObject],
        spec: &ModuleSpec,
        manifest: &Manifest,
    ) -> anyhow::Result<(emit::module::Module, Option<crate::sign::Signature>)> {
        let plan = self.plan;
        let module = self.t.time("emit", self.progress, |p| {
            emit::module::module(
                objects,
                spec,
                &plan.kernel.kbuild,
                &self.work.dir(Stage::Kmod)?,
                plan.kernel.jobs,
                &plan.kernel.toolchain.make_vars(),
                p,
            )
        })?;
        manifest::attach(&module.path, manifest)?;
        // The signature is the last write to the module: it covers the manifest and the klp sections.
        let signature = match &plan.signer {
            Some(s) => Some(
                self.t
                    .time("sign", self.progress, |_| s.sign(&module.path))?,
            ),
            None => None,
        };
        self.work.complete(Stage::Kmod, &())?;
        Ok((module, signature))
    }

    /// The module copied to `-o`, the run's total time (from `start`) taken, and the work dir
    /// removed unless it is to be kept; returns the kept work dir and the timings.
    fn finish(
        mut self,
        module: &emit::module::Module,
        patch: &patch::PatchSet,
        start: Instant,
    ) -> anyhow::Result<(Option<PathBuf>, Timings)> {
        let plan = self.plan;
        std::fs::copy(&module.path, &plan.output).map_err(|e| {
            anyhow::anyhow!(
                "-o {}: {}; the built module is {} (the work dir is kept)",
                plan.output.display(),
                crate::input::io_reason(&e),
                module.path.display()
            )
        })?;
        self.t
            .0
            .push(("total".into(), start.elapsed().as_secs_f64()));
        // The applied copies that a patch warning tells the user to check must still be there.
        let work_dir = if plan.keep_tmp || !patch.warnings.is_empty() {
            Some(self.work.root().to_path_buf())
        } else {
            self.work.remove()?;
            None
        };
        Ok((work_dir, self.t))
    }
}

/// The plan's module spec with the states the patched source declares (`KLP_BUILD_STATE`)
/// joined to those of `--state`.
fn with_declared_states(spec: &ModuleSpec, built: &BuiltObjects) -> anyhow::Result<ModuleSpec> {
    let mut spec = spec.clone();
    let patched: Vec<PathBuf> = built.pairs.iter().map(|p| p.patched.clone()).collect();
    spec.add_states(&emit::declarations::states(&patched)?)?;
    Ok(spec)
}

/// Where the diff ends the run: every refusal when there is one, else "no change" when no pair
/// changes a function's code (naming the functions where only `__LINE__` values differ: a
/// `WARN_ON()` below the lines the patch adds); `None` when there is something to build.
fn nothing_to_build(built: &BuiltObjects, diffs: &[ObjectDiff], report: &str) -> Option<Outcome> {
    let refusals: Vec<Finding> = diffs
        .iter()
        .flat_map(|d| d.refusals.iter().cloned())
        .collect();
    if !refusals.is_empty() {
        return Some(Outcome::Refused {
            findings: refusals,
            report: report.to_string(),
        });
    }
    if !diffs.iter().all(ObjectDiff::is_empty) {
        return None;
    }
    let objects: Vec<String> = built
        .pairs
        .iter()
        .map(|p| p.object.display().to_string())
        .collect();
    let line_only: Vec<String> = diffs
        .iter()
        .flat_map(|d| {
            d.line_only
                .iter()
                .map(|l| d.patched.symbol(l.sym).name.clone())
        })
        .collect();
    let why = if line_only.is_empty() {
        String::new()
    } else {
        format!(" (only __LINE__ values differ in {})", line_only.join(", "))
    };
    Some(Outcome::NoChange {
        reason: format!(
            "the patch changes no function's code in {}{why}",
            objects.join(", ")
        ),
        report: report.to_string(),
    })
}

/// What the kept stages depend on.
fn inputs(plan: &Plan) -> anyhow::Result<Inputs> {
    let sha = |p: &Path, kind: crate::input::Kind| -> anyhow::Result<String> {
        let bytes = crate::input::read(p, kind, "")?;
        Ok(Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    };
    Ok(Inputs {
        tool_version: env!("CARGO_PKG_VERSION").into(),
        diffs: plan
            .diffs
            .iter()
            .map(|d| sha(d, crate::input::Kind::Patch))
            .collect::<anyhow::Result<_>>()?,
        source: plan.kernel.source.clone(),
        config: sha(&plan.kernel.config, crate::input::Kind::Config)?,
    })
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The manifest of the module the plan builds from `objects`.
fn manifest_of(
    plan: &Plan,
    spec: &ModuleSpec,
    fixes: &[Fix],
    objects: &[EmittedObject],
) -> Manifest {
    Manifest {
        schema_version: manifest::SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        kernel_release: plan.kernel.release.clone(),
        name: spec.kernel_name(),
        replace: spec.replace.clone(),
        states: spec.states.clone(),
        fixes: fixes.to_vec(),
        functions: objects
            .iter()
            .flat_map(|o| o.funcs.iter())
            .map(|f| ManifestFunc {
                object: f.object.clone(),
                name: f.name.clone(),
                sympos: f.sympos,
            })
            .collect(),
    }
}

/// `--previous`: the kernel's load rules (`klp-build check`) applied to the new manifest after
/// its predecessors, before the module is linked: a release that would be refused at load, or that
/// drops a fix not named by `--allow-drop`, is an error naming every refusal.
fn check_previous(plan: &Plan, manifest: &Manifest) -> anyhow::Result<CheckReport> {
    let report = crate::check::against(manifest, &plan.previous, &plan.allow_drop);
    if report.refusals().next().is_some() {
        anyhow::bail!("--previous: {}", report.refusal_message());
    }
    Ok(report)
}

/// The plan's listing, plus the symbols of each patched module from its `.ko` when the listing
/// lacks them (a /proc/kallsyms captured while the module was not loaded): the `.ko`'s symbol
/// table order is the order the kernel counts sympos in once it is loaded. Every missing module
/// is reported in one error.
fn with_module_listings(
    plan: &Plan,
    diffs: &[ObjectDiff],
    notes: &mut Vec<String>,
) -> anyhow::Result<SymbolListing> {
    let mut listing = plan.listing.clone();
    let mut missing = Vec::new();
    for d in diffs {
        let KlpObject::Module(m) = &d.klp_object else {
            continue;
        };
        if d.is_empty() || listing.has_object(m) {
            continue;
        }
        match find_module(&plan.modules, m) {
            Ok(ko) => {
                notes.push(format!("symbols of module {m} from {}", ko.display()));
                listing.add_module(m, &ko)?;
            }
            Err(e) => missing.push(format!("{e:#}")),
        }
    }
    if !missing.is_empty() {
        anyhow::bail!("{}", missing.join("\n"));
    }
    Ok(listing)
}

/// `<dir>/**/<name>.ko`, or `.ko.xz`, `.ko.zst`, `.ko.gz` (read decompressed), where `-` and `_`
/// in file names are the same (as modprobe treats them); an uncompressed file wins.
pub fn find_module(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let name = crate::kernel::normalize_modname(name);
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
            let file = crate::kernel::normalize_modname(&e.file_name().to_string_lossy());
            if file == format!("{name}.ko") {
                return Ok(path);
            }
            if crate::input::Compression::module_stem(&file) == Some(name.as_str()) {
                compressed = Some(path);
            }
        }
    }
    if let Some(c) = compressed {
        return Ok(c);
    }
    anyhow::bail!(
        "module {name}: no {name}.ko under {}; pass --modules with the target kernel's modules (its /lib/modules/<release>, \
         or lib/modules/<release> of its unpacked linux-image package), or a --symbols listing captured with the module loaded",
        dir.display()
    )
}
