//! The post-link rewrite of the kbuild-linked module. Input: the `.ko` kbuild produced, holding
//! the intermediate klp relocation records of every output object. Output: the same module with
//! `.klp.rela.<obj>.<section>` sections (`SHF_RELA_LIVEPATCH`) and `.klp.sym.<obj>.<name>,<pos>`
//! symbols (`SHN_LIVEPATCH`), as Documentation/livepatch/module-elf-format.rst describes, and the
//! records removed, with the ordinary relocations to `.klp.tombstone.*` symbols that stood at the
//! same places for objtool and the symbols themselves. Invariant: every record becomes exactly one
//! klp relocation at the place its `R_X86_64_64` pointed to after linking, that place is zero, and
//! no relocation to a tombstone is left.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use object::elf;
use serde::Serialize;

use crate::elf::{
    read_file, Any, Content, ElfObject, Location, Reloc, Section, SectionId, SymSection, Symbol,
    SymbolId,
};

use crate::contract::abi;

/// What the rewrite did, for the report.
#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct PostLink {
    /// Klp relocation sections created, with their relocation counts.
    pub sections: Vec<(String, usize)>,
    /// Klp symbols created.
    pub symbols: Vec<String>,
}

/// A klp relocation read from a record: offset, type, addend and the `.klp.sym` name to bind.
type Pending = (u64, u32, i64, String);

/// The section and offset a relocation of a record points at, after linking.
fn pointee(ko: &ElfObject<Any>, r: &Reloc<Any>) -> anyhow::Result<(SectionId<Any>, u64)> {
    let s = ko.symbol(r.sym);
    let Some(sec) = s.section_id() else {
        bail!(
            "{}: a klp record points at undefined symbol {:?}",
            ko.display(),
            s.name
        )
    };
    Ok((sec, s.st_value.wrapping_add_signed(r.r_addend)))
}

/// Rewrites the module at `ko` in place.
pub fn rewrite(ko_path: &Path) -> anyhow::Result<PostLink> {
    let mut ko: ElfObject<Any> = read_file(ko_path)?;
    let Some(rec_sec) = ko.section_by_name(abi::KLP_RELOC_SECTION) else {
        if let Some((sec, r)) = tombstone_relocs(&ko).next() {
            bail!(
                "{}: relocation to {} without a klp record ({} is missing); the module's objects \
                 were not all written by this klp-build: build the module again",
                Location::new(&ko, sec, r.r_offset),
                ko.symbol(r.sym).name,
                abi::KLP_RELOC_SECTION
            );
        }
        return Ok(PostLink::default());
    };
    let str_sec = ko
        .section_by_name(abi::KLP_STRINGS_SECTION)
        .with_context(|| {
            format!(
                "{}: {} without {}",
                ko.display(),
                abi::KLP_RELOC_SECTION,
                abi::KLP_STRINGS_SECTION
            )
        })?;
    let rec_rela = ko.relocs_for(rec_sec).with_context(|| {
        format!(
            "{}: {} has no relocations",
            ko.display(),
            abi::KLP_RELOC_SECTION
        )
    })?;
    let by_section = read_records(&ko, rec_sec, str_sec)?;
    remove_tombstones(&mut ko, &by_section)?;
    drop_records(&mut ko, [rec_sec, rec_rela, str_sec]);
    let report = add_klp_sections(&mut ko, by_section);
    ko.write_to(ko_path)?;
    Ok(report)
}

/// The klp relocation records, checked (a zeroed place in a loaded section, a name in the
/// strings section) and grouped per (klp object, target section index), symbols still named.
fn read_records(
    ko: &ElfObject<Any>,
    rec_sec: SectionId<Any>,
    str_sec: SectionId<Any>,
) -> anyhow::Result<BTreeMap<(String, usize), Vec<Pending>>> {
    let records = ko.data(rec_sec).to_vec();
    let strings = ko.data(str_sec).to_vec();
    let rec_relocs: BTreeMap<u64, Reloc<Any>> = ko
        .relocs_of(rec_sec)
        .iter()
        .map(|r| (r.r_offset, r.clone()))
        .collect();

    // Per (klp object, target section index): the relocations, symbols still named.
    let mut by_section: BTreeMap<(String, usize), Vec<Pending>> = BTreeMap::new();
    for i in 0..records.len() as u64 / abi::KLP_RELOC_SIZE {
        let base = i * abi::KLP_RELOC_SIZE;
        let get = |off: u64| {
            rec_relocs.get(&(base + off)).with_context(|| {
                format!(
                    "{}: klp record {i} has no relocation at +{off}",
                    ko.display()
                )
            })
        };
        let (place_sec, place_off) = pointee(ko, get(abi::KLP_RELOC_PLACE)?)?;
        let (name_sec, name_off) = pointee(ko, get(abi::KLP_RELOC_SYMBOL)?)?;
        if name_sec != str_sec {
            bail!(
                "{}: klp record {i} names a symbol outside {}",
                ko.display(),
                abi::KLP_STRINGS_SECTION
            );
        }
        let tail = &strings[(name_off as usize).min(strings.len())..];
        let name = String::from_utf8_lossy(
            &tail[..tail.iter().position(|&b| b == 0).unwrap_or(tail.len())],
        )
        .into_owned();
        let r_type =
            u32::from_le_bytes(records[(base + abi::KLP_RELOC_TYPE) as usize..][..4].try_into()?);
        let r_addend =
            i64::from_le_bytes(records[(base + abi::KLP_RELOC_ADDEND) as usize..][..8].try_into()?);
        let data = ko.data(place_sec);
        let width = if r_type == elf::R_X86_64_64 { 8 } else { 4 };
        let place = data.get(place_off as usize..(place_off as usize).saturating_add(width));
        if place.is_none() {
            bail!(
                "{}: klp record {i}: the place of klp relocation {name} ({place_off:#x}, {width} bytes) is \
                 beyond the {:#x} bytes of {}",
                ko.display(),
                data.len(),
                ko.section(place_sec).name
            );
        }
        if place.is_some_and(|b| b.iter().any(|&x| x != 0)) {
            bail!(
                "{}: the place of klp relocation {name} is not zero; the module loader would refuse it",
                Location::new(ko, place_sec, place_off)
            );
        }
        if !ko.section(place_sec).is_alloc() {
            bail!(
                "{}: klp relocation {name} applies to a section that is not loaded",
                Location::new(ko, place_sec, place_off)
            );
        }
        let object = name
            .strip_prefix(abi::KLP_SYM_PREFIX)
            .and_then(|r| r.split_once('.'))
            .map(|(o, _)| o.to_string())
            .with_context(|| format!("{}: malformed klp symbol name {name:?}", ko.display()))?;
        by_section
            .entry((object, place_sec.index()))
            .or_default()
            .push((place_off, r_type, r_addend, name));
    }

    Ok(by_section)
}

/// Drops the records, their relocations and the string table, with the symbols defined in them.
fn drop_records(ko: &mut ElfObject<Any>, sections: [SectionId<Any>; 3]) {
    for s in sections {
        ko.section_mut(s).deleted = true;
    }
    let orphans: Vec<SymbolId<Any>> = ko
        .live_symbols()
        .filter(|(_, s)| matches!(s.section, SymSection::Section(sec) if ko.section(sec).deleted))
        .map(|(id, _)| id)
        .collect();
    for id in orphans {
        ko.symbol_mut(id).deleted = true;
    }
}

/// One `.klp.rela.<obj>.<section>` per group, against `SHN_LIVEPATCH` symbols named
/// `.klp.sym.<obj>.<name>,<pos>`, each added once.
fn add_klp_sections(
    ko: &mut ElfObject<Any>,
    by_section: BTreeMap<(String, usize), Vec<Pending>>,
) -> PostLink {
    let mut report = PostLink::default();
    let mut klp_syms: BTreeMap<String, SymbolId<Any>> = BTreeMap::new();
    for ((object, sec_index), relocs) in by_section {
        let target = SectionId::new(sec_index);
        let mut out = Vec::with_capacity(relocs.len());
        for (r_offset, r_type, r_addend, name) in relocs {
            let sym = *klp_syms.entry(name.clone()).or_insert_with(|| {
                ko.add_symbol(Symbol {
                    name,
                    st_info: elf::STB_GLOBAL << 4,
                    st_other: 0,
                    section: SymSection::Reserved(abi::SHN_LIVEPATCH),
                    st_value: 0,
                    st_size: 0,
                    deleted: false,
                })
            });
            out.push(Reloc {
                r_offset,
                sym,
                r_type,
                r_addend,
            });
        }
        out.sort_by_key(|r| r.r_offset);
        let name = abi::klp_rela_name(&object, &ko.section(target).name);
        report.sections.push((name.clone(), out.len()));
        let mut s = Section::new(
            &name,
            elf::SHT_RELA,
            u64::from(elf::SHF_ALLOC | elf::SHF_INFO_LINK) | abi::SHF_RELA_LIVEPATCH,
            8,
            Content::Relocs {
                target,
                relocs: out,
            },
        );
        s.sh_entsize = 24;
        ko.add_section(s);
    }
    report.symbols = klp_syms.into_keys().collect();
    report
}

/// Relocations to a `.klp.tombstone.*` symbol: (the section they apply to, the relocation).
fn tombstone_relocs(ko: &ElfObject<Any>) -> impl Iterator<Item = (SectionId<Any>, &Reloc<Any>)> {
    ko.live_sections().flat_map(move |(_, s)| {
        let (target, relocs) = match &s.content {
            Content::Relocs { target, relocs } => (Some(*target), relocs.as_slice()),
            _ => (None, &[][..]),
        };
        relocs
            .iter()
            .filter(move |r| ko.symbol(r.sym).name.starts_with(abi::KLP_TOMBSTONE_PREFIX))
            .filter_map(move |r| target.map(|t| (t, r)))
    })
}

/// Removes each relocation to a tombstone symbol, which stood at the place of a klp relocation so
/// that objtool saw the module's calls and keys during the kbuild link, and then the symbols. Each
/// must have the klp relocation of a record at the same place, type and addend: a tombstone
/// without one would leave a place the kernel never fills.
fn remove_tombstones(
    ko: &mut ElfObject<Any>,
    records: &BTreeMap<(String, usize), Vec<Pending>>,
) -> anyhow::Result<()> {
    let recorded: std::collections::HashSet<(usize, u64, u32, i64)> = records
        .iter()
        .flat_map(|((_, sec), relocs)| {
            relocs
                .iter()
                .map(move |(off, r_type, addend, _)| (*sec, *off, *r_type, *addend))
        })
        .collect();
    if let Some((sec, r)) = tombstone_relocs(ko)
        .find(|(sec, r)| !recorded.contains(&(sec.index(), r.r_offset, r.r_type, r.r_addend)))
    {
        bail!(
            "{}: relocation to {} (type {}, addend {}) has no klp record at that place; the \
             module's klp relocations do not match its objects: build the module again",
            Location::new(ko, sec, r.r_offset),
            ko.symbol(r.sym).name,
            r.r_type,
            r.r_addend
        );
    }
    let tombstones: std::collections::HashSet<SymbolId<Any>> = ko
        .live_symbols()
        .filter(|(_, s)| s.name.starts_with(abi::KLP_TOMBSTONE_PREFIX))
        .map(|(id, _)| id)
        .collect();
    let rela: Vec<_> = ko
        .live_sections()
        .filter(|(_, s)| matches!(s.content, Content::Relocs { .. }))
        .map(|(id, _)| id)
        .collect();
    for id in rela {
        if let Content::Relocs { relocs, .. } = &mut ko.section_mut(id).content {
            relocs.retain(|r| !tombstones.contains(&r.sym));
        }
    }
    for s in tombstones {
        ko.symbol_mut(s).deleted = true;
    }
    Ok(())
}
