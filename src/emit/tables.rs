//! The table objects of a module, x86_64 ELF relocatables in the layouts of
//! `abi.rs`/`klp_build_abi.h`: [`FuncEntry`]s and [`CallbackEntry`]s -> `klp_tables.o`
//! (`klp_build_funcs[]`, `klp_build_nr_funcs`, `klp_build_callbacks[]`,
//! `klp_build_nr_callbacks`), and the [`ModuleSpec`] -> `klp_spec.o` (set, states, superseded
//! sets). Invariant: the entries are sorted by object (vmlinux first), so the runtime core can
//! turn each run of one object into one `klp_object`; each object has each kind of callback at
//! most once, and an object may have callbacks and no function (the core gives it an empty,
//! terminated `klp_func` array); the spec table holds only what the spec's check let through.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use object::write::{Object, Relocation, SectionId, Symbol, SymbolId, SymbolSection};
use object::{elf, Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind};
use object::{SymbolFlags, SymbolKind, SymbolScope};

use super::callbacks::Kind;
use crate::contract::abi;
use crate::contract::spec::{ModuleSpec, ReplaceMode};

/// One function the module replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncEntry {
    /// `None` for vmlinux, else the module name as `klp_object.name` wants it (`nf_tables`).
    pub objname: Option<String>,
    /// The function replaced (`cmdline_proc_show`).
    pub old_name: String,
    /// The global symbol of the replacement, defined by another object of the module.
    pub new_symbol: String,
    /// `old_sympos`: 0 when `old_name` is unique in its object, else its kallsyms position.
    pub sympos: u32,
}

impl FuncEntry {
    fn object(&self) -> &str {
        self.objname.as_deref().unwrap_or("vmlinux")
    }
}

/// One callback the module registers for an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackEntry {
    /// `None` for vmlinux, else the module name, as in [`FuncEntry`].
    pub objname: Option<String>,
    /// Which field of `struct klp_callbacks`.
    pub kind: Kind,
    /// The global symbol of the callback, defined by another object of the module.
    pub new_symbol: String,
    /// Where it was registered, for messages: `kernel/ksysfs.o: fix_pre_patch`.
    pub source: String,
}

impl CallbackEntry {
    fn object(&self) -> &str {
        self.objname.as_deref().unwrap_or("vmlinux")
    }
}

/// Writes `klp_tables.o` for `entries` at `path`, with no callbacks.
pub fn write_tables(entries: &[FuncEntry], path: &Path) -> anyhow::Result<()> {
    write_tables_with(entries, &[], path)
}

/// Writes `klp_tables.o` for `entries` and `callbacks` at `path`.
pub fn write_tables_with(
    entries: &[FuncEntry],
    callbacks: &[CallbackEntry],
    path: &Path,
) -> anyhow::Result<()> {
    let bytes = tables_object_with(entries, callbacks)
        .with_context(|| format!("writing the function table {}", path.display()))?;
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The bytes of `klp_tables.o` for `entries`, with no callbacks.
pub fn tables_object(entries: &[FuncEntry]) -> anyhow::Result<Vec<u8>> {
    tables_object_with(entries, &[])
}

/// The bytes of `klp_tables.o` for `entries` and `callbacks`.
pub fn tables_object_with(
    entries: &[FuncEntry],
    callbacks: &[CallbackEntry],
) -> anyhow::Result<Vec<u8>> {
    check(entries, callbacks)?;
    check_callbacks(callbacks)?;
    let mut cbs: Vec<&CallbackEntry> = callbacks.iter().collect();
    cbs.sort_by(|a, b| (&a.objname, a.kind).cmp(&(&b.objname, b.kind)));
    let mut sorted: Vec<&FuncEntry> = entries.iter().collect();
    // `None` (vmlinux) sorts first; within an object the order is fixed by name so that the same
    // patch always gives the same table.
    sorted.sort_by(|a, b| {
        (&a.objname, &a.old_name, a.sympos).cmp(&(&b.objname, &b.old_name, b.sympos))
    });

    let names = sorted
        .iter()
        .flat_map(|e| e.objname.iter().chain([&e.old_name]))
        .chain(cbs.iter().flat_map(|c| c.objname.iter()));
    let (mut t, funcs) = Tables::new(names);
    let (data, relocs) = t.func_entries(&sorted)?;
    let table_offset = t.obj.append_section_data(funcs, &data, abi::FUNC_ALIGN);
    debug_assert_eq!(table_offset, 0);
    // The callback table: always present (the core refers to it), possibly empty.
    let callbacks = t.section(abi::CALLBACKS_SECTION);
    let (cb_data, cb_relocs) = t.callback_entries(&cbs)?;
    t.obj
        .append_section_data(callbacks, &cb_data, abi::FUNC_ALIGN);
    t.bounds(
        callbacks,
        [abi::CALLBACKS_SYMBOL, abi::NR_CALLBACKS_SYMBOL],
        cbs.len() as u64 * abi::CALLBACK_SIZE,
    );
    t.relocations(funcs, abi::FUNCS_SECTION, relocs)?;
    t.relocations(callbacks, abi::CALLBACKS_SECTION, cb_relocs)?;
    t.bounds(
        funcs,
        [abi::FUNCS_SYMBOL, abi::NR_FUNCS_SYMBOL],
        sorted.len() as u64 * abi::FUNC_SIZE,
    );
    t.obj.write().map_err(|e| anyhow::anyhow!("{e}"))
}

/// An empty x86_64 relocatable with a read-only data section for each of `names`, in that order,
/// then an empty `.note.GNU-stack`: without it, ld assumes an executable stack for the module's
/// objects and warns.
fn rodata_object<const N: usize>(names: [&str; N]) -> (Object<'static>, [SectionId; N]) {
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let sections = names.map(|name| {
        obj.add_section(
            Vec::new(),
            name.as_bytes().to_vec(),
            SectionKind::ReadOnlyData,
        )
    });
    obj.add_section(
        Vec::new(),
        b".note.GNU-stack".to_vec(),
        SectionKind::Elf(elf::SHT_PROGBITS),
    );
    (obj, sections)
}

/// A table entry's pointer: (offset in the table, symbol, addend), an `R_X86_64_64`.
type Pointer = (u64, SymbolId, i64);

/// `klp_tables.o` as it is built: the object, and the string section every name points into.
struct Tables<'a> {
    obj: Object<'static>,
    strings: SymbolId,
    offsets: BTreeMap<&'a str, u64>,
}

impl<'a> Tables<'a> {
    /// The object with the function table's section (first, where the core's linker script
    /// does not care but readers of the object expect it), then the string section holding each
    /// of `names` once.
    fn new(names: impl Iterator<Item = &'a String>) -> (Self, SectionId) {
        // A plain (not SHF_MERGE) string section: relocations into it are then section symbol +
        // offset with no merge semantics for the linker to get wrong.
        let (mut obj, [funcs, strings]) =
            rodata_object([abi::FUNCS_SECTION, abi::FUNC_STRINGS_SECTION]);
        let mut offsets = BTreeMap::new();
        for s in names {
            if !offsets.contains_key(s.as_str()) {
                let mut data = s.as_bytes().to_vec();
                data.push(0);
                offsets.insert(s.as_str(), obj.append_section_data(strings, &data, 1));
            }
        }
        let strings = obj.section_symbol(strings);
        (
            Tables {
                obj,
                strings,
                offsets,
            },
            funcs,
        )
    }

    /// A read-only table section.
    fn section(&mut self, name: &str) -> SectionId {
        self.obj.add_section(
            Vec::new(),
            name.as_bytes().to_vec(),
            SectionKind::ReadOnlyData,
        )
    }

    /// The pointer to the string `s` (a name collected by `new`).
    fn string(&self, at: u64, s: &str) -> Pointer {
        (at, self.strings, self.offsets[s] as i64)
    }

    /// A symbol another object of the module defines (a replacement function, a callback).
    fn undefined(&mut self, name: &str) -> SymbolId {
        self.obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: 0,
            size: 0,
            kind: SymbolKind::Unknown,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Undefined,
            flags: SymbolFlags::None,
        })
    }

    /// The function table's bytes (entries, then their `u32` count) and pointers.
    fn func_entries(&mut self, sorted: &[&FuncEntry]) -> anyhow::Result<(Vec<u8>, Vec<Pointer>)> {
        let mut data = vec![0u8; sorted.len() * abi::FUNC_SIZE as usize];
        let mut relocs = Vec::new();
        let mut new_syms: BTreeMap<&str, SymbolId> = BTreeMap::new();
        for (i, e) in sorted.iter().enumerate() {
            let base = i as u64 * abi::FUNC_SIZE;
            if let Some(objname) = &e.objname {
                relocs.push(self.string(base + abi::FUNC_OBJNAME, objname));
            }
            relocs.push(self.string(base + abi::FUNC_OLD_NAME, &e.old_name));
            let new_sym = match new_syms.get(e.new_symbol.as_str()) {
                Some(&s) => s,
                None => {
                    let s = self.undefined(&e.new_symbol);
                    new_syms.insert(&e.new_symbol, s);
                    s
                }
            };
            relocs.push((base + abi::FUNC_NEW_FUNC, new_sym, 0));
            let sympos = base as usize + abi::FUNC_OLD_SYMPOS as usize;
            data[sympos..sympos + 8].copy_from_slice(&u64::from(e.sympos).to_le_bytes());
        }
        let nr = u32::try_from(sorted.len()).context("more than 2^32 functions")?;
        data.extend_from_slice(&nr.to_le_bytes());
        Ok((data, relocs))
    }

    /// The callback table's bytes (entries, then their `u32` count) and pointers.
    fn callback_entries(
        &mut self,
        cbs: &[&CallbackEntry],
    ) -> anyhow::Result<(Vec<u8>, Vec<Pointer>)> {
        let mut data = vec![0u8; cbs.len() * abi::CALLBACK_SIZE as usize];
        let mut relocs = Vec::new();
        for (i, c) in cbs.iter().enumerate() {
            let base = i as u64 * abi::CALLBACK_SIZE;
            if let Some(objname) = &c.objname {
                relocs.push(self.string(base + abi::CALLBACK_OBJNAME, objname));
            }
            let kind = base as usize + abi::CALLBACK_KIND as usize;
            data[kind..kind + 8].copy_from_slice(&c.kind.abi().to_le_bytes());
            let fn_sym = self.undefined(&c.new_symbol);
            relocs.push((base + abi::CALLBACK_FN, fn_sym, 0));
        }
        let nr = u32::try_from(cbs.len()).context("more than 2^32 callbacks")?;
        data.extend_from_slice(&nr.to_le_bytes());
        Ok((data, relocs))
    }

    /// The table's two global symbols: its entries (`entries_size` bytes from 0) and the `u32`
    /// count that follows them.
    fn bounds(&mut self, section: SectionId, [start, count]: [&str; 2], entries_size: u64) {
        for (name, value, size) in [(start, 0, entries_size), (count, entries_size, 4)] {
            self.obj.add_symbol(Symbol {
                name: name.as_bytes().to_vec(),
                value,
                size,
                kind: SymbolKind::Data,
                scope: SymbolScope::Dynamic,
                weak: false,
                section: SymbolSection::Section(section),
                flags: SymbolFlags::None,
            });
        }
    }

    /// The table's pointers as `R_X86_64_64` relocations.
    fn relocations(
        &mut self,
        section: SectionId,
        name: &str,
        pointers: Vec<Pointer>,
    ) -> anyhow::Result<()> {
        for (offset, symbol, addend) in pointers {
            let flags = RelocationFlags::Elf {
                r_type: elf::R_X86_64_64,
            };
            self.obj
                .add_relocation(
                    section,
                    Relocation {
                        offset,
                        symbol,
                        addend,
                        flags,
                    },
                )
                .with_context(|| format!("relocation at {name}+{offset:#x}"))?;
        }
        Ok(())
    }
}

/// Writes `klp_spec.o` for `spec` at `path`.
pub fn write_spec(spec: &ModuleSpec, path: &Path) -> anyhow::Result<()> {
    let bytes =
        spec_object(spec).with_context(|| format!("writing the spec table {}", path.display()))?;
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The bytes of `klp_spec.o` for `spec`: the set, the states and the superseded sets in the
/// layout of `abi.rs` (the spec table), one read-only section without relocations. The spec is
/// checked first ([`ModuleSpec::check`]): a module whose states the kernel would stop reading at
/// id 0 must not be built.
pub fn spec_object(spec: &ModuleSpec) -> anyhow::Result<Vec<u8>> {
    spec.check()?;
    let (set, supersedes): (u32, &[u32]) = match &spec.replace {
        ReplaceMode::Set {
            set, supersedes, ..
        } => (*set, supersedes),
        ReplaceMode::Atomic | ReplaceMode::Stacked => (0, &[]),
    };
    let nr_states = u32::try_from(spec.states.len()).context("more than 2^32 states")?;
    let nr_supersedes = u32::try_from(supersedes.len()).context("more than 2^32 sets")?;

    let mut data = vec![0u8; abi::SPEC_STATES as usize];
    let put_u32 = |data: &mut Vec<u8>, at: u64, v: u32| {
        data[at as usize..at as usize + 4].copy_from_slice(&v.to_le_bytes());
    };
    put_u32(&mut data, abi::SPEC_REPLACE_SET, set);
    put_u32(&mut data, abi::SPEC_NR_SUPERSEDES, nr_supersedes);
    put_u32(&mut data, abi::SPEC_NR_STATES, nr_states);
    for st in &spec.states {
        let mut rec = [0u8; abi::STATE_SIZE as usize];
        rec[abi::STATE_ID as usize..abi::STATE_ID as usize + 8]
            .copy_from_slice(&st.id.to_le_bytes());
        rec[abi::STATE_VERSION as usize..abi::STATE_VERSION as usize + 4]
            .copy_from_slice(&st.version.to_le_bytes());
        data.extend_from_slice(&rec);
    }
    let supersedes_at = data.len() as u64;
    for s in supersedes {
        data.extend_from_slice(&s.to_le_bytes());
    }

    let (mut obj, [section]) = rodata_object([abi::SPEC_SECTION]);
    let offset = obj.append_section_data(section, &data, abi::STATE_ALIGN);
    debug_assert_eq!(offset, 0);
    for (name, value, size) in [
        (abi::REPLACE_SET_SYMBOL, abi::SPEC_REPLACE_SET, 4),
        (abi::NR_SUPERSEDES_SYMBOL, abi::SPEC_NR_SUPERSEDES, 4),
        (abi::NR_STATES_SYMBOL, abi::SPEC_NR_STATES, 4),
        (
            abi::STATES_SYMBOL,
            abi::SPEC_STATES,
            u64::from(nr_states) * abi::STATE_SIZE,
        ),
        (
            abi::SUPERSEDES_SYMBOL,
            supersedes_at,
            u64::from(nr_supersedes) * 4,
        ),
    ] {
        obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value,
            size,
            kind: SymbolKind::Data,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        });
    }
    obj.write().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Refuses callbacks the runtime core could not register: one without a symbol, or a second one
/// of a kind for an object (`struct klp_callbacks` holds one), naming both. A callback of an
/// object without patched functions is fine: that object gets an empty function array.
fn check_callbacks(callbacks: &[CallbackEntry]) -> anyhow::Result<()> {
    let mut seen: BTreeMap<(&Option<String>, Kind), &CallbackEntry> = BTreeMap::new();
    for c in callbacks {
        if c.new_symbol.is_empty() || c.new_symbol.contains('\0') {
            bail!(
                "{} callback of {} ({}): empty or NUL-containing symbol",
                c.kind,
                c.object(),
                c.source
            );
        }
        if let Some(first) = seen.insert((&c.objname, c.kind), c) {
            bail!(
                "two {} callbacks for {}: {} and {}; struct klp_callbacks holds one of each kind per \
                 object: register one function that does both",
                c.kind,
                c.object(),
                first.source,
                c.source
            );
        }
    }
    Ok(())
}

/// Refuses tables that the runtime core or the livepatch core would reject at load time, naming
/// the entry, so the problem shows at build time instead. A module without functions is one
/// with callbacks only: the kernel refuses a `klp_object` whose `funcs` is NULL, not an empty,
/// terminated array, and runs that object's callbacks at load and unload (kpatch builds such
/// patches from `KPATCH_PRE_PATCH_CALLBACK()` and the others alone).
fn check(entries: &[FuncEntry], callbacks: &[CallbackEntry]) -> anyhow::Result<()> {
    if entries.is_empty() && callbacks.is_empty() {
        bail!(
            "no functions to patch and no callbacks: the module would do nothing; \
             a fix must change a function or register a callback"
        );
    }
    let mut seen = BTreeMap::new();
    for e in entries {
        let what = format!("function table entry {}: {}", e.object(), e.old_name);
        if let Some(m) = &e.objname {
            if m == "vmlinux" {
                bail!(
                    "{what}: objname is `vmlinux`; use None for vmlinux \
                     (klp_object.name is NULL for it)"
                );
            }
            if m.is_empty() || m.contains(['-', '.', '\0']) {
                bail!(
                    "{what}: `{m}` is not a module name as the kernel knows it \
                     (klp_object.name: no `-`, `.` or NUL; `nf-tables` is `nf_tables`)"
                );
            }
            if m.len() > abi::KLP_OBJNAME_MAX {
                bail!(
                    "{what}: module name longer than {} bytes (MODULE_NAME_LEN)",
                    abi::KLP_OBJNAME_MAX
                );
            }
        }
        if e.old_name.is_empty()
            || e.old_name.contains('\0')
            || e.old_name.len() > abi::KLP_SYMNAME_MAX
        {
            bail!(
                "{what}: old_name must be 1 to {} bytes without NUL (KSYM_NAME_LEN)",
                abi::KLP_SYMNAME_MAX
            );
        }
        if e.new_symbol.is_empty() || e.new_symbol.contains('\0') {
            bail!(
                "{what}: empty or NUL-containing replacement symbol `{}`",
                e.new_symbol.escape_debug()
            );
        }
        if let Some(prev) = seen.insert((&e.objname, &e.old_name, e.sympos), &e.new_symbol) {
            bail!(
                "{what} (sympos {}) is patched twice, by {prev} and by {}; \
                 klp_enable_patch() would refuse it",
                e.sympos,
                e.new_symbol
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(objname: Option<&str>, old: &str, sympos: u32) -> FuncEntry {
        FuncEntry {
            objname: objname.map(str::to_string),
            old_name: old.to_string(),
            new_symbol: format!("klp_new_{old}"),
            sympos,
        }
    }

    #[test]
    fn refuses_empty_duplicate_and_misspelled_objects() {
        let err = |e: &[FuncEntry]| format!("{:#}", tables_object(e).unwrap_err());
        assert!(err(&[]).contains("no functions to patch and no callbacks"));
        let dup = [entry(None, "foo", 0), entry(None, "foo", 0)];
        assert!(
            err(&dup).contains("vmlinux: foo (sympos 0) is patched twice"),
            "{}",
            err(&dup)
        );
        assert!(err(&[entry(Some("vmlinux"), "foo", 0)]).contains("use None for vmlinux"));
        assert!(
            err(&[entry(Some("nf-tables"), "foo", 0)]).contains("`nf-tables` is not a module name")
        );
    }

    #[test]
    fn callbacks_alone_make_a_table() {
        let cb = |objname: Option<&str>, kind| CallbackEntry {
            objname: objname.map(str::to_string),
            kind,
            new_symbol: format!("__klp_cb.0.{kind}"),
            source: "kernel/ksysfs.o: cb".into(),
        };
        // vmlinux and a module, neither with a function: two callbacks-only objects.
        let cbs = [
            cb(None, Kind::PrePatch),
            cb(None, Kind::PostUnpatch),
            cb(Some("xfs"), Kind::PostPatch),
        ];
        let bytes = tables_object_with(&[], &cbs).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("klp_tables.o");
        std::fs::write(&path, bytes).unwrap();
        let parsed: crate::elf::ElfObject<crate::elf::Any> = crate::elf::read_file(&path).unwrap();
        let funcs = parsed.section_by_name(abi::FUNCS_SECTION).unwrap();
        assert_eq!(
            parsed.data(funcs),
            0u32.to_le_bytes(),
            "no function, a count of 0"
        );
        let table = parsed.section_by_name(abi::CALLBACKS_SECTION).unwrap();
        let data = parsed.data(table);
        assert_eq!(data.len(), 3 * abi::CALLBACK_SIZE as usize + 4);
        // Two of one kind for one object are still refused.
        let twice = [cb(None, Kind::PrePatch), cb(None, Kind::PrePatch)];
        let e = format!("{:#}", tables_object_with(&[], &twice).unwrap_err());
        assert!(e.contains("two pre-patch callbacks for vmlinux"), "{e}");
    }

    #[test]
    fn same_name_at_two_positions_is_two_entries() {
        let bytes = tables_object(&[entry(None, "show", 1), entry(None, "show", 2)]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("klp_tables.o");
        std::fs::write(&path, bytes).unwrap();
        let parsed: crate::elf::ElfObject<crate::elf::Any> = crate::elf::read_file(&path).unwrap();
        let funcs = parsed
            .section_by_name(abi::FUNCS_SECTION)
            .expect("the function table");
        let data = parsed.data(funcs);
        let size = abi::FUNC_SIZE as usize;
        // klp_build_funcs[2] then klp_build_nr_funcs (a u32): two entries, not one merged.
        assert_eq!(data.len(), 2 * size + 4, "{data:x?}");
        assert_eq!(u32::from_le_bytes(data[2 * size..].try_into().unwrap()), 2);
        let sympos = |i: usize| {
            let at = i * size + abi::FUNC_OLD_SYMPOS as usize;
            u64::from_le_bytes(data[at..at + 8].try_into().unwrap())
        };
        assert_eq!((sympos(0), sympos(1)), (1, 2));
    }
}
