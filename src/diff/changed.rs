//! Which functions and data changed. Input: the orig and patched objects and their [`Twins`].
//! Output: the changed functions with the first difference found, the new functions, and the
//! changed data. Invariant: a function is unchanged only when its bytes are equal and every
//! relocation addresses the same thing in both objects ([`super::reloc_target`]); equality never depends
//! on symbol indices, string offsets or section numbering.

use std::collections::HashMap;

use crate::elf::{ElfObject, Orig, Patched, Role, SectionId, SymbolId};

use super::aux_code;
use super::correlate::Twins;
use super::reloc_target::{resolve, InsnEnds, RelocTarget};

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
    let mut v: Vec<_> = obj
        .relocs_of(sec)
        .iter()
        .filter(|r| r.r_offset >= start && r.r_offset < end)
        .collect();
    v.sort_by_key(|r| r.r_offset);
    v
}

/// Decoded instruction ends of every text section, computed once per object.
pub struct Decoded<R: Role>(HashMap<SectionId<R>, InsnEnds>);

impl<R: Role> Decoded<R> {
    /// Decodes the functions of `obj`, each from its own start (sections can hold several).
    pub fn new(obj: &ElfObject<R>) -> Self {
        let mut m: HashMap<SectionId<R>, Vec<u64>> = HashMap::new();
        for (_, s) in obj.live_symbols() {
            if let (true, Some(sec)) = (s.is_func(), s.section_id()) {
                let data = obj.data(sec);
                let (a, b) = (
                    s.st_value as usize,
                    (s.st_value.saturating_add(s.st_size) as usize).min(data.len()),
                );
                if a < b {
                    let ends = InsnEnds::decode(&data[a..b], s.st_value);
                    m.entry(sec).or_default().extend_from_slice(ends.ends());
                }
            }
        }
        Decoded(
            m.into_iter()
                .map(|(k, mut v)| {
                    v.sort_unstable();
                    v.dedup();
                    (k, InsnEnds::from_vec(v))
                })
                .collect(),
        )
    }
    /// The instruction ends of `sec`, if it is code.
    pub fn get(&self, sec: SectionId<R>) -> Option<&InsnEnds> {
        self.0.get(&sec)
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
            return Some(format!(
                "relocation at +{off:#x}: {} -> {}",
                describe(orig, &to),
                describe(patched, &tp)
            ));
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
        (RelocTarget::Symbol(so, ao), RelocTarget::Symbol(sp, ap)) => {
            ao == ap
                && match twins.orig(*sp) {
                    Some(t) => t == *so,
                    None => {
                        orig.symbol(*so).name == patched.symbol(*sp).name
                            && orig.symbol(*so).is_undef()
                    }
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
                x == y
            }
        }
        _ => false,
    }
}

/// A target for messages: `saved_command_line+0x0`, `"%d\n"`, `.data+0x10`.
pub fn describe<R: Role>(obj: &ElfObject<R>, t: &RelocTarget<R>) -> String {
    match t {
        RelocTarget::Symbol(s, o) => format!("{}{o:+#x}", obj.symbol(*s).name),
        RelocTarget::String(_, b) => format!("{:?}", String::from_utf8_lossy(b)),
        RelocTarget::Section(s, o) => format!("{}{o:+#x}", obj.section(*s).name),
    }
}
