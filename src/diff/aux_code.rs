//! Auxiliary code sections: code that functions jump to without any symbol covering it. Input: an
//! object and a place in such a section. Output: the fragment that holds the place, and whether two
//! fragments are the same code. Invariant: a fragment is cut at every place code jumps to, so it
//! never holds another function's fragment, and two fragments compare equal only when their bytes
//! and the targets of their relocations do.
//!
//! The case: `static_cpu_has()` (arch/x86/include/asm/cpufeature.h) is an `asm goto` whose
//! alternative starts as `jmp 6f`, with label 6 in `.altinstr_aux`: `testb $bit, boot_cpu_data+N;
//! jnz t_yes; jmp t_no`, the run-time test used until alternatives are applied. Every function of
//! the file that uses it (`meminfo_proc_show()`, `copy_process()` through its FPU helpers) adds a
//! fragment to the one section, and no symbol names any of them. A patched function must take its
//! own fragments along; the fragments' offsets shift whenever an earlier function of the file
//! gains or loses one, so they are compared by content, not by offset.

use object::elf;

use crate::elf::{ElfObject, Reloc, Role, SectionId};

/// Whether section `name` holds auxiliary code reached only by jumps from functions.
pub fn is_aux_code(name: &str) -> bool {
    name == ".altinstr_aux"
}

/// The place in `sec` that relocation `r` (of a code section) jumps to, if it points into `sec`.
/// Only `jmp rel32` and `jcc rel32` reach auxiliary code, and both end with their 4-byte field, so
/// the target is the addend plus 4; a place outside the section is no entry.
fn entry_of<R: Role>(obj: &ElfObject<R>, sec: SectionId<R>, r: &Reloc<R>) -> Option<u64> {
    let sym = obj.symbol(r.sym);
    if sym.section_id() != Some(sec)
        || !matches!(r.r_type, elf::R_X86_64_PC32 | elf::R_X86_64_PLT32)
    {
        return None;
    }
    let at = (sym.st_value as i64)
        .checked_add(r.r_addend)?
        .checked_add(4)?;
    u64::try_from(at)
        .ok()
        .filter(|&at| at < obj.section_size(sec))
}

/// The sorted places of `sec` that code sections jump to: the starts of its fragments.
pub fn entries<R: Role>(obj: &ElfObject<R>, sec: SectionId<R>) -> Vec<u64> {
    let mut v: Vec<u64> = obj
        .live_sections()
        .filter(|(id, s)| *id != sec && s.is_text())
        .flat_map(|(id, _)| obj.relocs_of(id).iter())
        .filter_map(|r| entry_of(obj, sec, r))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The fragment `[start, end)` of `sec` that holds `off`: from the entry at or before `off` to the
/// next entry or the section's end. `None` when `off` lies outside the section or before any entry.
pub fn fragment(entries: &[u64], size: u64, off: i64) -> Option<(u64, u64)> {
    let off = u64::try_from(off).ok().filter(|&o| o < size)?;
    let i = entries.partition_point(|&e| e <= off);
    let start = *entries.get(i.checked_sub(1)?)?;
    let end = entries.get(i).copied().unwrap_or(size);
    Some((start, end))
}

/// One fragment's relocations as comparable facts: offset in the fragment, type, and the target
/// named (a symbol's name, or a section's) with its addend.
fn reloc_facts<R: Role>(
    obj: &ElfObject<R>,
    sec: SectionId<R>,
    (a, b): (u64, u64),
) -> Vec<(u64, u32, String, i64)> {
    obj.relocs_of(sec)
        .iter()
        .filter(|r| r.r_offset >= a && r.r_offset < b)
        .map(|r| {
            let s = obj.symbol(r.sym);
            let name = if s.is_section() {
                s.section_id()
                    .map_or_else(String::new, |t| obj.section(t).name.clone())
            } else {
                s.name.clone()
            };
            (r.r_offset - a, r.r_type, name, r.r_addend)
        })
        .collect()
}

/// Whether `o+oo` of the original object and `p+po` of the patched one lie in fragments with the
/// same code at the same place in them. Jumps back into the function name its section
/// (`.text.meminfo_proc_show`), so a function whose code moved compares unequal, which is right:
/// its labels moved.
pub fn same_place<O: Role, P: Role>(
    orig: &ElfObject<O>,
    (osec, ooff): (SectionId<O>, i64),
    patched: &ElfObject<P>,
    (psec, poff): (SectionId<P>, i64),
) -> bool {
    let (Some(fo), Some(fp)) = (
        fragment(&entries(orig, osec), orig.section_size(osec), ooff),
        fragment(&entries(patched, psec), patched.section_size(psec), poff),
    ) else {
        return false;
    };
    let bytes = |d: &[u8], (a, b): (u64, u64)| d.get(a as usize..b as usize).map(<[u8]>::to_vec);
    ooff - fo.0 as i64 == poff - fp.0 as i64
        && bytes(orig.data(osec), fo).is_some()
        && bytes(orig.data(osec), fo) == bytes(patched.data(psec), fp)
        && reloc_facts(orig, osec, fo) == reloc_facts(patched, psec, fp)
}

#[cfg(test)]
mod tests {
    use super::fragment;

    #[test]
    fn fragments_run_from_an_entry_to_the_next() {
        let e = [0, 0x12, 0x24];
        assert_eq!(fragment(&e, 0x36, 0), Some((0, 0x12)));
        assert_eq!(fragment(&e, 0x36, 0x13), Some((0x12, 0x24)));
        assert_eq!(fragment(&e, 0x36, 0x30), Some((0x24, 0x36)));
    }

    #[test]
    fn places_outside_the_section_or_before_any_entry_have_no_fragment() {
        assert_eq!(fragment(&[4], 0x10, 0x10), None);
        assert_eq!(fragment(&[4], 0x10, -1), None);
        assert_eq!(fragment(&[4], 0x10, 2), None);
        assert_eq!(fragment(&[], 0x10, 2), None);
    }
}
