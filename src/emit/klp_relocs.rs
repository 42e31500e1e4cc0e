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

use crate::contract::abi;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::Symbol;
    use std::path::PathBuf;

    /// `show` calls `t_next`, a local function of another object of the kernel, and reads
    /// `key` in `__jump_table`: both klp symbols.
    fn object() -> (ElfObject<Out>, HashMap<SymbolId<Out>, String>) {
        let mut o: ElfObject<Out> = ElfObject::new(PathBuf::from("t.o"));
        let text = o.add_section(Section::new(
            ".text.show",
            elf::SHT_PROGBITS,
            u64::from(elf::SHF_ALLOC | elf::SHF_EXECINSTR),
            16,
            Content::Data(vec![0x55, 0xe8, 0, 0, 0, 0, 0x5d, 0xc3]),
        ));
        let jt = o.add_section(Section::new(
            "__jump_table",
            elf::SHT_PROGBITS,
            u64::from(elf::SHF_ALLOC | elf::SHF_WRITE),
            8,
            Content::Data(vec![0; 16]),
        ));
        let t_next = o.add_symbol(Symbol::undefined_global("t_next"));
        let key = o.add_symbol(Symbol::undefined_global("key"));
        let call = Reloc {
            r_offset: 2,
            sym: t_next,
            r_type: elf::R_X86_64_PLT32,
            r_addend: -4,
        };
        o.add_section(Section::rela(".text.show", text, vec![call]));
        let key_reloc = Reloc {
            r_offset: 8,
            sym: key,
            r_type: elf::R_X86_64_PC64,
            r_addend: 1,
        };
        o.add_section(Section::rela("__jump_table", jt, vec![key_reloc]));
        let klp = HashMap::from([
            (t_next, ".klp.sym.vmlinux.t_next,2".to_string()),
            (key, ".klp.sym.vmlinux.key,0".to_string()),
        ]);
        (o, klp)
    }

    #[test]
    fn relocations_stay_for_objtool_against_weak_tombstones() {
        let (mut o, klp) = object();
        assert_eq!(convert(&mut o, &klp), 2);
        let text = o.section_by_name(".text.show").unwrap();
        let call = &o.relocs_of(text)[0];
        let sym = o.symbol(call.sym);
        assert_eq!(sym.name, ".klp.tombstone.t_next");
        assert_eq!(sym.bind(), elf::STB_WEAK);
        assert!(sym.is_undef());
        assert_eq!((call.r_type, call.r_addend), (elf::R_X86_64_PLT32, -4));
        let jt = o.section_by_name("__jump_table").unwrap();
        let key = &o.relocs_of(jt)[0];
        assert_eq!(o.symbol(key.sym).name, ".klp.tombstone.key");
        assert_eq!(key.r_addend, 1);
        // The place stays zero: the kernel writes it when it applies the klp relocation.
        assert_eq!(&o.data(text)[2..6], [0; 4]);
        // No function is hidden from objtool any more.
        assert!(o
            .section_by_name(".discard.func_stack_frame_non_standard")
            .is_none());
    }

    #[test]
    fn records_are_loaded_sections_with_one_entry_per_relocation() {
        let (mut o, klp) = object();
        convert(&mut o, &klp);
        let rec = o.section_by_name(abi::KLP_RELOC_SECTION).unwrap();
        assert!(o.section(rec).is_alloc());
        assert_eq!(o.data(rec).len() as u64, 2 * abi::KLP_RELOC_SIZE);
        let strings = o.section_by_name(abi::KLP_STRINGS_SECTION).unwrap();
        assert!(o.section(strings).is_alloc());
        let names = String::from_utf8_lossy(o.data(strings)).into_owned();
        assert!(names.contains(".klp.sym.vmlinux.t_next,2"), "{names}");
        assert!(names.contains(".klp.sym.vmlinux.key,0"), "{names}");
        // Each record: a relocation to its place and one to its name.
        assert_eq!(o.relocs_of(rec).len(), 4);
    }
}
