//! Livepatch modules built by other tools (no `.klp_build.manifest`): what their ELF says. Input: a
//! kbuild-linked `.ko`. Output: [`ForeignModule`]: `.modinfo`, the `klp_patch` found through the
//! relocation to `__this_module` in its `.mod` field, its objects and functions (the `old_name`
//! strings reachable from the `klp_func` arrays through relocations), `states`, callbacks and the
//! word of `replace`, or failing that the objects and symbols of the `.klp.rela.<obj>.*` sections and
//! `.klp.sym.<obj>.<name>,<pos>` symbols. Invariant: every offset and index read from the file is
//! checked; a malformed module is an error naming the file, the section and the offset, never a
//! panic; what the ELF cannot tell is said in [`ForeignModule::unknown`], never guessed.
//!
//! Layout assumed, `include/linux/livepatch.h` of 5.5 (when `states` came) up to 7.2, x86_64:
//! `klp_patch { mod @0; objs @8; states @16; bool replace @24 }`, `klp_object { name @0; funcs @8;
//! callbacks { pre_patch, post_patch, pre_unpatch, post_unpatch } @16..48 }`, `klp_func { old_name
//! @0; new_func @8; old_sympos @16 }`, `klp_state { id @0; version @8; data @16 } (24 bytes)`. The
//! sizes of `klp_object` and `klp_func` depend on the kernel's `struct kobject`, so the stride of
//! each array is measured from the relocations of its elements, never assumed.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use object::elf;
use serde::Serialize;

use crate::contract::spec::StateSpec;
use crate::elf::{Any, Content, ElfObject, SectionId, SymSection};

/// What a foreign livepatch module's ELF says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignModule {
    /// `.modinfo` `name=`.
    pub name: Option<String>,
    /// `.modinfo` `vermagic=`, whole.
    pub vermagic: Option<String>,
    /// `.modinfo` has `livepatch=Y`.
    pub livepatch: bool,
    /// The `klp_patch` read through its relocations, when found.
    pub patch: Option<ForeignPatch>,
    /// `.klp.sym.<obj>.<name>,<pos>` symbols: what the module's klp relocations resolve at load.
    pub klp_symbols: Vec<KlpSymbol>,
    /// Objects named by `.klp.rela.<obj>.<section>` sections.
    pub klp_rela_objects: Vec<String>,
    /// What could not be read, one sentence each.
    pub unknown: Vec<String>,
}

/// One `klp_patch` as its static initialisers left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignPatch {
    /// Where it is: `.data+0x0`.
    pub at: String,
    /// The 32-bit word at offset 24: `bool replace` (0 or 1) on kernels 5.5 .. 7.2; the set
    /// number on kernels where `unsigned int replace_set` took its place.
    pub replace_word: Option<u32>,
    /// Why the word at offset 24 could not be read, when it could not.
    #[serde(skip)]
    pub replace_unread: Option<String>,
    /// `klp_patch.states`, empty when the pointer is NULL.
    pub states: Vec<StateSpec>,
    /// `klp_patch.objs`.
    pub objects: Vec<ForeignObject>,
}

/// One `klp_object`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignObject {
    /// `vmlinux` for a NULL name, else the module name.
    pub name: String,
    /// `klp_object.funcs`.
    pub functions: Vec<ForeignFunc>,
    /// Callbacks set: `pre_patch=fn`, ...
    pub callbacks: Vec<String>,
}

/// One `klp_func`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignFunc {
    /// `old_name`.
    pub name: String,
    /// `old_sympos`.
    pub sympos: u32,
    /// The symbol `new_func` points at, when it has one.
    pub replacement: Option<String>,
}

/// One `.klp.sym.<obj>.<name>,<pos>` symbol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct KlpSymbol {
    /// `vmlinux` or a module.
    pub object: String,
    /// The symbol's name in that object.
    pub name: String,
    /// Its sympos.
    pub sympos: u32,
}

const CALLBACKS: [&str; 4] = ["pre_patch", "post_patch", "pre_unpatch", "post_unpatch"];

/// Reads what `obj` (read from `ko`) says as a livepatch module.
pub fn read(ko: &Path, obj: &ElfObject<Any>) -> anyhow::Result<ForeignModule> {
    let file = ko.display().to_string();
    let modinfo = modinfo(obj);
    let get = |k: &str| {
        modinfo
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let mut m = ForeignModule {
        name: get("name"),
        vermagic: get("vermagic"),
        livepatch: get("livepatch").as_deref() == Some("Y"),
        patch: None,
        klp_symbols: klp_symbols(obj),
        klp_rela_objects: klp_rela_objects(obj),
        unknown: Vec::new(),
    };
    let reader = Reader::new(&file, obj);
    m.patch = reader.patch()?;
    if m.patch.is_none() {
        m.unknown.push(
            "its struct klp_patch: no initialised klp_patch (.mod = THIS_MODULE, .objs set) in its data, \
             as when the patch is built at run time; the functions it patches are not known"
                .into(),
        );
    }
    m.unknown.push(
        "its fixes: other tools do not record which fixes a module carries, so dropped fixes are not checked"
            .into(),
    );
    Ok(m)
}

/// `.modinfo`: NUL-separated `key=value` strings.
pub(crate) fn modinfo(obj: &ElfObject<Any>) -> Vec<(String, String)> {
    let Some(sec) = obj.section_by_name(".modinfo") else {
        return Vec::new();
    };
    obj.data(sec)
        .split(|b| *b == 0)
        .filter_map(|s| {
            let s = String::from_utf8_lossy(s);
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.trim_end().to_string()))
        })
        .collect()
}

fn klp_symbols(obj: &ElfObject<Any>) -> Vec<KlpSymbol> {
    let mut out: Vec<KlpSymbol> = obj
        .live_symbols()
        .filter_map(|(_, s)| parse_klp_sym(&s.name))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `.klp.sym.vmlinux.saved_command_line,0` -> (vmlinux, saved_command_line, 0). The object name
/// has no dot (module names are `[a-z0-9_]`); the symbol name may (`.klp.sym.vmlinux.a.b.1,1` for
/// a static local `b.1` of `a`).
fn parse_klp_sym(name: &str) -> Option<KlpSymbol> {
    let rest = name.strip_prefix(".klp.sym.")?;
    let (object, rest) = rest.split_once('.')?;
    let (sym, pos) = rest.rsplit_once(',')?;
    Some(KlpSymbol {
        object: object.to_string(),
        name: sym.to_string(),
        sympos: pos.parse().ok()?,
    })
}

fn klp_rela_objects(obj: &ElfObject<Any>) -> Vec<String> {
    let mut out: Vec<String> = obj
        .live_sections()
        .filter_map(|(_, s)| {
            let rest = s.name.strip_prefix(".klp.rela.")?;
            Some(rest.split_once('.').map_or(rest, |(o, _)| o).to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Reads the static data of the module through its `R_X86_64_64` relocations.
struct Reader<'a> {
    file: &'a str,
    obj: &'a ElfObject<Any>,
    /// Per section: offset -> (target section or None for an undefined/absolute symbol, target
    /// offset, symbol name).
    relocs: BTreeMap<usize, BTreeMap<u64, Target>>,
}

#[derive(Debug, Clone)]
struct Target {
    /// The defined section it points into, if any.
    sec: Option<SectionId<Any>>,
    /// The offset in it (symbol value plus addend).
    offset: u64,
    /// The symbol's display name (section name for section symbols).
    sym: String,
}

/// A position in a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    sec: SectionId<Any>,
    off: u64,
}

impl<'a> Reader<'a> {
    fn new(file: &'a str, obj: &'a ElfObject<Any>) -> Self {
        let mut relocs: BTreeMap<usize, BTreeMap<u64, Target>> = BTreeMap::new();
        for (_, s) in obj.live_sections() {
            let Content::Relocs { target, relocs: rs } = &s.content else {
                continue;
            };
            let map = relocs.entry(target.index()).or_default();
            for r in rs.iter().filter(|r| r.r_type == elf::R_X86_64_64) {
                // `read` checked every relocation's symbol index against the symbol table.
                let sym = obj.symbol(r.sym);
                let sec = match sym.section {
                    SymSection::Section(sec) => Some(sec),
                    _ => None,
                };
                let offset = (sym.st_value as i64).wrapping_add(r.r_addend) as u64;
                map.insert(
                    r.r_offset,
                    Target {
                        sec,
                        offset,
                        sym: obj.symbol_display_name(r.sym).to_string(),
                    },
                );
            }
        }
        Reader { file, obj, relocs }
    }

    fn name(&self, p: Pos) -> String {
        format!("{}+{:#x}", self.obj.section(p.sec).name, p.off)
    }

    fn reloc(&self, p: Pos) -> Option<&Target> {
        self.relocs.get(&p.sec.index())?.get(&p.off)
    }

    /// The position a relocation at `p` points to, checked to lie inside its section.
    fn pointer(&self, p: Pos) -> anyhow::Result<Option<Pos>> {
        let Some(t) = self.reloc(p) else {
            return Ok(None);
        };
        let Some(sec) = t.sec else {
            return Ok(None);
        };
        // One past the end is a valid C pointer (`&arr[N]`, the end of an array, as in the
        // identity livepatch of fs/proc/base.c), but no klp field points there.
        if t.offset == self.obj.section_size(sec) {
            return Ok(None);
        }
        if t.offset > self.obj.section_size(sec) {
            bail!(
                "{}: section {}: the relocation at {} points to {}+{:#x}, past the end of {} ({:#x} bytes); \
                 the module is corrupt",
                self.file,
                self.obj.section(p.sec).name,
                self.name(p),
                t.sym,
                t.offset,
                self.obj.section(sec).name,
                self.obj.section_size(sec)
            );
        }
        Ok(Some(Pos { sec, off: t.offset }))
    }

    /// `len` bytes at `p`; a `SHT_NOBITS` section (`.bss`, where a zero-initialised
    /// `no_funcs[] = { { } }` lands) reads as zeros.
    fn bytes(&self, p: Pos, len: u64) -> anyhow::Result<Vec<u8>> {
        let sec = self.obj.section(p.sec);
        let size = self.obj.section_size(p.sec);
        let end = p.off.checked_add(len).filter(|e| *e <= size);
        match (end, &sec.content) {
            (Some(_), Content::Nobits(_)) => Ok(vec![0; len as usize]),
            (Some(end), Content::Data(d)) => Ok(d[p.off as usize..end as usize].to_vec()),
            _ => bail!(
                "{}: section {}: {len} bytes at {:#x} run past its end ({size:#x} bytes); the module is corrupt",
                self.file,
                sec.name,
                p.off,
            ),
        }
    }

    fn u64_at(&self, p: Pos) -> anyhow::Result<u64> {
        let b = self.bytes(p, 8)?;
        Ok(u64::from_le_bytes(
            b.try_into().map_err(|_| anyhow::anyhow!("8 bytes"))?,
        ))
    }

    fn u32_at(&self, p: Pos) -> anyhow::Result<u32> {
        let b = self.bytes(p, 4)?;
        Ok(u32::from_le_bytes(
            b.try_into().map_err(|_| anyhow::anyhow!("4 bytes"))?,
        ))
    }

    /// The NUL-terminated string at `p`.
    fn cstr(&self, p: Pos) -> anyhow::Result<String> {
        let data = self.obj.data(p.sec);
        let tail = data.get(p.off as usize..).unwrap_or(&[]);
        match tail.iter().position(|b| *b == 0) {
            Some(n) => Ok(String::from_utf8_lossy(&tail[..n]).into_owned()),
            None => bail!(
                "{}: section {}: the string at {:#x} has no terminating NUL before the section's end; the module \
                 is corrupt",
                self.file,
                self.obj.section(p.sec).name,
                p.off
            ),
        }
    }

    fn is_exec(&self, p: Pos) -> bool {
        self.obj.section(p.sec).sh_flags & u64::from(elf::SHF_EXECINSTR) != 0
    }

    fn at(&self, p: Pos, add: u64) -> Pos {
        Pos {
            sec: p.sec,
            off: p.off.saturating_add(add),
        }
    }

    /// A function symbol defined at `p`, for naming replacements and callbacks.
    fn func_at(&self, p: Pos) -> Option<String> {
        self.obj
            .live_symbols()
            .find(|(_, s)| {
                s.is_func() && s.section == SymSection::Section(p.sec) && s.st_value == p.off
            })
            .map(|(_, s)| s.name.clone())
    }

    /// The end of the sized object (`static struct klp_func funcs[]`) that starts at `p`, when its
    /// symbol is there: the best bound of an array.
    fn object_end(&self, p: Pos) -> Option<u64> {
        self.obj
            .live_symbols()
            .find(|(_, s)| {
                s.is_object()
                    && s.section == SymSection::Section(p.sec)
                    && s.st_value == p.off
                    && s.st_size > 0
            })
            .map(|(_, s)| p.off.saturating_add(s.st_size))
    }

    /// The `klp_patch`: a relocation to `__this_module` (its `.mod = THIS_MODULE`) followed by one
    /// to an array of `klp_object`s whose first element points to a `klp_func` array. Other
    /// structures start with `THIS_MODULE` too (`file_operations.owner`), hence the check of
    /// `.objs`.
    fn patch(&self) -> anyhow::Result<Option<ForeignPatch>> {
        let mut candidates: Vec<Pos> = Vec::new();
        for (sec, map) in &self.relocs {
            for (off, t) in map {
                if t.sym == "__this_module" {
                    candidates.push(Pos {
                        sec: SectionId::new(*sec),
                        off: *off,
                    });
                }
            }
        }
        for at in candidates {
            let Some(objs) = self.pointer(self.at(at, 8))? else {
                continue;
            };
            if !self.is_object_elem(objs)? {
                continue;
            }
            return Ok(Some(self.read_patch(at, objs)?));
        }
        Ok(None)
    }

    /// An element of a `klp_object` array: `.funcs` points to non-executable data that holds a
    /// `klp_func` or only the terminator (`no_funcs[] = { { } }` of samples/livepatch's
    /// callbacks demo, an object patched for its callbacks alone), `.name` is NULL or a string.
    fn is_object_elem(&self, p: Pos) -> anyhow::Result<bool> {
        let Some(funcs) = self.pointer(self.at(p, 8))? else {
            return Ok(false);
        };
        if self.is_exec(funcs) || !(self.is_func_elem(funcs)? || self.is_func_terminator(funcs)?) {
            return Ok(false);
        }
        Ok(match self.pointer(p)? {
            None => self.u64_at(p)? == 0,
            Some(name) => !self.is_exec(name),
        })
    }

    /// An element of a `klp_func` array: `.old_name` a string, `.new_func` code.
    fn is_func_elem(&self, p: Pos) -> anyhow::Result<bool> {
        let (Some(name), Some(new)) = (self.pointer(p)?, self.pointer(self.at(p, 8))?) else {
            return Ok(false);
        };
        Ok(!self.is_exec(name) && self.is_exec(new))
    }

    /// The zeroed `klp_func` that ends an array: `old_name`, `new_func` and `old_sympos` are 0.
    fn is_func_terminator(&self, p: Pos) -> anyhow::Result<bool> {
        if (0..3).any(|k| self.reloc(self.at(p, 8 * k)).is_some()) {
            return Ok(false);
        }
        Ok(self.bytes(p, 24).is_ok_and(|b| b.iter().all(|x| *x == 0)))
    }

    /// The elements of an array that starts at `base` and ends by `end`: the element starts are the
    /// offsets where `is_elem` holds; the stride is the distance of the first two, and the array
    /// ends at the first stride without an element (the zeroed terminator the kernel's
    /// `klp_for_each_*_static` stops at).
    fn elements(
        &self,
        base: Pos,
        end: u64,
        is_elem: impl Fn(Pos) -> anyhow::Result<bool>,
    ) -> anyhow::Result<Vec<Pos>> {
        let mut starts = Vec::new();
        if let Some(map) = self.relocs.get(&base.sec.index()) {
            for off in map.range(base.off..end).map(|(o, _)| *o) {
                // An element's first relocated field is at +0 (`old_name`, `name`) or at +8
                // (`funcs` of a vmlinux object, whose name is NULL).
                for start in [off, off.saturating_sub(8)] {
                    let p = Pos {
                        sec: base.sec,
                        off: start,
                    };
                    if start >= base.off && !starts.contains(&start) && is_elem(p)? {
                        starts.push(start);
                    }
                }
            }
        }
        starts.sort_unstable();
        if starts.first() != Some(&base.off) {
            return Ok(Vec::new());
        }
        let Some(stride) = starts.get(1).map(|s| s - base.off) else {
            return Ok(vec![base]);
        };
        Ok((0u64..)
            .map(|k| base.off + k * stride)
            .take_while(|o| starts.contains(o))
            .map(|off| Pos { sec: base.sec, off })
            .collect())
    }

    fn read_patch(&self, at: Pos, objs: Pos) -> anyhow::Result<ForeignPatch> {
        let (replace_word, replace_unread) = match self.u32_at(self.at(at, 24)) {
            Ok(word) => (Some(word), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        let states = match self.pointer(self.at(at, 16))? {
            None => Vec::new(),
            Some(s) => self.states(s)?,
        };
        let objs_end = self
            .object_end(objs)
            .unwrap_or(self.obj.section_size(objs.sec));
        let obj_elems = self.elements(objs, objs_end, |p| self.is_object_elem(p))?;
        let mut pairs = Vec::new();
        for o in obj_elems {
            if let Some(f) = self.pointer(self.at(o, 8))? {
                pairs.push((o, f));
            }
        }
        let func_bases: Vec<Pos> = pairs.iter().map(|(_, f)| *f).collect();
        let mut objects = Vec::new();
        for (o, funcs) in &pairs {
            let name = match self.pointer(*o)? {
                None => "vmlinux".to_string(),
                Some(p) => self.cstr(p)?,
            };
            // A funcs array ends at its symbol's end, or at the next array or struct the walk knows.
            let section_end = self.obj.section_size(funcs.sec);
            let next = func_bases
                .iter()
                .chain([&objs, &at])
                .filter(|b| b.sec == funcs.sec && b.off > funcs.off)
                .map(|b| b.off)
                .min()
                .unwrap_or(section_end);
            let end = self.object_end(*funcs).unwrap_or(next).min(next);
            let mut functions = Vec::new();
            for f in self.elements(*funcs, end, |p| self.is_func_elem(p))? {
                let name_at = self.pointer(f)?.context("old_name")?;
                let sympos = self.u64_at(self.at(f, 16))?;
                let sympos = u32::try_from(sympos).with_context(|| {
                    format!(
                        "{}: {}: old_sympos {sympos} of the klp_func there does not fit 32 bits; the module is corrupt",
                        self.file,
                        self.name(f)
                    )
                })?;
                functions.push(ForeignFunc {
                    name: self.cstr(name_at)?,
                    sympos,
                    replacement: self.pointer(self.at(f, 8))?.and_then(|p| self.func_at(p)),
                });
            }
            let mut callbacks = Vec::new();
            for (i, cb) in CALLBACKS.iter().enumerate() {
                if let Some(p) = self.pointer(self.at(*o, 16 + 8 * i as u64))? {
                    let f = self.func_at(p).unwrap_or_else(|| self.name(p));
                    callbacks.push(format!("{cb}={f}"));
                }
            }
            objects.push(ForeignObject {
                name,
                functions,
                callbacks,
            });
        }
        Ok(ForeignPatch {
            at: self.name(at),
            replace_word,
            replace_unread,
            states,
            objects,
        })
    }

    /// `klp_patch.states`: 24-byte `klp_state`s up to the one with id 0.
    fn states(&self, p: Pos) -> anyhow::Result<Vec<StateSpec>> {
        let mut out = Vec::new();
        for k in 0u64.. {
            let s = self.at(p, k.saturating_mul(24));
            let id = self.u64_at(s)?;
            if id == 0 {
                break;
            }
            out.push(StateSpec {
                id,
                version: self.u32_at(self.at(s, 8))?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn klp_sym_names_split_at_the_first_dot_and_last_comma() {
        assert_eq!(
            parse_klp_sym(".klp.sym.vmlinux.saved_command_line,0"),
            Some(KlpSymbol {
                object: "vmlinux".into(),
                name: "saved_command_line".into(),
                sympos: 0
            })
        );
        assert_eq!(
            parse_klp_sym(".klp.sym.binfmt_misc.entries.2,1").map(|s| s.name),
            Some("entries.2".into())
        );
        assert_eq!(parse_klp_sym(".klp.sym.vmlinux.x"), None);
        assert_eq!(parse_klp_sym("foo"), None);
    }
}
