//! Stage 2, build: `Kernel` + `PatchSet` -> [`BuiltObjects`]: the original and patched `.o` of
//! every translation unit the patch touches, rebuilt as kbuild single targets with
//! `-ffunction-sections -fdata-sections`, each with its klp object; copies under
//! `<work>/2-rebuild/{orig,patched}/`. Invariant: the source tree is as it was afterwards (sources,
//! objects and `.cmd` files, content and mtime), whether the build succeeds, fails, panics or is
//! interrupted.

mod child;
mod cmd_file;
mod direct;
mod guard;
mod host_tools;
pub mod interrupt;
mod make;
mod makelog;
mod object_cache;
mod objects;
mod originals;
mod reach;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

pub use child::run as run_make;
pub use interrupt::Interrupted;
pub use object_cache::ObjectCache;

use crate::contract::KlpObject;
use crate::kernel::Kernel;
use crate::patch::PatchSet;
use crate::progress::Progress;
use guard::TreeGuard;
use make::MakeOutcome;

/// The result of the build stage.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BuiltObjects {
    /// One pair per rebuilt object, in the order of the patch's files.
    pub pairs: Vec<ObjectPair>,
}

/// One translation unit, built from the original and from the patched source.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ObjectPair {
    /// The object, relative to the tree (`fs/proc/cmdline.o`).
    pub object: PathBuf,
    /// The `.c` it is compiled from, relative to the tree.
    pub source_file: PathBuf,
    /// Built from the original source, under `<work>/2-rebuild/orig/`.
    pub orig: PathBuf,
    /// Built from the patched source, under `<work>/2-rebuild/patched/`.
    pub patched: PathBuf,
    /// Where its code runs: vmlinux or a module.
    pub klp_object: KlpObject,
}

/// The files kbuild writes for one object: the object, its command file, and the dep file gcc
/// writes during the compile (left behind when the compile fails).
fn kbuild_outputs(object: &Path) -> [PathBuf; 3] {
    let cmd = cmd_file::path_of(object);
    let name = object
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    [
        object.to_path_buf(),
        cmd,
        object.with_file_name(format!(".{name}.d")),
    ]
}

/// Where the guard keeps the journal and the saved originals while the tree holds patched files:
/// in the tree itself, next to its lock, so that whichever run comes next on this tree (with any
/// work dir) finds and replays what a killed run (SIGKILL, power loss) left behind.
pub const SAVED_DIR: &str = ".klp-build-saved";

/// The dep file of kbuild's `missing-syscalls` check, at the top of the tree.
const MISSING_SYSCALLS_DEP: &str = ".missing-syscalls.d";

/// Restores a tree that a killed run left patched; a no-op on a clean tree. Runs under the tree
/// lock, before anything reads the tree's sources.
pub fn recover_interrupted(source: &Path, progress: &mut dyn Progress) -> anyhow::Result<()> {
    let _lock = crate::kernel::lock::lock(source, progress)?;
    guard::recover(&source.join(SAVED_DIR), source, progress)
}

/// One object the build would rebuild, for `--dry-run`: what [`run`] plans before compiling.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct PlannedObject {
    /// The object, relative to the tree (`fs/proc/cmdline.o`).
    pub object: PathBuf,
    /// The `.c` it is compiled from.
    pub source_file: PathBuf,
    /// Why it is rebuilt (`fs/proc/cmdline.c changed`, `includes fs/proc/internal.h ...`).
    pub why: String,
    /// `vmlinux` or the module it belongs to, when a built tree's command file says so; `None`
    /// when only its compile can tell (a tree that is not built).
    pub klp_object: Option<String>,
}

/// The objects the build would rebuild for the tree-relative `files`, without compiling or
/// writing anything; `config` is the target's config (for a tree that is not built), `notes`
/// gets the touched files no object needs.
pub fn plan_objects(
    source: &Path,
    config: &Path,
    files: &[PathBuf],
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<PlannedObject>> {
    let planned = objects::plan(source, config, files, notes)?;
    Ok(planned
        .into_iter()
        .map(|p| {
            let cmd = source.join(cmd_file::path_of(&p.object));
            let klp_object = cmd_file::read(&cmd)
                .ok()
                .map(|c| cmd_file::klp_object(&c.command).name().to_string());
            PlannedObject {
                object: p.object,
                source_file: p.source_file,
                why: p.why,
                klp_object,
            }
        })
        .collect())
}

/// Rebuilds the touched translation units, original first, then with the patched copies swapped
/// into the tree; see the module doc. `stage_dir` is the work dir's `2-rebuild/`; `cache` holds
/// originals of earlier runs ([`ObjectCache`]).
pub fn run(
    target: &Kernel,
    patch: &PatchSet,
    stage_dir: &Path,
    cache: Option<&ObjectCache>,
    progress: &mut dyn Progress,
) -> anyhow::Result<BuiltObjects> {
    interrupt::install();
    let stage = stage_dir.to_path_buf();
    let saved = target.source.join(SAVED_DIR);
    let _lock = crate::kernel::lock::lock(&target.source, progress)?;
    guard::recover(&saved, &target.source, progress)?;
    if stage.exists() {
        std::fs::remove_dir_all(&stage).with_context(|| format!("clearing {}", stage.display()))?;
    }
    let files: Vec<PathBuf> = patch.files.iter().map(|f| f.path.clone()).collect();
    let mut notes = Vec::new();
    let planned = objects::plan(
        &target.source,
        &target.source.join(".config"),
        &files,
        &mut notes,
    )?;
    for n in &notes {
        progress.note(n);
    }
    if planned.is_empty() {
        return Ok(BuiltObjects { pairs: Vec::new() });
    }
    let objects: Vec<PathBuf> = planned.iter().map(|p| p.object.clone()).collect();
    host_tools::check(&target.source, target.jobs)?;

    let mut guard = TreeGuard::new(&target.source, &saved)?;
    // Kbuild's top Kbuild file runs scripts/checksyscalls.sh on every make (a phony target),
    // which rewrites this dep file: the only tree file outside the objects that a make of a
    // prepared tree at its own path changes.
    guard.save(Path::new(MISSING_SYSCALLS_DEP))?;
    for o in &objects {
        for f in kbuild_outputs(o) {
            guard.save(&f)?;
        }
    }
    let origs = originals::build(target, &mut guard, &objects, &stage, cache, progress)?;
    for f in &patch.files {
        guard.save(&f.path)?;
        let bytes = crate::input::read(&f.patched, crate::input::Kind::Tree, "")?;
        let dest = target.source.join(&f.path);
        std::fs::write(&dest, bytes).with_context(|| format!("writing {}", dest.display()))?;
    }
    let touched: Vec<String> = files
        .iter()
        .map(|f| cmd_file::normalize(&f.to_string_lossy()))
        .collect();
    // A recorded command writes no `.cmd` file: the patched object's is the original's.
    let (how, cmd_from) = match origs.direct_for(&touched) {
        Ok(commands) => {
            progress.detail(
                "compiling the patched objects with kbuild's recorded commands (the patch touches no input of \
                 kbuild's make besides their sources)",
            );
            (How::Direct(commands), Some("orig"))
        }
        Err(why) => {
            progress.detail(&format!(
                "compiling the patched objects with kbuild's make: {why}"
            ));
            (How::Make { record: false }, None)
        }
    };
    let (outcome, _) = compile(
        target, &mut guard, &objects, &stage, "patched", how, progress,
    )?;
    ensure_built(outcome, "patched", &objects, target, &stage)?;
    let patched_objects = collect(target, &objects, &stage, "patched", cmd_from)?;
    guard
        .restore()
        .with_context(|| format!("restoring {}", target.source.display()))?;
    drop(guard);
    // A signal that came after the last make ended: the tree is back, stop here.
    interrupt::check("after building the objects")?;

    let mut pairs = Vec::new();
    for (i, p) in planned.into_iter().enumerate() {
        if origs.klp[i] != patched_objects[i] {
            bail!(
                "{}: the patched build compiles it for {} but the original for {}: a patch cannot move code between \
                 vmlinux and a module",
                p.object.display(),
                patched_objects[i].name(),
                origs.klp[i].name()
            );
        }
        pairs.push(ObjectPair {
            orig: stage.join("orig").join(&p.object),
            patched: stage.join("patched").join(&p.object),
            object: p.object,
            source_file: p.source_file,
            klp_object: origs.klp[i].clone(),
        });
    }
    Ok(BuiltObjects { pairs })
}

/// How a set of objects is compiled.
enum How<'a> {
    /// kbuild's make of the objects as single targets; with `record`, its trace is read.
    Make { record: bool },
    /// The commands kbuild recorded for them, `(object, command)` ([`direct`]).
    Direct(&'a [(PathBuf, String)]),
}

/// Compiles `objects` in the tree (`which`: `orig`, `orig-direct` or `patched`, the name of its
/// logs); returns how it ended and, for a recorded make, its trace.
fn compile(
    target: &Kernel,
    guard: &mut TreeGuard,
    objects: &[PathBuf],
    stage: &Path,
    which: &str,
    how: How,
    progress: &mut dyn Progress,
) -> anyhow::Result<(MakeOutcome, Option<makelog::MakeTrace>)> {
    let what = what_of(which);
    interrupt::check(&format!("before building the {what} objects"))?;
    // Removing the object forces make to compile it: an object left in the tree (by a killed
    // run, or by the user's own build without our KCFLAGS) must never pass for ours.
    for o in objects {
        let path = target.source.join(o);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    let dirs: Vec<PathBuf> = objects
        .iter()
        .filter_map(|o| o.parent().map(Path::to_path_buf))
        .collect();
    let before = listing(&target.source, &dirs);
    std::fs::create_dir_all(stage).with_context(|| format!("creating {}", stage.display()))?;
    let log = stage.join(format!("make-{which}.log"));
    let trace_file = stage.join(format!("make-{which}.trace"));
    let tag = child::new_tag();
    guard.running_make(Some(&tag))?;
    let during = format!("while building the {what} objects");
    let outcome = match how {
        How::Make { record } => make::make(
            target,
            objects,
            &log,
            record.then_some(trace_file.as_path()),
            &tag,
            &during,
            progress,
        ),
        How::Direct(commands) => direct::run(
            target,
            commands,
            &stage.join(format!("make-{which}.mk")),
            &log,
            &tag,
            &during,
            progress,
        ),
    };
    if outcome.is_ok() {
        guard.running_make(None)?;
    }
    // Anything new next to the objects that carries an object's name (`.cmdline.o.d` of a failed
    // compile, a `.tmp_` file of a stopped one) goes when the tree is restored.
    for (dir, name) in listing(&target.source, &dirs).difference(&before) {
        let stems: Vec<String> = objects
            .iter()
            .filter(|o| o.parent() == Some(dir.as_path()))
            .filter_map(|o| o.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        if stems.iter().any(|s| name.contains(s.as_str())) {
            guard.created(&dir.join(name))?;
        }
    }
    let outcome = outcome?;
    let trace = match (&outcome, std::fs::read(&trace_file)) {
        (MakeOutcome::Built, Ok(bytes)) => makelog::parse(&String::from_utf8_lossy(&bytes)),
        _ => None,
    };
    Ok((outcome, trace))
}

/// `original` or `patched`, for messages.
fn what_of(which: &str) -> &'static str {
    if which.starts_with("orig") {
        "original"
    } else {
        "patched"
    }
}

/// The error of a compile that failed, with the compiler's messages; `Ok` when it built.
fn ensure_built(
    outcome: MakeOutcome,
    which: &str,
    objects: &[PathBuf],
    target: &Kernel,
    stage: &Path,
) -> anyhow::Result<()> {
    let MakeOutcome::Failed(diagnostics) = outcome else {
        return Ok(());
    };
    let note = if which == "patched" {
        "\n  line numbers of unchanged lines are the original file's (klp-build adds #line directives to the \
         patched copy; new lines continue from the line above them)"
    } else {
        "\n  the original source does not build: is --source configured for the target (see its .config)?"
    };
    let list = objects
        .iter()
        .map(|o| o.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    bail!(
        "compiling the {} {list} failed (make {list} in {}):\n    {}{note}\n  full log: {}",
        what_of(which),
        target.source.display(),
        make::excerpt(&diagnostics, 30),
        stage.join(format!("make-{which}.log")).display()
    );
}

/// Copies each object the tree now holds to `<stage>/<which>/`, with its `.cmd` file (the tree's,
/// or with `cmd_from` the one already in `<stage>/<cmd_from>/`: a recorded command writes none),
/// and returns each object's klp object.
fn collect(
    target: &Kernel,
    objects: &[PathBuf],
    stage: &Path,
    which: &str,
    cmd_from: Option<&str>,
) -> anyhow::Result<Vec<KlpObject>> {
    let mut klp = Vec::new();
    for o in objects {
        let dest = stage.join(which).join(o);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let built = target.source.join(o);
        std::fs::copy(&built, &dest).with_context(|| {
            format!(
                "copying {} to {}: make succeeded without building it",
                built.display(),
                dest.display()
            )
        })?;
        let cmd = cmd_file::path_of(o);
        let cmd_src = match cmd_from {
            Some(from) => stage.join(from).join(&cmd),
            None => target.source.join(&cmd),
        };
        std::fs::copy(&cmd_src, stage.join(which).join(&cmd))
            .with_context(|| format!("copying {}", cmd_src.display()))?;
        klp.push(cmd_file::klp_object(&cmd_file::read(&cmd_src)?.command));
    }
    Ok(klp)
}

/// The file names in `dirs` of the tree.
fn listing(source: &Path, dirs: &[PathBuf]) -> std::collections::BTreeSet<(PathBuf, String)> {
    let mut out = std::collections::BTreeSet::new();
    for d in dirs {
        if let Ok(entries) = std::fs::read_dir(source.join(d)) {
            for e in entries.flatten() {
                out.insert((d.clone(), e.file_name().to_string_lossy().into_owned()));
            }
        }
    }
    out
}
