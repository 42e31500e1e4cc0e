//! Writes an [`ElfObject`] back to bytes. Input: the tables. Output: an ELF64 `ET_REL` file written
//! through `object::write::elf::Writer`. Invariant: deleted sections and symbols are dropped and
//! every index is renumbered; local symbols precede global ones, as `sh_info` of `.symtab` requires;
//! a relocation or group that refers to a deleted symbol is an error, never a silent zero.

use std::path::Path;

use object::elf;
use object::write::elf::{FileHeader, Rel, SectionHeader, SectionIndex, Sym, Writer};
use object::write::StringId;
use object::Endianness;

use super::ids::Role;
use super::object::{Content, ElfObject, SymSection};
use super::Error;

impl<R: Role> ElfObject<R> {
    /// Serialises the object.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        write(self)
    }

    /// Serialises the object to `path`.
    pub fn write_to(&self, path: &Path) -> Result<(), Error> {
        let bytes = write(self)?;
        std::fs::write(path, bytes).map_err(|io| Error::Io {
            path: path.display().to_string(),
            io,
        })
    }
}

fn bad<R: Role>(obj: &ElfObject<R>, what: impl std::fmt::Display) -> Error {
    Error::Malformed {
        path: obj.path.display().to_string(),
        what: what.to_string(),
    }
}

/// Which tables a section slot holds in the output.
#[derive(Clone, Copy, PartialEq)]
enum Slot {
    Normal(usize),
    Symtab,
    Strtab,
    Shstrtab,
}

fn write<R: Role>(obj: &ElfObject<R>) -> Result<Vec<u8>, Error> {
    let slots = slots(obj);
    let mut buf = Vec::new();
    let mut w = Writer::new(Endianness::Little, true, &mut buf);
    w.reserve_file_header();
    let mut maps = Maps::sections(obj, &mut w, &slots);
    let symbols = maps.symbols(obj, &mut w)?;
    if w.symtab_shndx_needed() {
        w.reserve_symtab_shndx_section_index();
    }
    let offsets = reserve_bodies(obj, &mut w, &slots)?;
    w.reserve_section_headers();
    w.write_file_header(&FileHeader {
        os_abi: obj.os_abi,
        abi_version: 0,
        e_type: elf::ET_REL,
        e_machine: obj.e_machine,
        e_entry: 0,
        e_flags: obj.e_flags,
    })
    .map_err(|e| bad(obj, e))?;
    write_bodies(obj, &mut w, &slots, &maps, &symbols)?;
    write_section_headers(obj, &mut w, &slots, &maps, &offsets, symbols.num_local)?;
    debug_assert_eq!(w.reserved_len(), w.len());
    Ok(buf)
}

/// Section slots in output order: the live sections in id order (a `.symtab_shndx` of the input
/// is regenerated when needed), plus any table an object built from scratch lacks.
fn slots<R: Role>(obj: &ElfObject<R>) -> Vec<Slot> {
    let mut slots = Vec::new();
    let (mut symtab, mut strtab, mut shstrtab) = (false, false, false);
    for (id, s) in obj.live_sections() {
        match s.content {
            Content::Symtab => {
                symtab = true;
                slots.push(Slot::Symtab)
            }
            Content::Strtab => {
                strtab = true;
                slots.push(Slot::Strtab)
            }
            Content::Shstrtab => {
                shstrtab = true;
                slots.push(Slot::Shstrtab)
            }
            Content::SymtabShndx => {}
            _ => slots.push(Slot::Normal(id.index())),
        }
    }
    for (have, slot) in [
        (symtab, Slot::Symtab),
        (strtab, Slot::Strtab),
        (shstrtab, Slot::Shstrtab),
    ] {
        if !have {
            slots.push(slot);
        }
    }
    slots
}

/// Input ids to output indices, and each slot's name: the renumbering every reference goes
/// through, so that a reference to something deleted is an error naming the referrer.
struct Maps {
    sections: Vec<Option<SectionIndex>>,
    symbols: Vec<Option<u32>>,
    names: Vec<Option<StringId>>,
}

/// The output symbol table: locals first, as `sh_info` (`num_local`) requires.
struct Symbols {
    out: Vec<Sym>,
    num_local: u32,
}

impl Maps {
    /// Reserves a section index and name per slot.
    fn sections<'a, R: Role>(obj: &'a ElfObject<R>, w: &mut Writer<'a>, slots: &[Slot]) -> Maps {
        let mut sections: Vec<Option<SectionIndex>> = vec![None; obj.sections.len()];
        let mut names = Vec::with_capacity(slots.len());
        for slot in slots {
            match *slot {
                Slot::Normal(i) => {
                    sections[i] = Some(w.reserve_section_index());
                    names.push(Some(w.add_section_name(obj.sections[i].name.as_bytes())));
                }
                Slot::Symtab => {
                    w.reserve_symtab_section_index();
                    names.push(None);
                }
                Slot::Strtab => {
                    w.reserve_strtab_section_index();
                    names.push(None);
                }
                Slot::Shstrtab => {
                    w.reserve_shstrtab_section_index();
                    names.push(None);
                }
            }
        }
        Maps {
            sections,
            symbols: Vec::new(),
            names,
        }
    }

    /// Symbols in output order: null, locals, then the rest, each group in id order.
    fn symbols<'a, R: Role>(
        &mut self,
        obj: &'a ElfObject<R>,
        w: &mut Writer<'a>,
    ) -> Result<Symbols, Error> {
        self.symbols = vec![None; obj.symbols.len()];
        self.symbols[0] = Some(0);
        w.reserve_null_symbol_index();
        let (mut order, globals): (Vec<usize>, Vec<usize>) = (1..obj.symbols.len())
            .filter(|&i| !obj.symbols[i].deleted)
            .partition(|&i| obj.symbols[i].is_local());
        order.extend(globals);
        let mut num_local = 1u32;
        let mut out = Vec::with_capacity(order.len());
        for i in order {
            let s = &obj.symbols[i];
            let section = match s.section {
                SymSection::Section(sec) => {
                    Some(self.section(obj, sec.index(), &|| format!("symbol {} ({i})", s.name))?)
                }
                _ => None,
            };
            let st_shndx = match s.section {
                SymSection::Undef | SymSection::Section(_) => elf::SHN_UNDEF,
                SymSection::Abs => elf::SHN_ABS,
                SymSection::Common => elf::SHN_COMMON,
                SymSection::Reserved(x) => x,
            };
            let name = (!s.name.is_empty()).then(|| w.add_string(s.name.as_bytes()));
            let idx = w.reserve_symbol_index(section);
            self.symbols[i] = Some(idx.0);
            if s.is_local() {
                num_local = idx.0 + 1;
            }
            out.push(Sym {
                name,
                section,
                st_info: s.st_info,
                st_other: s.st_other,
                st_shndx,
                st_value: s.st_value,
                st_size: s.st_size,
            });
        }
        Ok(Symbols { out, num_local })
    }

    /// The output index of section `i`; `what` names the referrer for the error.
    fn section<R: Role>(
        &self,
        obj: &ElfObject<R>,
        i: usize,
        what: &dyn Fn() -> String,
    ) -> Result<SectionIndex, Error> {
        self.sections
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| bad(obj, format_args!("{}: refers to a deleted section", what())))
    }

    /// The output index of symbol `i`; `what` names the referrer for the error.
    fn symbol<R: Role>(
        &self,
        obj: &ElfObject<R>,
        i: usize,
        what: &dyn Fn() -> String,
    ) -> Result<u32, Error> {
        self.symbols.get(i).copied().flatten().ok_or_else(|| {
            bad(
                obj,
                format_args!("{}: refers to deleted symbol {i}", what()),
            )
        })
    }
}

/// A table the writer regenerates (`.symtab`, `.symtab_shndx`, `.strtab`, `.shstrtab`) found in a
/// slot for copied contents. [`slots`] gives each table a slot of its own, so no object reaches
/// this; should that change, the error names the section instead of panicking.
fn table_in_contents_slot<R: Role>(obj: &ElfObject<R>, section: &str) -> Error {
    bad(
        obj,
        format_args!(
            "section {section}: a table the writer regenerates, in a slot for copied contents"
        ),
    )
}

/// Reserves file space in slot order; returns each slot's offset for the headers.
fn reserve_bodies<R: Role>(
    obj: &ElfObject<R>,
    w: &mut Writer<'_>,
    slots: &[Slot],
) -> Result<Vec<usize>, Error> {
    let mut offsets = vec![0usize; slots.len()];
    for (k, slot) in slots.iter().enumerate() {
        match *slot {
            Slot::Normal(i) => {
                let s = &obj.sections[i];
                offsets[k] = match &s.content {
                    Content::Data(d) => w.reserve(d.len(), s.sh_addralign.max(1) as usize),
                    Content::Nobits(_) => 0,
                    Content::Relocs { relocs, .. } => w.reserve_relocations(relocs.len(), true),
                    Content::Group { members, .. } => w.reserve_comdat(members.len()),
                    _ => return Err(table_in_contents_slot(obj, &s.name)),
                };
            }
            Slot::Symtab => {
                w.reserve_symtab();
                w.reserve_symtab_shndx();
            }
            Slot::Strtab => w.reserve_strtab(),
            Slot::Shstrtab => w.reserve_shstrtab(),
        }
    }
    Ok(offsets)
}

/// Writes each slot's contents: data, relocations and groups renumbered through `maps`.
fn write_bodies<R: Role>(
    obj: &ElfObject<R>,
    w: &mut Writer<'_>,
    slots: &[Slot],
    maps: &Maps,
    symbols: &Symbols,
) -> Result<(), Error> {
    for slot in slots {
        match *slot {
            Slot::Normal(i) => {
                let s = &obj.sections[i];
                match &s.content {
                    Content::Data(d) => {
                        w.write_align(s.sh_addralign.max(1) as usize);
                        w.write(d);
                    }
                    Content::Nobits(_) => {}
                    Content::Relocs { relocs, .. } => {
                        w.write_align_relocation();
                        for r in relocs {
                            let r_sym = maps.symbol(obj, r.sym.index(), &|| {
                                format!("{}+{:#x}", s.name, r.r_offset)
                            })?;
                            w.write_relocation(
                                true,
                                &Rel {
                                    r_offset: r.r_offset,
                                    r_sym,
                                    r_type: r.r_type,
                                    r_addend: r.r_addend,
                                },
                            );
                        }
                    }
                    Content::Group { flags, members, .. } => {
                        w.write_align(4);
                        w.write(&flags.to_le_bytes());
                        for m in members {
                            let idx =
                                maps.section(obj, m.index(), &|| format!("group {}", s.name))?;
                            w.write(&idx.0.to_le_bytes());
                        }
                    }
                    _ => return Err(table_in_contents_slot(obj, &s.name)),
                }
            }
            Slot::Symtab => {
                w.write_null_symbol();
                for s in &symbols.out {
                    w.write_symbol(s);
                }
                w.write_symtab_shndx();
            }
            Slot::Strtab => w.write_strtab(),
            Slot::Shstrtab => w.write_shstrtab(),
        }
    }
    Ok(())
}

/// Writes the section headers: sizes from the contents, links and infos renumbered.
fn write_section_headers<R: Role>(
    obj: &ElfObject<R>,
    w: &mut Writer<'_>,
    slots: &[Slot],
    maps: &Maps,
    offsets: &[usize],
    num_local: u32,
) -> Result<(), Error> {
    w.write_null_section_header();
    let symtab_index = w.symtab_index().0;
    for (k, slot) in slots.iter().enumerate() {
        match *slot {
            Slot::Normal(i) => {
                let s = &obj.sections[i];
                let (sh_size, sh_link, sh_info, sh_entsize) = match &s.content {
                    Content::Data(d) => (d.len() as u64, 0, s.info, s.sh_entsize),
                    Content::Nobits(n) => (*n, 0, s.info, s.sh_entsize),
                    Content::Relocs { target, relocs } => {
                        let t = maps.section(obj, target.index(), &|| {
                            format!("relocation section {}", s.name)
                        })?;
                        (relocs.len() as u64 * 24, symtab_index, t.0, 24)
                    }
                    Content::Group {
                        signature, members, ..
                    } => {
                        let sig =
                            maps.symbol(obj, signature.index(), &|| format!("group {}", s.name))?;
                        ((members.len() as u64 + 1) * 4, symtab_index, sig, 4)
                    }
                    _ => return Err(table_in_contents_slot(obj, &s.name)),
                };
                let sh_link = match s.link {
                    Some(l) if sh_link == 0 => {
                        maps.section(obj, l.index(), &|| format!("sh_link of {}", s.name))?
                            .0
                    }
                    _ => sh_link,
                };
                w.write_section_header(&SectionHeader {
                    name: maps.names[k],
                    sh_type: s.sh_type,
                    sh_flags: s.sh_flags,
                    sh_addr: s.sh_addr,
                    sh_offset: offsets[k] as u64,
                    sh_size,
                    sh_link,
                    sh_info,
                    sh_addralign: s.sh_addralign,
                    sh_entsize,
                });
            }
            Slot::Symtab => w.write_symtab_section_header(num_local),
            Slot::Strtab => w.write_strtab_section_header(),
            Slot::Shstrtab => w.write_shstrtab_section_header(),
        }
    }
    if w.symtab_shndx_needed() {
        w.write_symtab_shndx_section_header();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::object::Section;

    #[test]
    fn a_table_in_a_contents_slot_is_an_error_naming_it() {
        let mut obj: ElfObject<crate::elf::Any> = ElfObject::new("t.o".into());
        let symtab = obj.add_section(Section::new(
            ".symtab",
            elf::SHT_SYMTAB,
            0,
            8,
            Content::Symtab,
        ));
        let mut buf = Vec::new();
        let mut w = Writer::new(Endianness::Little, true, &mut buf);
        w.reserve_file_header();
        let e = reserve_bodies(&obj, &mut w, &[Slot::Normal(symtab.index())]).unwrap_err();
        assert!(
            e.to_string()
                .contains("section .symtab: a table the writer regenerates"),
            "{e}"
        );
    }
}
