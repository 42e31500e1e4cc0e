//! What a relocation points at, independent of how the assembler spelled it. Input: an object, the
//! section a relocation applies to, the relocation. Output: a [`RelocTarget`]: a symbol and offset, a
//! string's bytes, or a section offset. Invariant: two relocations that address the same thing give
//! equal targets, whether they use the symbol (`rcu_normal - 4`) or its section symbol
//! (`.bss.rcu_normal - 4`), and whatever the string's offset in its merged section.
//!
//! PC-relative relocations in code address `S + A + (end of instruction - P)`, not `S + A + 4`:
//! `cmpb $0x0, flag(%rip)` carries `flag - 5`. The instruction end comes from decoding the
//! function with iced-x86, as objtool's `arch_insn_adjusted_addend()` does.

use object::elf;

use crate::elf::{Content, ElfObject, Reloc, Role, SectionId, SymbolId};

/// The thing a relocation addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelocTarget<R: Role> {
    /// A named symbol plus the offset from its start (after the PC-relative adjustment).
    Symbol(SymbolId<R>, i64),
    /// A NUL-terminated string in a `SHF_STRINGS` section: compared by content.
    String(SectionId<R>, Vec<u8>),
    /// An offset in a section with no symbol covering it.
    Section(SectionId<R>, i64),
}

/// Whether `r_type` is PC-relative (so its addend is biased by the instruction's tail).
pub fn is_pc_relative(r_type: u32) -> bool {
    matches!(
        r_type,
        elf::R_X86_64_PC32
            | elf::R_X86_64_PLT32
            | elf::R_X86_64_PC64
            | elf::R_X86_64_GOTPCREL
            | elf::R_X86_64_GOTPCRELX
            | elf::R_X86_64_REX_GOTPCRELX
    )
}

/// The end offsets of the instructions of a code range, to find an instruction's tail.
pub struct InsnEnds(Vec<u64>);

impl InsnEnds {
    /// Decodes `code`, which starts at `base` in its section.
    pub fn decode(code: &[u8], base: u64) -> Self {
        let mut d = iced_x86::Decoder::with_ip(64, code, base, iced_x86::DecoderOptions::NONE);
        let mut ends = Vec::new();
        while d.can_decode() {
            let insn = d.decode();
            ends.push(insn.next_ip());
        }
        InsnEnds(ends)
    }

    /// Instruction ends already sorted (several functions of one section merged).
    pub fn from_vec(ends: Vec<u64>) -> Self {
        InsnEnds(ends)
    }

    /// The sorted instruction ends.
    pub fn ends(&self) -> &[u64] {
        &self.0
    }

    /// The end of the instruction that contains `offset`.
    pub fn end_of(&self, offset: u64) -> Option<u64> {
        let i = self.0.partition_point(|&e| e <= offset);
        self.0.get(i).copied()
    }
}

/// The adjustment that turns `r_addend` into an offset from the symbol: 0 for absolute
/// relocations and data, the instruction tail for PC-relative relocations in code.
pub fn addend_bias<R: Role>(
    obj: &ElfObject<R>,
    sec: SectionId<R>,
    r: &Reloc<R>,
    ends: Option<&InsnEnds>,
) -> i64 {
    if !is_pc_relative(r.r_type) || !obj.section(sec).is_text() {
        return 0;
    }
    match ends.and_then(|e| e.end_of(r.r_offset)) {
        Some(end) => (end - r.r_offset) as i64,
        None => 4,
    }
}

/// Section symbols, and local labels that stand for a place in a section rather than a thing:
/// gcc's `.LC4` that `WARN_ON()`'s `__bug_table` entry uses for the file name string is a
/// NOTYPE local in `.rodata.str1.1`, and must be compared (and carried) as the string it points at.
fn is_section_like<R: Role>(sym: &crate::elf::Symbol<R>) -> bool {
    sym.is_section()
        || (sym.is_local()
            && sym.kind() == elf::STT_NOTYPE
            && sym.section_id().is_some()
            && sym.name.starts_with(".L"))
}

/// Resolves a relocation of section `sec`.
pub fn resolve<R: Role>(
    obj: &ElfObject<R>,
    sec: SectionId<R>,
    r: &Reloc<R>,
    ends: Option<&InsnEnds>,
) -> RelocTarget<R> {
    let sym = obj.symbol(r.sym);
    // Wrapping: the addend is any i64 the file holds; both sides wrap alike, so equal stays equal.
    let off = r.r_addend.wrapping_add(addend_bias(obj, sec, r, ends));
    if !is_section_like(sym) {
        return RelocTarget::Symbol(r.sym, off);
    }
    let Some(tsec) = sym.section_id() else {
        return RelocTarget::Section(SectionId::new(0), off);
    };
    let off = off.wrapping_add(sym.st_value as i64);
    if let Some(s) = covering_symbol(obj, tsec, off).or_else(|| object_ending_at(obj, tsec, off)) {
        return RelocTarget::Symbol(s, off - obj.symbol(s).st_value as i64);
    }
    let section = obj.section(tsec);
    if section.sh_flags & u64::from(elf::SHF_STRINGS) != 0 {
        if let Content::Data(d) = &section.content {
            let start = (off.max(0) as usize).min(d.len());
            let end = d[start..]
                .iter()
                .position(|&b| b == 0)
                .map_or(d.len(), |n| start + n);
            return RelocTarget::String(tsec, d[start..end].to_vec());
        }
    }
    RelocTarget::Section(tsec, off)
}

/// The object of `sec` that ends exactly at `off`: C's one-past-the-end pointer, as in
/// `proc_pident_lookup(dir, dentry, tgid_base_stuff, tgid_base_stuff + ARRAY_SIZE(tgid_base_stuff))`
/// in fs/proc/base.c, which gcc emits as `.rodata.tgid_base_stuff+0x8c0` (the array's size).
fn object_ending_at<R: Role>(
    obj: &ElfObject<R>,
    sec: SectionId<R>,
    off: i64,
) -> Option<SymbolId<R>> {
    obj.symbols_in(sec)
        .find(|(_, s)| s.is_object() && s.st_size > 0 && (s.st_value + s.st_size) as i64 == off)
        .map(|(i, _)| i)
}

/// The function or object of `sec` that covers `off`; a zero-sized symbol only covers its start.
pub fn covering_symbol<R: Role>(
    obj: &ElfObject<R>,
    sec: SectionId<R>,
    off: i64,
) -> Option<SymbolId<R>> {
    if off < 0 {
        return None;
    }
    let off = off as u64;
    obj.symbols_in(sec)
        .take_while(|(_, s)| s.st_value <= off)
        .filter(|(_, s)| {
            (s.is_func() || s.is_object()) && (off < s.st_value + s.st_size || off == s.st_value)
        })
        .min_by_key(|(_, s)| (off - s.st_value, s.is_local()))
        .map(|(i, _)| i)
}
