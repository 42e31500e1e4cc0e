//! Correlation: which patched symbol is the twin of which original symbol. Input: the orig and
//! patched objects. Output: [`Twins`], each pair with the funnel rule that matched it. Invariant:
//! twins are 1:1 and of the same symbol type; a rule only matches when the match is unique on both
//! sides, and the funnel goes from the widest rule to the narrowest (objtool's `find_twin()`).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::elf::{ElfObject, Orig, Patched, SymbolId};

use super::decode::Decoded;
use super::exclude;
use super::fingerprint::{bytes_and_targets, contents};
use super::names::{part_parent, strip_suffix};
use super::reloc_target::{resolve, RelocTarget};

/// The funnel rule that paired two symbols, recorded for the report (`diff --report json` and
/// `--explain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// Same name and type on both sides.
    Exact,
    /// Same name once compiler-numbered suffixes are removed, unique on both sides: a
    /// function's only `static int count` named `count.3` here and `count.5` there, when the
    /// patch adds static locals elsewhere in the file and shifts gcc's counter.
    Suffix,
    /// Same stripped name, told apart by the twin functions that reference them: the static
    /// locals `__already_done.N` of two different functions.
    Scope,
    /// Same stripped name and the same contents (bytes, and what the relocations address), for
    /// read-only data: the `__func__` strings of two functions of which one is inlined into the
    /// other have one scope, but their bytes are the functions' names.
    Content,
    /// Same stripped name, paired by order of appearance; the last resort, warned about.
    Position,
}

impl Rule {
    /// The rule's name in reports (`exact`, `suffix`, `scope`, `content`, `position`).
    pub fn name(self) -> &'static str {
        match self {
            Rule::Exact => "exact",
            Rule::Suffix => "suffix",
            Rule::Scope => "scope",
            Rule::Content => "content",
            Rule::Position => "position",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The twins of one object pair.
#[derive(Debug, Default)]
pub struct Twins {
    to_orig: HashMap<SymbolId<Patched>, (SymbolId<Orig>, Rule)>,
    to_patched: HashMap<SymbolId<Orig>, SymbolId<Patched>>,
    left_orig: Vec<SymbolId<Orig>>,
    left_patched: Vec<SymbolId<Patched>>,
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
    /// The candidates the funnel left unpaired, in object order: original and patched.
    pub fn leftovers(&self) -> (&[SymbolId<Orig>], &[SymbolId<Patched>]) {
        (&self.left_orig, &self.left_patched)
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

/// Symbols that take part in correlation: named, not section or file symbols.
fn candidates<R: crate::elf::Role>(obj: &ElfObject<R>) -> Vec<SymbolId<R>> {
    obj.live_symbols()
        .filter(|(_, s)| !s.name.is_empty() && !s.is_section() && s.kind() != object::elf::STT_FILE)
        .map(|(i, _)| i)
        .collect()
}

/// Symbols grouped by `key(name)`, each group in object order (BTreeMap for a stable result).
fn group<R: crate::elf::Role>(
    obj: &ElfObject<R>,
    ids: impl IntoIterator<Item = SymbolId<R>>,
    key: fn(&str) -> &str,
) -> BTreeMap<&str, Vec<SymbolId<R>>> {
    let mut m: BTreeMap<&str, Vec<SymbolId<R>>> = BTreeMap::new();
    for i in ids {
        m.entry(key(&obj.symbol(i).name)).or_default().push(i);
    }
    m
}

/// The `dont_correlate` gate: symbols that the guessing rules (suffix, position) never pair,
/// because a wrong pair is worse than none. They are still paired by exact name and by scope,
/// and left unpaired they are carried: the functions that use them get their own copy.
///
/// - The special statics of [`exclude::is_uncorrelated_static_local`] (`__already_done`,
///   `__func__`, `__warned`, `_rs`, `__key`, `descriptor`, `CSWTCH`, everything in
///   `.data..once`): a patch that adds a `WARN_ONCE()` renumbers every `__already_done.N` of the
///   file, and pairing the survivors by position hands one call site's flag to another.
/// - String labels (`.LC4` of `WARN_ON()`'s file name, clang's `.L.str.2`) and symbols in
///   `SHF_STRINGS` sections: they stand for bytes, which [`super::reloc_target`] compares by
///   content; their numbers say nothing about which string is which.
pub fn dont_correlate<R: crate::elf::Role>(obj: &ElfObject<R>, sym: SymbolId<R>) -> bool {
    let s = obj.symbol(sym);
    if s.is_section() || s.kind() == object::elf::STT_FILE || s.name.starts_with(".L") {
        return true;
    }
    let Some(sec) = s.section_id() else {
        return false;
    };
    let sec = obj.section(sec);
    sec.sh_flags & u64::from(object::elf::SHF_STRINGS) != 0
        || exclude::is_uncorrelated_static_local(&s.name, &sec.name)
}

/// The content rule's fingerprint of each symbol, `None` when it has none.
type Prints<R> = HashMap<SymbolId<R>, Option<String>>;

/// The state of the funnel: both objects, the twins so far, and what the rules share.
struct Funnel<'a> {
    orig: &'a ElfObject<Orig>,
    patched: &'a ElfObject<Patched>,
    dec: (&'a Decoded<Orig>, &'a Decoded<Patched>),
    os: Vec<SymbolId<Orig>>,
    ps: Vec<SymbolId<Patched>>,
    twins: Twins,
    /// Who uses each symbol, built on the first scope pass (it resolves every code relocation).
    users: Option<(Users<Orig>, Users<Patched>)>,
    /// How many candidates share each stripped name, on each side (see `numbered_family`).
    family: (HashMap<&'a str, usize>, HashMap<&'a str, usize>),
    /// The content rule's fingerprints, computed once per symbol.
    prints: (Prints<Orig>, Prints<Patched>),
}

impl<'a> Funnel<'a> {
    fn new(
        orig: &'a ElfObject<Orig>,
        patched: &'a ElfObject<Patched>,
        dec: (&'a Decoded<Orig>, &'a Decoded<Patched>),
    ) -> Self {
        let (os, ps) = (candidates(orig), candidates(patched));
        let mut family: (HashMap<&str, usize>, HashMap<&str, usize>) = Default::default();
        for &o in &os {
            *family
                .0
                .entry(strip_suffix(&orig.symbol(o).name))
                .or_default() += 1;
        }
        for &p in &ps {
            *family
                .1
                .entry(strip_suffix(&patched.symbol(p).name))
                .or_default() += 1;
        }
        Funnel {
            orig,
            patched,
            dec,
            os,
            ps,
            twins: Twins::default(),
            users: None,
            family,
            prints: Default::default(),
        }
    }
    /// Same symbol type, both defined or both undefined, both in a section or both not.
    fn same_kind(&self, o: SymbolId<Orig>, p: SymbolId<Patched>) -> bool {
        let (a, b) = (self.orig.symbol(o), self.patched.symbol(p));
        a.kind() == b.kind()
            && a.is_undef() == b.is_undef()
            && a.section_id().is_some() == b.section_id().is_some()
    }
    fn unpaired_o(&self) -> impl Iterator<Item = SymbolId<Orig>> + '_ {
        self.os
            .iter()
            .copied()
            .filter(|&o| self.twins.patched(o).is_none())
    }
    fn unpaired_p(&self) -> impl Iterator<Item = SymbolId<Patched>> + '_ {
        self.ps
            .iter()
            .copied()
            .filter(|&p| self.twins.orig(p).is_none())
    }
    /// Whether `name` belongs to a compiler-numbered family (`calls.1`, `__func__.2`) with more
    /// than one member on either side: a patch that adds a static local renumbers the others, and
    /// `calls.1` may then belong to another function, so such names are never paired by name.
    fn numbered_family(&self, name: &str) -> bool {
        let base = strip_suffix(name);
        if base == name {
            return false;
        }
        self.family.0.get(base).copied().unwrap_or(0) > 1
            || self.family.1.get(base).copied().unwrap_or(0) > 1
    }
}

/// One rule of the funnel: pairs what it can among the unpaired symbols, returns how many.
type RuleFn = fn(&mut Funnel<'_>) -> usize;

/// The deterministic rules, widest first; repeated while any of them makes progress, since a
/// pair found late (a function paired by position) lets scope pair the statics it uses.
const DETERMINISTIC: &[(Rule, RuleFn)] = &[
    (Rule::Exact, exact),
    (Rule::Suffix, suffix),
    (Rule::Scope, scope),
    (Rule::Content, content),
];

/// Same name and kind, unique on both sides. A compiler-numbered name (`calls.1`,
/// `__UNIQUE_ID_ddebug1483.78`) of a family with several members is paired by name only when its
/// users agree: the functions that refer to it on the patched side, mapped to their originals,
/// share one with the original's users and no other member of the family has the same users on
/// either side, or neither side's code refers to it (an entry of `.discard.addressable`). A patch that adds a static local renumbers the others, and `calls.1`
/// may then belong to a new function: its users have no originals, and scope pairs the rest.
fn exact(f: &mut Funnel<'_>) -> usize {
    let by_o = group(f.orig, f.unpaired_o().collect::<Vec<_>>(), |n| n);
    let by_p = group(f.patched, f.unpaired_p().collect::<Vec<_>>(), |n| n);
    let mut plain = Vec::new();
    let mut numbered = Vec::new();
    for (name, pv) in &by_p {
        if let (Some([o]), [p]) = (by_o.get(name).map(Vec::as_slice), pv.as_slice()) {
            if f.same_kind(*o, *p) {
                if f.numbered_family(name) {
                    numbered.push((*p, *o));
                } else {
                    plain.push((*p, *o));
                }
            }
        }
    }
    // Plain names first: the functions they pair are the users the numbered names are checked by.
    for &(p, o) in &plain {
        f.twins.pair(p, o, Rule::Exact);
    }
    let mut made = plain.len();
    if numbered.is_empty() {
        return made;
    }
    let (orig, patched, dec) = (f.orig, f.patched, f.dec);
    let family_o = group(orig, f.os.iter().copied(), strip_suffix);
    let family_p = group(patched, f.ps.iter().copied(), strip_suffix);
    let (users_o, users_p) = f
        .users
        .get_or_insert_with(|| (Users::new(orig, dec.0), Users::new(patched, dec.1)));
    for (p, o) in numbered {
        // Alone in its family with its users, on both sides: `probe()` refers to its own
        // `__func__` and to an inlined function's, and the numbers of the two may swap.
        let alone_o = family_o
            .get(strip_suffix(&orig.symbol(o).name))
            .is_some_and(|v| {
                v.iter()
                    .filter(|&&x| users_o.scope(x) == users_o.scope(o))
                    .count()
                    == 1
            });
        let alone_p = family_p
            .get(strip_suffix(&patched.symbol(p).name))
            .is_some_and(|v| {
                v.iter()
                    .filter(|&&x| users_p.scope(x) == users_p.scope(p))
                    .count()
                    == 1
            });
        let agree = match (users_p.scope(p), users_o.scope(o)) {
            (None, None) => true,
            (Some(up), Some(uo)) => {
                alone_o
                    && alone_p
                    && up
                        .iter()
                        .filter_map(|&pf| f.twins.orig(pf))
                        .any(|of| uo.binary_search(&of).is_ok())
            }
            _ => false,
        };
        if agree {
            f.twins.pair(p, o, Rule::Exact);
            made += 1;
        }
    }
    made
}

/// Same name once the compiler's numbers are removed (`__UNIQUE_ID_ddebug412` /
/// `__UNIQUE_ID_ddebug415`), when that stripped name has one symbol on each side in the whole
/// object, not just among the unpaired: pairing the last two `calls.N` left after scope would pair
/// a removed function's counter with a new function's.
fn suffix(f: &mut Funnel<'_>) -> usize {
    let all_o = group(f.orig, f.os.iter().copied(), strip_suffix);
    let all_p = group(f.patched, f.ps.iter().copied(), strip_suffix);
    let mut pairs = Vec::new();
    for (name, pv) in &all_p {
        let (Some([o]), [p]) = (all_o.get(name).map(Vec::as_slice), pv.as_slice()) else {
            continue;
        };
        let (o, p) = (*o, *p);
        if f.twins.orig(p).is_none()
            && f.twins.patched(o).is_none()
            && f.same_kind(o, p)
            && !dont_correlate(f.orig, o)
            && !dont_correlate(f.patched, p)
        {
            pairs.push((p, o));
        }
    }
    for &(p, o) in &pairs {
        f.twins.pair(p, o, Rule::Suffix);
    }
    pairs.len()
}

/// Same stripped name and used by the twins of the same functions: `__already_done.N` of
/// `warn_b()` is the one that only `warn_b()`'s code refers to, whatever its number; the
/// `__func__` of an inline function is the one its callers use (`__func__.419` of
/// ext4_update_dynamic_rev(), inlined in two other functions of fs/ext4/super.c). A function's
/// `.cold` and `.part.N` pieces count as the function. Unique on both sides: two `WARN_ONCE()`s in
/// one function stay unpaired (and carried).
fn scope(f: &mut Funnel<'_>) -> usize {
    let same = scope_pass(f, false);
    same + scope_pass(f, true)
}

/// One pass of the scope rule. Strict: the static's users, mapped to their twins, are exactly
/// the original's users. Overlap (after the strict pass): they share a function, and no other
/// unpaired static of that name does; this pairs the `__func__` of a function that the patch
/// stopped inlining (ext4_update_dynamic_rev() in fs/ext4/super.c, used by three functions in
/// the original and by itself in the patched object).
fn scope_pass(f: &mut Funnel<'_>, overlap: bool) -> usize {
    let left_o = group(f.orig, f.unpaired_o().collect::<Vec<_>>(), strip_suffix);
    let left_p = group(f.patched, f.unpaired_p().collect::<Vec<_>>(), strip_suffix);
    if !left_p.keys().any(|k| left_o.contains_key(k)) {
        return 0;
    }
    let (orig, patched, dec) = (f.orig, f.patched, f.dec);
    let (users_o, users_p) = f
        .users
        .get_or_insert_with(|| (Users::new(orig, dec.0), Users::new(patched, dec.1)));
    let mut hits: Vec<(SymbolId<Patched>, SymbolId<Orig>)> = Vec::new();
    for (name, pv) in &left_p {
        let Some(ov) = left_o.get(name) else { continue };
        for &p in pv {
            let Some(users) = users_p.scope(p) else {
                continue;
            };
            // The patched users mapped to their originals. Strict: a user without twin (a new
            // function) leaves the static without a scope to compare.
            let mapped: Vec<Option<SymbolId<Orig>>> =
                users.iter().map(|&pf| f.twins.orig(pf)).collect();
            let mut of: Vec<SymbolId<Orig>> = mapped.iter().flatten().copied().collect();
            if of.is_empty() || (!overlap && of.len() != mapped.len()) {
                continue;
            }
            of.sort_unstable();
            let matches = |o: SymbolId<Orig>| match users_o.scope(o) {
                None => false,
                Some(u) if overlap => u.iter().any(|x| of.binary_search(x).is_ok()),
                Some(u) => u == of.as_slice(),
            };
            let same_scope: Vec<_> = ov.iter().copied().filter(|&o| matches(o)).collect();
            if let [o] = same_scope.as_slice() {
                hits.push((p, *o));
            }
        }
    }
    // Unique on the original side too: two patched statics of one scope claiming one original.
    let mut made = 0;
    for &(p, o) in &hits {
        let (a, b) = (orig.symbol(o), patched.symbol(p));
        let same_kind = a.kind() == b.kind() && a.is_undef() == b.is_undef();
        if same_kind && hits.iter().filter(|h| h.1 == o).count() == 1 {
            f.twins.pair(p, o, Rule::Scope);
            made += 1;
        }
    }
    made
}

/// Same stripped name and the same contents, for read-only data, when the contents are unique in
/// the group on both sides. Contents are the bytes plus what each relocation addresses (a string
/// by its bytes, a symbol by its name without gcc's number): ext4_enable_quotas() in
/// fs/ext4/super.c refers to its own `__func__` and to that of the inlined ext4_quota_enable()
/// (one scope, two strings), and each trace event's output function keeps its `__print_symbolic()`
/// tables `symbols.N`, constant arrays of values and string pointers.
fn content(f: &mut Funnel<'_>) -> usize {
    let left_o = group(f.orig, f.unpaired_o().collect::<Vec<_>>(), strip_suffix);
    let left_p = group(f.patched, f.unpaired_p().collect::<Vec<_>>(), strip_suffix);
    let mut pairs = Vec::new();
    for (name, pv) in &left_p {
        let Some(ov) = left_o.get(name) else { continue };
        // Each fingerprint with its symbols on both sides, in object order.
        type Sides = (Vec<SymbolId<Orig>>, Vec<SymbolId<Patched>>);
        let mut by_print: BTreeMap<String, Sides> = BTreeMap::new();
        for &o in ov {
            if let Some(fp) = fingerprint(f.orig, o, &mut f.prints.0) {
                by_print.entry(fp).or_default().0.push(o);
            }
        }
        for &p in pv {
            if let Some(fp) = fingerprint(f.patched, p, &mut f.prints.1) {
                if let Some(e) = by_print.get_mut(&fp) {
                    e.1.push(p);
                }
            }
        }
        // As many on both sides: identical constants, so pairing them in object order is as good
        // as any other pairing (the ten equal `symbols.N` tables of trace_raw_output_ext4_fc_stats).
        for (os, ps) in by_print.into_values() {
            if os.len() == ps.len() && os.iter().zip(&ps).all(|(&o, &p)| f.same_kind(o, p)) {
                pairs.extend(ps.into_iter().zip(os));
            }
        }
    }
    for &(p, o) in &pairs {
        f.twins.pair(p, o, Rule::Content);
    }
    pairs.len()
}

/// The contents of a read-only data symbol for the content rule, computed once per symbol:
/// `None` for code, writable data (a counter's zeros say nothing) and empty symbols.
fn fingerprint<R: crate::elf::Role>(
    obj: &ElfObject<R>,
    s: SymbolId<R>,
    cache: &mut Prints<R>,
) -> Option<String> {
    cache
        .entry(s)
        .or_insert_with(|| {
            // Special statics are compared by value wherever they are used (`same_target`), so
            // equal ones pair whatever their section: the `__key`s of a function's three
            // `init_rwsem()`s are interchangeable zeros.
            if dont_correlate(obj, s) {
                bytes_and_targets(obj, s)
            } else {
                contents(obj, s)
            }
        })
        .clone()
}

/// The last resort: the symbols left with one stripped name, paired in object order when both
/// sides have as many, of the same kinds; never for gated symbols. Warned about in the report.
fn position(f: &mut Funnel<'_>) -> usize {
    let gate_o: Vec<_> = f
        .unpaired_o()
        .filter(|&o| !dont_correlate(f.orig, o))
        .collect();
    let gate_p: Vec<_> = f
        .unpaired_p()
        .filter(|&p| !dont_correlate(f.patched, p))
        .collect();
    let left_o = group(f.orig, gate_o, strip_suffix);
    let left_p = group(f.patched, gate_p, strip_suffix);
    let mut pairs = Vec::new();
    for (name, pv) in &left_p {
        let Some(ov) = left_o.get(name) else { continue };
        if ov.len() == pv.len() && ov.iter().zip(pv).all(|(&o, &p)| f.same_kind(o, p)) {
            pairs.extend(pv.iter().copied().zip(ov.iter().copied()));
        }
    }
    for &(p, o) in &pairs {
        f.twins.pair(p, o, Rule::Position);
    }
    pairs.len()
}

/// Runs the funnel: the deterministic rules until a pass pairs nothing, then position, and again
/// until neither makes progress. What is left is recorded in [`Twins::leftovers`].
pub fn correlate(
    orig: &ElfObject<Orig>,
    patched: &ElfObject<Patched>,
    dec: (&Decoded<Orig>, &Decoded<Patched>),
) -> Twins {
    let mut f = Funnel::new(orig, patched, dec);
    loop {
        let mut made: usize = DETERMINISTIC.iter().map(|(_, rule)| rule(&mut f)).sum();
        if made == 0 {
            made = position(&mut f);
        }
        if made == 0 {
            break;
        }
    }
    let left_o: Vec<_> = f.unpaired_o().collect();
    let left_p: Vec<_> = f.unpaired_p().collect();
    f.twins.left_orig = left_o;
    f.twins.left_patched = left_p;
    f.twins
}

/// The functions whose code refers to a symbol, for the scope rule: a sorted set, or `None` when
/// code outside any function refers to it too.
type Scope<R> = Option<Vec<SymbolId<R>>>;

/// The users of every symbol that code refers to, from one pass over the relocations of the
/// text sections: how a static local is tied to its scope. Targets are resolved with the decoded
/// instruction tails, so `cmpb $0, flag(%rip)` (addend -5) names the right flag of a shared
/// `.data.once`. Built once per object: resolving every relocation again for each static made
/// kernel/sched/core.o (thousands of relocations, hundreds of numbered statics) take a minute.
struct Users<R: crate::elf::Role>(HashMap<SymbolId<R>, Scope<R>>);

impl<R: crate::elf::Role> Users<R> {
    fn new(obj: &ElfObject<R>, dec: &Decoded<R>) -> Self {
        let mut m: HashMap<SymbolId<R>, Scope<R>> = HashMap::new();
        let mut owners: HashMap<SymbolId<R>, SymbolId<R>> = HashMap::new();
        for (_, rs) in obj.live_sections() {
            let crate::elf::Content::Relocs { target, relocs } = &rs.content else {
                continue;
            };
            if !obj.section(*target).is_text() {
                continue;
            }
            for r in relocs {
                let RelocTarget::Symbol(s, _) = resolve(obj, *target, r, dec.get(*target)) else {
                    continue;
                };
                let user = obj
                    .func_at(*target, r.r_offset)
                    .map(|f| *owners.entry(f).or_insert_with(|| owner(obj, f)));
                let scope = m.entry(s).or_insert_with(|| Some(Vec::new()));
                match (user, scope.as_mut()) {
                    (Some(f), Some(v)) => {
                        if !v.contains(&f) {
                            v.push(f);
                        }
                    }
                    _ => *scope = None,
                }
            }
        }
        for v in m.values_mut().flatten() {
            v.sort_unstable();
        }
        Users(m)
    }

    /// The functions whose code refers to `sym` (by name, through its section symbol or a local
    /// label), when only functions do.
    fn scope(&self, sym: SymbolId<R>) -> Option<&[SymbolId<R>]> {
        self.0.get(&sym)?.as_deref().filter(|v| !v.is_empty())
    }
}

/// The function whose scope a part of gcc's belongs to: `foo` for `foo.cold` and `foo.part.0`,
/// when the object has `foo`. ext4_put_super() of fs/ext4/super.o refers to its `__func__.435`
/// from its body and from `ext4_put_super.cold`: both are the one function's scope.
fn owner<R: crate::elf::Role>(obj: &ElfObject<R>, f: SymbolId<R>) -> SymbolId<R> {
    part_parent(&obj.symbol(f).name)
        .and_then(|p| obj.symbol_by_name(p))
        .filter(|&p| obj.symbol(p).is_func())
        .unwrap_or(f)
}
