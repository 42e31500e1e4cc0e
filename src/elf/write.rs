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
    // Section slots in output order: the live sections in id order (a `.symtab_shndx` of the input
    // is regenerated when needed), plus any table an object built from scratch lacks.
    let mut slots = Vec::new();
    let mut have = (false, false, false);
    for (id, s) in obj.live_sections() {
        match s.content {
            Content::Symtab => {
                have.0 = true;
                slots.push(Slot::Symtab)
            }
            Content::Strtab => {
                have.1 = true;
                slots.push(Slot::Strtab)
            }
            Content::Shstrtab => {
                have.2 = true;
                slots.push(Slot::Shstrtab)
            }
            Content::SymtabShndx => {}
            _ => slots.push(Slot::Normal(id.index())),
        }
    }
    if !have.0 {
        slots.push(Slot::Symtab);
    }
    if !have.1 {
        slots.push(Slot::Strtab);
    }
    if !have.2 {
        slots.push(Slot::Shstrtab);
    }

    let mut buf = Vec::new();
    let mut w = Writer::new(Endianness::Little, true, &mut buf);
    w.reserve_file_header();

    let mut sec_map: Vec<Option<SectionIndex>> = vec![None; obj.sections.len()];
    let mut names: Vec<Option<StringId>> = Vec::with_capacity(slots.len());
    for slot in &slots {
        match *slot {
            Slot::Normal(i) => {
                let idx = w.reserve_section_index();
                sec_map[i] = Some(idx);
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
    let map_sec = |i: usize, what: &dyn Fn() -> String| -> Result<SectionIndex, Error> {
        sec_map[i].ok_or_else(|| bad(obj, format_args!("{}: refers to a deleted section", what())))
    };

    // Symbols: null, locals, then the rest, each group in id order.
    let mut sym_map: Vec<Option<u32>> = vec![None; obj.symbols.len()];
    sym_map[0] = Some(0);
    w.reserve_null_symbol_index();
    let order: Vec<usize> = {
        let live: Vec<usize> = (1..obj.symbols.len())
            .filter(|&i| !obj.symbols[i].deleted)
            .collect();
        let (mut locals, globals): (Vec<usize>, Vec<usize>) =
            live.into_iter().partition(|&i| obj.symbols[i].is_local());
        locals.extend(globals);
        locals
    };
    let mut num_local = 1u32;
    let mut sym_out = Vec::with_capacity(order.len());
    for &i in &order {
        let s = &obj.symbols[i];
        let section = match s.section {
            SymSection::Section(sec) => Some(map_sec(sec.index(), &|| {
                format!("symbol {} ({i})", s.name)
            })?),
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
        sym_map[i] = Some(idx.0);
        if s.is_local() {
            num_local = idx.0 + 1;
        }
        sym_out.push(Sym {
            name,
            section,
            st_info: s.st_info,
            st_other: s.st_other,
            st_shndx,
            st_value: s.st_value,
            st_size: s.st_size,
        });
    }
    if w.symtab_shndx_needed() {
        w.reserve_symtab_shndx_section_index();
    }
    let map_sym = |i: usize, what: &dyn Fn() -> String| -> Result<u32, Error> {
        sym_map.get(i).copied().flatten().ok_or_else(|| {
            bad(
                obj,
                format_args!("{}: refers to deleted symbol {i}", what()),
            )
        })
    };

    // Reserve file space in slot order, remembering offsets for the headers.
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
                    _ => unreachable!("table slots are handled apart"),
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

    for slot in &slots {
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
                            let r_sym = map_sym(r.sym.index(), &|| {
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
                    Content::Group { members, .. } => {
                        w.write_align(4);
                        let flags = match &s.content {
                            Content::Group { flags, .. } => *flags,
                            _ => 0,
                        };
                        w.write(&flags.to_le_bytes());
                        for m in members {
                            let idx = map_sec(m.index(), &|| format!("group {}", s.name))?;
                            w.write(&idx.0.to_le_bytes());
                        }
                    }
                    _ => unreachable!(),
                }
            }
            Slot::Symtab => {
                w.write_null_symbol();
                for s in &sym_out {
                    w.write_symbol(s);
                }
                w.write_symtab_shndx();
            }
            Slot::Strtab => w.write_strtab(),
            Slot::Shstrtab => w.write_shstrtab(),
        }
    }

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
                        let t =
                            map_sec(target.index(), &|| format!("relocation section {}", s.name))?;
                        (relocs.len() as u64 * 24, symtab_index, t.0, 24)
                    }
                    Content::Group {
                        signature, members, ..
                    } => {
                        let sig = map_sym(signature.index(), &|| format!("group {}", s.name))?;
                        ((members.len() as u64 + 1) * 4, symtab_index, sig, 4)
                    }
                    _ => unreachable!(),
                };
                let sh_link = match s.link {
                    Some(l) if sh_link == 0 => {
                        map_sec(l.index(), &|| format!("sh_link of {}", s.name))?.0
                    }
                    _ => sh_link,
                };
                w.write_section_header(&SectionHeader {
                    name: names[k],
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
    debug_assert_eq!(w.reserved_len(), w.len());
    Ok(buf)
}
