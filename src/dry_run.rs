//! `--dry-run`: what a build would do, without compiling. Input: a resolved [`Plan`] (every
//! option checked, as for a build). Output: [`DryRun`]: the files the patches change and the
//! objects that would be rebuilt for them (with why), the replace mode the module gets and the
//! modes the target allows, the module's name and path. Invariant: nothing is compiled, prepared
//! or locked, and nothing is left behind: the tree is only read, no work dir is made, and the only
//! write is the plan's check that `-o`'s directory is writable (a file created and removed).

use std::path::PathBuf;

use serde::Serialize;

use crate::contract::spec::{ReplaceMode, StateSpec};
use crate::patch::{Fix, PlannedFile, SkippedFile};
use crate::plan::Plan;
use crate::rebuild::PlannedObject;

/// The plan of a build, as `--dry-run` prints it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DryRun {
    /// The layout version of the build report ([`crate::contract::REPORT_SCHEMA_VERSION`]).
    #[schemars(extend("const" = crate::contract::REPORT_SCHEMA_VERSION))]
    pub schema_version: u32,
    /// Always `dry_run`.
    #[schemars(extend("const" = "dry_run"))]
    pub outcome: &'static str,
    /// The module's name as `insmod` and sysfs know it (`-` as `_`).
    pub name: String,
    /// Where the module would be written.
    pub module: PathBuf,
    /// The kernel release it would be built for.
    pub kernel_release: String,
    /// The source tree objects would be rebuilt in.
    pub source: PathBuf,
    /// The tree the module would be linked against.
    pub kbuild: PathBuf,
    /// The target's config.
    pub config: PathBuf,
    /// The symbol source.
    pub symbols: PathBuf,
    /// The tree lacks what `make modules_prepare` writes: the build would configure and prepare it
    /// first (once).
    pub prepare: bool,
    /// The target's livepatch API (its `struct klp_patch` replace field).
    pub kernel_api: String,
    /// The replace modes the target allows, with the options that select each.
    pub replace_modes: Vec<String>,
    /// The mode the module would have.
    pub replace: ReplaceMode,
    /// The `klp_state`s given with `--state` (the patched source may declare more).
    pub states: Vec<StateSpec>,
    /// The fixes, in `--diff` order.
    pub fixes: Vec<Fix>,
    /// The files the patches change that would be compiled.
    pub files: Vec<PlannedFile>,
    /// The files of the patches that would be left alone, with why.
    pub skipped: Vec<SkippedFile>,
    /// The objects that would be rebuilt (each from the original and the patched source).
    pub objects: Vec<PlannedObject>,
    /// The modules the new one would be checked against (`--previous`).
    pub previous: Vec<PathBuf>,
    /// What else the plan found (a touched header that no object includes).
    pub notes: Vec<String>,
}

/// The plan of `plan`'s build; see the module doc.
pub fn plan(plan: &Plan, previous: &[PathBuf]) -> anyhow::Result<DryRun> {
    let files: Vec<PathBuf> = plan.patches.files.iter().map(|f| f.path.clone()).collect();
    let mut notes = Vec::new();
    let objects = if files.is_empty() {
        notes.push(
            "the patches touch no file that is compiled into the kernel: a build would end with no functional \
             change"
                .to_string(),
        );
        Vec::new()
    } else {
        crate::rebuild::plan_objects(&plan.kernel.source, &plan.kernel.config, &files, &mut notes)?
    };
    Ok(DryRun {
        schema_version: crate::contract::REPORT_SCHEMA_VERSION,
        outcome: "dry_run",
        name: plan.spec.kernel_name(),
        module: plan.output.clone(),
        kernel_release: plan.kernel.release.clone(),
        source: plan.kernel.source.clone(),
        kbuild: plan.kernel.kbuild.clone(),
        config: plan.kernel.config.clone(),
        symbols: plan.symbols.clone(),
        prepare: plan.kernel.needs_prepare(),
        kernel_api: plan.spec.api.describe(),
        replace_modes: plan.spec.api.allowed_modes(),
        replace: plan.spec.replace.clone(),
        states: plan.spec.states.clone(),
        fixes: plan.patches.fixes.clone(),
        files: plan.patches.files.clone(),
        skipped: plan.patches.skipped.clone(),
        objects,
        previous: previous.to_vec(),
        notes,
    })
}

impl std::fmt::Display for DryRun {
    /// The text form: one fact a line, names escaped as in every text report.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::text::field;
        let path = |p: &std::path::Path| field(&p.display().to_string());
        writeln!(f, "dry run: nothing is compiled or written")?;
        writeln!(
            f,
            "module {} -> {} for {}",
            field(&self.name),
            path(&self.module),
            field(&self.kernel_release)
        )?;
        writeln!(
            f,
            "source {} (kbuild {})",
            path(&self.source),
            path(&self.kbuild)
        )?;
        if self.prepare {
            writeln!(
                f,
                "prepare: the tree would be configured from {} and prepared (make olddefconfig modules_prepare), once",
                path(&self.config)
            )?;
        }
        writeln!(f, "kernel: {}", self.kernel_api)?;
        for m in &self.replace_modes {
            writeln!(f, "allowed: {m}")?;
        }
        writeln!(f, "replace: {}", self.replace.describe())?;
        for st in &self.states {
            writeln!(f, "state {:#x} version {}", st.id, st.version)?;
        }
        for x in &self.fixes {
            writeln!(f, "fix {}: {}", field(&x.name), field(&x.subject))?;
        }
        for x in &self.files {
            let fixes: Vec<String> = x.fixes.iter().map(|n| field(n)).collect();
            writeln!(f, "patch {} (by {})", path(&x.path), fixes.join(", "))?;
        }
        for s in &self.skipped {
            writeln!(f, "skip {}", field(&s.message()))?;
        }
        for o in &self.objects {
            writeln!(
                f,
                "rebuild {} for {}: {}",
                path(&o.object),
                o.klp_object
                    .as_deref()
                    .map_or("vmlinux or a module (its compile tells)".into(), field),
                field(&o.why)
            )?;
        }
        for p in &self.previous {
            writeln!(f, "check against {}", path(p))?;
        }
        for n in &self.notes {
            writeln!(f, "note: {}", field(n))?;
        }
        Ok(())
    }
}
