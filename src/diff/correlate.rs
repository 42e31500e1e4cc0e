//! Correlation: which patched symbol is the twin of which original symbol. Input: the orig and
//! patched objects. Output: [`Twins`], each pair with the funnel rule that matched it. Invariant:
//! twins are 1:1 and of the same symbol type; a rule only matches when the match is unique on both
//! sides, and the funnel goes from the widest rule to the narrowest (objtool's `find_twin()`).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::elf::{ElfObject, Orig, Patched, SymbolId};

use super::changed::Decoded;
use super::reloc_target::{resolve, RelocTarget};

/// The funnel rule that paired two symbols, recorded for the report and `--debug=correlate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// Same name and type on both sides.
    Exact,
    /// Same name once compiler-numbered suffixes are removed: `__key.12` / `__key.14`,
    /// `__UNIQUE_ID_ddebug412` / `__UNIQUE_ID_ddebug415`, when the patch shifts the counters.
    Suffix,
    /// Same stripped name, told apart by the twin functions that reference them: the static
    /// locals `__already_done.N` of two different functions.
    Scope,
    /// Same stripped name, paired by order of appearance; the last resort, warned about.
    Position,
}

/// The twins of one object pair.
#[derive(Debug, Default)]
pub struct Twins {
    to_orig: HashMap<SymbolId<Patched>, (SymbolId<Orig>, Rule)>,
    to_patched: HashMap<SymbolId<Orig>, SymbolId<Patched>>,
}

impl Twins {
    /// The original twin of a patched symbol.
    pub fn orig(&self, p: SymbolId<Patched>) -> Option<SymbolId<Orig>> {
        self.to_orig.get(&p).map(|x| x.0)
    }
    /// The patched twin of an original symbol.
    pub fn patched(&self, o: SymbolId<Orig>) -> Option<SymbolId<Patched>> {
        self.to_patched.get(&o).copied()
    }
    /// The rule that paired `p`.
    pub fn rule(&self, p: SymbolId<Patched>) -> Option<Rule> {
        self.to_orig.get(&p).map(|x| x.1)
    }
    fn pair(&mut self, p: SymbolId<Patched>, o: SymbolId<Orig>, rule: Rule) {
        self.to_orig.insert(p, (o, rule));
        self.to_patched.insert(o, p);
    }
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.to_orig.len()
    }
    /// No pairs at all.
    pub fn is_empty(&self) -> bool {
        self.to_orig.is_empty()
    }
}

/// Removes compiler-numbered suffixes: `.NNN` (static locals, `.isra.0` keeps its own name up to the
/// number only when a further `.N` follows) and the digits that end `__UNIQUE_ID_<name>NNN`.
pub fn strip_suffix(name: &str) -> &str {
    let mut s = name;
    if let Some(dot) = s.rfind('.') {
        let tail = &s[dot + 1..];
        let clone = [".constprop", ".isra", ".part", ".cold", ".lto_priv"]
            .iter()
            .any(|c| s[..dot].ends_with(c));
        if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) && !clone {
            s = &s[..dot];
        }
    }
    if s.starts_with("__UNIQUE_ID_") {
        s = s.trim_end_matches(|c: char| c.is_ascii_digit());
    }
    s
}

/// Symbols that take part in correlation: named, not section or file symbols.
fn candidates<R: crate::elf::Role>(obj: &ElfObject<R>) -> Vec<SymbolId<R>> {
    obj.live_symbols()
        .filter(|(_, s)| !s.name.is_empty() && !s.is_section() && s.kind() != object::elf::STT_FILE)
        .map(|(i, _)| i)
        .collect()
}

/// Symbols grouped by `key(name)`, each group in object order (BTreeMap for a stable result).
fn group<'a, R: crate::elf::Role>(
    obj: &'a ElfObject<R>,
    ids: &[SymbolId<R>],
    key: fn(&str) -> &str,
) -> BTreeMap<&'a str, Vec<SymbolId<R>>> {
    let mut m: BTreeMap<&str, Vec<SymbolId<R>>> = BTreeMap::new();
    for &i in ids {
        m.entry(key(&obj.symbol(i).name)).or_default().push(i);
    }
    m
}

/// Runs the funnel.
pub fn correlate(
    orig: &ElfObject<Orig>,
    patched: &ElfObject<Patched>,
    dec: (&Decoded<Orig>, &Decoded<Patched>),
) -> Twins {
    let mut twins = Twins::default();
    let os = candidates(orig);
    let ps = candidates(patched);
    let same_kind = |o: SymbolId<Orig>, p: SymbolId<Patched>| {
        let (a, b) = (orig.symbol(o), patched.symbol(p));
        a.kind() == b.kind()
            && a.is_undef() == b.is_undef()
            && a.section_id().is_some() == b.section_id().is_some()
    };

    // Exact names, unique on both sides.
    let by_name_o = group(orig, &os, |n| n);
    let by_name_p = group(patched, &ps, |n| n);
    // A compiler-numbered name (`calls.1`, `__func__.2`) is only an exact match when its family
    // has one member on each side: a patch that adds a static local renumbers the others, and
    // `calls.1` may then belong to another function. Larger families go to the scope rule.
    let family_o = group(orig, &os, strip_suffix);
    let family_p = group(patched, &ps, strip_suffix);
    let numbered_family = |name: &str| {
        let base = strip_suffix(name);
        base != name
            && (family_o.get(base).map_or(0, Vec::len) > 1
                || family_p.get(base).map_or(0, Vec::len) > 1)
    };
    for (name, pv) in &by_name_p {
        if numbered_family(name) {
            continue;
        }
        if let (Some(ov), [p]) = (by_name_o.get(name), pv.as_slice()) {
            if let [o] = ov.as_slice() {
                if same_kind(*o, *p) {
                    twins.pair(*p, *o, Rule::Exact);
                }
            }
        }
    }

    // The rest grouped by stripped name, in object order (BTreeMap for a stable result).
    let unpaired_o: Vec<_> = os
        .iter()
        .copied()
        .filter(|&o| twins.patched(o).is_none())
        .collect();
    let unpaired_p: Vec<_> = ps
        .iter()
        .copied()
        .filter(|&p| twins.orig(p).is_none())
        .collect();
    let left_o = group(orig, &unpaired_o, strip_suffix);
    let left_p = group(patched, &unpaired_p, strip_suffix);
    let mut users: Option<(Users<Orig>, Users<Patched>)> = None;
    for (name, pv) in &left_p {
        let Some(ov) = left_o.get(name) else { continue };
        match (ov.as_slice(), pv.as_slice()) {
            ([o], [p]) if same_kind(*o, *p) => twins.pair(*p, *o, Rule::Suffix),
            _ => {
                // Scope: the (single) function whose relocations refer to each static.
                let (users_o, users_p) = users
                    .get_or_insert_with(|| (Users::new(orig, dec.0), Users::new(patched, dec.1)));
                let mut paired = Vec::new();
                for &p in pv {
                    let Some(pf) = users_p.sole(p) else {
                        continue;
                    };
                    let Some(of) = twins.orig(pf) else { continue };
                    let hits: Vec<_> = ov
                        .iter()
                        .copied()
                        .filter(|&o| twins.patched(o).is_none() && same_kind(o, p))
                        .filter(|&o| users_o.sole(o) == Some(of))
                        .collect();
                    if let [o] = hits.as_slice() {
                        paired.push((p, *o));
                    }
                }
                for (p, o) in paired {
                    twins.pair(p, o, Rule::Scope);
                }
                let ro: Vec<_> = ov
                    .iter()
                    .copied()
                    .filter(|&o| twins.patched(o).is_none())
                    .collect();
                let rp: Vec<_> = pv
                    .iter()
                    .copied()
                    .filter(|&p| twins.orig(p).is_none())
                    .collect();
                if ro.len() == rp.len() && ro.iter().zip(&rp).all(|(&o, &p)| same_kind(o, p)) {
                    for (o, p) in ro.into_iter().zip(rp) {
                        twins.pair(p, o, Rule::Position);
                    }
                }
            }
        }
    }
    twins
}

/// Who refers to a symbol from code, for the scope rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum User<R: crate::elf::Role> {
    /// Only this function does.
    Sole(SymbolId<R>),
    /// Several functions do, or code outside any function does.
    Many,
}

/// The users of every symbol that code refers to, from one pass over the relocations of the
/// text sections: how a static local is tied to its scope. Targets are resolved with the decoded
/// instruction tails, so `cmpb $0, flag(%rip)` (addend -5) names the right flag of a shared
/// `.data.once`. Built once per object: resolving every relocation again for each static made
/// kernel/sched/core.o (thousands of relocations, hundreds of numbered statics) take a minute.
struct Users<R: crate::elf::Role>(HashMap<SymbolId<R>, User<R>>);

impl<R: crate::elf::Role> Users<R> {
    fn new(obj: &ElfObject<R>, dec: &Decoded<R>) -> Self {
        let mut m: HashMap<SymbolId<R>, User<R>> = HashMap::new();
        for (_, rs) in obj.live_sections() {
            let crate::elf::Content::Relocs { target, relocs } = &rs.content else {
                continue;
            };
            if !obj.section(*target).is_text() {
                continue;
            }
            let funcs = FuncIndex::new(obj, *target);
            for r in relocs {
                let RelocTarget::Symbol(s, _) = resolve(obj, *target, r, dec.get(*target)) else {
                    continue;
                };
                let user = match funcs.at(r.r_offset) {
                    Some(f) => User::Sole(f),
                    None => User::Many,
                };
                m.entry(s)
                    .and_modify(|u| {
                        if *u != user {
                            *u = User::Many;
                        }
                    })
                    .or_insert(user);
            }
        }
        Users(m)
    }

    /// The one function whose code refers to `sym` (by name, through its section symbol or a
    /// local label), if exactly one does.
    fn sole(&self, sym: SymbolId<R>) -> Option<SymbolId<R>> {
        match self.0.get(&sym) {
            Some(User::Sole(f)) => Some(*f),
            _ => None,
        }
    }
}

/// The functions of one section sorted by start, to find the function at an offset by binary
/// search rather than by a scan of the symbol table per relocation.
struct FuncIndex<R: crate::elf::Role>(Vec<(u64, u64, SymbolId<R>)>);

impl<R: crate::elf::Role> FuncIndex<R> {
    fn new(obj: &ElfObject<R>, sec: crate::elf::SectionId<R>) -> Self {
        let mut v: Vec<_> = obj
            .live_symbols()
            .filter(|(_, s)| s.is_func() && s.section_id() == Some(sec))
            .map(|(i, s)| (s.st_value, s.st_value.saturating_add(s.st_size), i))
            .collect();
        v.sort_unstable_by_key(|&(a, _, i)| (a, i));
        FuncIndex(v)
    }

    /// The first function (in symbol order, as [`crate::diff::func_at`]) covering `off`.
    fn at(&self, off: u64) -> Option<SymbolId<R>> {
        let n = self.0.partition_point(|&(a, _, _)| a <= off);
        self.0[..n]
            .iter()
            .filter(|&&(_, b, _)| off < b)
            .map(|&(_, _, i)| i)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::strip_suffix;

    #[test]
    fn suffixes() {
        assert_eq!(strip_suffix("__key.12"), "__key");
        assert_eq!(strip_suffix("__already_done.5"), "__already_done");
        assert_eq!(strip_suffix("foo.constprop.0"), "foo.constprop.0");
        assert_eq!(strip_suffix("foo.isra.0"), "foo.isra.0");
        assert_eq!(strip_suffix("foo.cold"), "foo.cold");
        assert_eq!(strip_suffix("__UNIQUE_ID_ddebug412"), "__UNIQUE_ID_ddebug");
        assert_eq!(strip_suffix("cmdline_proc_show"), "cmdline_proc_show");
    }
}
