//! The x86_64 special sections: tables whose entries point into functions and must follow them
//! into the livepatch module. Input: a section name (and its `sh_entsize`). Output: how to treat it.
//! Invariant: every allocated section that points into an included function is either known here
//! or refused by the diff stage, never silently dropped: a dropped `__bug_table` entry turns a
//! `WARN_ON()` into an invalid-opcode oops; a dropped `__ex_table` entry turns a recoverable user
//! access fault into a crash.

use std::collections::HashMap;

use object::elf;

use crate::elf::{Content, ElfObject, Reloc, Role, SectionId};

/// What the diff stage does with a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// A table of fixed-size entries whose first field points at code: keep the entries of
    /// included functions.
    Entries {
        /// Entry size in bytes.
        size: u64,
    },
    /// `.altinstructions`: `struct alt_instr` whose replacement bytes live in
    /// `.altinstr_replacement` (sliced per entry: offset 4 points at them, the entry's last byte is
    /// their length). 12 bytes up to 6.2; 14 since 6.3 widened `cpuid` to `ft_flags` (6.12).
    Alternatives {
        /// Entry size in bytes, as [`layout`] read it from the object.
        size: u64,
    },
    /// `.orc_unwind_ip` (4-byte entries) with its parallel `.orc_unwind` (6-byte entries).
    OrcIp,
    /// Consumed with its partner (`.orc_unwind`, `.altinstr_replacement`).
    Partner,
    /// Build-time only or debugging data that the module does not need: `.discard.*` (but
    /// objtool's instruction annotations), `.debug_*`, `.comment`, `.note.*`, `.printk_index`.
    Drop,
}

/// Sizes for kernels 5.x-6.x on x86_64 where the section carries no `sh_entsize`
/// (assembler-made tables; objtool-made ones set it).
const TABLE: &[(&str, u64)] = &[
    // struct bug_entry with GENERIC_BUG_RELATIVE_POINTERS and DEBUG_BUGVERBOSE: disp, file, line, flags.
    ("__bug_table", 12),
    // struct exception_table_entry: insn, fixup, data (5.16+).
    ("__ex_table", 12),
    // struct jump_entry: code, target, key.
    ("__jump_table", 16),
    // struct static_call_site: addr, key.
    (".static_call_sites", 8),
    // s32 offsets to LOCK prefixes.
    (".smp_locks", 4),
    // objtool's s32 site lists.
    (".retpoline_sites", 4),
    (".return_sites", 4),
    (".call_sites", 4),
    (".ibt_endbr_seal", 4),
    // unsigned long addresses of the ftrace call sites (-mrecord-mcount).
    ("__mcount_loc", 8),
    // struct paravirt_patch_site (before 6.8): instr pointer, type, len, padded to 16; since 6.6
    // the pointer is an s32 offset and the entry 8 bytes ([`layout`] tells them apart).
    (".parainstructions", 16),
];

/// `struct alt_instr` before 6.3 (`u16 cpuid`) and since (`u32 ft_flags`).
const ALT_SIZES: [u64; 2] = [12, 14];

/// objtool's annotations of single instructions (`include/linux/objtool.h`): `.long <insn>`
/// tables objtool reads and the module's final link discards. Kept for included functions, since
/// kernels with IBT run objtool on the module at its link: without its `.discard.reachable` entry
/// the instruction after a `WARN_ON()`'s `ud2` is "unreachable" to objtool, which then leaves it
/// without ORC (`rcu_expedited_store()` of ksysfs-warn.patch on Debian's 6.12). 6.14 merged them
/// into `.discard.annotate_insn` (8 bytes: the instruction, then the annotation type; its
/// `sh_entsize` says so).
const OBJTOOL_ANNOTATIONS: &[(&str, u64)] = &[
    (".discard.reachable", 4),
    (".discard.retpoline_safe", 4),
    (".discard.instr_begin", 4),
    (".discard.instr_end", 4),
    (".discard.intra_function_calls", 4),
    (".discard.noendbr", 4),
    (".discard.ignore_alts", 4),
    (".discard.validate_unret", 4),
    (".discard.annotate_insn", 8),
];

/// How to treat section `name` whose header says `entsize`.
pub fn classify(name: &str, entsize: u64) -> Option<Special> {
    if let Some(&(_, size)) = OBJTOOL_ANNOTATIONS.iter().find(|(n, _)| *n == name) {
        return Some(Special::Entries {
            size: if entsize != 0 { entsize } else { size },
        });
    }
    if name.starts_with(".discard")
        || name.starts_with(".debug_")
        || name.starts_with(".note")
        || name == ".comment"
        || name == ".printk_index"
        || name == "__patchable_function_entries"
    {
        return Some(Special::Drop);
    }
    match name {
        ".altinstructions" => {
            return Some(Special::Alternatives {
                size: if entsize != 0 { entsize } else { ALT_SIZES[0] },
            })
        }
        ".altinstr_replacement" | ".orc_unwind" => return Some(Special::Partner),
        ".orc_unwind_ip" => return Some(Special::OrcIp),
        _ => {}
    }
    TABLE
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, size)| Special::Entries {
            size: if entsize != 0 { entsize } else { size },
        })
}

/// How to treat section `sec` of `obj`, with entry sizes read from the object where kernels
/// differ, and checked: a table that is not a whole number of entries, or whose entries point
/// outside their partner section, is an error naming the section and the entry. Objects of
/// other kernels than the one the table above describes get their own sizes: `.parainstructions`
/// of 6.6 and 6.7 (`s32 instr_offset`, 8-byte entries, an `R_X86_64_PC32` at each entry) made
/// the 16-byte slicing run past the section's end.
pub fn layout<R: Role>(obj: &ElfObject<R>, sec: SectionId<R>) -> Result<Option<Special>, String> {
    let s = obj.section(sec);
    let Some(kind) = classify(&s.name, s.sh_entsize) else {
        return Ok(None);
    };
    let len = obj.section_size(sec);
    let offsets = || {
        let mut v: Vec<u64> = obj.relocs_of(sec).iter().map(|r| r.r_offset).collect();
        v.sort_unstable();
        v
    };
    let kind = match kind {
        Special::Entries { .. } if s.name == ".parainstructions" && s.sh_entsize == 0 => {
            let relative = obj
                .relocs_of(sec)
                .iter()
                .any(|r| r.r_type == elf::R_X86_64_PC32);
            Special::Entries {
                size: if relative { 8 } else { 16 },
            }
        }
        Special::Entries { size } if s.sh_entsize == 0 => Special::Entries {
            size: entry_size(size, len, &offsets()),
        },
        Special::Alternatives { .. } if s.sh_entsize == 0 => {
            // Each entry has relocations at +0 and +4: the distance between the first and the
            // third is the entry size; an object with one entry only has its length.
            let o = offsets();
            let size = match o.as_slice() {
                [a, _, c, ..] => c - a,
                _ => len,
            };
            Special::Alternatives {
                size: if ALT_SIZES.contains(&size) {
                    size
                } else {
                    ALT_SIZES[0]
                },
            }
        }
        k => k,
    };
    let entries = |size: u64| -> Result<(), String> {
        if size == 0 || !len.is_multiple_of(size) {
            return Err(format!(
                "{}: {len:#x} bytes is not a whole number of {size}-byte entries",
                s.name
            ));
        }
        Ok(())
    };
    match kind {
        Special::Entries { size } => entries(size)?,
        Special::Alternatives { size } => {
            entries(size)?;
            check_alternatives(obj, sec, size)?;
        }
        Special::OrcIp => {
            entries(4)?;
            let unw = obj.section_by_name(".orc_unwind");
            let want = len / 4 * 6;
            let have = unw.map_or(0, |u| obj.section_size(u));
            if have != want {
                return Err(format!(
                    "{}: {} entries need {want:#x} bytes of .orc_unwind, found {have:#x}",
                    s.name,
                    len / 4
                ));
            }
        }
        Special::Partner | Special::Drop => {}
    }
    Ok(Some(kind))
}

/// Whether `size` fits a table of `len` bytes whose relocations sit at `offsets` (sorted): every
/// entry starts with a relocation, and every entry has its relocations at the same places.
fn fits(size: u64, len: u64, offsets: &[u64]) -> bool {
    size != 0
        && len.is_multiple_of(size)
        && (0..len / size).all(|i| offsets.binary_search(&(i * size)).is_ok())
        && offsets
            .iter()
            .all(|&o| o + size >= len || offsets.binary_search(&(o + size)).is_ok())
}

/// The entry size of a table without `sh_entsize`: `default` (the size of the kernels
/// [`TABLE`] describes) when the relocations fit it, else the smallest size they fit, read from
/// the object. `struct bug_entry` is 12 bytes with `CONFIG_DEBUG_BUGVERBOSE` (relocations at +0
/// and +4), 8 without (one at +0), and grew a format pointer in later kernels: assuming 12 would
/// slice such a `__bug_table` into pieces of two entries. When nothing fits, `default` stays and
/// [`layout`]'s whole-entries check names the section.
fn entry_size(default: u64, len: u64, offsets: &[u64]) -> u64 {
    if offsets.is_empty() || fits(default, len, offsets) {
        return default;
    }
    (1..=len)
        .filter(|d| d % 4 == 0)
        .find(|&d| fits(d, len, offsets))
        .unwrap_or(default)
}

/// The replacement bytes of `.altinstructions` entry `start`: the place its +4 relocation points
/// at in `.altinstr_replacement` and the length in the entry's last byte, checked against that
/// section. `None` when the entry has no +4 relocation (then it has no replacement to carry).
/// `relocs` is the section's [`ElfObject::relocs_by_offset`].
pub fn alt_replacement<R: Role>(
    obj: &ElfObject<R>,
    sec: SectionId<R>,
    relocs: &HashMap<u64, &Reloc<R>>,
    size: u64,
    start: u64,
) -> Result<Option<(SectionId<R>, u64, u64)>, String> {
    let name = &obj.section(sec).name;
    let entry = start / size.max(1);
    let Some(rep) = relocs.get(&(start + 4)) else {
        return Ok(None);
    };
    let rsym = obj.symbol(rep.sym);
    let Some(repl) = rsym.section_id() else {
        return Err(format!(
            "{name} entry {entry}: the replacement points at {:?}, which is not defined in a section",
            rsym.name
        ));
    };
    let base = if rsym.is_section() { 0 } else { rsym.st_value };
    let data = obj.data(sec);
    let rlen = data
        .get((start + size - 1) as usize)
        .map_or(0, |&b| u64::from(b));
    let roff = base.wrapping_add_signed(rep.r_addend);
    let rsize = obj.section_size(repl);
    if roff.checked_add(rlen).is_none_or(|end| end > rsize) {
        return Err(format!(
            "{name} entry {entry}: replacement {roff:#x}+{rlen} beyond the {rsize:#x} bytes of {}",
            obj.section(repl).name
        ));
    }
    Ok(Some((repl, roff, rlen)))
}

fn check_alternatives<R: Role>(
    obj: &ElfObject<R>,
    sec: SectionId<R>,
    size: u64,
) -> Result<(), String> {
    let n = obj.section_size(sec) / size;
    let relocs = obj.relocs_by_offset(sec);
    for i in 0..n {
        alt_replacement(obj, sec, &relocs, size, i * size)?;
    }
    Ok(())
}

/// Checks the layout of every special section of `obj` (see [`layout`]).
pub fn check<R: Role>(obj: &ElfObject<R>) -> Result<(), String> {
    for (sec, s) in obj.live_sections() {
        if matches!(s.content, Content::Data(_) | Content::Nobits(_)) {
            layout(obj, sec)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entsize_from_the_object_wins() {
        assert_eq!(
            classify(".return_sites", 4),
            Some(Special::Entries { size: 4 })
        );
        assert_eq!(
            classify("__bug_table", 0),
            Some(Special::Entries { size: 12 })
        );
        assert_eq!(
            classify("__jump_table", 0),
            Some(Special::Entries { size: 16 })
        );
        assert_eq!(classify(".discard.addressable", 0), Some(Special::Drop));
        assert_eq!(classify(".data.foo", 0), None);
    }

    #[test]
    fn entry_sizes_are_read_from_the_relocations_when_the_default_does_not_fit() {
        // __bug_table of 12-byte entries (relocations at +0 and +4): the default fits.
        assert_eq!(entry_size(12, 36, &[0, 4, 12, 16, 24, 28]), 12);
        // Without DEBUG_BUGVERBOSE: 8-byte entries, one relocation each.
        assert_eq!(entry_size(12, 24, &[0, 8, 16]), 8);
        // 16-byte entries with relocations at +0, +4, +8: 48 bytes are four 12-byte pieces
        // too, and 8 would put an entry start at +8 of each; only 16 repeats the pattern.
        assert_eq!(entry_size(12, 48, &[0, 4, 8, 16, 20, 24, 32, 36, 40]), 16);
        // One entry: its length.
        assert_eq!(entry_size(12, 16, &[0, 4, 8]), 16);
        // static_call_sites: relocations at every 4 bytes fit the default of 8.
        assert_eq!(entry_size(8, 32, &[0, 4, 8, 12, 16, 20, 24, 28]), 8);
        // Nothing fits (an entry without relocation at its start): the default, for layout's check.
        assert_eq!(entry_size(12, 20, &[4]), 12);
    }
}
