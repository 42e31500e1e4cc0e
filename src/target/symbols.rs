//! Symbols of the running kernel, for klp relocations `<name>,<sympos>`. Input: an ELF vmlinux,
//! a System.map or `/proc/kallsyms` listing, and module `.ko` files. Output: [`SymbolListing`],
//! which gives the sympos of a translation unit's symbol. Invariant: each object's entries are in
//! the order the kernel's `klp_find_object_symbol()` counts them: kallsyms order for vmlinux (the
//! address-sorted table `scripts/kallsyms` builds), the core symbol table order for a module.
//!
//! A listing without FILE symbols cannot say which of several same-named statics belongs to a
//! translation unit (fs/ has dozens of static `show` or `proc_show` functions). Distro kernels are
//! built without `-ffunction-sections`, so a translation unit's functions sit together in the
//! linked `.text` in the order the compiler emitted them, which is the section order of the object
//! klp-build rebuilds with `-ffunction-sections -fdata-sections`; its data likewise in `.data`,
//! `.bss` and `.rodata`. A candidate is chosen by how long a run of the unit's other symbols
//! surrounds it in the listing, comparing like sections with like.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use object::elf::{self, FileHeader64};
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::read::ReadCache;
use object::LittleEndian as LE;

/// The symbols of vmlinux and of modules, each in the order livepatch counts them.
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
pub enum Rule {
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

/// How well a candidate is surrounded by the other symbols of its unit's run (same base section,
/// unit order), walking away from it both ways in address order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Support {
    /// The unit's symbols found in order around the candidate.
    pub matched: usize,
    /// Those of them whose name occurs once in the object: only these say which unit the run
    /// belongs to (`__func__.0`, `__key.1`, `s_show` runs repeat across units).
    pub distinct: usize,
    /// Listing lines between the candidate and the matched symbols that are not the unit's: the
    /// true instance sits inside its unit's run, 0 when the builds agree.
    pub gap: usize,
}

impl Support {
    fn rank(&self) -> (usize, usize, std::cmp::Reverse<usize>) {
        (self.distinct, self.matched, std::cmp::Reverse(self.gap))
    }

    /// Whether a candidate with this support is a clear winner over the next best. Evidence
    /// must include a name unique in the object: such a line can only be the unit's own, so only
    /// candidates at the edge of the unit's run can reach it too, and those reach it across a
    /// gap (the true instance, or another unit's line). A wrong sympos makes livepatch redirect
    /// another unit's same-named function, so an error is always the better failure.
    fn beats(&self, next: &Support) -> bool {
        self.distinct >= 1
            && (self.distinct > next.distinct
                || (self.distinct == next.distinct
                    && self.matched >= next.matched
                    && self.gap < next.gap))
    }
}

impl fmt::Display for Support {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of the unit's symbols around it, {} of them unique, {} lines apart",
            self.matched, self.distinct, self.gap
        )
    }
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
    pub rule: Rule,
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

#[derive(Debug, Default)]
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
            let mut f = File::open(path)
                .with_context(|| format!("cannot open symbol listing {}", path.display()))?;
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
        let text =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let text = String::from_utf8_lossy(&text);
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
        let mut per_object: HashMap<String, Vec<Entry>> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let lineno = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            if line.contains("The real System.map is in") {
                bail!(
                    "{origin}:{lineno}: this is Debian's placeholder System.map: capture \
                     /proc/kallsyms from the running target instead (as root, with \
                     kernel.kptr_restrict=0), or pass the vmlinux of linux-image-<release>-dbg"
                );
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 3 || fields.len() > 4 {
                bail!("{origin}:{lineno}: expected `ADDRESS TYPE NAME [[module]]`, found {line:?}");
            }
            let addr = u64::from_str_radix(fields[0], 16).with_context(|| {
                format!("{origin}:{lineno}: address {:?} is not hex", fields[0])
            })?;
            let mut ty_chars = fields[1].chars();
            let (Some(ty), None) = (ty_chars.next(), ty_chars.next()) else {
                bail!("{origin}:{lineno}: type {:?} is not one letter", fields[1]);
            };
            let object = match fields.get(3) {
                None => "vmlinux".to_string(),
                Some(tag) => match tag.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                    Some(m) if !m.is_empty() => m.to_string(),
                    _ => bail!("{origin}:{lineno}: module tag {tag:?} is not `[name]`"),
                },
            };
            // System.map keeps what `scripts/mksysmap` keeps; kallsyms never shows these.
            if matches!(ty, 'U' | 'u' | 'N' | 'n' | 'w' | 'v' | 'a') {
                continue;
            }
            let vmlinux = object == "vmlinux";
            let bind = if ty == 'A' || (!vmlinux && ty.is_ascii_lowercase()) {
                Bind::Unknown
            } else if ty.is_ascii_uppercase() {
                Bind::Global
            } else {
                Bind::Local
            };
            let list = per_object.entry(object.clone()).or_insert_with(|| {
                order.push(object.clone());
                Vec::new()
            });
            list.push(Entry {
                name: fields[2].to_string(),
                addr,
                ty,
                bind,
                place: (0, addr),
                file: None,
            });
            // kallsyms order is address order: a listing that is not was sorted or edited, and
            // its positions would be wrong. (Modules are in symtab order, not checked.)
            if vmlinux && list.len() > 1 {
                let prev = list[list.len() - 2].addr;
                if addr < prev && addr != 0 {
                    bail!(
                        "{origin}:{lineno}: address {addr:x} is below the previous line's {prev:x}: \
                         kallsyms and System.map list vmlinux in address order, so this listing was \
                         sorted or edited; capture /proc/kallsyms again and pass it unchanged"
                    );
                }
            }
        }
        if per_object.is_empty() {
            bail!("{origin}: no symbols: pass /proc/kallsyms captured as root with kernel.kptr_restrict=0, or System.map");
        }
        let objects = per_object
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
        let elf = read_elf_symbols(path)?;
        if elf.e_type == elf::ET_REL {
            bail!(
                "{}: a relocatable object has no kernel addresses: pass the linked vmlinux, not \
                 vmlinux.o, or /proc/kallsyms captured from the target",
                path.display()
            );
        }
        let (entries, files) = vmlinux_entries(&elf);
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

    /// Adds a module's `.ko` as the listing of module `name` (with `-` as `_`, like
    /// `struct module::name`), replacing lines of `/proc/kallsyms` for it: its symbol table order
    /// is the order `module_kallsyms_on_each_symbol()` walks.
    pub fn add_module(&mut self, name: &str, ko: &Path) -> anyhow::Result<()> {
        let elf = read_elf_symbols(ko)?;
        if elf.e_type != elf::ET_REL {
            bail!("{}: not a kernel module (ET_REL object)", ko.display());
        }
        let entries = module_entries(&elf);
        if entries.is_empty() {
            bail!(
                "{}: no symbols in the module's symbol table: was it stripped?",
                ko.display()
            );
        }
        let key = name.replace('-', "_");
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
        let located = |i: u32, rule| {
            let e = &obj.entries[i as usize];
            let sympos = if all.len() == 1 {
                0
            } else {
                all.iter().position(|&j| j == i).unwrap() as u32 + 1
            };
            Located {
                sympos,
                addr: e.addr,
                ty: e.ty,
                rule,
            }
        };
        if all.len() == 1 {
            return Ok(located(all[0], Rule::Unique));
        }
        let ambiguous = |reason: String, scores: &[(u32, Support)]| {
            SymposError::Ambiguous(Box::new(Ambiguity {
                object: object.to_string(),
                name: name.to_string(),
                tu: tu.source.clone(),
                listing: obj.origin.clone(),
                reason,
                candidates: all
                    .iter()
                    .enumerate()
                    .map(|(k, &i)| candidate(obj, i, k as u32 + 1, scores))
                    .collect(),
            }))
        };
        let own = tu.symbols.iter().find(|s| s.name == name);
        let Some(own) = own else {
            // A global defined in another unit (the resolve stage asks for those too).
            let globals: Vec<u32> = all
                .iter()
                .copied()
                .filter(|&i| obj.entries[i as usize].bind == Bind::Global)
                .collect();
            if let [g] = globals[..] {
                return Ok(located(g, Rule::OnlyGlobal));
            }
            return Err(ambiguous(
                format!(
                    "{} does not define it, and the listing has {} globals of that name",
                    tu.source,
                    globals.len()
                ),
                &[],
            ));
        };
        let mut cands: Vec<u32> = all.clone();
        if own.local {
            cands.retain(|&i| obj.entries[i as usize].bind != Bind::Global);
            if let [c] = cands[..] {
                return Ok(located(c, Rule::OnlyLocal));
            }
            if cands.is_empty() {
                return Err(ambiguous(
                    format!(
                        "it is local in {} but every symbol of that name in the listing is global",
                        tu.source
                    ),
                    &[],
                ));
            }
        } else {
            let globals: Vec<u32> = cands
                .iter()
                .copied()
                .filter(|&i| obj.entries[i as usize].bind == Bind::Global)
                .collect();
            if let [g] = globals[..] {
                return Ok(located(g, Rule::OnlyGlobal));
            }
        }
        if !obj.files.is_empty() {
            let base = basename(&tu.source);
            let same_file: Vec<u32> = cands
                .iter()
                .copied()
                .filter(|&i| {
                    obj.entries[i as usize]
                        .file
                        .is_some_and(|f| basename(&obj.files[f as usize]) == base)
                })
                .collect();
            if let [c] = same_file[..] {
                return Ok(located(c, Rule::File));
            }
            if !same_file.is_empty() {
                cands = same_file;
            }
        }
        let mut scores: Vec<(u32, Support)> = cands
            .iter()
            .map(|&i| (i, support(obj, i, own, tu)))
            .collect();
        scores.sort_by(|a, b| b.1.rank().cmp(&a.1.rank()).then(a.0.cmp(&b.0)));
        let group = run_of(obj, own, tu).len();
        let best = scores[0].1;
        let runner_up = scores.get(1).map_or(Support::default(), |s| s.1);
        if best.beats(&runner_up) {
            return Ok(located(
                scores[0].0,
                Rule::Neighbours {
                    support: best,
                    runner_up,
                },
            ));
        }
        let reason = if group <= 1 {
            format!(
                "{} has no other symbol in {} that the listing has, so its place cannot be found",
                tu.source,
                own.base_section()
            )
        } else if best.distinct == 0 {
            format!(
                "none of the {} other symbols of {} in {} that occur once in the listing surround any candidate",
                group - 1,
                tu.source,
                own.base_section()
            )
        } else {
            format!("the best candidates are equally surrounded by the unit's symbols ({best} and {runner_up})")
        };
        Err(ambiguous(reason, &scores))
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

/// The unit's symbols that share `own`'s base section and that the listing has, in unit order:
/// the run `own` should sit in.
fn run_of<'t>(obj: &ObjectSymbols, own: &TuSymbol, tu: &'t TranslationUnit) -> Vec<&'t TuSymbol> {
    let base = own.base_section();
    tu.symbols
        .iter()
        .filter(|s| {
            s.base_section() == base && (s.name == own.name || obj.by_name.contains_key(&s.name))
        })
        .collect()
}

/// How well the unit's symbols of `own`'s run surround entry `i`.
fn support(obj: &ObjectSymbols, i: u32, own: &TuSymbol, tu: &TranslationUnit) -> Support {
    let run = run_of(obj, own, tu);
    let Some(k) = run.iter().position(|s| s.name == own.name) else {
        return Support::default();
    };
    let p = obj.at[i as usize] as usize;
    let before: Vec<&str> = run[..k].iter().rev().map(|s| s.name.as_str()).collect();
    let after: Vec<&str> = run[k + 1..].iter().map(|s| s.name.as_str()).collect();
    let back = walk(obj, (0..p).rev(), &before);
    let fwd = walk(obj, p + 1..obj.layout.len(), &after);
    Support {
        matched: back.matched + fwd.matched,
        distinct: back.distinct + fwd.distinct,
        gap: back.gap + fwd.gap,
    }
}

/// Matches listing names, walking away from a candidate through layout positions `listing`,
/// against the unit's names in the same direction. A name may skip a few unit symbols (one the
/// kernel's build lost or moved); a few listing names in a row that are not the unit's end the
/// run (the next unit begins).
fn walk(obj: &ObjectSymbols, listing: impl Iterator<Item = usize>, unit: &[&str]) -> Support {
    const LOOKAHEAD: usize = 6;
    const MAX_MISSES: usize = 3;
    let mut s = Support::default();
    let (mut j, mut misses, mut skipped) = (0, 0, 0);
    for q in listing {
        if j >= unit.len() {
            break;
        }
        let name = obj.name_at(q);
        let window = &unit[j..unit.len().min(j + LOOKAHEAD)];
        if let Some(d) = window.iter().position(|u| *u == name) {
            s.matched += 1;
            if obj.by_name.get(name).is_some_and(|v| v.len() == 1) {
                s.distinct += 1;
            }
            s.gap += skipped;
            j += d + 1;
            misses = 0;
        } else {
            misses += 1;
            skipped += 1;
            if misses > MAX_MISSES {
                break;
            }
        }
        if misses == 0 {
            skipped = 0;
        }
    }
    s
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

/// The symbol table of an ELF file, with what `nm` and the module loader look at.
struct ElfSymbols {
    e_type: u16,
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

fn read_elf_symbols(path: &Path) -> anyhow::Result<ElfSymbols> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let cache = ReadCache::new(file);
    let data = &cache;
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
fn vmlinux_entries(elf: &ElfSymbols) -> (Vec<Entry>, Vec<String>) {
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
        entries.push(Entry {
            name: s.name.clone(),
            addr: s.st_value,
            ty,
            bind: if bind == elf::STB_LOCAL {
                Bind::Local
            } else {
                Bind::Global
            },
            place: (0, 0),
            file: current_file,
        });
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
fn module_entries(elf: &ElfSymbols) -> Vec<Entry> {
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
        let bind = s.st_info >> 4;
        let ty = if percpu { Some('a') } else { nm_letter(elf, s) };
        let Some(ty) = ty else { continue };
        entries.push(Entry {
            name: s.name.clone(),
            addr: s.st_value,
            ty,
            bind: if bind == elf::STB_LOCAL {
                Bind::Local
            } else {
                Bind::Global
            },
            place: (s.shndx, s.st_value),
            file: None,
        });
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tu(source: &str, syms: &[(&str, &str, bool)]) -> TranslationUnit {
        TranslationUnit {
            source: source.to_string(),
            symbols: syms
                .iter()
                .map(|(name, section, local)| TuSymbol {
                    name: name.to_string(),
                    kind: if section.contains("text") {
                        TuKind::Func
                    } else {
                        TuKind::Object
                    },
                    section: section.to_string(),
                    local: *local,
                })
                .collect(),
        }
    }

    fn listing(text: &str) -> SymbolListing {
        SymbolListing::parse_text(Path::new("test.kallsyms"), text).unwrap()
    }

    #[test]
    fn base_sections() {
        let s = |name: &str, section: &str| TuSymbol {
            name: name.into(),
            kind: TuKind::Func,
            section: section.into(),
            local: true,
        };
        assert_eq!(s("show", ".text.show").base_section(), ".text");
        assert_eq!(
            s("foo.cold", ".text.unlikely.foo").base_section(),
            ".text.unlikely"
        );
        assert_eq!(s("foo.part.0", ".text.foo.part.0").base_section(), ".text");
        assert_eq!(s("x.0", ".bss.x.0").base_section(), ".bss");
        assert_eq!(
            s("__already_done.3", ".data.once").base_section(),
            ".data.once"
        );
        assert_eq!(s("setup", ".init.text").base_section(), ".init.text");
        assert_eq!(
            s("v", ".data..read_mostly").base_section(),
            ".data..read_mostly"
        );
    }

    const TWO_SHOWS: &str = "\
0000000000000000 A fixed_percpu_data
ffffffff81000000 T _text
ffffffff81001000 t a_open
ffffffff81001100 t show
ffffffff81001200 t a_write
ffffffff81001300 T a_init_global
ffffffff81002000 t b_open
ffffffff81002100 t b_helper
ffffffff81002200 t show
ffffffff81002300 t b_release
ffffffff81003000 T show_all
ffffffff82000000 d counter
ffffffff82000010 D counter_g
ffffffff82000020 d counter
ffffffffc0001000 t show\t[mymod]
";

    #[test]
    fn unique_and_neighbour_choice() {
        let l = listing(TWO_SHOWS);
        let b = tu(
            "fs/b.c",
            &[
                ("b_open", ".text.b_open", true),
                ("b_helper", ".text.b_helper", true),
                ("show", ".text.show", true),
                ("b_release", ".text.b_release", true),
            ],
        );
        let a = tu(
            "fs/a.c",
            &[
                ("a_open", ".text.a_open", true),
                ("show", ".text.show", true),
                ("a_write", ".text.a_write", true),
            ],
        );
        assert_eq!(l.sympos("vmlinux", "show_all", &b).unwrap(), 0);
        assert_eq!(l.sympos("vmlinux", "show", &a).unwrap(), 1);
        let got = l.locate("vmlinux", "show", &b).unwrap();
        assert_eq!(
            (got.sympos, got.addr, got.rule),
            (
                2,
                0xffffffff81002200,
                Rule::Neighbours {
                    support: Support {
                        matched: 3,
                        distinct: 3,
                        gap: 0
                    },
                    runner_up: Support::default()
                }
            )
        );
        // Module lines are their own object.
        assert_eq!(l.sympos("mymod", "show", &a).unwrap(), 0);
        assert!(l.contains("mymod", "show") && !l.contains("mymod", "a_open"));
    }

    #[test]
    fn local_and_global_of_one_name() {
        let l = listing(TWO_SHOWS);
        let g = tu("kernel/g.c", &[("counter_g", ".data.counter_g", false)]);
        assert_eq!(l.sympos("vmlinux", "counter_g", &g).unwrap(), 0);
        // No data neighbours to go by: both locals are equally likely.
        let c = tu("kernel/c.c", &[("counter", ".data.counter", true)]);
        let err = l.sympos("vmlinux", "counter", &c).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("cannot tell which `counter` in vmlinux belongs to kernel/c.c"),
            "{msg}"
        );
        assert!(
            msg.contains(
                "sympos 2: ffffffff82000020 d counter between [counter, counter_g] and []"
            ),
            "{msg}"
        );
        assert!(msg.contains("FILE symbols"), "{msg}");
        // With a data neighbour, the second one is found.
        let c2 = tu(
            "kernel/c.c",
            &[
                ("counter_g", ".data.counter_g", false),
                ("counter", ".data.counter", true),
            ],
        );
        assert_eq!(l.sympos("vmlinux", "counter", &c2).unwrap(), 2);
    }

    #[test]
    fn like_sections_with_like() {
        // `show` sits among init code: the unit's .text functions are no evidence for it.
        let l = listing(
            "ffffffff81001000 t a_open\nffffffff81001100 t show\nffffffff83000000 t a_setup\nffffffff83000100 t show\n",
        );
        let a = tu(
            "fs/a.c",
            &[
                ("a_open", ".text.a_open", true),
                ("a_setup", ".init.text", true),
                ("show", ".init.text", true),
            ],
        );
        assert_eq!(l.sympos("vmlinux", "show", &a).unwrap(), 2);
    }

    #[test]
    fn missing_and_unknown_module() {
        let l = listing(TWO_SHOWS);
        let a = tu("fs/a.c", &[]);
        let e = l.sympos("vmlinux", "nope", &a).unwrap_err();
        assert!(matches!(
            e,
            SymposError::Missing {
                object_listed: true,
                ..
            }
        ));
        assert!(e
            .to_string()
            .contains("symbol `nope` (referenced from fs/a.c) is not in vmlinux"));
        let e = l.sympos("xfs", "xfs_foo", &a).unwrap_err();
        assert!(e.to_string().contains("no symbols of module xfs"), "{e}");
    }

    #[test]
    fn bad_lines_are_named() {
        let err = SymbolListing::parse_text(Path::new("k"), "ffffffff81000000 T a\nzzzz T b\n")
            .unwrap_err();
        assert!(
            format!("{err:#}").starts_with("k:2: address \"zzzz\" is not hex"),
            "{err:#}"
        );
        let err = SymbolListing::parse_text(
            Path::new("k"),
            "ffffffff81000000 T a\nffffffff80000000 T b\n",
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("k:2: address ffffffff80000000 is below"),
            "{err:#}"
        );
        let err = SymbolListing::parse_text(
            Path::new("System.map"),
            "ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n",
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("placeholder System.map"),
            "{err:#}"
        );
    }

    #[test]
    fn walk_stops_at_the_next_unit() {
        let names = ["b", "x", "c", "y", "z", "w", "q", "d", "c"];
        let text: String = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{:x} t {n}\n", 0x1000 + i))
            .collect();
        let l = listing(&text);
        let obj = &l.objects["vmlinux"];
        // b, then c across one stranger, then four strangers end the run before d.
        let s = walk(obj, 0..names.len(), &["b", "c", "d"]);
        assert_eq!(
            s,
            Support {
                matched: 2,
                distinct: 1,
                gap: 1
            }
        );
        // A unit name may be skipped: the listing lacks `a`.
        let s = walk(obj, 0..3, &["a", "b", "c"]);
        assert_eq!(
            s,
            Support {
                matched: 2,
                distinct: 1,
                gap: 1
            }
        );
    }
}
