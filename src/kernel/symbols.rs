//! Symbols of the running kernel, for klp relocations `<name>,<sympos>`. Input: an ELF vmlinux,
//! a System.map or `/proc/kallsyms` listing, and module `.ko` files. Output: [`SymbolListing`],
//! which gives the sympos of a translation unit's symbol. Invariant: each object's entries are in
//! the order the kernel's `klp_find_object_symbol()` counts them: kallsyms order for vmlinux (the
//! address-sorted table `scripts/kallsyms` builds), the core symbol table order for a module.
//! Same-named statics are told apart by FILE symbols where the source has them (an ELF vmlinux),
//! else by the unit's neighbours in address order (`neighbours.rs`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::bail;

mod elf;
mod funnel;
mod neighbours;
mod text;

pub use neighbours::Support;

/// The symbols of vmlinux and of modules, each in the order livepatch counts them.
#[derive(Clone)]
pub struct SymbolListing {
    origin: PathBuf,
    objects: HashMap<String, ObjectSymbols>,
}

/// What the original object of a translation unit tells about its symbols, in the object's
/// section order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslationUnit {
    /// The source file (`fs/proc/cmdline.c`).
    pub source: String,
    /// Functions and data objects defined in the unit, in section order.
    pub symbols: Vec<TuSymbol>,
}

/// One function or data object of a translation unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TuSymbol {
    /// The symbol name, suffixes included (`show`, `foo.cold`, `__key.3`).
    pub name: String,
    /// Function or data.
    pub kind: TuKind,
    /// Its section in the `-ffunction-sections -fdata-sections` build (`.text.foo`, `.bss.bar`,
    /// `.init.text`, `.data..read_mostly`).
    pub section: String,
    /// `STB_LOCAL`.
    pub local: bool,
}

/// `STT_FUNC` or `STT_OBJECT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TuKind {
    /// A function.
    Func,
    /// A data object.
    Object,
}

/// A symbol whose position cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum SymposError {
    /// The listing has no symbol of that name in that object.
    #[error("{}", missing_message(.object, .name, .tu, .listing, *.object_listed))]
    Missing {
        /// `vmlinux` or the module name.
        object: String,
        /// The symbol name.
        name: String,
        /// The translation unit that refers to it.
        tu: String,
        /// The listing's file.
        listing: String,
        /// Whether the listing has the object at all (else: a module that was not added).
        object_listed: bool,
    },
    /// The name occurs several times and the unit's instance cannot be told with confidence.
    #[error("{0}")]
    Ambiguous(Box<Ambiguity>),
}

/// The details of [`SymposError::Ambiguous`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ambiguity {
    /// `vmlinux` or the module name.
    pub object: String,
    /// The symbol name.
    pub name: String,
    /// The translation unit that refers to it.
    pub tu: String,
    /// The listing's file.
    pub listing: String,
    /// Why no candidate could be chosen.
    pub reason: String,
    /// Every same-named symbol of the object, in kallsyms order.
    pub candidates: Vec<Candidate>,
}

impl fmt::Display for Ambiguity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ambiguity {
            object,
            name,
            tu,
            listing,
            reason,
            candidates,
        } = self;
        write!(
            f,
            "cannot tell which `{name}` in {object} belongs to {tu}: {reason}; {} candidates in {listing}:",
            candidates.len()
        )?;
        for c in candidates {
            write!(
                f,
                "\n  sympos {}: {:016x} {} {name}",
                c.sympos, c.addr, c.ty
            )?;
            if let Some(file) = &c.file {
                write!(f, " (file {file})")?;
            }
            write!(
                f,
                " between [{}] and [{}]: {}",
                c.before.join(", "),
                c.after.join(", "),
                c.support
            )?;
        }
        write!(
            f,
            "\n  pass an ELF vmlinux with its symbol table (FILE symbols tell translation units \
             apart), e.g. from linux-image-<release>-dbg, as --symbols"
        )
    }
}

/// One same-named symbol of an object, as an error shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its sympos (1-based position among the same-named symbols).
    pub sympos: u32,
    /// Its address in the listing (a section offset for a `.ko`).
    pub addr: u64,
    /// Its kallsyms type letter.
    pub ty: char,
    /// The FILE symbol its local belongs to, when the listing has them.
    pub file: Option<String>,
    /// The names just before it in address order, nearest last.
    pub before: Vec<String>,
    /// The names just after it in address order, nearest first.
    pub after: Vec<String>,
    /// How the unit's symbols surround it.
    pub support: Support,
}

/// How a sympos was decided, for reports and `--debug` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymposRule {
    /// The name occurs once in the object.
    Unique,
    /// The unit's symbol is global and the object has one global of that name.
    OnlyGlobal,
    /// The unit's symbol is local and the object has one non-global of that name.
    OnlyLocal,
    /// One candidate's FILE symbol names the unit's source file.
    File,
    /// The unit's other symbols surround this candidate in order, better than any other.
    Neighbours {
        /// How the chosen candidate is surrounded.
        support: Support,
        /// How the second best candidate is.
        runner_up: Support,
    },
}

/// The symbol livepatch will find for `<name>,<sympos>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// The position to put in the klp relocation (0 for a unique name).
    pub sympos: u32,
    /// Its address in the listing.
    pub addr: u64,
    /// Its kallsyms type letter.
    pub ty: char,
    /// Why this one.
    pub rule: SymposRule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bind {
    Local,
    Global,
    /// Module lines of `/proc/kallsyms` are uppercase only when exported, and percpu symbols
    /// are all `A`: the letter does not tell the binding.
    Unknown,
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    addr: u64,
    ty: char,
    bind: Bind,
    /// (section, address): where it sits, for neighbourhoods. Section 0 for linked images.
    place: (u32, u64),
    /// Index into `ObjectSymbols::files` of the FILE symbol heading this local.
    file: Option<u32>,
}

#[derive(Debug, Default, Clone)]
struct ObjectSymbols {
    /// In counting order.
    entries: Vec<Entry>,
    by_name: HashMap<String, Vec<u32>>,
    /// Entry indices in address order.
    layout: Vec<u32>,
    /// Entry index -> its position in `layout`.
    at: Vec<u32>,
    files: Vec<String>,
    /// Where the entries came from.
    origin: String,
}

impl ObjectSymbols {
    fn new(origin: String, entries: Vec<Entry>, files: Vec<String>) -> Self {
        let mut by_name: HashMap<String, Vec<u32>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            by_name.entry(e.name.clone()).or_default().push(i as u32);
        }
        let mut layout: Vec<u32> = (0..entries.len() as u32).collect();
        layout.sort_by_key(|&i| entries[i as usize].place);
        let mut at = vec![0u32; entries.len()];
        for (pos, &i) in layout.iter().enumerate() {
            at[i as usize] = pos as u32;
        }
        ObjectSymbols {
            entries,
            by_name,
            layout,
            at,
            files,
            origin,
        }
    }

    /// The entries of `among` that the listing says are global.
    fn globals(&self, among: &[u32]) -> Vec<u32> {
        among
            .iter()
            .copied()
            .filter(|&i| self.entries[i as usize].bind == Bind::Global)
            .collect()
    }

    fn name_at(&self, pos: usize) -> &str {
        &self.entries[self.layout[pos] as usize].name
    }
}

impl fmt::Debug for SymbolListing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut objs: Vec<_> = self
            .objects
            .iter()
            .map(|(k, v)| (k, v.entries.len()))
            .collect();
        objs.sort();
        f.debug_struct("SymbolListing")
            .field("origin", &self.origin)
            .field("objects", &objs)
            .finish()
    }
}

impl SymbolListing {
    /// Reads an ELF vmlinux (its `.symtab`, FILE symbols kept, ordered and filtered like
    /// `scripts/mksysmap` and `scripts/kallsyms` do), or a text listing in System.map or
    /// `/proc/kallsyms` format (`ADDR TYPE NAME [\t[module]]`). Errors name the file and line.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let mut head = [0u8; 0x206];
        let n = {
            use std::io::Read;
            // The largest bound of the kinds `--symbols` may be; the text's own comes below.
            let mut f = crate::input::open(path, crate::input::Kind::Vmlinux, "")?;
            let mut n = 0;
            while n < head.len() {
                match f.read(&mut head[n..])? {
                    0 => break,
                    k => n += k,
                }
            }
            n
        };
        if head[..n].starts_with(b"\x7fELF") {
            return Self::load_vmlinux(path);
        }
        if n == head.len() && &head[0x202..0x206] == b"HdrS" {
            bail!(
                "{}: a compressed kernel image (bzImage) has no usable symbol table: capture \
                 /proc/kallsyms from the running target (as root, with kernel.kptr_restrict=0) or \
                 pass an ELF vmlinux with its symbol table (linux-image-<release>-dbg)",
                path.display()
            );
        }
        let text = crate::input::read_text(path, crate::input::Kind::Symbols, "")?;
        Self::parse_text(path, &text)
    }

    /// A listing without symbols, to which modules are added (`origin` names it in errors).
    pub fn empty(origin: &Path) -> Self {
        SymbolListing {
            origin: origin.to_path_buf(),
            objects: HashMap::new(),
        }
    }

    /// Parses a System.map or `/proc/kallsyms` text; `path` names it in errors.
    pub fn parse_text(path: &Path, text: &str) -> anyhow::Result<Self> {
        let origin = path.display().to_string();
        let objects = text::parse(&origin, text)?
            .into_iter()
            .map(|(k, v)| {
                let origin = if k == "vmlinux" {
                    origin.clone()
                } else {
                    format!("{origin} [{k}]")
                };
                (k, ObjectSymbols::new(origin, v, Vec::new()))
            })
            .collect();
        Ok(SymbolListing {
            origin: path.to_path_buf(),
            objects,
        })
    }

    fn load_vmlinux(path: &Path) -> anyhow::Result<Self> {
        let symtab = elf::read(path)?;
        if symtab.e_type == object::elf::ET_REL {
            bail!(
                "{}: a relocatable object has no kernel addresses: pass the linked vmlinux, not \
                 vmlinux.o, or /proc/kallsyms captured from the target",
                path.display()
            );
        }
        let (entries, files) = elf::vmlinux_entries(&symtab);
        if entries.is_empty() {
            bail!(
                "{}: no symbol table (stripped?): pass an unstripped vmlinux (linux-image-<release>-dbg) \
                 or /proc/kallsyms captured from the target",
                path.display()
            );
        }
        let mut objects = HashMap::new();
        objects.insert(
            "vmlinux".to_string(),
            ObjectSymbols::new(path.display().to_string(), entries, files),
        );
        Ok(SymbolListing {
            origin: path.to_path_buf(),
            objects,
        })
    }

    /// Adds a module's `.ko` (or `.ko.xz`, `.ko.zst`, `.ko.gz`, decompressed) as the listing of module `name` (with `-` as `_`, like
    /// `struct module::name`), replacing lines of `/proc/kallsyms` for it: its symbol table order
    /// is the order `module_kallsyms_on_each_symbol()` walks.
    pub fn add_module(&mut self, name: &str, ko: &Path) -> anyhow::Result<()> {
        let symtab = elf::read_module(ko)?;
        if symtab.e_type != object::elf::ET_REL {
            bail!("{}: not a kernel module (ET_REL object)", ko.display());
        }
        let entries = elf::module_entries(&symtab);
        if entries.is_empty() {
            bail!(
                "{}: no symbols in the module's symbol table: was it stripped?",
                ko.display()
            );
        }
        let key = super::normalize_modname(name);
        self.objects.insert(
            key,
            ObjectSymbols::new(ko.display().to_string(), entries, Vec::new()),
        );
        Ok(())
    }

    /// The file the listing was loaded from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Whether the listing has `name` in `object` at all (used to tell "not in this kernel" from
    /// other failures).
    pub fn contains(&self, object: &str, name: &str) -> bool {
        self.objects
            .get(object)
            .is_some_and(|o| o.by_name.contains_key(name))
    }

    /// Whether the listing has symbols of `object` (`vmlinux` or a module name).
    pub fn has_object(&self, object: &str) -> bool {
        self.objects.contains_key(object)
    }

    /// The symbols of `object` in the order livepatch counts them, as `(address, type, name)`
    /// (for `--debug` output and for comparing with a captured `/proc/kallsyms`).
    pub fn listed(&self, object: &str) -> Vec<(u64, char, &str)> {
        self.objects.get(object).map_or_else(Vec::new, |o| {
            o.entries
                .iter()
                .map(|e| (e.addr, e.ty, e.name.as_str()))
                .collect()
        })
    }

    /// The sympos of `name` in `object` (`vmlinux` or a module name), for a symbol of
    /// translation unit `tu`.
    pub fn sympos(
        &self,
        object: &str,
        name: &str,
        tu: &TranslationUnit,
    ) -> Result<u32, SymposError> {
        self.locate(object, name, tu).map(|l| l.sympos)
    }

    /// Like [`sympos`](Self::sympos), with the chosen symbol's address and the rule that chose it.
    pub fn locate(
        &self,
        object: &str,
        name: &str,
        tu: &TranslationUnit,
    ) -> Result<Located, SymposError> {
        let missing = |object_listed| SymposError::Missing {
            object: object.to_string(),
            name: name.to_string(),
            tu: tu.source.clone(),
            listing: self.origin.display().to_string(),
            object_listed,
        };
        let Some(obj) = self.objects.get(object) else {
            return Err(missing(false));
        };
        let Some(all) = obj.by_name.get(name) else {
            return Err(missing(true));
        };
        funnel::Lookup {
            object,
            name,
            tu,
            obj,
            all,
        }
        .run()
    }
}

impl TuSymbol {
    /// The section this symbol had in a build without `-ffunction-sections -fdata-sections`:
    /// `.text.foo` -> `.text`, `.text.unlikely.foo` -> `.text.unlikely` (also for `foo.cold`),
    /// `.bss.x.0` -> `.bss`; a section the source names itself stays (`.init.text`,
    /// `.data..read_mostly`, `.data.once` of `__already_done.N`).
    pub fn base_section(&self) -> &str {
        let mut prefix: &str = &self.name;
        loop {
            if let Some(base) = self
                .section
                .strip_suffix(prefix)
                .and_then(|s| s.strip_suffix('.'))
            {
                if !base.is_empty() {
                    return base;
                }
            }
            match prefix.rfind('.') {
                Some(dot) if dot > 0 => prefix = &prefix[..dot],
                _ => return &self.section,
            }
        }
    }
}

fn candidate(obj: &ObjectSymbols, i: u32, sympos: u32, scores: &[(u32, Support)]) -> Candidate {
    let e = &obj.entries[i as usize];
    let p = obj.at[i as usize] as usize;
    let before = (p.saturating_sub(2)..p)
        .map(|q| obj.name_at(q).to_string())
        .collect();
    let after = (p + 1..obj.layout.len().min(p + 3))
        .map(|q| obj.name_at(q).to_string())
        .collect();
    Candidate {
        sympos,
        addr: e.addr,
        ty: e.ty,
        file: e.file.map(|f| obj.files[f as usize].clone()),
        before,
        after,
        support: scores
            .iter()
            .find(|s| s.0 == i)
            .map_or(Support::default(), |s| s.1),
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn missing_message(
    object: &str,
    name: &str,
    tu: &str,
    listing: &str,
    object_listed: bool,
) -> String {
    if object_listed {
        format!(
            "symbol `{name}` (referenced from {tu}) is not in {object} according to {listing}: the \
             listing must come from the kernel being patched; if the symbol was inlined or renamed \
             in that build, patch its callers instead"
        )
    } else {
        format!(
            "no symbols of module {object} in {listing} (needed for `{name}` of {tu}): add the \
             module's .ko, or capture /proc/kallsyms with the module loaded"
        )
    }
}

#[cfg(test)]
mod tests;
