//! Records the relocations of an output object that target klp symbols (see `abi.rs`:
//! `.klp_build.relocs` + `.klp_build.strings`), so that kbuild can link the module without resolving
//! them. Input: an output object and the klp symbol name of each klp extern. Output: the same object
//! with a record per such relocation, the relocation itself kept at its place but retargeted to a
//! weak undefined `.klp.tombstone.<name>`. Invariant: every record points at its place through an
//! ordinary `R_X86_64_64` relocation, which `ld -r` keeps exact however it merges sections, and
//! every tombstone relocation has a record at the same place with the same type and addend; the
//! place's bytes stay zero (RELA), as the x86 loader wants under a klp relocation.
//!
//! Why the relocation stays: on a kernel with IBT (Debian's 6.12, the lab's reference kernel)
//! kbuild runs objtool on the whole module at its link, and objtool reads relocations. A call
//! whose relocation were gone would be a call to the next instruction ("unannotated intra-function
//! call"), and a `__jump_table` entry without its key relocation stops it ("can't find key reloc",
//! `__set_oom_adj()` with its `oom_score_adj_update` tracepoint). Kept, objtool checks and
//! annotates every function as it does the kernel's own: ORC, return and call sites, IBT. The
//! kernel's own klp-build keeps its relocations the same way (`clone_reloc_klp()` in
//! tools/objtool/klp-diff.c).

use std::collections::HashMap;

use object::elf;

use crate::elf::{Content, ElfObject, Out, Reloc, Section, SectionId, SymSection, SymbolId};

use super::abi;

/// Records the relocations against the symbols in `klp` (out symbol -> `.klp.sym...` name) and
/// turns those symbols into tombstones; returns how many relocations were recorded.
pub fn convert(out: &mut ElfObject<Out>, klp: &HashMap<SymbolId<Out>, String>) -> usize {
    let mut taken: Vec<(SectionId<Out>, Reloc<Out>)> = Vec::new();
    for (_, s) in out.live_sections() {
        if let Content::Relocs { target, relocs } = &s.content {
            taken.extend(
                relocs
                    .iter()
                    .filter(|r| klp.contains_key(&r.sym))
                    .map(|r| (*target, r.clone())),
            );
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
        u64::from(elf::SHF_ALLOC),
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
        u64::from(elf::SHF_ALLOC),
        8,
        Content::Data(records),
    );
    rec_sec.sh_entsize = abi::KLP_RELOC_SIZE;
    let rec_id = out.add_section(rec_sec);
    out.add_section(Section::rela(abi::KLP_RELOC_SECTION, rec_id, rec_relocs));
    for &s in klp.keys() {
        let sym = out.symbol_mut(s);
        sym.name = format!("{}{}", abi::KLP_TOMBSTONE_PREFIX, sym.name);
        sym.st_info = (elf::STB_WEAK << 4) | sym.kind();
        sym.section = SymSection::Undef;
    }
    taken.len()
}
