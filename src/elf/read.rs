//! Reads a relocatable object into an [`ElfObject`]. Input: the bytes of an x86_64 ELF64 `ET_REL`
//! file (a `.o`, or a `.ko` linked with `ld -r`). Output: the tables, with every cross-reference
//! turned into a typed id. Invariant: section and symbol ids equal their ELF indices in the file,
//! so messages can quote `readelf` numbers.
//!
//! Compressed sections (`-gz`, `SHF_COMPRESSED`) are read decompressed, so that every size and
//! bound is the one their relocations count in.
//!
//! Uses `object`'s low-level `read::elf` API rather than `build::elf::Builder::read`, which
//! rejects `SHT_GROUP` sections; kernel objects can contain `.group` (kpatch PR #907).

use std::path::Path;

use object::elf::{self, FileHeader64, Rela64, SectionHeader64};
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
    let r = Reader {
        path,
        data,
        endian,
        nsec: table.len(),
        symtab: symtab.section().0,
        strtab: symtab.string_section().0,
        shstrtab: header.e_shstrndx(endian) as usize,
    };

    let mut obj = ElfObject::<R>::new(path.to_path_buf());
    obj.os_abi = header.e_ident().os_abi;
    obj.e_flags = header.e_flags(endian);
    // What compressed sections may expand to, all together: the bound of the object itself.
    let mut budget = crate::input::Kind::Object.limit();
    obj.sections = table
        .iter()
        .enumerate()
        .map(|(index, sh)| r.section(&table, index, sh, &mut budget))
        .collect::<Result<_, _>>()?;
    obj.symbols = r.symbols(&symtab)?;
    check(path, &obj)?;
    Ok(obj)
}

/// The file being read and the indices every section and symbol is checked against.
struct Reader<'d> {
    path: &'d Path,
    data: &'d [u8],
    endian: LE,
    nsec: usize,
    symtab: usize,
    strtab: usize,
    shstrtab: usize,
}

type Sections<'d> = object::read::elf::SectionTable<'d, FileHeader64<LE>>;
type Symbols<'d> = object::read::elf::SymbolTable<'d, FileHeader64<LE>>;

impl<'d> Reader<'d> {
    /// Section `i`, when the file has it; `what` names the referrer for the error.
    fn sec_id<R: Role>(&self, i: u32, what: &str) -> Result<SectionId<R>, Error> {
        if (i as usize) < self.nsec {
            Ok(SectionId::new(i as usize))
        } else {
            Err(bad(
                self.path,
                format_args!("{what}: section index {i} out of range"),
            ))
        }
    }

    /// Section `index`: its header fields and its contents by type.
    fn section<R: Role>(
        &self,
        table: &Sections<'d>,
        index: usize,
        sh: &SectionHeader64<LE>,
        budget: &mut u64,
    ) -> Result<Section<R>, Error> {
        let (path, endian) = (self.path, self.endian);
        let name = if index == 0 {
            String::new()
        } else {
            let raw = table
                .section_name(endian, sh)
                .map_err(|e| bad(path, format_args!("section [{index}] name: {e}")))?;
            String::from_utf8_lossy(raw).into_owned()
        };
        let what = format!("section [{index}] {name}");
        let content = self.content(index, sh, &what, budget)?;
        // A decompressed section is held as what it holds; its header then says so too.
        let sh_flags = sh.sh_flags(endian) & !u64::from(elf::SHF_COMPRESSED);
        let link = match &content {
            Content::Data(_) | Content::Nobits(_) if sh.sh_link(endian) != 0 => {
                Some(self.sec_id(sh.sh_link(endian), &what)?)
            }
            _ => None,
        };
        Ok(Section {
            name,
            sh_type: sh.sh_type(endian),
            sh_flags,
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
        })
    }

    /// A section's contents by its type: the tables by role, relocations and groups with typed
    /// ids, data decompressed within `budget`.
    fn content<R: Role>(
        &self,
        index: usize,
        sh: &SectionHeader64<LE>,
        what: &str,
        budget: &mut u64,
    ) -> Result<Content<R>, Error> {
        let (path, endian, data) = (self.path, self.endian, self.data);
        Ok(match sh.sh_type(endian) {
            elf::SHT_NOBITS => Content::Nobits(sh.sh_size(endian)),
            elf::SHT_SYMTAB if index == self.symtab => Content::Symtab,
            elf::SHT_SYMTAB => {
                return Err(bad(path, format_args!("{what}: a second symbol table")))
            }
            elf::SHT_SYMTAB_SHNDX => Content::SymtabShndx,
            elf::SHT_STRTAB if index == self.strtab => Content::Strtab,
            elf::SHT_STRTAB if index == self.shstrtab => Content::Shstrtab,
            elf::SHT_REL => {
                return Err(bad(
                    path,
                    format_args!("{what}: SHT_REL relocations are not used on x86_64"),
                ))
            }
            elf::SHT_RELA => {
                if sh.sh_link(endian) as usize != self.symtab {
                    return Err(bad(
                        path,
                        format_args!("{what}: relocations against another symbol table"),
                    ));
                }
                let target = self.sec_id(sh.sh_info(endian), what)?;
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
                    .map(|w| self.sec_id(w.get(endian), what))
                    .collect::<Result<_, _>>()?;
                Content::Group {
                    flags: flags.get(endian),
                    signature: SymbolId::new(sh.sh_info(endian) as usize),
                    members,
                }
            }
            _ => {
                let raw = sh
                    .data(endian, data)
                    .map_err(|e| bad(path, format_args!("{what}: {e}")))?;
                if sh.sh_flags(endian) & u64::from(elf::SHF_COMPRESSED) != 0 {
                    let bytes = decompress(raw, budget)
                        .map_err(|e| bad(path, format_args!("{what}: {e}")))?;
                    Content::Data(bytes)
                } else {
                    Content::Data(raw.to_vec())
                }
            }
        })
    }

    /// The symbol table, each symbol's section checked to exist.
    fn symbols<R: Role>(&self, symtab: &Symbols<'d>) -> Result<Vec<Symbol<R>>, Error> {
        let (path, endian) = (self.path, self.endian);
        let mut out = Vec::with_capacity(symtab.symbols().len());
        for (index, sym) in symtab.symbols().iter().enumerate() {
            let name = symtab
                .symbol_name(endian, sym)
                .map_err(|e| bad(path, format_args!("symbol [{index}] name: {e}")))?;
            let section = match sym.st_shndx(endian) {
                elf::SHN_UNDEF => SymSection::Undef,
                elf::SHN_ABS => SymSection::Abs,
                elf::SHN_COMMON => SymSection::Common,
                elf::SHN_XINDEX => {
                    let i = symtab
                        .shndx(endian, object::SymbolIndex(index))
                        .ok_or_else(|| {
                            bad(
                                path,
                                format_args!(
                                    "symbol [{index}]: SHN_XINDEX without SHT_SYMTAB_SHNDX"
                                ),
                            )
                        })?;
                    SymSection::Section(self.sec_id(i, "symbol")?)
                }
                s if s >= elf::SHN_LORESERVE => SymSection::Reserved(s),
                s => SymSection::Section(self.sec_id(u32::from(s), "symbol")?),
            };
            out.push(Symbol {
                name: String::from_utf8_lossy(name).into_owned(),
                st_info: sym.st_info(),
                st_other: sym.st_other(),
                section,
                st_value: sym.st_value(endian),
                st_size: sym.st_size(endian),
                deleted: false,
            });
        }
        Ok(out)
    }
}

/// The contents of an `SHF_COMPRESSED` section: its `Elf64_Chdr` (type, reserved, size, alignment)
/// followed by a zlib or zstd stream. Kernels built with `CONFIG_DEBUG_INFO_COMPRESSED` (5.13+,
/// `-gz=zlib`; `_ZSTD` since 6.2) have every `.debug_*` section so, and their relocations count
/// offsets in the uncompressed bytes: bounds checked against the compressed size refused such
/// objects as corrupt. The stream must give exactly `ch_size` bytes, within `budget` (what is
/// left of the object bound for all its sections), which shrinks by what was taken.
fn decompress(raw: &[u8], budget: &mut u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let (Some(header), Some(stream)) = (raw.get(..24), raw.get(24..)) else {
        return Err(format!(
            "SHF_COMPRESSED, but its {} bytes hold no 24-byte Elf64_Chdr",
            raw.len()
        ));
    };
    let field = |at: usize, n: usize| {
        let mut w = [0u8; 8];
        w[..n].copy_from_slice(&header[at..at + n]);
        u64::from_le_bytes(w)
    };
    let (ch_type, ch_size) = (field(0, 4), field(8, 8));
    if ch_size > *budget {
        return Err(format!(
            "the compression header says {ch_size:#x} bytes uncompressed, beyond the {:#x} bytes \
             an object may hold; the object is damaged or not a kernel object",
            *budget
        ));
    }
    let mut out = Vec::with_capacity(ch_size.min(1 << 24) as usize);
    // One byte more than announced is read, to tell a stream that runs longer.
    let read = match u32::try_from(ch_type) {
        Ok(elf::ELFCOMPRESS_ZLIB) => flate2::read::ZlibDecoder::new(stream)
            .take(ch_size + 1)
            .read_to_end(&mut out),
        Ok(elf::ELFCOMPRESS_ZSTD) => zstd::stream::read::Decoder::new(stream)
            .and_then(|d| d.take(ch_size + 1).read_to_end(&mut out)),
        _ => {
            return Err(format!(
            "compression type {ch_type} is neither zlib (1) nor zstd (2), the two gcc's -gz writes"
        ))
        }
    };
    read.map_err(|e| format!("its compressed contents do not decompress: {e}"))?;
    if out.len() as u64 != ch_size {
        return Err(format!(
            "decompresses to {:#x} bytes{}, but its compression header says {ch_size:#x}",
            out.len(),
            if out.len() as u64 > ch_size {
                " or more"
            } else {
                ""
            }
        ));
    }
    *budget -= ch_size;
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn chdr(ch_type: u32, size: u64, stream: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&ch_type.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&size.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
        v.extend_from_slice(stream);
        v
    }

    #[test]
    fn compressed_sections_decompress_within_their_header_and_the_bound() {
        let plain: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&plain).unwrap();
        let zlib = z.finish().unwrap();
        let zstd = zstd::encode_all(&plain[..], 3).unwrap();
        let mut budget = 1 << 20;
        for (t, stream) in [
            (elf::ELFCOMPRESS_ZLIB, &zlib),
            (elf::ELFCOMPRESS_ZSTD, &zstd),
        ] {
            let raw = chdr(t, plain.len() as u64, stream);
            assert_eq!(decompress(&raw, &mut budget).unwrap(), plain);
            // A header that says less or more than the stream holds.
            let e = decompress(&chdr(t, 100, stream), &mut budget).unwrap_err();
            assert!(e.contains("or more") && e.contains("0x64"), "{e}");
            let e = decompress(&chdr(t, 5000, stream), &mut budget).unwrap_err();
            assert!(e.contains("0xfa0 bytes") && e.contains("0x1388"), "{e}");
        }
        assert_eq!(budget, (1 << 20) - 8000);
        // Beyond the budget: refused before anything is decompressed.
        let e = decompress(&chdr(1, u64::MAX, &zlib), &mut budget).unwrap_err();
        assert!(e.contains("beyond"), "{e}");
        // No header, an unknown type, a stream that is not one.
        assert!(decompress(&[1, 0, 0], &mut budget)
            .unwrap_err()
            .contains("Elf64_Chdr"));
        assert!(decompress(&chdr(7, 4, &zlib), &mut budget)
            .unwrap_err()
            .contains("type 7"));
        assert!(decompress(&chdr(1, 4, b"nonsense"), &mut budget)
            .unwrap_err()
            .contains("do not decompress"));
    }
}
