//! Stages 4 and 5, resolve and emit: diffs -> output objects on disk ([`objects`], one
//! [`EmittedObject`] each) -> the kbuild-linked, post-link rewritten livepatch module ([`module`],
//! a [`Module`]). Input: the [`ObjectDiff`]s, the symbol listing and exports, the [`ModuleSpec`],
//! the kbuild dir. Invariant: every problem of every object (extraction, resolution, sympos) is
//! reported together, as one [`Refused`], before anything is linked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::diff::{Finding, ObjectDiff, Refused};
use crate::elf::{Content, ElfObject, Out, SymbolId};
use crate::kernel::symbols::SymbolListing;
use crate::kernel::symvers::Exports;
use crate::keys;
use crate::progress::Progress;

use super::callbacks::{self, Kind};
use super::kbuild::{link_module, KmodInput};
use super::klp_relocs;
use super::out_object::{extract, new_globals, OutObject};
use super::post_link::{rewrite, PostLink};
use super::resolve::{resolve, translation_unit, Binding, PatchGlobals};
use super::tables::{write_tables_with, CallbackEntry, FuncEntry};
use crate::contract::spec::ModuleSpec;

/// A patched function as registered in the module.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PatchedFunc {
    /// `vmlinux` or the module name.
    pub object: String,
    /// The kernel function replaced.
    pub name: String,
    /// Its sympos.
    pub sympos: u32,
    /// Why it is in the patch.
    pub why: String,
}

/// One output object written to disk.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct EmittedObject {
    /// The kernel object it comes from (`fs/proc/cmdline.o`).
    pub object: PathBuf,
    /// The output object file.
    pub path: PathBuf,
    /// Registered functions.
    pub funcs: Vec<PatchedFunc>,
    /// New functions carried along.
    pub added: Vec<String>,
    /// How each external reference is bound.
    pub bindings: Vec<(String, Binding)>,
    /// Klp relocations recorded.
    pub klp_relocs: usize,
    /// Callbacks registered, `(kind, function)`.
    pub callbacks: Vec<(String, String)>,
    /// Non-fatal findings.
    pub warnings: Vec<Finding>,
    #[serde(skip)]
    entries: Vec<FuncEntry>,
    #[serde(skip)]
    callback_entries: Vec<CallbackEntry>,
}

/// Writes the output object of every diff into `dir`.
pub fn objects(
    diffs: &[ObjectDiff],
    listing: &SymbolListing,
    exports: &Exports,
    dir: &Path,
) -> anyhow::Result<Vec<EmittedObject>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let globals = PatchGlobals::collect(diffs).map_err(Refused)?;
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (i, d) in diffs.iter().enumerate() {
        if d.is_empty() && new_globals(d).is_empty() {
            continue;
        }
        let registrations = match callbacks::registrations(&d.patched) {
            Ok(r) => r,
            Err(f) => {
                problems.extend(f);
                continue;
            }
        };
        let mut o = match extract(d, &i.to_string()) {
            Ok(o) => o,
            Err(f) => {
                problems.extend(f);
                continue;
            }
        };
        let bindings = match resolve(&o, d, listing, exports, &globals) {
            Ok(b) => b,
            Err(f) => {
                problems.extend(f);
                continue;
            }
        };
        let (funcs, entries) = func_entries(d, &o, listing, &mut problems);
        problems.extend(module_keys(&o.elf, &bindings, d));
        let klp: HashMap<_, _> = bindings
            .iter()
            .filter_map(|(s, b)| b.klp_symbol().map(|n| (*s, n)))
            .collect();
        let klp_relocs = klp_relocs::convert(&mut o.elf, &klp);
        let callback_entries = callback_entries(d, &mut o, &registrations, i, &mut problems);
        let path = dir.join(format!("klp_out_{i}_{}.o", flat_name(&d.object)));
        o.elf.write_to(&path)?;
        let names: HashMap<_, _> = o.externs.iter().map(|e| (e.out, e.name.clone())).collect();
        out.push(EmittedObject {
            object: d.object.clone(),
            path,
            funcs,
            added: d
                .added
                .iter()
                .map(|&a| d.patched.symbol(a).name.clone())
                .collect(),
            bindings: bindings
                .into_iter()
                .map(|(s, b)| (names[&s].clone(), b))
                .collect(),
            klp_relocs,
            callbacks: callback_entries
                .iter()
                .map(|c| (c.kind.to_string(), c.source.clone()))
                .collect(),
            warnings: o.warnings,
            entries,
            callback_entries,
        });
    }
    if !problems.is_empty() {
        return Err(Refused(problems).into());
    }
    Ok(out)
}

/// The functions `o` replaces, each with its sympos in the target's listing: the report's
/// entries and the function table's. A function the listing cannot place is a refusal.
fn func_entries(
    d: &ObjectDiff,
    o: &OutObject,
    listing: &SymbolListing,
    problems: &mut Vec<Finding>,
) -> (Vec<PatchedFunc>, Vec<FuncEntry>) {
    let tu = translation_unit(&d.orig, &d.object.with_extension("c").display().to_string());
    let objname = d.klp_object.name().to_string();
    let mut funcs = Vec::new();
    let mut entries = Vec::new();
    for f in &o.funcs {
        match listing.sympos(&objname, &f.old_name, &tu) {
            Ok(sympos) => {
                let why = d
                    .changed
                    .iter()
                    .find(|c| c.orig == f.orig)
                    .map(|c| c.why.clone())
                    .unwrap_or_default();
                funcs.push(PatchedFunc {
                    object: objname.clone(),
                    name: f.old_name.clone(),
                    sympos,
                    why,
                });
                entries.push(FuncEntry {
                    objname: d.klp_object.module_name().map(str::to_string),
                    old_name: f.old_name.clone(),
                    new_symbol: f.new_symbol.clone(),
                    sympos,
                });
            }
            Err(e) => problems.push(Finding {
                key: keys::FUNC_UNRESOLVED,
                location: format!("{}: {}", d.object.display(), f.old_name),
                message: e.to_string(),
            }),
        }
    }
    (funcs, entries)
}

/// The callback table's entries of object `i`: each registration's function under its
/// module-unique alias. One that did not reach the output object is a refusal.
fn callback_entries(
    d: &ObjectDiff,
    o: &mut OutObject,
    registrations: &[callbacks::Registration],
    i: usize,
    problems: &mut Vec<Finding>,
) -> Vec<CallbackEntry> {
    let mut entries = Vec::new();
    for r in registrations {
        let name = &d.patched.symbol(r.func).name;
        match callback_alias(&mut o.elf, name, i, r.kind) {
            Some(new_symbol) => entries.push(CallbackEntry {
                objname: d.klp_object.module_name().map(str::to_string),
                kind: r.kind,
                new_symbol,
                source: format!("{}: {name}", d.object.display()),
            }),
            None => problems.push(Finding {
                key: keys::CALLBACK_NOT_CARRIED,
                location: format!("{}: {name}", d.object.display()),
                message: format!(
                    "the {} callback ({}) did not reach the output object; report this with the object",
                    r.kind, r.variable
                ),
            }),
        }
    }
    entries
}

/// Gives the carried callback function `name` of output object `i` a global hidden alias that
/// the callback table names (`__klp_cb.0.pre_patch`); `None` if the function is not there.
fn callback_alias(out: &mut ElfObject<Out>, name: &str, i: usize, kind: Kind) -> Option<String> {
    let id = out.symbol_by_name(name)?;
    let s = out.symbol(id).clone();
    if !s.is_func() || s.section_id().is_none() {
        return None;
    }
    let alias = format!("__klp_cb.{i}.{}", kind.field());
    out.add_symbol(crate::elf::Symbol {
        name: alias.clone(),
        st_info: (object::elf::STB_GLOBAL << 4) | object::elf::STT_FUNC,
        st_other: object::elf::STV_HIDDEN,
        ..s
    });
    Some(alias)
}

/// Jump labels and static calls whose key lives in a module: the module loader processes
/// `__jump_table` and `.static_call_sites` when the livepatch module loads, but klp relocations to
/// another module are only applied when that module loads, later; the entry would hold a null key.
fn module_keys(
    out: &ElfObject<Out>,
    bindings: &[(SymbolId<Out>, Binding)],
    d: &ObjectDiff,
) -> Vec<Finding> {
    let mut v = Vec::new();
    for (_, s) in out.live_sections() {
        let Content::Relocs { target, relocs } = &s.content else {
            continue;
        };
        let table = &out.section(*target).name;
        if table != "__jump_table" && table != ".static_call_sites" {
            continue;
        }
        for r in relocs {
            let Some((_, Binding::Klp { object, name, .. })) =
                bindings.iter().find(|(b, _)| *b == r.sym)
            else {
                continue;
            };
            if object != "vmlinux" {
                v.push(Finding {
                    key: if table == "__jump_table" { keys::SPECIAL_JUMP_LABEL_MODULE_KEY } else { keys::SPECIAL_STATIC_CALL_MODULE_KEY },
                    location: format!("{}: {table}+{:#x}", d.object.display(), r.r_offset),
                    message: format!(
                        "the key {name} lives in module {object}, which the livepatch module cannot reference at load \
                         time; replace the static branch or static call in the patched function with a plain check or \
                         call"
                    ),
                });
            }
        }
    }
    v
}

fn flat_name(p: &Path) -> String {
    p.with_extension("")
        .display()
        .to_string()
        .replace(['/', '-', '.'], "_")
}

/// The built module.
#[derive(Debug, Serialize)]
pub struct Module {
    /// Where kbuild left it (rewritten in place).
    pub path: PathBuf,
    /// What the post-link rewrite created.
    pub post_link: PostLink,
}

/// Links the output objects into module `name` with kbuild against `kbuild_dir` (with the target's
/// toolchain `make_vars`), then rewrites it.
pub fn module(
    objs: &[EmittedObject],
    spec: &ModuleSpec,
    kbuild_dir: &Path,
    dir: &Path,
    jobs: usize,
    make_vars: &[String],
    progress: &mut dyn Progress,
) -> anyhow::Result<Module> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let entries: Vec<FuncEntry> = objs
        .iter()
        .flat_map(|o| o.entries.iter().cloned())
        .collect();
    let callbacks: Vec<CallbackEntry> = objs
        .iter()
        .flat_map(|o| o.callback_entries.iter().cloned())
        .collect();
    let tables = dir.join("klp_tables.o");
    write_tables_with(&entries, &callbacks, &tables)?;
    let objects: Vec<PathBuf> = objs.iter().map(|o| o.path.clone()).collect();
    let ko = link_module(
        kbuild_dir,
        dir,
        &KmodInput {
            spec,
            objects: &objects,
            tables: &tables,
        },
        jobs,
        make_vars,
        progress,
    )?;
    let post_link =
        rewrite(&ko).with_context(|| format!("post-link rewrite of {}", ko.display()))?;
    Ok(Module {
        path: ko,
        post_link,
    })
}
