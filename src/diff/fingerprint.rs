//! Byte fingerprints of data symbols. Input: an object and one of its symbols. Output: the
//! symbol's bytes with each relocation's offset, type and target spelled by name or content.
//! Invariant: equal fingerprints mean equal data whatever the symbol indices, string offsets and
//! gcc's numbering of the two objects.

use crate::elf::{ElfObject, Role, SymbolId};

use super::names::strip_suffix;
use super::reloc_target::{resolve, RelocTarget};

/// The contents of a read-only data symbol: its bytes and, per relocation, its offset, type and
/// target (a string by its bytes, a symbol by its name without gcc's number). `None` for code,
/// writable data and empty symbols.
pub fn contents<R: Role>(obj: &ElfObject<R>, s: SymbolId<R>) -> Option<String> {
    let sym = obj.symbol(s);
    let sec = sym.section_id()?;
    let section = obj.section(sec);
    if sym.st_size == 0
        || !sym.is_object()
        || section.sh_flags & u64::from(object::elf::SHF_WRITE) != 0
        || section.is_text()
    {
        return None;
    }
    bytes_and_targets(obj, s)
}

/// A symbol's bytes and, per relocation, its offset, type and target, as [`contents`] gives
/// them, for any defined symbol.
pub fn bytes_and_targets<R: Role>(obj: &ElfObject<R>, s: SymbolId<R>) -> Option<String> {
    let sym = obj.symbol(s);
    let sec = sym.section_id()?;
    let (a, b) = (sym.st_value, sym.st_value.checked_add(sym.st_size)?);
    let mut fp = format!("{:x?}", obj.data(sec).get(a as usize..b as usize)?);
    let mut relocs: Vec<_> = obj
        .relocs_of(sec)
        .iter()
        .filter(|r| r.r_offset >= a && r.r_offset < b)
        .collect();
    relocs.sort_by_key(|r| r.r_offset);
    for r in relocs {
        let target = match resolve(obj, sec, r, None) {
            RelocTarget::Symbol(t, off) => {
                format!("{}{off:+}", strip_suffix(&obj.symbol(t).name))
            }
            RelocTarget::String(_, bytes) => format!("{bytes:?}"),
            RelocTarget::Section(t, off) => format!("{}{off:+}", obj.section(t).name),
        };
        fp.push_str(&format!(";{:x}:{}:{target}", r.r_offset - a, r.r_type));
    }
    Some(fp)
}
