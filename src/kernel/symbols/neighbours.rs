//! Where a translation unit's static sits among same-named ones (fs/ alone has dozens of static
//! `show` functions), told by its neighbours. Distro kernels are built without
//! `-ffunction-sections`, so a unit's functions sit together in the linked `.text` in the order
//! the compiler emitted them, which is the section order of the object klp-build rebuilds with
//! `-ffunction-sections -fdata-sections`; its data likewise in `.data`, `.bss`, `.rodata`. Input:
//! an object's entries in address order and the unit's symbols. Output: for each candidate, how
//! the unit's symbols of the same base section surround it ([`Support`]). Invariant: only names
//! unique in the object prove whose run it is; repeated ones (`__func__.0`, `s_show`) add weight.

use std::fmt;

use super::{ObjectSymbols, TranslationUnit, TuSymbol};

/// How well a candidate is surrounded by the other symbols of its unit's run (same base section,
/// unit order), walking away from it both ways in address order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Support {
    /// The unit's symbols found in order around the candidate.
    pub matched: usize,
    /// Those of them whose name occurs once in the object: only these say which unit the run
    /// belongs to (`__func__.0`, `__key.1`, `s_show` runs repeat across units).
    pub distinct: usize,
    /// Listing lines between the candidate and the matched symbols that are not the unit's: the
    /// true instance sits inside its unit's run, 0 when the builds agree.
    pub gap: usize,
}

impl Support {
    pub(super) fn rank(&self) -> (usize, usize, std::cmp::Reverse<usize>) {
        (self.distinct, self.matched, std::cmp::Reverse(self.gap))
    }

    /// Whether a candidate with this support is a clear winner over the next best. Evidence
    /// must include a name unique in the object: such a line can only be the unit's own, so only
    /// candidates at the edge of the unit's run can reach it too, and those reach it across a
    /// gap (the true instance, or another unit's line). A wrong sympos makes livepatch redirect
    /// another unit's same-named function, so an error is always the better failure.
    pub(super) fn beats(&self, next: &Support) -> bool {
        self.distinct >= 1
            && (self.distinct > next.distinct
                || (self.distinct == next.distinct
                    && self.matched >= next.matched
                    && self.gap < next.gap))
    }
}

impl fmt::Display for Support {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of the unit's symbols around it, {} of them unique, {} lines apart",
            self.matched, self.distinct, self.gap
        )
    }
}

/// The unit's symbols that share `own`'s base section and that the listing has, in unit order:
/// the run `own` should sit in.
pub(super) fn run_of<'t>(
    obj: &ObjectSymbols,
    own: &TuSymbol,
    tu: &'t TranslationUnit,
) -> Vec<&'t TuSymbol> {
    let base = own.base_section();
    tu.symbols
        .iter()
        .filter(|s| {
            s.base_section() == base && (s.name == own.name || obj.by_name.contains_key(&s.name))
        })
        .collect()
}

/// How well the unit's symbols of `own`'s run surround entry `i`.
pub(super) fn support(
    obj: &ObjectSymbols,
    i: u32,
    own: &TuSymbol,
    tu: &TranslationUnit,
) -> Support {
    let run = run_of(obj, own, tu);
    let Some(k) = run.iter().position(|s| s.name == own.name) else {
        return Support::default();
    };
    let p = obj.at[i as usize] as usize;
    let before: Vec<&str> = run[..k].iter().rev().map(|s| s.name.as_str()).collect();
    let after: Vec<&str> = run[k + 1..].iter().map(|s| s.name.as_str()).collect();
    let back = walk(obj, (0..p).rev(), &before);
    let fwd = walk(obj, p + 1..obj.layout.len(), &after);
    Support {
        matched: back.matched + fwd.matched,
        distinct: back.distinct + fwd.distinct,
        gap: back.gap + fwd.gap,
    }
}

/// Matches listing names, walking away from a candidate through layout positions `listing`,
/// against the unit's names in the same direction. A name may skip a few unit symbols (one the
/// kernel's build lost or moved); a few listing names in a row that are not the unit's end the
/// run (the next unit begins).
pub(super) fn walk(
    obj: &ObjectSymbols,
    listing: impl Iterator<Item = usize>,
    unit: &[&str],
) -> Support {
    const LOOKAHEAD: usize = 6;
    const MAX_MISSES: usize = 3;
    let mut s = Support::default();
    let (mut j, mut misses, mut skipped) = (0, 0, 0);
    for q in listing {
        if j >= unit.len() {
            break;
        }
        let name = obj.name_at(q);
        let window = &unit[j..unit.len().min(j + LOOKAHEAD)];
        if let Some(d) = window.iter().position(|u| *u == name) {
            s.matched += 1;
            if obj.by_name.get(name).is_some_and(|v| v.len() == 1) {
                s.distinct += 1;
            }
            s.gap += skipped;
            j += d + 1;
            misses = 0;
        } else {
            misses += 1;
            skipped += 1;
            if misses > MAX_MISSES {
                break;
            }
        }
        if misses == 0 {
            skipped = 0;
        }
    }
    s
}
