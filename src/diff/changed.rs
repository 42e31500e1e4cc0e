//! Which functions and data changed. Input: the orig and patched objects and their [`Twins`].
//! Output: per function pair a [`Verdict`] (same, `__LINE__` values only, changed and why), per
//! data pair the first difference. Invariant: a function is the same only when its bytes are
//! equal, every relocation addresses the same thing in both objects ([`super::reloc_target`]) and
//! so do its special-section entries ([`super::entries`]); line-only only when every difference
//! is a line value ([`super::line_only`]); equality never depends on symbol indices, string
//! offsets or section numbering.

use crate::elf::{ElfObject, Orig, Patched, Role, SectionId, SymbolId};

use super::aux_code;
use super::correlate::{dont_correlate, Twins};
use super::decode::Decoded;
use super::entries::{entry_bytes, entry_relocs, Entries, Entry, BUG_ENTRY_LINE, BUG_ENTRY_SIZE};
use super::fingerprint::bytes_and_targets;
use super::line_only;
use super::names::strip_suffix;
use super::reloc_target::{resolve, RelocTarget};

/// The byte range of a symbol in its section.
/// `None` for a symbol not defined in a section; the reader checked that the range lies in it.
pub fn range<R: Role>(obj: &ElfObject<R>, sym: SymbolId<R>) -> Option<(SectionId<R>, u64, u64)> {
    let s = obj.symbol(sym);
    let sec = s.section_id()?;
    Some((sec, s.st_value, s.st_value.saturating_add(s.st_size)))
}

/// Relocations of `sec` within `[start, end)`, sorted by offset.
pub fn relocs_in<R: Role>(
    obj: &ElfObject<R>,
    sec: SectionId<R>,
    start: u64,
    end: u64,
) -> Vec<&crate::elf::Reloc<R>> {
    obj.relocs_between(sec, start, end)
}

/// What comparing a function with its twin found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Same code, relocations and entries.
    Same,
    /// Only `__LINE__` values differ; each string says where and how.
    LineOnly(Vec<String>),
    /// A real difference: the first one found.
    Changed(String),
}

/// Both objects with what the comparisons share: twins, decoded code, entries per function.
pub struct Pair<'a> {
    /// The original object.
    pub orig: &'a ElfObject<Orig>,
    /// The patched object.
    pub patched: &'a ElfObject<Patched>,
    /// Symbol correlation.
    pub twins: &'a Twins,
    /// Instruction ends of both sides.
    pub dec: (&'a Decoded<Orig>, &'a Decoded<Patched>),
    /// Special-section entries per function, both sides.
    pub entries: (&'a Entries<Orig>, &'a Entries<Patched>),
}

impl Pair<'_> {
    /// Compares function `o` with its twin `p`: size, bytes (where line values may differ),
    /// relocations, then the special-section entries that point into them.
    pub fn function(&self, o: SymbolId<Orig>, p: SymbolId<Patched>) -> Verdict {
        let (orig, patched) = (self.orig, self.patched);
        let (Some((osec, oa, ob)), Some((psec, pa, pb))) = (range(orig, o), range(patched, p))
        else {
            return Verdict::Changed("not defined in a section on both sides".into());
        };
        if ob - oa != pb - pa {
            return Verdict::Changed(format!("size {} -> {}", ob - oa, pb - pa));
        }
        let odata = slice(orig.data(osec), oa, ob);
        let pdata = slice(patched.data(psec), pa, pb);
        let mut lines = Vec::new();
        if odata != pdata {
            let prs = relocs_in(patched, psec, pa, pb);
            let callee = |insn: &iced_x86::Instruction| self.callee(psec, &prs, insn);
            match line_only::compare_code(odata, pdata, oa, pa, callee) {
                Ok(l) => lines = l,
                Err(why) => return Verdict::Changed(why),
            }
        }
        if let Some(why) = self.relocs(osec, (oa, ob), psec, (pa, pb)) {
            return Verdict::Changed(why);
        }
        match self.entries_of(o, p) {
            Err(why) => Verdict::Changed(why),
            Ok(l) => {
                lines.extend(l);
                if lines.is_empty() {
                    Verdict::Same
                } else {
                    Verdict::LineOnly(lines)
                }
            }
        }
    }

    /// The symbol a patched instruction refers to through its relocation: the function a call
    /// or jump reaches, the `__func__` a `mov` loads. `relocs` are the function's, sorted.
    fn callee(
        &self,
        sec: SectionId<Patched>,
        relocs: &[&crate::elf::Reloc<Patched>],
        insn: &iced_x86::Instruction,
    ) -> Option<String> {
        let (a, b) = (insn.ip(), insn.next_ip());
        let i = relocs.partition_point(|r| r.r_offset <= a);
        let r = relocs.get(i).filter(|r| r.r_offset < b)?;
        match resolve(self.patched, sec, r, self.dec.1.get(sec)) {
            RelocTarget::Symbol(s, _) => Some(self.patched.symbol(s).name.clone()),
            _ => None,
        }
    }

    /// The first relocation of the two ranges that differs.
    fn relocs(
        &self,
        osec: SectionId<Orig>,
        (oa, ob): (u64, u64),
        psec: SectionId<Patched>,
        (pa, pb): (u64, u64),
    ) -> Option<String> {
        reloc_difference(
            (self.orig, self.patched),
            self.twins,
            self.dec,
            (osec, oa, ob),
            (psec, pa, pb),
        )
    }

    /// Compares the special-section entries of a function pair, table by table and in code
    /// order. `Ok` lists the `__bug_table` lines that differ (`WARN_ON()` moved down); `Err` the
    /// first other difference: an entry more or less, other flags (`WARN_ON` -> `WARN_ON_ONCE`),
    /// another key, fixup or file.
    pub fn entries_of(
        &self,
        o: SymbolId<Orig>,
        p: SymbolId<Patched>,
    ) -> Result<Vec<String>, String> {
        let (orig, patched) = (self.orig, self.patched);
        let (oe, pe) = (self.entries.0.of(o), self.entries.1.of(p));
        let name_o = |e: &Entry<Orig>| orig.section(e.table).name.as_str();
        let name_p = |e: &Entry<Patched>| patched.section(e.table).name.as_str();
        let mut tables: Vec<&str> = oe.iter().map(name_o).chain(pe.iter().map(name_p)).collect();
        tables.sort_unstable();
        tables.dedup();
        let mut lines = Vec::new();
        for t in tables {
            let ov: Vec<_> = oe.iter().filter(|e| name_o(e) == t).collect();
            let pv: Vec<_> = pe.iter().filter(|e| name_p(e) == t).collect();
            if ov.len() != pv.len() {
                return Err(format!("{} {t} entries -> {}", ov.len(), pv.len()));
            }
            for (eo, ep) in ov.into_iter().zip(pv) {
                if eo.at != ep.at || eo.size != ep.size {
                    return Err(format!("{t} entry for +{:#x} -> +{:#x}", eo.at, ep.at));
                }
                if let Some(why) = self.entry_relocs_differ(eo, ep) {
                    return Err(format!("{t} entry for +{:#x}: {why}", ep.at));
                }
                let (bo, bp) = (entry_bytes(orig, eo), entry_bytes(patched, ep));
                if bo == bp {
                    continue;
                }
                let is_bug = t == "__bug_table" && ep.size == BUG_ENTRY_SIZE;
                let field = |b: &[u8], at: u64| {
                    let at = at as usize;
                    b.get(at..at + 2)
                        .map_or(0, |x| u16::from_le_bytes([x[0], x[1]]))
                };
                let (line, flags) = (BUG_ENTRY_LINE, BUG_ENTRY_LINE + 2);
                let rest_equal = |skip: std::ops::Range<usize>| {
                    bo.len() == bp.len()
                        && bo
                            .iter()
                            .zip(bp)
                            .enumerate()
                            .all(|(i, (x, y))| skip.contains(&i) || x == y)
                };
                let line_range = line as usize..line as usize + 2;
                if is_bug && rest_equal(line_range) {
                    lines.push(format!(
                        "+{:#x}: {} -> {} in its __bug_table entry (WARN/BUG line)",
                        ep.at,
                        field(bo, line),
                        field(bp, line)
                    ));
                    continue;
                }
                if is_bug && rest_equal(line as usize..flags as usize + 2) {
                    // WARN_ON() -> WARN_ON_ONCE(): the same ud2, other flags.
                    return Err(format!(
                        "{t} entry for +{:#x}: flags {:#x} -> {:#x} (line {} -> {})",
                        ep.at,
                        field(bo, flags),
                        field(bp, flags),
                        field(bo, line),
                        field(bp, line)
                    ));
                }
                return Err(format!(
                    "{t} entry for +{:#x}: bytes differ at +{:#x} of the entry",
                    ep.at,
                    line_only::first_difference(bo, bp)
                ));
            }
        }
        Ok(lines)
    }

    /// The first relocation of an entry pair that differs (the first field, which points into
    /// the function, was compared as the entry's place).
    fn entry_relocs_differ(&self, eo: &Entry<Orig>, ep: &Entry<Patched>) -> Option<String> {
        let (orig, patched) = (self.orig, self.patched);
        let (ro, rp) = (entry_relocs(orig, eo), entry_relocs(patched, ep));
        if ro.len() != rp.len() {
            return Some(format!("{} relocations -> {}", ro.len(), rp.len()));
        }
        for (a, b) in ro.iter().zip(&rp) {
            let off = b.r_offset - ep.start;
            if a.r_offset - eo.start != off || a.r_type != b.r_type {
                return Some(format!("relocation at +{off:#x} of the entry differs"));
            }
            if off == 0 {
                continue;
            }
            let to = resolve(orig, eo.table, a, None);
            let tp = resolve(patched, ep.table, b, None);
            if !same_target(orig, patched, self.twins, &to, &tp) {
                return Some(format!(
                    "{} -> {}",
                    describe(orig, &to),
                    describe(patched, &tp)
                ));
            }
        }
        None
    }
}

/// Why a symbol differs: the first difference found, for the report and `--explain`.
pub fn symbol_difference(
    orig: &ElfObject<Orig>,
    patched: &ElfObject<Patched>,
    twins: &Twins,
    dec: (&Decoded<Orig>, &Decoded<Patched>),
    o: SymbolId<Orig>,
    p: SymbolId<Patched>,
) -> Option<String> {
    let (Some((osec, oa, ob)), Some((psec, pa, pb))) = (range(orig, o), range(patched, p)) else {
        return Some("not defined in a section on both sides".into());
    };
    if ob - oa != pb - pa {
        return Some(format!("size {} -> {}", ob - oa, pb - pa));
    }
    let odata = slice(orig.data(osec), oa, ob);
    let pdata = slice(patched.data(psec), pa, pb);
    if odata != pdata {
        let at = odata
            .iter()
            .zip(pdata)
            .position(|(x, y)| x != y)
            .unwrap_or(0);
        return Some(format!("bytes differ at +{at:#x}"));
    }
    reloc_difference((orig, patched), twins, dec, (osec, oa, ob), (psec, pa, pb))
}

/// The first relocation of the two ranges that differs: in count, place or type, or in what it
/// addresses (through the twins).
fn reloc_difference(
    (orig, patched): (&ElfObject<Orig>, &ElfObject<Patched>),
    twins: &Twins,
    dec: (&Decoded<Orig>, &Decoded<Patched>),
    (osec, oa, ob): (SectionId<Orig>, u64, u64),
    (psec, pa, pb): (SectionId<Patched>, u64, u64),
) -> Option<String> {
    let ors = relocs_in(orig, osec, oa, ob);
    let prs = relocs_in(patched, psec, pa, pb);
    if ors.len() != prs.len() {
        return Some(format!("{} relocations -> {}", ors.len(), prs.len()));
    }
    for (ro, rp) in ors.iter().zip(&prs) {
        let off = rp.r_offset - pa;
        if ro.r_offset - oa != off || ro.r_type != rp.r_type {
            return Some(format!("relocation at +{off:#x} differs"));
        }
        let to = resolve(orig, osec, ro, dec.0.get(osec));
        let tp = resolve(patched, psec, rp, dec.1.get(psec));
        if !same_target(orig, patched, twins, &to, &tp) {
            if let (RelocTarget::Symbol(so, _), RelocTarget::Symbol(sp, _)) = (&to, &tp) {
                let (a, b) = (&orig.symbol(*so).name, &patched.symbol(*sp).name);
                if dont_correlate(patched, *sp) && strip_suffix(a) == strip_suffix(b) {
                    return Some(format!(
                        "relocation at +{off:#x}: {}, a special static carried with the function, \
                         holds other contents",
                        describe(patched, &tp)
                    ));
                }
            }
            return Some(target_change(orig, patched, off, &to, &tp));
        }
    }
    None
}

fn slice(d: &[u8], a: u64, b: u64) -> &[u8] {
    let b = (b as usize).min(d.len());
    &d[(a as usize).min(b)..b]
}

/// Whether two targets address the same thing, through the twins.
pub fn same_target(
    orig: &ElfObject<Orig>,
    patched: &ElfObject<Patched>,
    twins: &Twins,
    o: &RelocTarget<Orig>,
    p: &RelocTarget<Patched>,
) -> bool {
    match (o, p) {
        // A special static is carried by value with the functions that use it: which instance
        // it is does not matter, what it holds does (a changed `CSWTCH.N` switch table changes
        // its function; two `__already_done` flags of one function are interchangeable).
        (RelocTarget::Symbol(so, ao), RelocTarget::Symbol(sp, ap))
            if dont_correlate(orig, *so) && dont_correlate(patched, *sp) =>
        {
            ao == ap && same_carried(orig, patched, *so, *sp)
        }
        (RelocTarget::Symbol(so, ao), RelocTarget::Symbol(sp, ap)) => {
            ao == ap
                && match twins.orig(*sp) {
                    Some(t) => t == *so,
                    None if orig.symbol(*so).is_undef() => {
                        orig.symbol(*so).name == patched.symbol(*sp).name
                    }
                    None => false,
                }
        }
        (RelocTarget::String(_, a), RelocTarget::String(_, b)) => a == b,
        (RelocTarget::Section(a, x), RelocTarget::Section(b, y)) => {
            let name = &orig.section(*a).name;
            if name != &patched.section(*b).name {
                false
            } else if aux_code::is_aux_code(name) {
                aux_code::same_place(orig, (*a, *x), patched, (*b, *y))
            } else {
                x == y && same_constant(orig, *a, *x, patched, *b)
            }
        }
        _ => false,
    }
}

/// Why the relocation at `off` differs: both targets, and when they read the same (an anonymous
/// constant at the same place, see [`same_constant`]) that what is there differs.
fn target_change(
    orig: &ElfObject<Orig>,
    patched: &ElfObject<Patched>,
    off: u64,
    to: &RelocTarget<Orig>,
    tp: &RelocTarget<Patched>,
) -> String {
    let (a, b) = (describe(orig, to), describe(patched, tp));
    if a == b {
        format!("relocation at +{off:#x}: {a} holds other bytes")
    } else {
        format!("relocation at +{off:#x}: {a} -> {b}")
    }
}

/// Whether the read-only bytes that an anonymous reference at `off` addresses are the same in
/// both objects (writable sections: the data checks own them; `true`). clang puts a switch
/// lookup table in `.rodata.cst32` with no symbol, addressed as `.rodata.cst32+0`: the same
/// place in both objects although the fix changed the table, so the offset alone missed the
/// change ("no functional change" for a fix that changed what the function returns). A
/// mergeable section compares the one entry at `off`; any other section compares from `off` to
/// its end, which can only add a function, never miss one.
fn same_constant(
    orig: &ElfObject<Orig>,
    a: SectionId<Orig>,
    off: i64,
    patched: &ElfObject<Patched>,
    b: SectionId<Patched>,
) -> bool {
    let (so, sp) = (orig.section(a), patched.section(b));
    if !so.is_alloc() || so.sh_flags & u64::from(object::elf::SHF_WRITE) != 0 {
        return true;
    }
    let Ok(off) = u64::try_from(off) else {
        return true;
    };
    let range = |d: &[u8], entsize: u64, merge: bool| -> Option<Vec<u8>> {
        let (start, end) = if merge && entsize > 0 {
            let start = off - off % entsize;
            (start, start.checked_add(entsize)?)
        } else {
            (off, d.len() as u64)
        };
        d.get(start as usize..end as usize).map(<[u8]>::to_vec)
    };
    let merge = |flags: u64| flags & u64::from(object::elf::SHF_MERGE) != 0;
    range(orig.data(a), so.sh_entsize, merge(so.sh_flags))
        == range(patched.data(b), sp.sh_entsize, merge(sp.sh_flags))
}

/// Two special statics (the `dont_correlate` gate), compared by what they are: the same stripped
/// name, size, bytes and relocation targets. A patch that adds a `WARN_ONCE()` to one function
/// renumbers the `__already_done.N` flags of the others and leaves two of one function unpaired;
/// that function still does the same thing.
fn same_carried(
    orig: &ElfObject<Orig>,
    patched: &ElfObject<Patched>,
    so: SymbolId<Orig>,
    sp: SymbolId<Patched>,
) -> bool {
    let (a, b) = (orig.symbol(so), patched.symbol(sp));
    if !dont_correlate(orig, so) || !dont_correlate(patched, sp) {
        return false;
    }
    if strip_suffix(&a.name) != strip_suffix(&b.name) || a.st_size != b.st_size {
        return false;
    }
    let (Some((os, oa, ob)), Some((ps, pa, pb))) = (range(orig, so), range(patched, sp)) else {
        return false;
    };
    // Bytes, and what relocations address: a `__UNIQUE_ID_ddebug` descriptor points at its
    // format, function and file strings.
    slice(orig.data(os), oa, ob) == slice(patched.data(ps), pa, pb)
        && bytes_and_targets(orig, so) == bytes_and_targets(patched, sp)
}

/// A target for messages: `saved_command_line+0x0`, `"%d\n"`, `.data+0x10`.
pub fn describe<R: Role>(obj: &ElfObject<R>, t: &RelocTarget<R>) -> String {
    match t {
        RelocTarget::Symbol(s, o) => format!("{}{o:+#x}", obj.symbol(*s).name),
        RelocTarget::String(_, b) => format!("{:?}", String::from_utf8_lossy(b)),
        RelocTarget::Section(s, o) => format!("{}{o:+#x}", obj.section(*s).name),
    }
}
