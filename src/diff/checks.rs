//! The object-level checks after functions are compared. Input: both objects, their twins and
//! the comparison's result. Output: refusals (a changed function livepatch cannot redirect, data
//! the kernel already holds, a table entry a changed function needs but that cannot be read) and
//! warnings (removed functions, guesses and leftovers of correlation). Invariant: every check
//! runs, so one run lists every problem of the object.

use std::path::Path;

use crate::elf::{ElfObject, Location, Orig, Patched, Role, SectionId, SymbolId};
use crate::keys;

use super::changed::symbol_difference;
use super::correlate::{dont_correlate, Rule, Twins};
use super::decode::Decoded;
use super::names::cold_parent;
use super::result::{Changed, Finding};
use super::{exclude, special};

/// A function of the original without a patched twin: the patch removed it, or gcc now
/// inlines or renames it (`foo` -> `foo.isra.0`). The kernel's copy stays; its callers in this
/// file are patched through their own changes. Said, because a caller in another file keeps
/// calling the old copy.
pub fn removed_functions(orig: &ElfObject<Orig>, twins: &Twins, object: &Path) -> Vec<Finding> {
    orig.live_symbols()
        .filter(|(os, s)| {
            s.is_func()
                && s.section_id().is_some()
                && twins.patched(*os).is_none()
                && cold_parent(&s.name).is_none()
        })
        .map(|(_, s)| Finding {
            key: keys::FUNC_REMOVED,
            location: format!("{}: {}", object.display(), s.name),
            message: "no longer in the patched object (removed, inlined or renamed by gcc); the kernel's copy \
                      stays in place for callers outside this file"
                .into(),
        })
        .collect()
}

/// Changed functions livepatch cannot redirect: `__init`/`__exit` code (freed after boot) and
/// functions without an ftrace call site.
pub fn unpatchable_functions(
    orig: &ElfObject<Orig>,
    patched: &ElfObject<Patched>,
    changed: &[Changed],
) -> Vec<Finding> {
    let mut refusals = Vec::new();
    for c in changed {
        let s = patched.symbol(c.sym);
        let Some(sec) = s.section_id() else { continue };
        let loc = Location::new(patched, sec, s.st_value).to_string();
        if exclude::is_init_section(&patched.section(sec).name) {
            refusals.push(Finding {
                key: keys::FUNC_INIT_CHANGED,
                location: loc,
                message: format!(
                    "{} is __init/__exit code ({}): it ran at boot and was freed, a livepatch cannot change it; \
                     put the fix where it runs after boot, or reboot into a fixed kernel",
                    s.name,
                    patched.section(sec).name
                ),
            });
        } else if !has_fentry(orig, c.orig) {
            refusals.push(Finding {
                key: keys::FUNC_NO_FTRACE,
                location: loc,
                message: format!(
                    "{} has no ftrace call site (notrace, noinstr or inlined into a special section), so livepatch \
                     cannot redirect it; patch its callers instead",
                    s.name
                ),
            });
        }
    }
    refusals
}

/// Data the kernel already holds that the patch changes (initial value or size): a livepatch
/// cannot change it. Special statics are compared through the code that uses them instead.
pub fn changed_data(
    orig: &ElfObject<Orig>,
    patched: &ElfObject<Patched>,
    twins: &Twins,
    decoded: &(Decoded<Orig>, Decoded<Patched>),
) -> Vec<Finding> {
    let mut refusals = Vec::new();
    for (ps, s) in patched.live_symbols() {
        if !s.is_object() {
            continue;
        }
        let (Some(os), Some(sec)) = (twins.orig(ps), s.section_id()) else {
            continue;
        };
        let secname = &patched.section(sec).name;
        if !exclude::is_checked_data_section(secname)
            || exclude::is_uncorrelated_static_local(&s.name, secname)
        {
            continue;
        }
        let dec = (&decoded.0, &decoded.1);
        if let Some(why) = symbol_difference(orig, patched, twins, dec, os, ps) {
            let rule = twins.rule(ps).unwrap_or(Rule::Exact);
            let resized = orig.symbol(os).st_size != s.st_size;
            refusals.push(Finding {
                key: if resized { keys::DATA_RESIZED } else { keys::DATA_CHANGED },
                location: Location::new(patched, sec, s.st_value).to_string(),
                message: format!(
                    "{} ({secname}) {}: {why}; a livepatch cannot change data the kernel already holds: keep the \
                     variable as it is and attach new state with a shadow variable (klp_shadow_get_or_alloc), \
                     or change the code that uses it [correlated: {rule}]",
                    s.name,
                    if resized { "changes size" } else { "changes its initial value" }
                ),
            });
        }
    }
    refusals
}

/// Entries of special sections that cannot be read ([`special::unreadable`]) concern only the
/// functions they point into: a changed or new function that uses one is refused with the entry's
/// problem (its module copy would run without the entry: an alternative never applied, a fault
/// without its fixup), an unchanged one gets a warning (a change in that entry alone would not
/// be seen). Entries no function of the patch uses are no error: a 4.18 object's table of another
/// layout, or one entry the reader cannot place, must not refuse a fix elsewhere in the file.
pub fn unreadable_entries(
    (orig, patched): (&ElfObject<Orig>, &ElfObject<Patched>),
    (changed, added): (&[Changed], &[SymbolId<Patched>]),
    refusals: &mut Vec<Finding>,
    warnings: &mut Vec<Finding>,
) {
    // A `.cold` part's entry belongs to its parent, which is what the report names.
    fn owner<R: Role>(obj: &ElfObject<R>, sec: SectionId<R>, off: u64) -> Option<SymbolId<R>> {
        let f = obj.func_at(sec, off)?;
        match cold_parent(&obj.symbol(f).name) {
            Some(parent) => obj.symbol_by_name(parent).or(Some(f)),
            None => Some(f),
        }
    }
    let mut warned = std::collections::HashSet::new();
    let mut seen = std::collections::HashSet::new();
    let patched_changed =
        |f: SymbolId<Patched>| changed.iter().any(|c| c.sym == f) || added.contains(&f);
    for u in special::unreadable(patched) {
        let Some((sec, off)) = u.at else { continue };
        let Some(f) = owner(patched, sec, off) else {
            continue;
        };
        if !seen.insert((f.index(), u.problem.clone())) {
            continue;
        }
        let name = &patched.symbol(f).name;
        let location = Location::new(patched, sec, off).to_string();
        if patched_changed(f) {
            refusals.push(Finding {
                key: keys::SPECIAL_UNREADABLE,
                location,
                message: format!(
                    "{}; {name} cannot be patched without this entry: rebuild the object with the \
                     target kernel's compiler and objtool, or report the object to klp-build",
                    u.problem
                ),
            });
        } else {
            warned.insert(name.clone());
            warnings.push(Finding {
                key: keys::SPECIAL_UNREADABLE,
                location,
                message: format!(
                    "{}; {name} is unchanged, but a change in this entry alone would not be seen",
                    u.problem
                ),
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    for u in special::unreadable(orig) {
        let Some((sec, off)) = u.at else { continue };
        let Some(f) = owner(orig, sec, off) else {
            continue;
        };
        // A changed function's original entries are replaced with the function.
        // One warning for a function whose entry both sides cannot read.
        if changed.iter().any(|c| c.orig == f)
            || warned.contains(&orig.symbol(f).name)
            || !seen.insert((f.index(), u.problem.clone()))
        {
            continue;
        }
        warnings.push(Finding {
            key: keys::SPECIAL_UNREADABLE,
            location: Location::new(orig, sec, off).to_string(),
            message: format!(
                "{} (the original object); {} is unchanged, but a change in this entry alone would not be seen",
                u.problem,
                orig.symbol(f).name
            ),
        });
    }
}

/// The funnel's warnings: each pair made by position, and each symbol it left unpaired, by name.
/// Functions left unpaired are reported as `func.added` / `func.removed` instead, `.cold` parts
/// follow their parents, undefined symbols are the kernel's (the resolve stage finds them), and
/// string labels are compared by content.
pub fn correlation_warnings(
    orig: &ElfObject<Orig>,
    patched: &ElfObject<Patched>,
    twins: &Twins,
    object: &Path,
) -> Vec<Finding> {
    let mut v = Vec::new();
    for (ps, s) in patched.live_symbols() {
        if twins.rule(ps) == Some(Rule::Position) {
            v.push(Finding {
                key: keys::CORRELATE_POSITION,
                location: format!("{}: {}", object.display(), s.name),
                message: format!(
                    "paired with its original {} by position only: the exact, suffix, scope and content rules found no \
                     unique twin",
                    twins.orig(ps).map_or("", |o| orig.symbol(o).name.as_str())
                ),
            });
        }
    }
    let (left_o, left_p) = twins.leftovers();
    let reported = |name: &str, s_is_func: bool, undef: bool| {
        s_is_func || undef || name.starts_with(".L") || cold_parent(name).is_some()
    };
    for &ps in left_p {
        let s = patched.symbol(ps);
        if reported(
            &s.name,
            s.is_func(),
            s.is_undef() || s.section_id().is_none(),
        ) {
            continue;
        }
        let (key, message) = if dont_correlate(patched, ps) {
            (
                keys::CORRELATE_GATED,
                "special static (dont_correlate: never paired by suffix or position) without a twin: carried \
                 with the functions that use it, a fresh copy in the module",
            )
        } else {
            (
                keys::CORRELATE_NONE,
                "no twin in the original object (exact, suffix, scope, content and position found none): new data, \
                 carried in the module",
            )
        };
        v.push(Finding {
            key,
            location: format!("{}: {}", object.display(), s.name),
            message: message.into(),
        });
    }
    for &os in left_o {
        let s = orig.symbol(os);
        if reported(
            &s.name,
            s.is_func(),
            s.is_undef() || s.section_id().is_none(),
        ) {
            continue;
        }
        let (key, message) = if dont_correlate(orig, os) {
            (
                keys::CORRELATE_GATED,
                "special static of the original (dont_correlate) without a twin: the patched code uses copies of \
                 its own",
            )
        } else {
            (
                keys::CORRELATE_NONE,
                "of the original, no twin in the patched object (exact, suffix, scope, content and position found none): \
                 removed or renamed; the kernel's copy stays",
            )
        };
        v.push(Finding {
            key,
            location: format!("{}: {} (original)", object.display(), s.name),
            message: message.into(),
        });
    }
    v
}

/// Whether the function starts with a call to `__fentry__`, which ftrace (and so livepatch)
/// needs: `notrace` and `noinstr` functions have none and cannot be patched.
pub fn has_fentry<R: Role>(obj: &ElfObject<R>, sym: SymbolId<R>) -> bool {
    let s = obj.symbol(sym);
    let Some(sec) = s.section_id() else {
        return false;
    };
    obj.relocs_of(sec).iter().any(|r| {
        r.r_offset >= s.st_value
            && r.r_offset < s.st_value.saturating_add(16)
            && obj.symbol(r.sym).name == "__fentry__"
    })
}
