//! Stage 3, diff: one orig/patched object pair -> [`ObjectDiff`]: the functions that changed
//! (and why), the new functions, and the refusals. Invariant: every unpatchable change of the
//! object is collected before the stage fails, each with its location and the fix.
//!
//! The steps, in order (objtool's klp-diff keeps `correlate_symbols` apart from
//! `mark_changed_functions` the same way): [`decode`] each object's code once, [`correlate`] the
//! symbols into twins, compare each function with its twin ([`changed`]), fold `.cold` parts into
//! their parents, drop what must not be patched ([`ignore`]), then run the object-level
//! [`checks`] and report ([`result`]).

pub mod aux_code;
pub mod changed;
pub mod checks;
pub mod correlate;
pub mod decode;
pub mod entries;
pub mod exclude;
pub mod explain;
pub mod fingerprint;
pub mod ignore;
pub mod line_only;
pub mod names;
pub mod reloc_target;
pub mod result;
pub mod special;

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::contract::KlpObject;
use crate::elf::{read_file, ElfObject, Orig, Patched, SectionId, SymbolId};

use changed::{Pair, Verdict};
use correlate::{correlate, Rule, Twins};
use decode::Decoded;
use entries::Entries;
use names::cold_parent;
pub use result::{Changed, Finding, LineOnly, ObjectDiff, Refused};

/// Keeps one function per address. Aliases are one function under several names: x86's
/// `SYSCALL_DEFINE0(getegid)` makes `__x64_sys_getegid` and `__ia32_sys_getegid` aliases of
/// `__do_sys_getegid`. Registering each as a `klp_func` stacks three entries on one ftrace
/// location, and the transition then checks stacks against the wrong ranges and never finishes
/// (seen on Debian 6.1: every kthread reported "sleeping on function __do_sys_getegid"). The
/// global name is kept (unique in kallsyms), else the first.
pub fn drop_aliases(patched: &ElfObject<Patched>, changed: &mut Vec<Changed>) {
    let mut best: std::collections::HashMap<(Option<SectionId<Patched>>, u64), SymbolId<Patched>> =
        Default::default();
    for c in changed.iter() {
        let s = patched.symbol(c.sym);
        let key = (s.section_id(), s.st_value);
        best.entry(key)
            .and_modify(|b| {
                let cur = patched.symbol(*b);
                if cur.is_local() && !s.is_local() {
                    *b = c.sym;
                }
            })
            .or_insert(c.sym);
    }
    changed.retain(|c| {
        let s = patched.symbol(c.sym);
        best.get(&(s.section_id(), s.st_value)) == Some(&c.sym)
    });
}

/// Diffs one object pair.
pub fn run(
    object: &Path,
    klp_object: KlpObject,
    orig: &Path,
    patched: &Path,
) -> anyhow::Result<ObjectDiff> {
    // Each reader error names the file it read; the pair's name is added only when it is another
    // name (the pipeline's `fs/proc/cmdline.o`), never the patched file for an original's damage.
    let of = |side: &str, file: &Path| {
        if file == object {
            format!("reading the {side} object")
        } else {
            format!("reading the {side} object of {}", object.display())
        }
    };
    let mut o: ElfObject<Orig> = read_file(orig).with_context(|| {
        if patched == object {
            // `klp-build diff ORIG PATCHED`: the pair is named after the patched file.
            "reading the original object".to_string()
        } else {
            of("original", orig)
        }
    })?;
    let mut p: ElfObject<Patched> = read_file(patched).with_context(|| of("patched", patched))?;
    // Messages name the object as the user knows it, not the copy in the work dir.
    o.path = object.to_path_buf();
    p.path = object.to_path_buf();
    Ok(diff(o, p, object.to_path_buf(), klp_object))
}

/// Diffs two objects already read.
pub fn diff(
    orig: ElfObject<Orig>,
    patched: ElfObject<Patched>,
    object: PathBuf,
    klp_object: KlpObject,
) -> ObjectDiff {
    let decoded = (Decoded::new(&orig), Decoded::new(&patched));
    let twins = correlate(&orig, &patched, (&decoded.0, &decoded.1));
    let Compared {
        mut changed,
        mut added,
        mut line_only,
    } = compare_functions(&orig, &patched, &twins, &decoded);
    let mut warnings = checks::correlation_warnings(&orig, &patched, &twins, &object);
    warnings.extend(checks::removed_functions(&orig, &twins, &object));
    fold_cold_parts(&patched, &twins, &mut changed, &mut added, &mut line_only);

    let mut refusals = Vec::new();
    ignore::apply(&patched, &mut changed, &mut refusals, &mut warnings);
    refusals.extend(checks::unpatchable_functions(&orig, &patched, &changed));
    refusals.extend(checks::changed_data(&orig, &patched, &twins, &decoded));
    drop_aliases(&patched, &mut changed);
    checks::unreadable_entries(
        (&orig, &patched),
        (&changed, &added),
        &mut refusals,
        &mut warnings,
    );

    changed.sort_by(|a, b| patched.symbol(a.sym).name.cmp(&patched.symbol(b.sym).name));
    added.sort_by(|a, b| patched.symbol(*a).name.cmp(&patched.symbol(*b).name));
    line_only.sort_by(|a, b| patched.symbol(a.sym).name.cmp(&patched.symbol(b.sym).name));
    ObjectDiff {
        object,
        klp_object,
        orig,
        patched,
        decoded,
        twins,
        changed,
        added,
        line_only,
        refusals,
        warnings,
    }
}

/// What comparing every patched function with its twin found, before the object-level steps.
struct Compared {
    changed: Vec<Changed>,
    added: Vec<SymbolId<Patched>>,
    line_only: Vec<LineOnly>,
}

/// Compares each function of the patched object with its twin: same, `__LINE__` values only,
/// changed, or new (no twin).
fn compare_functions(
    orig: &ElfObject<Orig>,
    patched: &ElfObject<Patched>,
    twins: &Twins,
    decoded: &(Decoded<Orig>, Decoded<Patched>),
) -> Compared {
    let entries = (Entries::new(orig), Entries::new(patched));
    let pair = Pair {
        orig,
        patched,
        twins,
        dec: (&decoded.0, &decoded.1),
        entries: (&entries.0, &entries.1),
    };
    let mut out = Compared {
        changed: Vec::new(),
        added: Vec::new(),
        line_only: Vec::new(),
    };
    for (ps, s) in patched.live_symbols() {
        // Functions defined in a section: an `STT_FUNC` at `SHN_ABS` has no code to compare.
        if !s.is_func() || s.section_id().is_none() {
            continue;
        }
        let (Some(os), Some(rule)) = (twins.orig(ps), twins.rule(ps)) else {
            out.added.push(ps);
            continue;
        };
        match pair.function(os, ps) {
            Verdict::Same => {}
            Verdict::LineOnly(lines) => out.line_only.push(LineOnly {
                sym: ps,
                rule,
                lines,
            }),
            Verdict::Changed(why) => out.changed.push(Changed {
                sym: ps,
                orig: os,
                why,
                rule,
            }),
        }
    }
    out
}

/// A changed `.cold` part changes its parent, which is what the kernel can redirect: the part
/// leaves the lists and its parent is changed in its place.
fn fold_cold_parts(
    patched: &ElfObject<Patched>,
    twins: &Twins,
    changed: &mut Vec<Changed>,
    added: &mut Vec<SymbolId<Patched>>,
    line_only: &mut Vec<LineOnly>,
) {
    let mut parents = Vec::new();
    changed.retain(|c| {
        let name = &patched.symbol(c.sym).name;
        match cold_parent(name) {
            Some(parent) => {
                parents.push((parent.to_string(), name.clone()));
                false
            }
            None => true,
        }
    });
    for (parent, child) in parents {
        if changed.iter().any(|c| patched.symbol(c.sym).name == parent) {
            continue;
        }
        if let Some(ps) = patched.symbol_by_name(&parent) {
            if let Some(os) = twins.orig(ps) {
                changed.push(Changed {
                    sym: ps,
                    orig: os,
                    why: format!("its part {child} changed"),
                    rule: twins.rule(ps).unwrap_or(Rule::Exact),
                });
            }
        }
    }
    added.retain(|&a| cold_parent(&patched.symbol(a).name).is_none());
    // A function that changed through its `.cold` part is changed, not line-only
    // (ext4_put_super() of fs/ext4/super.o: a line value in its body, a change in its part); a
    // `.cold` part whose parent changed goes with the parent.
    line_only.retain(|l| !changed.iter().any(|c| c.sym == l.sym));
    line_only.retain(|l| {
        let name = &patched.symbol(l.sym).name;
        cold_parent(name).is_none_or(|p| !changed.iter().any(|c| patched.symbol(c.sym).name == p))
    });
}
