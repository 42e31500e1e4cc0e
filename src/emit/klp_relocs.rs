//! Turns the relocations of an output object that target klp symbols into intermediate records
//! (see `abi.rs`: `.klp_build.relocs` + `.klp_build.strings`), so that kbuild can link the module
//! without resolving them. Input: an output object and the klp symbol name of each klp extern.
//! Output: the same object with those relocations moved into records. Invariant: a converted
//! place is left zero (the x86 loader refuses a klp relocation over non-zero bytes) and every
//! record points at its place through an ordinary `R_X86_64_64` relocation, which `ld -r` keeps
//! exact however it merges sections.

use std::collections::HashMap;

use object::elf;

use crate::elf::{Content, ElfObject, Out, Reloc, Section, SectionId, SymbolId};

use super::abi;

/// Moves relocations against the symbols in `klp` (out symbol -> `.klp.sym...` name) into records;
/// returns how many were converted.
pub fn convert(out: &mut ElfObject<Out>, klp: &HashMap<SymbolId<Out>, String>) -> usize {
    let mut taken: Vec<(SectionId<Out>, Reloc<Out>)> = Vec::new();
    let rel_secs: Vec<SectionId<Out>> = out
        .live_sections()
        .filter(|(_, s)| matches!(s.content, Content::Relocs { .. }))
        .map(|(i, _)| i)
        .collect();
    for rs in rel_secs {
        if let Content::Relocs { target, relocs } = &mut out.section_mut(rs).content {
            let target = *target;
            let mut keep = Vec::with_capacity(relocs.len());
            for r in relocs.drain(..) {
                if klp.contains_key(&r.sym) {
                    taken.push((target, r));
                } else {
                    keep.push(r);
                }
            }
            *relocs = keep;
        }
    }
    if taken.is_empty() {
        return 0;
    }
    let mut strings = Vec::new();
    let mut string_at: HashMap<&str, u64> = HashMap::new();
    for (_, r) in &taken {
        let name = klp[&r.sym].as_str();
        string_at.entry(name).or_insert_with(|| {
            let at = strings.len() as u64;
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
            at
        });
    }
    let string_at: HashMap<String, u64> = string_at
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let str_sec = out.add_section(Section::new(
        abi::KLP_STRINGS_SECTION,
        elf::SHT_PROGBITS,
        0,
        1,
        Content::Data(strings),
    ));
    let str_sym = out.ensure_section_symbol(str_sec);
    let mut records = Vec::with_capacity(taken.len() * abi::KLP_RELOC_SIZE as usize);
    let mut rec_relocs = Vec::with_capacity(taken.len() * 2);
    for (i, (target, r)) in taken.iter().enumerate() {
        let base = (i as u64) * abi::KLP_RELOC_SIZE;
        let place_sym = out.ensure_section_symbol(*target);
        rec_relocs.push(Reloc {
            r_offset: base + abi::KLP_RELOC_PLACE,
            sym: place_sym,
            r_type: elf::R_X86_64_64,
            r_addend: r.r_offset as i64,
        });
        rec_relocs.push(Reloc {
            r_offset: base + abi::KLP_RELOC_SYMBOL,
            sym: str_sym,
            r_type: elf::R_X86_64_64,
            r_addend: string_at[&klp[&r.sym]] as i64,
        });
        let mut rec = [0u8; abi::KLP_RELOC_SIZE as usize];
        rec[abi::KLP_RELOC_TYPE as usize..][..4].copy_from_slice(&r.r_type.to_le_bytes());
        rec[abi::KLP_RELOC_ADDEND as usize..][..8].copy_from_slice(&r.r_addend.to_le_bytes());
        records.extend_from_slice(&rec);
    }
    let mut rec_sec = Section::new(
        abi::KLP_RELOC_SECTION,
        elf::SHT_PROGBITS,
        0,
        8,
        Content::Data(records),
    );
    rec_sec.sh_entsize = abi::KLP_RELOC_SIZE;
    let rec_id = out.add_section(rec_sec);
    out.add_section(Section::rela(abi::KLP_RELOC_SECTION, rec_id, rec_relocs));
    for &s in klp.keys() {
        out.symbol_mut(s).deleted = true;
    }
    taken.len()
}
