//! The tables of one relocatable object. Input: built by `read` or by the emit stage. Output: what
//! `write` serialises. Invariant: section 0 and symbol 0 are the ELF null entries; symtab, strtab
//! and shstrtab are placeholders whose contents are regenerated on write, so the model holds names
//! and links, never string offsets.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use object::elf;

use super::ids::{Role, SectionId, SymbolId};

/// One relocatable ELF64 x86_64 object.
#[derive(Debug, Clone)]
pub struct ElfObject<R: Role> {
    /// Where it was read from or will be written to; used in every error and [`super::Location`].
    pub path: PathBuf,
    /// `e_ident[EI_OSABI]`.
    pub os_abi: u8,
    /// `e_machine`: x86_64 (`EM_X86_64`) for every object klp-build handles.
    pub e_machine: u16,
    /// `e_flags`.
    pub e_flags: u32,
    /// Sections by id; index 0 is the null section. Private: changed only through
    /// [`ElfObject::section_mut`] and [`ElfObject::add_section`], which drop the relocation index.
    pub(super) sections: Vec<Section<R>>,
    /// Symbols by id; index 0 is the null symbol. Private: changed only through
    /// [`ElfObject::symbol_mut`] and [`ElfObject::add_symbol`], which drop the per-section index.
    pub(super) symbols: Vec<Symbol<R>>,
    /// Live symbols by the section that defines them, sorted by value: built on first use by
    /// [`ElfObject::symbols_in`], dropped by every change of the symbols. Finding the symbol that
    /// covers a relocation's target scanned every symbol for every relocation: 72,000
    /// relocations by 3,400 symbols in fs/ext4/super.o.
    by_section: OnceLock<HashMap<usize, Vec<usize>>>,
    /// Relocation sections by the section they apply to, and their relocations' positions in
    /// offset order: built on first use, dropped by every change of the sections. Finding a
    /// section's relocations scanned every section (2,420 in fs/ext4/super.o) for each function
    /// and table entry compared.
    relocs_index: OnceLock<RelocsIndex>,
}

/// See [`ElfObject::relocs_index`].
#[derive(Debug, Clone, Default)]
struct RelocsIndex {
    /// Target section -> its first live relocation section.
    rela: HashMap<usize, usize>,
    /// Target section -> positions into that section's relocations, by offset (ties in order).
    by_offset: HashMap<usize, Vec<usize>>,
}

/// One section header and its contents.
#[derive(Debug, Clone)]
pub struct Section<R: Role> {
    /// The section name (`sh_name`).
    pub name: String,
    /// `sh_type`; for `Relocs`, `Group` and the string/symbol tables it must agree with `content`.
    pub sh_type: u32,
    /// `sh_flags`.
    pub sh_flags: u64,
    /// `sh_addr`: 0 in relocatable objects, kept for fidelity.
    pub sh_addr: u64,
    /// `sh_addralign`.
    pub sh_addralign: u64,
    /// `sh_entsize`; regenerated for relocation and symbol tables.
    pub sh_entsize: u64,
    /// `sh_link` for sections whose link is another section (`SHF_LINK_ORDER`, notes); ignored for
    /// relocation, group and symbol tables, whose links are implied.
    pub link: Option<SectionId<R>>,
    /// `sh_info` of sections other than relocations and groups (kept verbatim).
    pub info: u32,
    /// The contents, by role.
    pub content: Content<R>,
    /// Deleted sections are not written; their ids stay valid.
    pub deleted: bool,
}

/// Section contents by role.
#[derive(Debug, Clone)]
pub enum Content<R: Role> {
    /// Bytes of a section that occupies file space (`SHT_PROGBITS`, `SHT_NOTE`, ...).
    Data(Vec<u8>),
    /// `SHT_NOBITS`: only a size.
    Nobits(u64),
    /// `SHT_RELA` for `target` (`sh_info`); `sh_link` is the symbol table.
    Relocs {
        /// The section the relocations apply to.
        target: SectionId<R>,
        /// The relocations, in file order.
        relocs: Vec<Reloc<R>>,
    },
    /// `SHT_GROUP`: `sh_info` names the signature symbol.
    Group {
        /// The group flags word (`GRP_COMDAT`).
        flags: u32,
        /// The signature symbol.
        signature: SymbolId<R>,
        /// Member sections.
        members: Vec<SectionId<R>>,
    },
    /// The symbol table, regenerated from [`ElfObject::symbols`].
    Symtab,
    /// `SHT_SYMTAB_SHNDX`, regenerated when needed.
    SymtabShndx,
    /// The symbol string table, regenerated.
    Strtab,
    /// The section name string table, regenerated.
    Shstrtab,
}

/// One relocation (`Elf64_Rela`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloc<R: Role> {
    /// `r_offset`: offset in the target section.
    pub r_offset: u64,
    /// The symbol (`ELF64_R_SYM`); symbol 0 for none.
    pub sym: SymbolId<R>,
    /// `ELF64_R_TYPE` (`R_X86_64_*`).
    pub r_type: u32,
    /// `r_addend`.
    pub r_addend: i64,
}

/// Where a symbol is defined (`st_shndx`, resolved through `SHT_SYMTAB_SHNDX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymSection<R: Role> {
    /// `SHN_UNDEF`.
    Undef,
    /// `SHN_ABS`.
    Abs,
    /// `SHN_COMMON`.
    Common,
    /// Defined in a section.
    Section(SectionId<R>),
    /// Another reserved index, such as `SHN_LIVEPATCH` (0xff20) of livepatch modules.
    Reserved(u16),
}

/// One symbol (`Elf64_Sym`).
#[derive(Debug, Clone)]
pub struct Symbol<R: Role> {
    /// The name (`st_name`); empty for section symbols and the null symbol.
    pub name: String,
    /// `st_info`: binding in the high nibble, type in the low one.
    pub st_info: u8,
    /// `st_other`: visibility.
    pub st_other: u8,
    /// `st_shndx`.
    pub section: SymSection<R>,
    /// `st_value`: offset in its section for defined symbols of relocatable objects.
    pub st_value: u64,
    /// `st_size`.
    pub st_size: u64,
    /// Deleted symbols are not written; relocations must not refer to them.
    pub deleted: bool,
}

impl<R: Role> Symbol<R> {
    /// An undefined global (`STT_NOTYPE`): a reference the module loader or the livepatch core
    /// resolves, such as an exported kernel function the replacement calls.
    pub fn undefined_global(name: impl Into<String>) -> Self {
        Symbol {
            name: name.into(),
            st_info: elf::STB_GLOBAL << 4,
            st_other: 0,
            section: SymSection::Undef,
            st_value: 0,
            st_size: 0,
            deleted: false,
        }
    }

    /// `STB_*` from `st_info`.
    pub fn bind(&self) -> u8 {
        self.st_info >> 4
    }
    /// `STT_*` from `st_info`.
    pub fn kind(&self) -> u8 {
        self.st_info & 0xf
    }
    /// Local binding: ELF puts these before all others in the symbol table.
    pub fn is_local(&self) -> bool {
        self.bind() == elf::STB_LOCAL
    }
    /// `STT_SECTION`.
    pub fn is_section(&self) -> bool {
        self.kind() == elf::STT_SECTION
    }
    /// `STT_FUNC`.
    pub fn is_func(&self) -> bool {
        self.kind() == elf::STT_FUNC
    }
    /// `STT_OBJECT`.
    pub fn is_object(&self) -> bool {
        self.kind() == elf::STT_OBJECT
    }
    /// Undefined (`SHN_UNDEF`).
    pub fn is_undef(&self) -> bool {
        matches!(self.section, SymSection::Undef)
    }
    /// The section it is defined in, if any.
    pub fn section_id(&self) -> Option<SectionId<R>>
    where
        R: Copy,
    {
        match self.section {
            SymSection::Section(s) => Some(s),
            _ => None,
        }
    }
}

impl<R: Role> ElfObject<R> {
    /// A new empty object with only the null entries, to be filled by the emit stage.
    pub fn new(path: PathBuf) -> Self {
        ElfObject {
            path,
            os_abi: 0,
            e_machine: elf::EM_X86_64,
            e_flags: 0,
            sections: vec![Section {
                name: String::new(),
                sh_type: elf::SHT_NULL,
                sh_flags: 0,
                sh_addr: 0,
                sh_addralign: 0,
                sh_entsize: 0,
                link: None,
                info: 0,
                content: Content::Data(Vec::new()),
                deleted: false,
            }],
            symbols: vec![Symbol {
                name: String::new(),
                st_info: 0,
                st_other: 0,
                section: SymSection::Undef,
                st_value: 0,
                st_size: 0,
                deleted: false,
            }],
            by_section: OnceLock::new(),
            relocs_index: OnceLock::new(),
        }
    }

    /// The section `id`.
    pub fn section(&self, id: SectionId<R>) -> &Section<R> {
        &self.sections[id.index()]
    }

    /// Every section by id, deleted ones included (index 0 is the null section): read-only, so
    /// the indices stay right.
    pub fn sections(&self) -> &[Section<R>] {
        &self.sections
    }

    /// Every symbol by id, deleted ones included (index 0 is the null symbol): read-only.
    pub fn symbols(&self) -> &[Symbol<R>] {
        &self.symbols
    }

    /// The section `id`, mutable.
    pub fn section_mut(&mut self, id: SectionId<R>) -> &mut Section<R> {
        self.relocs_index.take();
        &mut self.sections[id.index()]
    }

    /// The symbol `id`.
    pub fn symbol(&self, id: SymbolId<R>) -> &Symbol<R> {
        &self.symbols[id.index()]
    }

    /// The symbol `id`, mutable.
    pub fn symbol_mut(&mut self, id: SymbolId<R>) -> &mut Symbol<R> {
        self.by_section.take();
        &mut self.symbols[id.index()]
    }

    /// The live symbols defined in section `sec`, by value (ties in id order).
    pub fn symbols_in(&self, sec: SectionId<R>) -> impl Iterator<Item = (SymbolId<R>, &Symbol<R>)> {
        self.in_section(sec)
            .iter()
            .map(|&i| (SymbolId::new(i), &self.symbols[i]))
    }

    /// The ids of the live symbols of `sec`, by value (ties in id order), from `by_section`.
    fn in_section(&self, sec: SectionId<R>) -> &[usize] {
        let index = self.by_section.get_or_init(|| {
            let mut m: HashMap<usize, Vec<usize>> = HashMap::new();
            for (id, s) in self.live_symbols() {
                if let Some(sec) = s.section_id() {
                    m.entry(sec.index()).or_default().push(id.index());
                }
            }
            for v in m.values_mut() {
                v.sort_by_key(|&i| (self.symbols[i].st_value, i));
            }
            m
        });
        index.get(&sec.index()).map_or(&[][..], Vec::as_slice)
    }

    /// The function of `sec` that covers `off`, the first in symbol order where several do
    /// (aliases: `__x64_sys_getegid` and `__do_sys_getegid` share their code). A binary search
    /// in [`ElfObject::symbols_in`]'s index: the relocations of kernel/sched/core.o each asked
    /// this with a scan of the symbol table.
    pub fn func_at(&self, sec: SectionId<R>, off: u64) -> Option<SymbolId<R>> {
        let ids = self.in_section(sec);
        let n = ids.partition_point(|&i| self.symbols[i].st_value <= off);
        ids[..n]
            .iter()
            .filter(|&&i| {
                let s = &self.symbols[i];
                s.is_func() && off < s.st_value.saturating_add(s.st_size)
            })
            .min()
            .map(|&i| SymbolId::new(i))
    }

    /// Ids and sections that are not deleted, null section excluded.
    pub fn live_sections(&self) -> impl Iterator<Item = (SectionId<R>, &Section<R>)> {
        self.sections
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, s)| !s.deleted)
            .map(|(i, s)| (SectionId::new(i), s))
    }

    /// Ids and symbols that are not deleted, null symbol excluded.
    pub fn live_symbols(&self) -> impl Iterator<Item = (SymbolId<R>, &Symbol<R>)> {
        self.symbols
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, s)| !s.deleted)
            .map(|(i, s)| (SymbolId::new(i), s))
    }

    /// The first live section named `name`.
    pub fn section_by_name(&self, name: &str) -> Option<SectionId<R>> {
        self.live_sections()
            .find(|(_, s)| s.name == name)
            .map(|(i, _)| i)
    }

    /// The relocation section that applies to `target`, if any.
    pub fn relocs_for(&self, target: SectionId<R>) -> Option<SectionId<R>> {
        self.relocs_index()
            .rela
            .get(&target.index())
            .map(|&i| SectionId::new(i))
    }

    fn relocs_index(&self) -> &RelocsIndex {
        self.relocs_index.get_or_init(|| {
            let mut ix = RelocsIndex::default();
            for (id, s) in self.live_sections() {
                if let Content::Relocs { target, relocs } = &s.content {
                    if ix.rela.contains_key(&target.index()) {
                        continue;
                    }
                    ix.rela.insert(target.index(), id.index());
                    let mut order: Vec<usize> = (0..relocs.len()).collect();
                    order.sort_by_key(|&i| (relocs[i].r_offset, i));
                    ix.by_offset.insert(target.index(), order);
                }
            }
            ix
        })
    }

    /// The relocations of `target` at offsets in `[start, end)`, in offset order.
    pub fn relocs_between(&self, target: SectionId<R>, start: u64, end: u64) -> Vec<&Reloc<R>> {
        let relocs = self.relocs_of(target);
        let Some(order) = self.relocs_index().by_offset.get(&target.index()) else {
            return Vec::new();
        };
        let from = order.partition_point(|&i| relocs[i].r_offset < start);
        order[from..]
            .iter()
            .map(|&i| &relocs[i])
            .take_while(|r| r.r_offset < end)
            .collect()
    }

    /// The relocations that apply to `target` (empty when it has none).
    pub fn relocs_of(&self, target: SectionId<R>) -> &[Reloc<R>] {
        match self.relocs_for(target).map(|r| &self.section(r).content) {
            Some(Content::Relocs { relocs, .. }) => relocs,
            _ => &[],
        }
    }

    /// The relocations of `target` by offset, the first one where several share an offset: for
    /// tables read entry by entry (`.altinstructions`, `.orc_unwind_ip` with thousands of
    /// entries), where a search per entry made reading them quadratic.
    pub fn relocs_by_offset(&self, target: SectionId<R>) -> HashMap<u64, &Reloc<R>> {
        let mut m = HashMap::new();
        for r in self.relocs_of(target) {
            m.entry(r.r_offset).or_insert(r);
        }
        m
    }

    /// The `STT_SECTION` symbol of `sec`, if the object has one.
    pub fn section_symbol(&self, sec: SectionId<R>) -> Option<SymbolId<R>> {
        self.live_symbols()
            .find(|(_, s)| s.is_section() && s.section == SymSection::Section(sec))
            .map(|(i, _)| i)
    }

    /// The `STT_SECTION` symbol of `sec`, added when the object has none (relocations against
    /// sections that had no symbol yet, such as a copied string table).
    pub fn ensure_section_symbol(&mut self, sec: SectionId<R>) -> SymbolId<R> {
        if let Some(s) = self.section_symbol(sec) {
            return s;
        }
        self.add_symbol(Symbol {
            name: String::new(),
            st_info: (elf::STB_LOCAL << 4) | elf::STT_SECTION,
            st_other: 0,
            section: SymSection::Section(sec),
            st_value: 0,
            st_size: 0,
            deleted: false,
        })
    }

    /// The first live symbol named `name` (not a section symbol).
    pub fn symbol_by_name(&self, name: &str) -> Option<SymbolId<R>> {
        self.live_symbols()
            .find(|(_, s)| !s.is_section() && s.name == name)
            .map(|(i, _)| i)
    }

    /// The bytes of a section with file contents, or an empty slice.
    pub fn data(&self, id: SectionId<R>) -> &[u8] {
        match &self.section(id).content {
            Content::Data(d) => d,
            _ => &[],
        }
    }

    /// The size in memory of a section's contents.
    pub fn section_size(&self, id: SectionId<R>) -> u64 {
        match &self.section(id).content {
            Content::Data(d) => d.len() as u64,
            Content::Nobits(n) => *n,
            _ => 0,
        }
    }

    /// The name to show for a symbol: its own name, or for a section symbol its section's name.
    pub fn symbol_display_name(&self, id: SymbolId<R>) -> &str {
        let s = self.symbol(id);
        match (s.is_section(), s.section) {
            (true, SymSection::Section(sec)) => &self.section(sec).name,
            _ => &s.name,
        }
    }

    /// Appends a section and returns its id.
    pub fn add_section(&mut self, section: Section<R>) -> SectionId<R> {
        self.relocs_index.take();
        self.sections.push(section);
        SectionId::new(self.sections.len() - 1)
    }

    /// Appends a symbol and returns its id (write puts locals first, whatever the order here).
    pub fn add_symbol(&mut self, symbol: Symbol<R>) -> SymbolId<R> {
        self.by_section.take();
        self.symbols.push(symbol);
        SymbolId::new(self.symbols.len() - 1)
    }

    /// The display name of this object for messages (`fs/proc/cmdline.o`).
    pub fn display(&self) -> String {
        self.path.display().to_string()
    }
}

impl<R: Role> Section<R> {
    /// A new section with contents and defaults for the rest of the header.
    pub fn new(
        name: &str,
        sh_type: u32,
        sh_flags: u64,
        sh_addralign: u64,
        content: Content<R>,
    ) -> Self {
        Section {
            name: name.to_string(),
            sh_type,
            sh_flags,
            sh_addr: 0,
            sh_addralign,
            sh_entsize: 0,
            link: None,
            info: 0,
            content,
            deleted: false,
        }
    }

    /// The `SHT_RELA` section `.rela<target_name>` holding `relocs` for `target`.
    pub fn rela(target_name: &str, target: SectionId<R>, relocs: Vec<Reloc<R>>) -> Self {
        let mut s = Section::new(
            &format!(".rela{target_name}"),
            elf::SHT_RELA,
            u64::from(elf::SHF_INFO_LINK),
            8,
            Content::Relocs { target, relocs },
        );
        s.sh_entsize = 24;
        s
    }

    /// `SHF_ALLOC`: the section is loaded into memory.
    pub fn is_alloc(&self) -> bool {
        self.sh_flags & u64::from(elf::SHF_ALLOC) != 0
    }

    /// `SHF_EXECINSTR`: text.
    pub fn is_text(&self) -> bool {
        self.sh_flags & u64::from(elf::SHF_EXECINSTR) != 0
    }
}
