//! The diff-time marks of kpatch-build's `kpatch-macros.h`, which klp-build's copy of that header
//! writes the same way: `KPATCH_IGNORE_FUNCTION(fn)` (a pointer to `fn` in
//! `.kpatch.ignore.functions`), `KPATCH_IGNORE_SECTION("name")` (a pointer to the name in
//! `.kpatch.ignore.sections`) and `KPATCH_FORCE_UNSAFE(fn)` (a pointer to `fn` in `.kpatch.force`).
//! Input: the patched object and the changed functions. Output: the changed functions without the
//! ignored ones (each dropped one warned about), and a refusal per forced function. Invariant: a
//! mark that names no function or section of the object is refused, not skipped, so a misspelt
//! mark cannot silently patch what it meant to ignore.

use crate::elf::{ElfObject, Location, Patched, SectionId, SymbolId};
use crate::keys;

use super::result::{Changed, Finding};

/// `KPATCH_IGNORE_FUNCTION`'s section.
pub const IGNORE_FUNCTIONS_SECTION: &str = ".kpatch.ignore.functions";
/// `KPATCH_IGNORE_SECTION`'s section.
pub const IGNORE_SECTIONS_SECTION: &str = ".kpatch.ignore.sections";
/// `KPATCH_FORCE_UNSAFE`'s section.
pub const FORCE_SECTION: &str = ".kpatch.force";

/// Drops the ignored functions from `changed` (a warning each) and refuses forced ones.
pub fn apply(
    p: &ElfObject<Patched>,
    changed: &mut Vec<Changed>,
    refusals: &mut Vec<Finding>,
    warnings: &mut Vec<Finding>,
) {
    let functions = marked_functions(p, IGNORE_FUNCTIONS_SECTION, refusals);
    let sections = marked_sections(p, refusals);
    changed.retain(|c| {
        let s = p.symbol(c.sym);
        let secname = s
            .section_id()
            .map_or("", |sec| p.section(sec).name.as_str());
        let why = if functions.contains(&c.sym) {
            "KPATCH_IGNORE_FUNCTION".to_string()
        } else if sections.iter().any(|n| n == secname) {
            format!("KPATCH_IGNORE_SECTION(\"{secname}\")")
        } else {
            return true;
        };
        warnings.push(Finding {
            key: keys::FUNC_IGNORED,
            location: format!("{}: {}", p.path.display(), s.name),
            message: format!(
                "changed ({}) but not patched: the fix marks it with {why}",
                c.why
            ),
        });
        false
    });
    for f in marked_functions(p, FORCE_SECTION, refusals) {
        let s = p.symbol(f);
        let loc = s
            .section_id()
            .map(|sec| Location::new(p, sec, s.st_value).to_string())
            .unwrap_or_else(|| format!("{}: {}", p.path.display(), s.name));
        refusals.push(Finding {
            key: keys::FUNC_FORCE_UNSAFE,
            location: loc,
            message: format!(
                "KPATCH_FORCE_UNSAFE({}) asks to patch the function outside the livepatch consistency model, \
                 which klp-build does not do: every function is switched per task when no task runs it; remove \
                 the mark, and if the function never leaves a task's stack (a kthread's loop), patch the \
                 functions it calls instead",
                s.name
            ),
        });
    }
}

/// The functions that the pointers of section `name` point at.
fn marked_functions(
    p: &ElfObject<Patched>,
    name: &str,
    refusals: &mut Vec<Finding>,
) -> Vec<SymbolId<Patched>> {
    let Some(sec) = p.section_by_name(name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in p.relocs_of(sec) {
        let t = p.symbol(r.sym);
        let func = match t.section_id() {
            Some(_) if t.is_func() && r.r_addend == 0 => Some(r.sym),
            Some(tsec) if t.is_section() => u64::try_from(r.r_addend)
                .ok()
                .and_then(|off| p.func_at(tsec, off))
                .filter(|&f| p.symbol(f).st_value as i64 == r.r_addend),
            _ => None,
        };
        match func {
            Some(f) => out.push(f),
            None => refusals.push(bad_mark(
                p,
                sec,
                r.r_offset,
                format!(
                    "points at {}{:+#x}, not at a function defined in this file; the mark must name one",
                    p.symbol_display_name(r.sym),
                    r.r_addend
                ),
            )),
        }
    }
    out
}

/// The section names that `KPATCH_IGNORE_SECTION` marks point at.
fn marked_sections(p: &ElfObject<Patched>, refusals: &mut Vec<Finding>) -> Vec<String> {
    let Some(sec) = p.section_by_name(IGNORE_SECTIONS_SECTION) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in p.relocs_of(sec) {
        let t = p.symbol(r.sym);
        let at = if t.is_section() {
            r.r_addend
        } else {
            (t.st_value as i64).wrapping_add(r.r_addend)
        };
        let name = t.section_id().and_then(|tsec| {
            let data = p.data(tsec).get(usize::try_from(at).ok()?..)?;
            let end = data.iter().position(|&b| b == 0)?;
            std::str::from_utf8(&data[..end]).ok().map(str::to_string)
        });
        match name {
            Some(n) if !n.is_empty() => out.push(n),
            _ => refusals.push(bad_mark(
                p,
                sec,
                r.r_offset,
                "does not point at a NUL-terminated section name; give a string literal such as \
                 KPATCH_IGNORE_SECTION(\".text.foo\")"
                    .to_string(),
            )),
        }
    }
    out
}

fn bad_mark(p: &ElfObject<Patched>, sec: SectionId<Patched>, off: u64, what: String) -> Finding {
    Finding {
        key: keys::MARK_MALFORMED,
        location: Location::new(p, sec, off.min(p.section_size(sec))).to_string(),
        message: format!("the kpatch mark {what}"),
    }
}
