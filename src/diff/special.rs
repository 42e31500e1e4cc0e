//! The x86_64 special sections: tables whose entries point into functions and must follow them
//! into the livepatch module. Input: one object's section (name, `sh_entsize`, contents and
//! relocations). Output: how to treat it, with its entry layout learned from that object, and the
//! entries that cannot be read. Invariant: a table is a table of the kernel that built the object:
//! its layout comes from `sh_entsize`, else from the object's relocation pattern checked against the
//! layouts kernels have had, never from one kernel's assumption; every allocated section that
//! points into an included function is either known here or refused by the diff stage, never
//! silently dropped: a dropped `__bug_table` entry turns a `WARN_ON()` into an invalid-opcode oops;
//! a dropped `__ex_table` entry turns a recoverable user access fault into a crash.

use std::collections::HashMap;

use object::elf;

use crate::elf::{Content, ElfObject, Reloc, Role, SectionId, SymbolId};

/// What the diff stage does with a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// A table of fixed-size entries whose first field points at code: keep the entries of
    /// included functions.
    Entries {
        /// Entry size in bytes (the stride; the last entry may lack its padding, see [`fields`]).
        size: u64,
    },
    /// `.altinstructions`: `struct alt_instr` whose replacement bytes live in
    /// `.altinstr_replacement` (sliced per entry: offset 4 points at them, `replacementlen` is
    /// their length). 13 bytes before 5.13 (`padlen`), 12 up to 6.2, 14 since 6.3 widened
    /// `cpuid` to `ft_flags` (6.12): see [`ALT_LAYOUTS`].
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

/// The layouts `struct alt_instr` has had on x86_64: its size and the offset of
/// `replacementlen`, the length of the replacement bytes. All start with `s32 instr_offset` and
/// `s32 repl_offset`, the two relocated fields.
/// - 12 bytes, `u16 cpuid; u8 instrlen; u8 replacementlen;` (5.13 to 6.2; Debian's 6.1);
/// - 13 bytes, the same and `u8 padlen` (before 5.13: RHEL 8's 4.18, 5.4, 5.10);
/// - 14 bytes, `u32 ft_flags; u8 instrlen; u8 replacementlen;` (6.3+; Debian's 6.12).
pub const ALT_LAYOUTS: [(u64, u64); 3] = [(12, 11), (13, 11), (14, 13)];

/// The offset of `replacementlen` in a `struct alt_instr` of `size` bytes, for the layouts of
/// [`ALT_LAYOUTS`]; `None` for a size no kernel has had.
pub fn alt_replacement_len_at(size: u64) -> Option<u64> {
    ALT_LAYOUTS
        .iter()
        .find(|(s, _)| *s == size)
        .map(|&(_, at)| at)
}

/// The bytes an entry's fields occupy, for tables whose struct ends in padding. The kernel's
/// macros align before an entry, not after it (`_paravirt_alt` opens with `_ASM_ALIGN`), so the
/// assembler pads each entry to the stride only when another follows and the last one stops at its
/// fields: a `.parainstructions` of 4.18 or 5.x is 16k+12 bytes (`u8 *instr; u8 type; u8 len;
/// u16 clobbers;` at a 16-byte stride), one of 6.6 and 6.7 8k+6 (`s32 instr_offset; u8 type; u8
/// len;` at 8). Every other table's entries are whole.
pub fn fields(name: &str, size: u64) -> u64 {
    match (name, size) {
        (".parainstructions", 16) => 12,
        (".parainstructions", 8) => 6,
        _ => size,
    }
}

/// The bytes of the entry at `start` of table `sec` whose stride is `size`: the whole stride, or
/// for the last entry of a table whose struct ends in padding only its fields ([`fields`]).
/// `None` when the table holds less.
pub fn entry_bytes_at<R: Role>(
    obj: &ElfObject<R>,
    sec: SectionId<R>,
    size: u64,
    start: u64,
) -> Option<&[u8]> {
    let data = obj.data(sec);
    let len = data.len() as u64;
    let need = fields(&obj.section(sec).name, size);
    let end = start.checked_add(size)?.min(len);
    if end < start.checked_add(need)? {
        return None;
    }
    data.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
}

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
                size: if entsize != 0 {
                    entsize
                } else {
                    ALT_LAYOUTS[0].0
                },
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

/// How to treat section `sec` of `obj`, with its entry size learned from the object where kernels
/// differ: `sh_entsize` when the section has one, else the relocation pattern (every entry starts
/// with a relocation, and the entries repeat it at a fixed stride). `Err` says what was expected
/// and what was found when no layout fits: a table that is not a whole number of entries (a last
/// entry without its padding is whole, see [`fields`]), an `.altinstructions` of no known
/// `struct alt_instr`, an `.orc_unwind_ip` whose `.orc_unwind` has another number of entries.
/// Objects of other kernels than the one [`TABLE`] describes get their own sizes:
/// `.parainstructions` of 6.6 and 6.7 (`s32 instr_offset`, 8-byte entries, an `R_X86_64_PC32` at
/// each entry) made 16-byte slicing run past the section's end.
pub fn layout<R: Role>(obj: &ElfObject<R>, sec: SectionId<R>) -> Result<Option<Special>, String> {
    let s = obj.section(sec);
    let Some(kind) = classify(&s.name, s.sh_entsize) else {
        return Ok(None);
    };
    let len = obj.section_size(sec);
    let offsets = || {
        let mut v: Vec<u64> = obj.relocs_of(sec).iter().map(|r| r.r_offset).collect();
        v.sort_unstable();
        v.dedup();
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
        Special::Alternatives { .. } if s.sh_entsize == 0 => Special::Alternatives {
            size: alt_size(&s.name, len, &offsets())?,
        },
        Special::Alternatives { size } if alt_replacement_len_at(size).is_none() => {
            return Err(format!(
                "{}: sh_entsize {size} is not the size of a struct alt_instr a kernel has had \
                 (expected one of {})",
                s.name,
                alt_sizes()
            ));
        }
        k => k,
    };
    let entries = |size: u64| -> Result<(), String> {
        let tail = if size == 0 { 0 } else { len % size };
        if size == 0 || (tail != 0 && tail < fields(&s.name, size)) {
            return Err(format!(
                "{}: expected whole {size}-byte entries{}, found {len:#x} bytes",
                s.name,
                if fields(&s.name, size) < size {
                    format!(
                        " (the last may stop after its {} bytes of fields)",
                        fields(&s.name, size)
                    )
                } else {
                    String::new()
                }
            ));
        }
        Ok(())
    };
    match kind {
        Special::Entries { size } | Special::Alternatives { size } => entries(size)?,
        Special::OrcIp => {
            entries(4)?;
            let unw = obj.section_by_name(".orc_unwind");
            let want = (len / 4).saturating_mul(6);
            let have = unw.map_or(0, |u| obj.section_size(u));
            if have != want {
                return Err(format!(
                    "{}: {} entries expect {want:#x} bytes of .orc_unwind, found {have:#x}",
                    s.name,
                    len / 4
                ));
            }
        }
        Special::Partner | Special::Drop => {}
    }
    Ok(Some(kind))
}

fn alt_sizes() -> String {
    ALT_LAYOUTS
        .iter()
        .map(|(s, _)| s.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `struct alt_instr` size of an `.altinstructions` without `sh_entsize`, read from its
/// relocations: each entry has them at +0 (`instr_offset`) and +4 (`repl_offset`) and nowhere
/// else, so the layout whose stride puts every relocation there, and a relocation at every entry
/// start, is the object's. A 4.18 object of two alternatives is 0x1a bytes with relocations at 0,
/// 4, 13 and 17: only 13 fits. One entry alone is its length. Without relocations (an empty
/// table) the 5.13-6.2 layout stands.
fn alt_size(name: &str, len: u64, offsets: &[u64]) -> Result<u64, String> {
    if offsets.is_empty() && len == 0 {
        return Ok(ALT_LAYOUTS[0].0);
    }
    let fit = |size: u64| {
        len.is_multiple_of(size)
            && (0..len / size).all(|i| offsets.binary_search(&(i * size)).is_ok())
            && offsets.iter().all(|&o| matches!(o % size, 0 | 4))
    };
    ALT_LAYOUTS
        .iter()
        .map(|&(s, _)| s)
        .find(|&s| fit(s))
        .ok_or_else(|| {
            let shown: Vec<String> = offsets.iter().take(6).map(|o| format!("{o:#x}")).collect();
            format!(
                "{name}: expected the entries of a struct alt_instr a kernel has had ({} bytes, \
                 relocations at +0 and +4 of each), found {len:#x} bytes with relocations at {}{}",
                alt_sizes(),
                if shown.is_empty() {
                    "none".to_string()
                } else {
                    shown.join(", ")
                },
                if offsets.len() > 6 { ", ..." } else { "" }
            )
        })
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
    // No kernel table has entries of more than 256 bytes (`struct jump_entry` and
    // `struct bug_entry` are 16 at most): a larger search only makes a damaged header slow.
    (1..=len.min(256))
        .filter(|d| d % 4 == 0)
        .find(|&d| fits(d, len, offsets))
        .unwrap_or(default)
}

/// Where the replacement of an `.altinstructions` entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacement<R: Role> {
    /// The entry has no relocation at +4: nothing to carry.
    None,
    /// Bytes of this object: section, offset, length (`replacementlen`).
    Bytes(SectionId<R>, u64, u64),
    /// Code elsewhere in the kernel, named by an undefined symbol: the retpoline alternatives of
    /// kernels around 5.15 replace an indirect `call *%rax` by `__x86_indirect_alt_call_rax`
    /// (objtool's `arch_rewrite_retpolines()`), which arch/x86/lib/retpoline.S defines. The
    /// entry is carried with its relocation, which the resolve stage binds like any other.
    Symbol(SymbolId<R>),
}

/// The replacement of `.altinstructions` entry `start`: the place its +4 relocation points at
/// and the length in its `replacementlen`, checked against the section it points into.
/// `relocs` is the section's [`ElfObject::relocs_by_offset`]. `Err` says what was expected and
/// what was found, naming the section, the entry and its offset.
pub fn alt_replacement<R: Role>(
    obj: &ElfObject<R>,
    sec: SectionId<R>,
    relocs: &HashMap<u64, &Reloc<R>>,
    size: u64,
    start: u64,
) -> Result<Replacement<R>, String> {
    let name = &obj.section(sec).name;
    let entry = start / size.max(1);
    let at = |what: String| format!("{name} entry {entry} (offset {start:#x}): {what}");
    let Some(rep) = relocs.get(&(start + 4)) else {
        return Ok(Replacement::None);
    };
    let rsym = obj.symbol(rep.sym);
    let Some(repl) = rsym.section_id() else {
        return if rsym.is_undef() && !rsym.name.is_empty() {
            Ok(Replacement::Symbol(rep.sym))
        } else {
            Err(at(format!(
                "expected the replacement in a section or at a named symbol, found {:?}, which is neither",
                rsym.name
            )))
        };
    };
    let Some(len_at) = alt_replacement_len_at(size) else {
        return Err(at(format!(
            "expected a struct alt_instr of {} bytes, found {size}",
            alt_sizes()
        )));
    };
    let rlen = obj
        .data(sec)
        .get(usize::try_from(start + len_at).unwrap_or(usize::MAX))
        .map_or(0, |&b| u64::from(b));
    let base = if rsym.is_section() { 0 } else { rsym.st_value };
    let roff = base.wrapping_add_signed(rep.r_addend);
    let rsize = obj.section_size(repl);
    if roff.checked_add(rlen).is_none_or(|end| end > rsize) {
        return Err(at(format!(
            "expected its replacement ({roff:#x}+{rlen}, replacementlen at +{len_at}) within the \
             {rsize:#x} bytes of {}, found it beyond their end",
            obj.section(repl).name
        )));
    }
    Ok(Replacement::Bytes(repl, roff, rlen))
}

/// An entry of a special section that cannot be read, and the code it belongs to.
#[derive(Debug, Clone)]
pub struct Unreadable<R: Role> {
    /// The table.
    pub table: SectionId<R>,
    /// The place in the code the entry's first field points at (section, offset), when a
    /// relocation says so: the function there is the one that uses it.
    pub at: Option<(SectionId<R>, u64)>,
    /// What was expected and what was found, naming the section, the entry and its offset.
    pub problem: String,
}

/// The code place relocation `r` points at, when it points into a section.
pub fn reloc_place<R: Role>(obj: &ElfObject<R>, r: &Reloc<R>) -> Option<(SectionId<R>, u64)> {
    let sym = obj.symbol(r.sym);
    let sec = sym.section_id()?;
    let base = if sym.is_section() { 0 } else { sym.st_value };
    let off = base.checked_add_signed(r.r_addend)?;
    Some((sec, off))
}

/// Every entry of `obj`'s special sections that cannot be read. A table whose layout fits none a
/// kernel has had ([`layout`]'s `Err`) makes each of its relocations one, so that only the
/// functions it points into are concerned; an `.altinstructions` of a known layout makes the
/// entries whose replacement cannot be found one each. Entries that no changed function uses are
/// no error: the diff stage refuses only the changed and new functions that use one.
pub fn unreadable<R: Role>(obj: &ElfObject<R>) -> Vec<Unreadable<R>> {
    let mut out = Vec::new();
    for (sec, s) in obj.live_sections() {
        if !matches!(s.content, Content::Data(_) | Content::Nobits(_)) {
            continue;
        }
        match layout(obj, sec) {
            Ok(Some(Special::Alternatives { size })) => {
                let relocs = obj.relocs_by_offset(sec);
                // The entries in the file: an `SHT_NOBITS` one (a damaged header) has none.
                for i in 0..obj.data(sec).len() as u64 / size {
                    let start = i * size;
                    if let Err(problem) = alt_replacement(obj, sec, &relocs, size, start) {
                        out.push(Unreadable {
                            table: sec,
                            at: relocs.get(&start).and_then(|r| reloc_place(obj, r)),
                            problem,
                        });
                    }
                }
            }
            Ok(_) => {}
            Err(problem) => {
                for r in obj.relocs_of(sec) {
                    out.push(Unreadable {
                        table: sec,
                        at: reloc_place(obj, r),
                        problem: format!("{problem} (relocation at {:#x})", r.r_offset),
                    });
                }
            }
        }
    }
    out
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

    #[test]
    fn alt_instr_sizes_are_read_from_the_relocations() {
        let n = ".altinstructions";
        // Two 4.18 entries (padlen): 0x1a bytes, relocations at 0, 4, 13, 17.
        assert_eq!(alt_size(n, 0x1a, &[0, 4, 13, 17]), Ok(13));
        // One entry alone: its length.
        assert_eq!(alt_size(n, 13, &[0, 4]), Ok(13));
        assert_eq!(alt_size(n, 12, &[0, 4]), Ok(12));
        assert_eq!(alt_size(n, 14, &[0, 4]), Ok(14));
        // 156 bytes are twelve 13-byte entries and thirteen 12-byte ones: the relocations decide.
        let twelve: Vec<u64> = (0..13).flat_map(|i| [i * 12, i * 12 + 4]).collect();
        let thirteen: Vec<u64> = (0..12).flat_map(|i| [i * 13, i * 13 + 4]).collect();
        assert_eq!(alt_size(n, 156, &twelve), Ok(12));
        assert_eq!(alt_size(n, 156, &thirteen), Ok(13));
        // Empty.
        assert_eq!(alt_size(n, 0, &[]), Ok(12));
        // No layout fits: what was expected and found.
        let e = alt_size(n, 0x1b, &[0, 4, 13, 17]).unwrap_err();
        assert!(
            e.contains("12, 13, 14") && e.contains("0x1b bytes") && e.contains("0xd"),
            "{e}"
        );
        assert_eq!(alt_replacement_len_at(13), Some(11));
        assert_eq!(alt_replacement_len_at(14), Some(13));
        assert_eq!(alt_replacement_len_at(16), None);
    }

    #[test]
    fn only_padded_tables_may_end_in_a_short_entry() {
        assert_eq!(fields(".parainstructions", 16), 12);
        assert_eq!(fields(".parainstructions", 8), 6);
        assert_eq!(fields("__jump_table", 16), 16);
        assert_eq!(fields("__bug_table", 12), 12);
    }
}
