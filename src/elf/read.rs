//! Reads a relocatable object into an [`ElfObject`]. Input: the bytes of an x86_64 ELF64 `ET_REL`
//! file (a `.o`, or a `.ko` linked with `ld -r`). Output: the tables, with every cross-reference
//! turned into a typed id. Invariant: section and symbol ids equal their ELF indices in the file,
//! so messages can quote `readelf` numbers.
//!
//! Uses `object`'s low-level `read::elf` API rather than `build::elf::Builder::read`, which
//! rejects `SHT_GROUP` sections; kernel objects can contain `.group` (kpatch PR #907).

use std::path::Path;

use object::elf::{self, FileHeader64, Rela64};
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::LittleEndian as LE;

use super::ids::{Role, SectionId, SymbolId};
use super::object::{Content, ElfObject, Reloc, Section, SymSection, Symbol};
use super::Error;

/// Reads the object at `path` through the checked reader: a module (`.ko`, also `.ko.xz`,
/// `.ko.zst`, `.ko.gz`, decompressed) within the module bound, anything else within the object
/// bound; never a device, FIFO or directory.
pub fn read_file<R: Role>(path: &Path) -> Result<ElfObject<R>, Error> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let data = if crate::input::Compression::module_stem(&name).is_some() {
        crate::input::read_module(path, "")
    } else {
        crate::input::read(path, crate::input::Kind::Object, "")
    }
    .map_err(|e| Error::Input(format!("{e:#}")))?;
    parse(path, &data)
}

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Malformed {
        path: path.display().to_string(),
        what: what.to_string(),
    }
}

/// Parses `data`, which was read from `path`.
pub fn parse<R: Role>(path: &Path, data: &[u8]) -> Result<ElfObject<R>, Error> {
    let header = FileHeader64::<LE>::parse(data)
        .map_err(|e| bad(path, format_args!("not an ELF64 little-endian object: {e}")))?;
    let endian = header.endian().map_err(|e| bad(path, e))?;
    if header.e_type(endian) != elf::ET_REL {
        return Err(bad(
            path,
            "not a relocatable object (ET_REL): klp-build reads .o and .ko files",
        ));
    }
    if header.e_machine(endian) != elf::EM_X86_64 {
        return Err(bad(
            path,
            format_args!(
                "e_machine {} is not x86_64: only x86_64 is supported",
                header.e_machine(endian)
            ),
        ));
    }
    let table = header
        .sections(endian, data)
        .map_err(|e| bad(path, format_args!("section table: {e}")))?;
    let symtab = table
        .symbols(endian, data, elf::SHT_SYMTAB)
        .map_err(|e| bad(path, format_args!("symbol table: {e}")))?;
    let symtab_index = symtab.section().0;
    let strtab_index = symtab.string_section().0;

    let mut obj = ElfObject::<R>::new(path.to_path_buf());
    obj.os_abi = header.e_ident().os_abi;
    obj.e_flags = header.e_flags(endian);
    obj.sections.clear();
    let nsec = table.len();
    let sec_id = |i: u32, what: &str| -> Result<SectionId<R>, Error> {
        if (i as usize) < nsec {
            Ok(SectionId::new(i as usize))
        } else {
            Err(bad(
                path,
                format_args!("{what}: section index {i} out of range"),
            ))
        }
    };

    for (index, sh) in table.iter().enumerate() {
        let name = if index == 0 {
            String::new()
        } else {
            let raw = table
                .section_name(endian, sh)
                .map_err(|e| bad(path, format_args!("section [{index}] name: {e}")))?;
            String::from_utf8_lossy(raw).into_owned()
        };
        let sh_type = sh.sh_type(endian);
        let what = format!("section [{index}] {name}");
        let content = match sh_type {
            elf::SHT_NOBITS => Content::Nobits(sh.sh_size(endian)),
            elf::SHT_SYMTAB if index == symtab_index => Content::Symtab,
            elf::SHT_SYMTAB => {
                return Err(bad(path, format_args!("{what}: a second symbol table")))
            }
            elf::SHT_SYMTAB_SHNDX => Content::SymtabShndx,
            elf::SHT_STRTAB if index == strtab_index => Content::Strtab,
            elf::SHT_STRTAB if index == header.e_shstrndx(endian) as usize => Content::Shstrtab,
            elf::SHT_REL => {
                return Err(bad(
                    path,
                    format_args!("{what}: SHT_REL relocations are not used on x86_64"),
                ))
            }
            elf::SHT_RELA => {
                if sh.sh_link(endian) as usize != symtab_index {
                    return Err(bad(
                        path,
                        format_args!("{what}: relocations against another symbol table"),
                    ));
                }
                let target = sec_id(sh.sh_info(endian), &what)?;
                let rela: &[Rela64<LE>] = sh
                    .data_as_array(endian, data)
                    .map_err(|e| bad(path, format_args!("{what}: {e}")))?;
                let relocs = rela
                    .iter()
                    .map(|r| Reloc {
                        r_offset: r.r_offset.get(endian),
                        sym: SymbolId::new(r.r_sym(endian, false) as usize),
                        r_type: r.r_type(endian, false),
                        r_addend: r.r_addend.get(endian),
                    })
                    .collect();
                Content::Relocs { target, relocs }
            }
            elf::SHT_GROUP => {
                let words: &[object::U32<LE>] = sh
                    .data_as_array(endian, data)
                    .map_err(|e| bad(path, format_args!("{what}: {e}")))?;
                let (flags, rest) = words
                    .split_first()
                    .ok_or_else(|| bad(path, format_args!("{what}: empty group")))?;
                let members = rest
                    .iter()
                    .map(|w| sec_id(w.get(endian), &what))
                    .collect::<Result<_, _>>()?;
                Content::Group {
                    flags: flags.get(endian),
                    signature: SymbolId::new(sh.sh_info(endian) as usize),
                    members,
                }
            }
            _ => Content::Data(
                sh.data(endian, data)
                    .map_err(|e| bad(path, format_args!("{what}: {e}")))?
                    .to_vec(),
            ),
        };
        let link = match &content {
            Content::Data(_) | Content::Nobits(_) if sh.sh_link(endian) != 0 => {
                Some(sec_id(sh.sh_link(endian), &what)?)
            }
            _ => None,
        };
        obj.sections.push(Section {
            name,
            sh_type,
            sh_flags: sh.sh_flags(endian),
            sh_addr: sh.sh_addr(endian),
            sh_addralign: sh.sh_addralign(endian),
            sh_entsize: sh.sh_entsize(endian),
            link,
            info: match content {
                Content::Relocs { .. } | Content::Group { .. } => 0,
                _ => sh.sh_info(endian),
            },
            content,
            deleted: false,
        });
    }

    obj.symbols.clear();
    for (index, sym) in symtab.symbols().iter().enumerate() {
        let name = symtab
            .symbol_name(endian, sym)
            .map_err(|e| bad(path, format_args!("symbol [{index}] name: {e}")))?;
        let shndx = sym.st_shndx(endian);
        let section = match shndx {
            elf::SHN_UNDEF => SymSection::Undef,
            elf::SHN_ABS => SymSection::Abs,
            elf::SHN_COMMON => SymSection::Common,
            elf::SHN_XINDEX => {
                let i = symtab
                    .shndx(endian, object::SymbolIndex(index))
                    .ok_or_else(|| {
                        bad(
                            path,
                            format_args!("symbol [{index}]: SHN_XINDEX without SHT_SYMTAB_SHNDX"),
                        )
                    })?;
                SymSection::Section(sec_id(i, "symbol")?)
            }
            s if s >= elf::SHN_LORESERVE => SymSection::Reserved(s),
            s => SymSection::Section(sec_id(u32::from(s), "symbol")?),
        };
        obj.symbols.push(Symbol {
            name: String::from_utf8_lossy(name).into_owned(),
            st_info: sym.st_info(),
            st_other: sym.st_other(),
            section,
            st_value: sym.st_value(endian),
            st_size: sym.st_size(endian),
            deleted: false,
        });
    }
    check(path, &obj)?;
    Ok(obj)
}

/// The number of bytes an x86_64 relocation of type `r_type` writes at its offset; `None` for a
/// type the psABI does not define.
pub fn reloc_width(r_type: u32) -> Option<u64> {
    Some(match r_type {
        elf::R_X86_64_NONE => 0,
        elf::R_X86_64_8 | elf::R_X86_64_PC8 => 1,
        elf::R_X86_64_16 | elf::R_X86_64_PC16 => 2,
        elf::R_X86_64_64
        | elf::R_X86_64_PC64
        | elf::R_X86_64_GOTOFF64
        | elf::R_X86_64_GOTPC64
        | elf::R_X86_64_GOT64
        | elf::R_X86_64_GOTPCREL64
        | elf::R_X86_64_GOTPLT64
        | elf::R_X86_64_PLTOFF64
        | elf::R_X86_64_SIZE64
        | elf::R_X86_64_DTPMOD64
        | elf::R_X86_64_DTPOFF64
        | elf::R_X86_64_TPOFF64
        | elf::R_X86_64_RELATIVE
        | elf::R_X86_64_GLOB_DAT
        | elf::R_X86_64_JUMP_SLOT => 8,
        elf::R_X86_64_PC32
        | elf::R_X86_64_PLT32
        | elf::R_X86_64_32
        | elf::R_X86_64_32S
        | elf::R_X86_64_GOT32
        | elf::R_X86_64_GOTPCREL
        | elf::R_X86_64_GOTPCRELX
        | elf::R_X86_64_REX_GOTPCRELX
        | elf::R_X86_64_GOTPC32
        | elf::R_X86_64_SIZE32
        | elf::R_X86_64_TLSGD
        | elf::R_X86_64_TLSLD
        | elf::R_X86_64_DTPOFF32
        | elf::R_X86_64_GOTTPOFF
        | elf::R_X86_64_TPOFF32
        | elf::R_X86_64_GOTPC32_TLSDESC => 4,
        elf::R_X86_64_TLSDESC_CALL => 0,
        _ => return None,
    })
}

/// Checks every cross-reference the file gave against what it points into, so that the stages
/// can index without checking again: relocation offsets (plus the bytes the type writes) lie in
/// the section they apply to, relocation and group symbols exist, and a symbol defined in a
/// section lies inside it (`st_value + st_size`). A fuzzed `fs/proc/cmdline.o` with one
/// `r_offset` raised to 0x4000 otherwise panicked slicing `.text.cmdline_proc_show`.
fn check<R: Role>(path: &Path, obj: &ElfObject<R>) -> Result<(), Error> {
    let nsym = obj.symbols.len();
    for (i, s) in obj.sections.iter().enumerate() {
        match &s.content {
            Content::Relocs { target, relocs } => {
                let t = obj.section(*target);
                let size = obj.section_size(*target);
                if target.index() == 0 && !relocs.is_empty() {
                    return Err(bad(
                        path,
                        format_args!(
                            "section [{i}] {}: sh_info 0 names no section to relocate",
                            s.name
                        ),
                    ));
                }
                for (k, r) in relocs.iter().enumerate() {
                    let entry = || format!("section [{i}] {} entry {k}", s.name);
                    if r.sym.index() >= nsym {
                        return Err(bad(
                            path,
                            format_args!(
                                "{}: symbol index {} beyond the symbol table's {nsym} entries",
                                entry(),
                                r.sym.index()
                            ),
                        ));
                    }
                    let Some(width) = reloc_width(r.r_type) else {
                        return Err(bad(
                            path,
                            format_args!(
                                "{}: relocation type {} is not an x86_64 relocation",
                                entry(),
                                r.r_type
                            ),
                        ));
                    };
                    if r.r_offset.checked_add(width).is_none_or(|end| end > size) {
                        return Err(bad(
                            path,
                            format_args!(
                                "{}: r_offset {:#x} (+{width} bytes) beyond the {size:#x} bytes of {}",
                                entry(),
                                r.r_offset,
                                t.name
                            ),
                        ));
                    }
                }
            }
            Content::Group { signature, .. } if signature.index() >= nsym => {
                return Err(bad(
                    path,
                    format_args!(
                        "section [{i}] {}: signature symbol {} beyond the symbol table's {nsym} entries",
                        s.name,
                        signature.index()
                    ),
                ));
            }
            _ => {}
        }
    }
    for (k, sym) in obj.symbols.iter().enumerate() {
        let SymSection::Section(sec) = sym.section else {
            continue;
        };
        if sec.index() == 0 {
            return Err(bad(
                path,
                format_args!(
                    "symbol [{k}] {:?}: st_shndx 0 in a defined symbol",
                    sym.name
                ),
            ));
        }
        let size = obj.section_size(sec);
        if sym
            .st_value
            .checked_add(sym.st_size)
            .is_none_or(|end| end > size)
        {
            return Err(bad(
                path,
                format_args!(
                    "symbol [{k}] {:?}: st_value {:#x} + st_size {:#x} beyond the {size:#x} bytes of section [{}] {}",
                    sym.name,
                    sym.st_value,
                    sym.st_size,
                    sec.index(),
                    obj.section(sec).name
                ),
            ));
        }
    }
    Ok(())
}
