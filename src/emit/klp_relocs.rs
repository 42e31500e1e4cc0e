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
    mark_klp_callers(out, &taken);
    for &s in klp.keys() {
        out.symbol_mut(s).deleted = true;
    }
    taken.len()
}

/// objtool's list of functions it must not follow (`STACK_FRAME_NON_STANDARD`).
const OBJTOOL_SKIP_SECTION: &str = ".discard.func_stack_frame_non_standard";

/// Names each function with a call through a converted relocation in objtool's skip list. On a
/// kernel with IBT (Debian's 6.12) kbuild runs objtool on the whole module at its link; a call
/// whose place is left zero is a call to the next instruction, an "unannotated intra-function
/// call", and objtool gives up on the module: no `.return_sites`, `.call_sites` or ORC, and the
/// kernel WARNs "Unpatched return thunk in use" at the module's first return (proc_tty.c's
/// show_tty_driver calling its file's static t_next). Skipped, objtool still lists the function's
/// return and call sites; its ORC entries are left undefined, so a stack through it counts as
/// unreliable and a transition waits for the task to leave it. The section is `.discard.*`: the
/// module's final link drops it.
fn mark_klp_callers(out: &mut ElfObject<Out>, taken: &[(SectionId<Out>, Reloc<Out>)]) {
    let mut funcs: Vec<(SectionId<Out>, u64)> = Vec::new();
    for (target, r) in taken {
        if !matches!(r.r_type, elf::R_X86_64_PLT32 | elf::R_X86_64_PC32) {
            continue;
        }
        let data = out.data(*target);
        let opcode = r
            .r_offset
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| data.get(i));
        if opcode != Some(&0xe8) {
            continue;
        }
        let func = out.live_symbols().find(|(_, s)| {
            s.is_func()
                && s.section_id() == Some(*target)
                && s.st_value <= r.r_offset
                && r.r_offset < s.st_value.saturating_add(s.st_size)
        });
        if let Some((_, f)) = func {
            if !funcs.contains(&(*target, f.st_value)) {
                funcs.push((*target, f.st_value));
            }
        }
    }
    if funcs.is_empty() {
        return;
    }
    let mut relocs = Vec::with_capacity(funcs.len());
    for (i, (sec, value)) in funcs.iter().enumerate() {
        let sym = out.ensure_section_symbol(*sec);
        relocs.push(Reloc {
            r_offset: i as u64 * 8,
            sym,
            r_type: elf::R_X86_64_64,
            r_addend: *value as i64,
        });
    }
    let sec = out.add_section(Section::new(
        OBJTOOL_SKIP_SECTION,
        elf::SHT_PROGBITS,
        u64::from(elf::SHF_ALLOC | elf::SHF_WRITE),
        8,
        Content::Data(vec![0; funcs.len() * 8]),
    ));
    out.add_section(Section::rela(OBJTOOL_SKIP_SECTION, sec, relocs));
}
