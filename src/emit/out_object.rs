//! Builds the output object of one diff. Input: an [`ObjectDiff`]. Output: an [`OutObject`]: the
//! changed and new functions with what they need (strings, new data, private static locals, their
//! special-section entries), every other reference left as an undefined symbol ([`Extern`]) for
//! the resolve stage. Invariant: every relocation of an included range is carried over, pointing
//! either into the output object or at an extern; nothing is dropped without a finding.

use std::collections::{HashMap, VecDeque};

use object::elf;

use crate::diff::aux_code;
use crate::diff::changed::relocs_in;
use crate::diff::names::cold_parent;
use crate::diff::reloc_target::{addend_bias, resolve, RelocTarget};
use crate::diff::special::{
    alt_replacement, classify, entry_bytes_at, layout, Replacement, Special,
};
use crate::diff::{exclude, Finding, ObjectDiff};
use crate::elf::{
    Content, ElfObject, Location, Orig, Out, Patched, Reloc, Section, SectionId, SymSection,
    Symbol, SymbolId,
};
use crate::keys;

/// A function that the module registers as a `klp_func`.
#[derive(Debug, Clone)]
pub struct KlpFunc {
    /// The kernel's function (`old_name`).
    pub old_name: String,
    /// Its symbol in the original object (for sympos).
    pub orig: SymbolId<Orig>,
    /// The global alias of the new function in the output object, which the function table names.
    pub new_symbol: String,
}

/// A reference to something outside the output object.
#[derive(Debug, Clone)]
pub struct Extern {
    /// The undefined symbol in the output object.
    pub out: SymbolId<Out>,
    /// The name the kernel knows it by (the original object's name when it has a twin).
    pub name: String,
    /// The original object's symbol, when the translation unit defines it (a local or global of this file).
    pub orig: Option<SymbolId<Orig>>,
}

/// The output object of one translation unit.
pub struct OutObject {
    /// The object itself.
    pub elf: ElfObject<Out>,
    /// Functions to register.
    pub funcs: Vec<KlpFunc>,
    /// Undefined references, for the resolve stage.
    pub externs: Vec<Extern>,
    /// Non-fatal findings.
    pub warnings: Vec<Finding>,
}

/// Read-only data without relocations that code addresses without a symbol: constant pools
/// (`.rodata.cst16`) and literals gcc places in plain `.rodata`, such as the `"i686"` that
/// `copy_to_user(name->machine, "i686", 7)` in kernel/sys.c's olduname reads. A private copy in
/// the module is equivalent, so the whole section is carried.
fn is_anonymous_constant(p: &ElfObject<Patched>, sec: SectionId<Patched>) -> bool {
    let s = p.section(sec);
    s.is_alloc()
        && !s.is_text()
        && s.sh_flags & u64::from(elf::SHF_WRITE) == 0
        && matches!(s.content, Content::Data(_))
        && p.relocs_for(sec).is_none()
}

/// A UBSAN call site's data (`.data..Lubsan_data177`, `.data..Lubsan_type12` with
/// `-fdata-sections`): gcc's local labels, which no symbol covers. Each belongs to one check in
/// one function, and the handler writes to it (a reported site is marked), so the module carries a
/// private copy, as the kernel's own object would for its copy of the function. The kernel case:
/// sid's 7.x, built with CONFIG_UBSAN, where every changed function of fs/proc/array.c refers to
/// its checks' data.
fn is_ubsan_data(name: &str) -> bool {
    name.starts_with(".data..Lubsan_") || name.starts_with(".data.rel.local..Lubsan_")
}

struct Cloner<'a> {
    d: &'a ObjectDiff,
    out: ElfObject<Out>,
    syms: HashMap<SymbolId<Patched>, SymbolId<Out>>,
    /// Included ranges: patched section and start -> out section (start is 0 there).
    ranges: Vec<(SectionId<Patched>, u64, u64, SectionId<Out>)>,
    whole: HashMap<SectionId<Patched>, SectionId<Out>>,
    /// Special-section tables of the output, by name (`__bug_table`), made by `out_table`.
    tables: HashMap<String, SectionId<Out>>,
    externs: HashMap<String, SymbolId<Out>>,
    extern_list: Vec<Extern>,
    relocs: HashMap<SectionId<Out>, Vec<Reloc<Out>>>,
    queue: VecDeque<SymbolId<Patched>>,
    refusals: Vec<Finding>,
    warnings: Vec<Finding>,
    changed: HashMap<SymbolId<Patched>, SymbolId<Orig>>,
    /// Fragment starts of auxiliary code sections, computed on first use.
    aux_entries: HashMap<SectionId<Patched>, Vec<u64>>,
    /// Auxiliary code fragments already copied: (section, start) -> place in the out section.
    aux_done: HashMap<(SectionId<Patched>, u64), u64>,
}

/// Builds the output object; `tag` makes the global aliases unique within the module.
pub fn extract(d: &ObjectDiff, tag: &str) -> Result<OutObject, Vec<Finding>> {
    let mut c = Cloner {
        d,
        out: ElfObject::new(d.object.clone()),
        syms: HashMap::new(),
        ranges: Vec::new(),
        whole: HashMap::new(),
        tables: HashMap::new(),
        externs: HashMap::new(),
        extern_list: Vec::new(),
        relocs: HashMap::new(),
        queue: VecDeque::new(),
        refusals: Vec::new(),
        warnings: Vec::new(),
        changed: d.changed.iter().map(|c| (c.sym, c.orig)).collect(),
        aux_entries: HashMap::new(),
        aux_done: HashMap::new(),
    };
    for ch in &d.changed {
        c.include(ch.sym);
    }
    for &a in &d.added {
        c.include(a);
    }
    for g in new_globals(d) {
        c.include(g);
    }
    // Registered callbacks go into the module even when unchanged (emit/callbacks.rs).
    for f in super::callbacks::functions(&d.patched) {
        c.include(f);
    }
    c.drain();
    c.special_sections();
    c.drain();
    c.unknown_sections();

    let mut funcs = Vec::new();
    for ch in &d.changed {
        let Some(&out_sym) = c.syms.get(&ch.sym) else {
            continue;
        };
        let old_name = d.orig.symbol(ch.orig).name.clone();
        let new_symbol = format!("__klp_new.{tag}.{old_name}");
        let s = c.out.symbol(out_sym).clone();
        c.out.add_symbol(Symbol {
            name: new_symbol.clone(),
            st_info: (elf::STB_GLOBAL << 4) | elf::STT_FUNC,
            st_other: elf::STV_HIDDEN,
            ..s
        });
        funcs.push(KlpFunc {
            old_name,
            orig: ch.orig,
            new_symbol,
        });
    }
    if !c.refusals.is_empty() {
        return Err(c.refusals);
    }
    c.finish();
    Ok(OutObject {
        elf: c.out,
        funcs,
        externs: c.extern_list,
        warnings: c.warnings,
    })
}

/// The functions and variables with external linkage that the patch adds to this object: they
/// stay global in the output object, so that another object of the same patch that uses them
/// (a new helper in fs/proc/version.c called from fs/proc/cmdline.c) binds to them when the
/// module links, and they are carried even when nothing in their own object uses them.
pub fn new_globals(d: &ObjectDiff) -> Vec<SymbolId<Patched>> {
    d.patched
        .live_symbols()
        .filter(|(s, sym)| {
            (sym.is_func() || sym.is_object())
                && !sym.is_local()
                && !sym.is_undef()
                && sym.section_id().is_some()
                && d.twins.orig(*s).is_none()
                && !exclude::is_init_section(
                    sym.section_id()
                        .map_or("", |sec| d.patched.section(sec).name.as_str()),
                )
        })
        .map(|(s, _)| s)
        .collect()
}

impl<'a> Cloner<'a> {
    fn p(&self) -> &'a ElfObject<Patched> {
        &self.d.patched
    }

    /// Whether a referenced patched symbol goes into the module (rather than referring to the kernel's).
    fn should_include(&self, s: SymbolId<Patched>) -> bool {
        let sym = self.p().symbol(s);
        if sym.is_undef() || sym.section_id().is_none() {
            return false;
        }
        if sym.is_func() {
            if self.changed.contains_key(&s) || self.d.added.contains(&s) {
                return true;
            }
            if let Some(parent) = cold_parent(&sym.name) {
                return self.p().symbol_by_name(parent).is_some_and(|ps| {
                    self.syms.contains_key(&ps) || self.changed.contains_key(&ps)
                });
            }
            // A function without twin is new even when the report filtered it (a `.cold` part).
            return self.d.twins.orig(s).is_none();
        }
        let secname = sym
            .section_id()
            .map_or("", |sec| self.p().section(sec).name.as_str());
        self.d.twins.orig(s).is_none() || exclude::is_uncorrelated_static_local(&sym.name, secname)
    }

    /// Copies symbol `s`'s range into a section of its own and queues its relocations.
    fn include(&mut self, s: SymbolId<Patched>) -> SymbolId<Out> {
        if let Some(&o) = self.syms.get(&s) {
            return o;
        }
        let p = self.p();
        let sym = p.symbol(s);
        // Callers include defined symbols only (`should_include`, the diff's functions); an
        // undefined one falls back to an extern rather than stopping here.
        let Some(sec) = sym.section_id() else {
            return self.extern_for(s);
        };
        let psec = p.section(sec);
        // In the section: the reader checked `st_value + st_size` against it.
        let (a, b) = (sym.st_value, sym.st_value + sym.st_size);
        let content = match &psec.content {
            Content::Nobits(_) => Content::Nobits(sym.st_size),
            Content::Data(d) => {
                Content::Data(d[(a as usize).min(d.len())..(b as usize).min(d.len())].to_vec())
            }
            _ => Content::Data(Vec::new()),
        };
        let mut section = Section::new(
            &psec.name,
            psec.sh_type,
            psec.sh_flags,
            psec.sh_addralign,
            content,
        );
        section.sh_entsize = psec.sh_entsize;
        let osec = self.out.add_section(section);
        // New external symbols keep their binding (see `new_globals`); everything else is the
        // module's private copy and must not clash with the kernel's or another object's.
        let bind = if !sym.is_local() && self.d.twins.orig(s).is_none() {
            elf::STB_GLOBAL
        } else {
            elf::STB_LOCAL
        };
        let osym = self.out.add_symbol(Symbol {
            name: sym.name.clone(),
            st_info: (bind << 4) | sym.kind(),
            st_other: sym.st_other,
            section: SymSection::Section(osec),
            st_value: 0,
            st_size: sym.st_size,
            deleted: false,
        });
        self.syms.insert(s, osym);
        self.ranges.push((sec, a, b, osec));
        self.queue.push_back(s);
        osym
    }

    fn drain(&mut self) {
        while let Some(s) = self.queue.pop_front() {
            let p = self.p();
            let sym = p.symbol(s);
            let (Some(sec), Some(osec)) = (
                sym.section_id(),
                self.syms
                    .get(&s)
                    .and_then(|&o| self.out.symbol(o).section_id()),
            ) else {
                continue;
            };
            let (a, b) = (sym.st_value, sym.st_value + sym.st_size);
            for r in relocs_in(p, sec, a, b) {
                self.carry(sec, r, osec, r.r_offset - a);
            }
            // Children follow parents: `foo.cold` holds the unlikely paths of `foo`.
            if sym.is_func() {
                let child = format!("{}.cold", sym.name);
                if let Some(cs) = p.symbol_by_name(&child) {
                    self.include(cs);
                }
            }
        }
    }

    /// Carries relocation `r` of patched section `sec` to `osec+off`.
    fn carry(
        &mut self,
        sec: SectionId<Patched>,
        r: &Reloc<Patched>,
        osec: SectionId<Out>,
        off: u64,
    ) {
        // R_X86_64_NONE writes nothing: objtool leaves one where it turned a jump-label `jmp`
        // into a NOP (6.1's `static_branch_unlikely()` in kpatch's nfsd e_show test points it
        // at `.text.unlikely.e_show-4`, before any symbol). The module loader skips it too; the
        // jump target is carried through the `__jump_table` entry.
        if r.r_type == elf::R_X86_64_NONE {
            return;
        }
        let p = self.p();
        let t = resolve(p, sec, r, self.d.decoded.1.get(sec));
        let bias = addend_bias(p, sec, r, self.d.decoded.1.get(sec));
        let (sym, addend) = match t {
            RelocTarget::Symbol(ts, toff) => {
                let to = if self.should_include(ts) {
                    self.include(ts)
                } else {
                    self.extern_for(ts)
                };
                match self.code_label(sec, r, ts, to) {
                    Some((ssym, base)) => (ssym, base.wrapping_add(toff).wrapping_sub(bias)),
                    None => (to, toff.wrapping_sub(bias)),
                }
            }
            RelocTarget::String(tsec, _) => self.whole_section(r, tsec),
            RelocTarget::Section(tsec, toff) => {
                let name = &p.section(tsec).name;
                if is_anonymous_constant(p, tsec) {
                    self.whole_section(r, tsec)
                } else if is_ubsan_data(name) {
                    self.whole_section_with_relocs(r, tsec)
                } else if aux_code::is_aux_code(name) {
                    match self.aux_fragment(sec, r, tsec, toff) {
                        Some(out) => (out.0, out.1.wrapping_sub(bias)),
                        None => return,
                    }
                } else {
                    self.refusals.push(Finding {
                        key: keys::RELOC_ANONYMOUS,
                        location: Location::new(p, sec, r.r_offset).to_string(),
                        message: format!(
                            "refers to {name}{toff:+#x}, which no symbol covers, so klp-build cannot tell which kernel \
                             object it is; give the object a name (a static variable) in the patch"
                        ),
                    });
                    return;
                }
            }
        };
        self.relocs.entry(osec).or_default().push(Reloc {
            r_offset: off,
            sym,
            r_type: r.r_type,
            r_addend: addend,
        });
    }

    /// The section symbol (and the place of `to` in its section) that relocation `r` of code
    /// section `sec` must keep using, when the assembler wrote it against a section rather than
    /// a symbol and it lands in a function the module carries (`to`, the copy of `ts`): a jump to
    /// a label, which the assembler spells `.text.<func>+off`. The reference stays a section
    /// reference in the output object, as in a kernel build, because objtool reads a jump
    /// through an `STT_FUNC` symbol as a sibling call to that function
    /// (`add_jump_destinations()` of tools/objtool/check.c, as 6.12 has it: it never looks at
    /// the offset into the function). The kernel case, Debian's 6.12 with objtool at the module link:
    /// `static_cpu_has()` in `meminfo_proc_show()` (meminfo-cpu-has.patch) and in
    /// `copy_process()` (shadow-fork.patch) has an alternative whose replacement is
    /// `jmp t_no`, written as `.text.meminfo_proc_show+0xac9`; objtool analyses a replacement
    /// as part of the function whose `.altinstructions` entry owns it, so written as
    /// `meminfo_proc_show+0xab9` the jump became a sibling call from the middle of the function
    /// ("`.altinstr_replacement+0x0: sibling call from callable instruction with modified stack
    /// frame`"), the replacement lost its way back into the function and its ORC. The same holds
    /// for a function's jumps into its `.cold` part, and for `.altinstr_aux`.
    fn code_label(
        &mut self,
        sec: SectionId<Patched>,
        r: &Reloc<Patched>,
        ts: SymbolId<Patched>,
        to: SymbolId<Out>,
    ) -> Option<(SymbolId<Out>, i64)> {
        let p = self.p();
        let written = p.symbol(r.sym);
        if !p.section(sec).is_text()
            || written.is_func()
            || written.is_object()
            || !p.symbol(ts).is_func()
        {
            return None;
        }
        let out = self.out.symbol(to);
        let osec = out.section_id()?;
        let base = out.st_value as i64;
        Some((self.section_symbol(osec), base))
    }

    /// Copies the fragment of auxiliary code section `tsec` that holds `toff` (see
    /// [`aux_code`]) once, with its relocations; returns the out section's symbol and the place of
    /// `toff` in it. A fragment that jumps into a function the module does not carry was cut
    /// wrong (the section holds code klp-build does not know): refused, since the module would
    /// jump into the middle of the kernel's old function.
    fn aux_fragment(
        &mut self,
        sec: SectionId<Patched>,
        r: &Reloc<Patched>,
        tsec: SectionId<Patched>,
        toff: i64,
    ) -> Option<(SymbolId<Out>, i64)> {
        let p = self.p();
        let entries = self
            .aux_entries
            .entry(tsec)
            .or_insert_with(|| aux_code::entries(p, tsec))
            .clone();
        let name = &p.section(tsec).name;
        let Some((a, b)) = aux_code::fragment(&entries, p.section_size(tsec), toff) else {
            self.refusals.push(Finding {
                key: keys::RELOC_AUX,
                location: Location::new(p, sec, r.r_offset).to_string(),
                message: format!(
                    "refers to {name}{toff:+#x}, where no jump of the object's code lands; \
                     rebuild the object, it is not what the compiler writes for static_cpu_has()"
                ),
            });
            return None;
        };
        let osec = self.out_table(name, p.section(tsec));
        let at = match self.aux_done.get(&(tsec, a)) {
            Some(&at) => at,
            None => {
                let bytes = p.data(tsec).get(a as usize..b as usize).unwrap_or_default();
                let at = self.append(osec, bytes);
                self.aux_done.insert((tsec, a), at);
                for ar in relocs_in(p, tsec, a, b) {
                    if let RelocTarget::Symbol(ts, _) = resolve(p, tsec, ar, None) {
                        let t = p.symbol(ts);
                        if t.is_func() && !self.should_include(ts) {
                            self.refusals.push(Finding {
                                key: keys::RELOC_AUX,
                                location: Location::new(p, sec, r.r_offset).to_string(),
                                message: format!(
                                    "its code in {name}{a:+#x} jumps into {}, which the module \
                                     does not carry; report this object to klp-build",
                                    t.name
                                ),
                            });
                            return None;
                        }
                    }
                    self.carry(tsec, ar, osec, at + ar.r_offset - a);
                }
                at
            }
        };
        Some((self.section_symbol(osec), (at + (toff as u64 - a)) as i64))
    }

    /// Copies a whole section (strings, constant pools) once; returns its section symbol and the addend.
    fn whole_section(
        &mut self,
        r: &Reloc<Patched>,
        tsec: SectionId<Patched>,
    ) -> (SymbolId<Out>, i64) {
        let p = self.p();
        let rsym = p.symbol(r.sym);
        let offset_in_tsec = if rsym.is_section() {
            0
        } else {
            rsym.st_value as i64
        };
        let osec = match self.whole.get(&tsec) {
            Some(&o) => o,
            None => {
                let ps = p.section(tsec);
                let content = match &ps.content {
                    Content::Nobits(n) => Content::Nobits(*n),
                    _ => Content::Data(p.data(tsec).to_vec()),
                };
                let mut s =
                    Section::new(&ps.name, ps.sh_type, ps.sh_flags, ps.sh_addralign, content);
                s.sh_entsize = ps.sh_entsize;
                let o = self.out.add_section(s);
                self.whole.insert(tsec, o);
                o
            }
        };
        (
            self.section_symbol(osec),
            offset_in_tsec.wrapping_add(r.r_addend),
        )
    }

    /// [`Self::whole_section`] for a section whose own relocations must come along: a UBSAN
    /// call site's data (its source location names the file's string, its type descriptor
    /// another `.Lubsan_type` section). Each is carried once.
    fn whole_section_with_relocs(
        &mut self,
        r: &Reloc<Patched>,
        tsec: SectionId<Patched>,
    ) -> (SymbolId<Out>, i64) {
        let new = !self.whole.contains_key(&tsec);
        let out = self.whole_section(r, tsec);
        if new {
            if let Some(&osec) = self.whole.get(&tsec) {
                let relocs = self.p().relocs_of(tsec).to_vec();
                for rel in &relocs {
                    self.carry(tsec, rel, osec, rel.r_offset);
                }
            }
        }
        out
    }

    fn section_symbol(&mut self, osec: SectionId<Out>) -> SymbolId<Out> {
        self.out.ensure_section_symbol(osec)
    }

    fn extern_for(&mut self, ts: SymbolId<Patched>) -> SymbolId<Out> {
        let orig = self.d.twins.orig(ts);
        let name = match orig {
            Some(o) => self.d.orig.symbol(o).name.clone(),
            None => self.p().symbol(ts).name.clone(),
        };
        if let Some(&s) = self.externs.get(&name) {
            return s;
        }
        let s = self.out.add_symbol(Symbol::undefined_global(name.as_str()));
        self.externs.insert(name.clone(), s);
        let orig = orig.filter(|&o| !self.d.orig.symbol(o).is_undef());
        self.extern_list.push(Extern { out: s, name, orig });
        s
    }

    /// The out place of patched `sec+off` when it lies in an included range; `end_ok` also
    /// accepts the offset just past a range (ORC's terminating entry sits there).
    fn mapped(
        &self,
        sec: SectionId<Patched>,
        off: i64,
        end_ok: bool,
    ) -> Option<(SectionId<Out>, u64)> {
        self.ranges
            .iter()
            .find(|(s, a, b, _)| {
                *s == sec
                    && off >= 0
                    && off as u64 >= *a
                    && ((off as u64) < (*b).max(a.saturating_add(1))
                        || (end_ok && off as u64 == *b))
            })
            .map(|(_, a, _, o)| (*o, off as u64 - a))
    }

    /// Whether the code location that relocation `r` of a table points at is included.
    fn anchor_included(&self, r: &Reloc<Patched>) -> bool {
        self.anchor_in(r, false)
    }

    fn anchor_in(&self, r: &Reloc<Patched>, end_ok: bool) -> bool {
        self.anchor(r, end_ok).is_some()
    }

    /// The out place of the code location relocation `r` of a table points at, if included.
    fn anchor(&self, r: &Reloc<Patched>, end_ok: bool) -> Option<(SectionId<Out>, u64)> {
        let p = self.p();
        let sym = p.symbol(r.sym);
        let tsec = sym.section_id()?;
        let off = if sym.is_section() {
            r.r_addend
        } else {
            (sym.st_value as i64).wrapping_add(r.r_addend)
        };
        self.mapped(tsec, off, end_ok)
    }

    /// A table entry that does not fit its section: the object is malformed (kernels write
    /// whole entries), and the build stops with the section and entry named.
    fn malformed(&mut self, sec: SectionId<Patched>, off: u64, what: String) {
        let p = self.p();
        self.refusals.push(Finding {
            key: keys::OBJECT_MALFORMED,
            location: Location::new(p, sec, off.min(p.section_size(sec))).to_string(),
            message: format!(
                "{what}; rebuild the object, it is not what the compiler and objtool write"
            ),
        });
    }

    fn out_table(&mut self, name: &str, like: &Section<Patched>) -> SectionId<Out> {
        if let Some(&s) = self.tables.get(name) {
            return s;
        }
        let mut s = Section::new(
            name,
            like.sh_type,
            like.sh_flags,
            like.sh_addralign,
            Content::Data(Vec::new()),
        );
        s.sh_entsize = like.sh_entsize;
        let id = self.out.add_section(s);
        self.tables.insert(name.to_string(), id);
        id
    }

    fn append(&mut self, osec: SectionId<Out>, bytes: &[u8]) -> u64 {
        // Tables are created by `out_table` with `Content::Data`; nothing else appends.
        match &mut self.out.section_mut(osec).content {
            Content::Data(d) => {
                let at = d.len() as u64;
                d.extend_from_slice(bytes);
                at
            }
            _ => 0,
        }
    }

    /// Copies the special-section entries of included functions.
    fn special_sections(&mut self) {
        let p = self.p();
        for (sec, s) in p.live_sections() {
            if matches!(s.content, Content::Relocs { .. }) {
                continue;
            }
            let kind = match layout(p, sec) {
                Ok(Some(kind)) => kind,
                Ok(None) => continue,
                Err(e) => {
                    // Only the included functions that the table points into are concerned (the
                    // diff stage refused the changed and new ones already).
                    if let Some(r) = p.relocs_of(sec).iter().find(|r| self.anchor_included(r)) {
                        self.malformed(sec, r.r_offset, e);
                    }
                    continue;
                }
            };
            match kind {
                Special::Entries { size } => {
                    let mut by_entry: HashMap<u64, Vec<&Reloc<Patched>>> = HashMap::new();
                    for r in p.relocs_of(sec) {
                        by_entry.entry(r.r_offset / size).or_default().push(r);
                    }
                    let mut entries: Vec<_> = by_entry.into_iter().collect();
                    entries.sort_by_key(|(i, _)| *i);
                    for (i, rs) in entries {
                        let start = i * size;
                        let Some(anchor) = rs.iter().find(|r| r.r_offset == start) else {
                            continue;
                        };
                        if !self.anchor_included(anchor) {
                            continue;
                        }
                        let Some(bytes) = entry_bytes_at(p, sec, size, start) else {
                            self.malformed(
                                sec,
                                start,
                                format!(
                                    "{} entry {i} (offset {start:#x}): expected {size} bytes, found {:#x}",
                                    s.name,
                                    p.section_size(sec).saturating_sub(start)
                                ),
                            );
                            continue;
                        };
                        // A last entry without its padding gets it back: the next entry of the
                        // module's table must start at the stride.
                        let mut bytes = bytes.to_vec();
                        bytes.resize(size as usize, 0);
                        let osec = self.out_table(&s.name, s);
                        let at = self.append(osec, &bytes);
                        for r in rs {
                            self.carry(sec, r, osec, at + r.r_offset - start);
                        }
                    }
                }
                Special::Alternatives { size } => self.alternatives(sec, size),
                Special::OrcIp => self.orc(sec),
                Special::Partner | Special::Drop => {}
            }
        }
    }

    fn alternatives(&mut self, sec: SectionId<Patched>, size: u64) {
        let p = self.p();
        let s = p.section(sec);
        let data = p.data(sec);
        let rs = p.relocs_by_offset(sec);
        for i in 0..data.len() as u64 / size {
            let start = i * size;
            let (Some(&instr), Some(&rep)) = (rs.get(&start), rs.get(&(start + 4))) else {
                continue;
            };
            if !self.anchor_included(instr) {
                continue;
            }
            let Some(entry) = data.get(start as usize..(start + size) as usize) else {
                continue; // `layout` made the table whole entries
            };
            let (repl, roff, rlen) = match alt_replacement(p, sec, &rs, size, start) {
                Ok(Replacement::Bytes(repl, roff, rlen)) => (repl, roff, rlen),
                Ok(Replacement::None) => continue,
                Ok(Replacement::Symbol(_)) => {
                    // The replacement is kernel code (5.15's `__x86_indirect_alt_call_rax`):
                    // the entry comes with both relocations as they are.
                    let oalt = self.out_table(&s.name, s);
                    let eat = self.append(oalt, entry);
                    self.carry(sec, instr, oalt, eat);
                    self.carry(sec, rep, oalt, eat + 4);
                    continue;
                }
                Err(e) => {
                    self.malformed(sec, start, e);
                    continue;
                }
            };
            let Some(rbytes) = p.data(repl).get(roff as usize..(roff + rlen) as usize) else {
                self.malformed(
                    sec,
                    start,
                    format!(
                        "{} entry {i} (offset {start:#x}): replacement cut short",
                        s.name
                    ),
                );
                continue;
            };
            let orepl = self.out_table(&p.section(repl).name, p.section(repl));
            let at = self.append(orepl, rbytes);
            for r in relocs_in(p, repl, roff, roff + rlen) {
                self.carry(repl, r, orepl, at + r.r_offset - roff);
            }
            let oalt = self.out_table(&s.name, s);
            let eat = self.append(oalt, entry);
            self.carry(sec, instr, oalt, eat);
            let rsec_sym = self.section_symbol(orepl);
            self.relocs.entry(oalt).or_default().push(Reloc {
                r_offset: eat + 4,
                sym: rsec_sym,
                r_type: rep.r_type,
                r_addend: at as i64,
            });
        }
    }

    fn orc(&mut self, ip: SectionId<Patched>) {
        let p = self.p();
        let Some(unw) = p.section_by_name(".orc_unwind") else {
            return;
        };
        let (ipd, unwd) = (p.data(ip), p.data(unw));
        let rs = p.relocs_by_offset(ip);
        for i in 0..ipd.len() as u64 / 4 {
            let Some(&r) = rs.get(&(i * 4)) else {
                continue;
            };
            if !self.anchor_in(r, true) {
                continue;
            }
            let (Some(ipb), Some(unwb)) = (
                ipd.get((i * 4) as usize..(i * 4 + 4) as usize),
                unwd.get((i * 6) as usize..(i * 6 + 6) as usize),
            ) else {
                self.malformed(
                    ip,
                    i * 4,
                    format!(".orc_unwind_ip: entry {i} has no .orc_unwind entry"),
                );
                continue;
            };
            let oip = self.out_table(".orc_unwind_ip", p.section(ip));
            let ounw = self.out_table(".orc_unwind", p.section(unw));
            let at = self.append(oip, ipb);
            self.append(ounw, unwb);
            // Point at the copied code directly: the terminating entry sits just past the
            // function, where no symbol covers it.
            let Some((osec, ooff)) = self.anchor(r, true) else {
                continue;
            };
            let ssym = self.section_symbol(osec);
            self.relocs.entry(oip).or_default().push(Reloc {
                r_offset: at,
                sym: ssym,
                r_type: r.r_type,
                r_addend: ooff as i64,
            });
        }
    }

    /// Allocated sections klp-build does not know that point into included code: a warning, so
    /// that a new kernel table is noticed rather than silently left behind.
    fn unknown_sections(&mut self) {
        let p = self.p();
        for (_, s) in p.live_sections() {
            let Content::Relocs { target, relocs } = &s.content else {
                continue;
            };
            let t = p.section(*target);
            if !t.is_alloc() || t.is_text() || classify(&t.name, t.sh_entsize).is_some() {
                continue;
            }
            if exclude::is_checked_data_section(&t.name) || exclude::is_init_section(&t.name) {
                continue;
            }
            if self.ranges.iter().any(|(sec, ..)| sec == target) || self.whole.contains_key(target)
            {
                continue;
            }
            if let Some(r) = relocs.iter().find(|r| self.anchor_included(r)) {
                self.warnings.push(Finding {
                    key: keys::SPECIAL_UNKNOWN,
                    location: Location::new(p, *target, r.r_offset).to_string(),
                    message: format!(
                        "section {} refers to patched code and is not carried into the module; \
                         the kernel keeps using its own entry",
                        t.name
                    ),
                });
            }
        }
    }

    /// Materialises relocation sections and the GNU-stack note.
    fn finish(&mut self) {
        let mut relocs: Vec<_> = std::mem::take(&mut self.relocs).into_iter().collect();
        relocs.sort_by_key(|(s, _)| *s);
        for (osec, mut rs) in relocs {
            rs.sort_by_key(|r| r.r_offset);
            let name = self.out.section(osec).name.clone();
            self.out.add_section(Section::rela(&name, osec, rs));
        }
        self.out.add_section(Section::new(
            ".note.GNU-stack",
            elf::SHT_PROGBITS,
            0,
            1,
            Content::Data(Vec::new()),
        ));
    }
}
