//! Stage 4, resolve: each external reference of an output object becomes a normal undefined
//! symbol (exported, so the module loader binds it) or a klp relocation target
//! `.klp.sym.<obj>.<name>,<sympos>` (livepatch binds it through kallsyms). Input: an
//! [`OutObject`], its diff, the kernel's symbol listing and exports. Output: a decision per
//! extern. Invariant: a static of the patched file never binds to a same-named export of another
//! file, and every klp symbol has a sympos the listing confirmed; problems are collected, each
//! naming the symbol and its candidates.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::contract::KlpObject;
use crate::diff::{Finding, ObjectDiff};
use crate::elf::{ElfObject, Orig, Out, SymbolId};
use crate::kernel::symbols::{SymbolListing, TranslationUnit, TuKind, TuSymbol};
use crate::kernel::symvers::Exports;
use crate::keys;

use super::out_object::{new_globals, OutObject};

/// How one external reference is bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Binding {
    /// Exported: an ordinary undefined symbol, bound by the module loader (with modversions).
    Normal,
    /// Not exported: a klp relocation, bound by livepatch by name and position.
    Klp {
        /// `vmlinux` or the module name.
        object: String,
        /// The symbol's name in the kernel.
        name: String,
        /// 1-based position among same-named symbols in kallsyms order, 0 when unique.
        sympos: u32,
    },
}

impl Binding {
    /// The `.klp.sym.<obj>.<name>,<sympos>` symbol name of a klp binding.
    pub fn klp_symbol(&self) -> Option<String> {
        match self {
            Binding::Normal => None,
            Binding::Klp {
                object,
                name,
                sympos,
            } => Some(
                crate::contract::abi::KlpSym {
                    object,
                    name,
                    sympos: *sympos,
                }
                .to_name(),
            ),
        }
    }
}

/// The translation unit as the symbol listing needs it: the original object's functions and data
/// in section order, which is their order in a kernel built without `-ffunction-sections`.
pub fn translation_unit(orig: &ElfObject<Orig>, source: &str) -> TranslationUnit {
    let mut symbols = Vec::new();
    for (sec, s) in orig.live_sections() {
        let mut here: Vec<_> = orig
            .live_symbols()
            .filter(|(_, y)| {
                (y.is_func() || y.is_object()) && y.section_id() == Some(sec) && !y.name.is_empty()
            })
            .map(|(_, y)| y)
            .collect();
        here.sort_by_key(|y| y.st_value);
        for y in here {
            symbols.push(TuSymbol {
                name: y.name.clone(),
                kind: if y.is_func() {
                    TuKind::Func
                } else {
                    TuKind::Object
                },
                section: s.name.clone(),
                local: y.is_local(),
            });
        }
    }
    TranslationUnit {
        source: source.to_string(),
        symbols,
    }
}

/// Decides every extern of `out`.
pub fn resolve(
    out: &OutObject,
    d: &ObjectDiff,
    listing: &SymbolListing,
    exports: &Exports,
    patch_globals: &PatchGlobals,
) -> Result<Vec<(SymbolId<Out>, Binding)>, Vec<Finding>> {
    let source = d.object.with_extension("c").display().to_string();
    let tu = translation_unit(&d.orig, &source);
    let obj = d.klp_object.name().to_string();
    let mut done = Vec::new();
    let mut problems = Vec::new();
    for e in &out.externs {
        // Defined by another object of the patch: the module link binds it, whatever the kernel
        // has of that name.
        if e.orig.is_none() && patch_globals.defines(&e.name) {
            done.push((e.out, Binding::Normal));
            continue;
        }
        let local = e.orig.map(|o| d.orig.symbol(o).is_local());
        let export = exports.get(&e.name);
        // A module's own export would make the livepatch module depend on that module and
        // block late module patching: bind those through klp as well.
        let own_export = match (&d.klp_object, export) {
            (KlpObject::Module(m), Some(x)) => module_basename(&x.module) == m.as_str(),
            _ => false,
        };
        // An export in a symbol namespace is for the modules that import it; 7.x exports some
        // only to named modules (`module:kvm` for `__mpol_put`, reached from do_task_stat() on
        // sid's 7.2), and modpost refuses a module that uses one it may not import. The module
        // reaches it through a klp relocation instead, in the object that exports it.
        let namespaced = export.filter(|x| !x.namespace.is_empty());
        let binding_object = match (local, &d.klp_object) {
            (Some(true), _) => Some(obj.clone()),
            (_, _) if namespaced.is_some() && !own_export => namespaced.map(|x| x.object()),
            (Some(false), _) if export.is_some() && !own_export => None,
            (Some(false), _) => Some(obj.clone()),
            (None, _) if export.is_some() && !own_export => None,
            (None, KlpObject::Module(m)) if listing.contains(m, &e.name) => Some(m.clone()),
            (None, _) => Some("vmlinux".to_string()),
        };
        let Some(object) = binding_object else {
            done.push((e.out, Binding::Normal));
            continue;
        };
        match listing.sympos(&object, &e.name, &tu) {
            Ok(sympos) => done.push((
                e.out,
                Binding::Klp {
                    object,
                    name: e.name.clone(),
                    sympos,
                },
            )),
            Err(err) => problems.push(Finding {
                key: keys::RELOC_UNRESOLVED,
                location: format!("{}: {}", d.object.display(), e.name),
                message: err.to_string(),
            }),
        }
    }
    if problems.is_empty() {
        Ok(done)
    } else {
        Err(problems)
    }
}

/// The new external symbols of every object of the patch, by name, with the object that defines
/// each. They are all in the one livepatch module, so any object of the patch may use them, also
/// across kernel objects: kpatch's module test has fs/nfsd/export.c (the nfsd module) call a
/// `kpatch_string()` the same patch adds to net/netlink/af_netlink.c (vmlinux).
#[derive(Debug, Default)]
pub struct PatchGlobals(HashMap<String, PathBuf>);

impl PatchGlobals {
    /// Collects the new globals of `diffs`. Two objects that both define a name are refused: in
    /// one kernel object the kernel's own link would have failed the same way, and in two (two
    /// modules each gaining a `helper()`) the livepatch module, which holds both, cannot link.
    pub fn collect(diffs: &[ObjectDiff]) -> Result<Self, Vec<Finding>> {
        let mut m: HashMap<String, PathBuf> = HashMap::new();
        let mut problems = Vec::new();
        for d in diffs {
            for g in new_globals(d) {
                let name = d.patched.symbol(g).name.clone();
                if let Some(first) = m.get(&name) {
                    problems.push(Finding {
                        key: keys::SYMBOL_DUPLICATE,
                        location: format!("{}: {name}", d.object.display()),
                        message: format!(
                            "{} defines {name} as well; the livepatch module holds both: make one of them \
                             static or rename it",
                            first.display()
                        ),
                    });
                } else {
                    m.insert(name, d.object.clone());
                }
            }
        }
        if problems.is_empty() {
            Ok(PatchGlobals(m))
        } else {
            Err(problems)
        }
    }

    /// Whether an object of the patch defines `name`.
    pub fn defines(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// `xfs` for `fs/xfs/xfs` (Module.symvers names modules by path without `.ko`).
fn module_basename(m: &str) -> String {
    crate::kernel::normalize_modname(m.rsplit('/').next().unwrap_or(m))
}
