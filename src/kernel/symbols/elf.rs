//! ELF symbol tables: a linked vmlinux and module `.ko` files. Input: the file's `.symtab` (read
//! through `object`'s low-level API and a read cache, so a vmlinux with debug info is not read
//! whole). Output: entries in the order the kernel counts them. Invariant: vmlinux entries are
//! what `nm -n | scripts/mksysmap | scripts/kallsyms` keeps, sorted by `compare_symbols()`; module
//! entries are the core symbols `layout_symtab()` keeps, in symbol table order.

use std::path::Path;

use anyhow::bail;
use object::elf::{self, FileHeader64};
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::read::ReadCache;
use object::LittleEndian as LE;

use super::{Bind, Entry};

/// The symbol table of an ELF file, with what `nm` and the module loader look at.
pub(super) struct ElfSymbols {
    pub(super) e_type: u16,
    sections: Vec<ElfSection>,
    symbols: Vec<ElfSym>,
}

struct ElfSection {
    name: String,
    sh_type: u32,
    sh_flags: u64,
}

struct ElfSym {
    name: String,
    st_info: u8,
    /// `st_shndx`, extended indices resolved.
    shndx: u32,
    st_value: u64,
}

impl ElfSym {
    /// The listing entry of this symbol with `nm` letter `ty`: local or global by `st_info`
    /// (weak counts as global, as `nm` uppercases it).
    fn entry(&self, ty: char, place: (u32, u64), file: Option<u32>) -> Entry {
        Entry {
            name: self.name.clone(),
            addr: self.st_value,
            ty,
            bind: if self.st_info >> 4 == elf::STB_LOCAL {
                Bind::Local
            } else {
                Bind::Global
            },
            place,
            file,
        }
    }
}

/// The symbol table of a linked vmlinux (or whatever ELF `--symbols` names), streamed: a `-dbg`
/// vmlinux is not read whole.
pub(super) fn read(path: &Path) -> anyhow::Result<ElfSymbols> {
    let file = crate::input::open(path, crate::input::Kind::Vmlinux, "")?;
    let cache = ReadCache::new(file);
    parse(path, &cache)
}

/// The symbol table of a module file, decompressed first when it is `.ko.xz`, `.ko.zst` or
/// `.ko.gz`.
pub(super) fn read_module(path: &Path) -> anyhow::Result<ElfSymbols> {
    let bytes = crate::input::read_module(path, "")?;
    parse(path, bytes.as_slice())
}

fn parse<'d, R: object::ReadRef<'d>>(path: &Path, data: R) -> anyhow::Result<ElfSymbols> {
    let bad =
        |what: &str, e: object::read::Error| anyhow::anyhow!("{}: {what}: {e}", path.display());
    let header =
        FileHeader64::<LE>::parse(data).map_err(|e| bad("not an ELF64 little-endian file", e))?;
    let endian = header.endian().map_err(|e| bad("ELF header", e))?;
    if header.e_machine(endian) != elf::EM_X86_64 {
        bail!(
            "{}: e_machine {} is not x86_64: only x86_64 is supported",
            path.display(),
            header.e_machine(endian)
        );
    }
    let table = header
        .sections(endian, data)
        .map_err(|e| bad("section table", e))?;
    let mut sections = Vec::with_capacity(table.len());
    for sh in table.iter() {
        let name = table
            .section_name(endian, sh)
            .map_err(|e| bad("section name", e))?;
        sections.push(ElfSection {
            name: String::from_utf8_lossy(name).into_owned(),
            sh_type: sh.sh_type(endian),
            sh_flags: sh.sh_flags(endian),
        });
    }
    let symtab = table
        .symbols(endian, data, elf::SHT_SYMTAB)
        .map_err(|e| bad(".symtab", e))?;
    let mut symbols = Vec::with_capacity(symtab.len());
    for (index, sym) in symtab.enumerate() {
        let name = symtab
            .symbol_name(endian, sym)
            .map_err(|e| bad("symbol name", e))?;
        let raw = sym.st_shndx(endian);
        let shndx = if raw == elf::SHN_XINDEX {
            symtab.shndx(endian, index).unwrap_or(0)
        } else {
            u32::from(raw)
        };
        symbols.push(ElfSym {
            name: String::from_utf8_lossy(name).into_owned(),
            st_info: sym.st_info(),
            shndx,
            st_value: sym.st_value(endian),
        });
    }
    Ok(ElfSymbols {
        e_type: header.e_type(endian),
        sections,
        symbols,
    })
}

/// The letter `nm` prints for a defined symbol, from its section's flags as BFD sees them;
/// `None` for what `scripts/mksysmap` or `scripts/kallsyms` drop (undefined, absolute, debug).
fn nm_letter(elf: &ElfSymbols, s: &ElfSym) -> Option<char> {
    let bind = s.st_info >> 4;
    let kind = s.st_info & 0xf;
    if s.shndx == u32::from(elf::SHN_UNDEF) || bind == elf::STB_GNU_UNIQUE {
        return None;
    }
    if bind == elf::STB_WEAK {
        return Some(if kind == elf::STT_OBJECT { 'V' } else { 'W' });
    }
    let letter = if s.shndx == u32::from(elf::SHN_COMMON) {
        'c'
    } else if s.shndx >= u32::from(elf::SHN_LORESERVE) && s.shndx <= 0xffff {
        // SHN_ABS: `a` is dropped by mksysmap, `A` by kallsyms.
        return None;
    } else {
        let sec = elf.sections.get(s.shndx as usize)?;
        let flags = sec.sh_flags;
        if flags & u64::from(elf::SHF_ALLOC) == 0 {
            return None;
        } else if flags & u64::from(elf::SHF_EXECINSTR) != 0 {
            't'
        } else if sec.sh_type == elf::SHT_NOBITS {
            'b'
        } else if flags & u64::from(elf::SHF_WRITE) == 0 {
            'r'
        } else {
            'd'
        }
    };
    Some(if bind == elf::STB_LOCAL {
        letter
    } else {
        letter.to_ascii_uppercase()
    })
}

/// Names `scripts/mksysmap` (6.1) filters out of `nm -n` and `scripts/kallsyms` ignores.
fn kallsyms_ignores(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "kallsyms_addresses",
        "kallsyms_offsets",
        "kallsyms_relative_base",
        "kallsyms_num_syms",
        "kallsyms_names",
        "kallsyms_markers",
        "kallsyms_token_table",
        "kallsyms_token_index",
        "kallsyms_seqs_of_names",
        "_SDA_BASE_",
        "_SDA2_BASE_",
        "L0",
    ];
    const PREFIXES: &[&str] = &[
        "$",
        ".L",
        "__crc_",
        "__kstrtab_",
        "__kstrtabns_",
        "__efistub_",
        "__kvm_nvhe_$",
        "__kvm_nvhe_.L",
        "__AArch64ADRPThunk_",
        "__ARMV5PILongThunk_",
        "__ARMV7PILongThunk_",
        "__ThumbV7PILongThunk_",
        "__LA25Thunk_",
        "__microLA25Thunk_",
        "__kcfi_typeid_",
    ];
    const SUFFIXES: &[&str] = &["_from_arm", "_from_thumb", "_veneer"];
    EXACT.contains(&name)
        || PREFIXES.iter().any(|p| name.starts_with(p))
        || SUFFIXES.iter().any(|p| name.ends_with(p))
        || name.contains(".long_branch.")
        || name.contains(".plt_branch.")
}

/// `scripts/kallsyms`' `may_be_linker_script_provide_symbol()`.
fn linker_provided(name: &str) -> bool {
    name.len() >= 8
        && name.starts_with("__")
        && (name[2..].starts_with("start_")
            || name[2..].starts_with("stop_")
            || name[2..].starts_with("end_")
            || name.ends_with("_start")
            || name.ends_with("_end"))
}

/// vmlinux symbols in kallsyms order: `nm -n` (address, then name), filtered like
/// `scripts/mksysmap` and `scripts/kallsyms`, percpu symbols made `A`
/// (`CONFIG_KALLSYMS_ABSOLUTE_PERCPU`), sorted by `compare_symbols()`.
pub(super) fn vmlinux_entries(elf: &ElfSymbols) -> (Vec<Entry>, Vec<String>) {
    let mut files: Vec<String> = Vec::new();
    let mut current_file: Option<u32> = None;
    let mut entries = Vec::new();
    for s in &elf.symbols {
        let kind = s.st_info & 0xf;
        let bind = s.st_info >> 4;
        if kind == elf::STT_FILE {
            files.push(s.name.clone());
            current_file = Some(files.len() as u32 - 1);
            continue;
        }
        if bind != elf::STB_LOCAL {
            current_file = None;
        }
        if kind == elf::STT_SECTION || s.name.is_empty() || kallsyms_ignores(&s.name) {
            continue;
        }
        let Some(ty) = nm_letter(elf, s) else {
            continue;
        };
        entries.push(s.entry(ty, (0, 0), current_file));
    }
    let find = |n: &str| entries.iter().find(|e| e.name == n).map(|e| e.addr);
    if let (Some(start), Some(end)) = (find("__per_cpu_start"), find("__per_cpu_end")) {
        for e in entries
            .iter_mut()
            .filter(|e| e.addr >= start && e.addr <= end)
        {
            e.ty = 'A';
        }
    }
    entries.sort_by(|a, b| {
        let weak = |e: &Entry| matches!(e.ty, 'w' | 'W');
        let underscores = |e: &Entry| e.name.bytes().take_while(|&c| c == b'_').count();
        a.addr
            .cmp(&b.addr)
            .then(weak(a).cmp(&weak(b)))
            .then(linker_provided(&a.name).cmp(&linker_provided(&b.name)))
            .then(underscores(a).cmp(&underscores(b)))
            .then(a.name.as_bytes().cmp(b.name.as_bytes()))
    });
    for e in &mut entries {
        e.place = (0, e.addr);
    }
    (entries, files)
}

/// A module's core symbols in symbol table order, as `layout_symtab()` keeps them with
/// `CONFIG_KALLSYMS_ALL`: named, defined in an allocated section that is not `.init*`, or in
/// `.data..percpu`; `.modinfo` and `__versions` lose `SHF_ALLOC` at load.
pub(super) fn module_entries(elf: &ElfSymbols) -> Vec<Entry> {
    let shnum = elf.sections.len() as u32;
    let mut entries = Vec::new();
    for s in &elf.symbols {
        if s.name.is_empty()
            || s.shndx == 0
            || s.shndx >= shnum
            || s.shndx >= u32::from(elf::SHN_LORESERVE)
        {
            continue;
        }
        let sec = &elf.sections[s.shndx as usize];
        let percpu = sec.name == ".data..percpu";
        let alloc = sec.sh_flags & u64::from(elf::SHF_ALLOC) != 0
            && sec.name != ".modinfo"
            && sec.name != "__versions";
        if !percpu && (!alloc || sec.name.starts_with(".init")) {
            continue;
        }
        let ty = if percpu { Some('a') } else { nm_letter(elf, s) };
        let Some(ty) = ty else { continue };
        entries.push(s.entry(ty, (s.shndx, s.st_value), None));
    }
    entries
}
