//! Stage 3, diff: one orig/patched object pair -> [`ObjectDiff`]: the functions that changed
//! (and why), the new functions, and the refusals. Invariant: every unpatchable change of the
//! object is collected before the stage fails, each with its location and the fix.

pub mod aux_code;
pub mod changed;
pub mod correlate;
pub mod entries;
pub mod exclude;
pub mod explain;
pub mod ignore;
pub mod line_only;
pub mod reloc_target;
pub mod special;

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::elf::{read_file, ElfObject, Location, Orig, Patched, Role, SectionId, SymbolId};
use crate::keys::{self, Key};
use crate::rebuild::KlpObject;

use changed::{symbol_difference, Decoded, Pair, Verdict};
use correlate::{correlate, dont_correlate, Rule, Twins};
use entries::Entries;

/// The result of diffing one object pair.
pub struct ObjectDiff {
    /// The object's path relative to the tree, as the user knows it (`fs/proc/cmdline.o`).
    pub object: PathBuf,
    /// The livepatch object its functions belong to.
    pub klp_object: KlpObject,
    /// The object built from the original source.
    pub orig: ElfObject<Orig>,
    /// The object built from the patched source.
    pub patched: ElfObject<Patched>,
    /// Symbol correlation.
    pub twins: Twins,
    /// Functions whose code changed: they replace the kernel's through `klp_func`.
    pub changed: Vec<Changed>,
    /// Functions that are new in the patched source.
    pub added: Vec<SymbolId<Patched>>,
    /// Functions whose only differences are `__LINE__` values: not patched.
    pub line_only: Vec<LineOnly>,
    /// Findings that make the change unpatchable.
    pub refusals: Vec<Finding>,
    /// Findings that deserve attention but do not stop the build.
    pub warnings: Vec<Finding>,
}

/// A changed function.
#[derive(Debug, Clone)]
pub struct Changed {
    /// The patched function.
    pub sym: SymbolId<Patched>,
    /// Its original twin (what the kernel runs today).
    pub orig: SymbolId<Orig>,
    /// The first difference found.
    pub why: String,
    /// The funnel rule that paired it with its original.
    pub rule: Rule,
}

/// A function whose only differences are `__LINE__` values (objects built without `#line`).
#[derive(Debug, Clone)]
pub struct LineOnly {
    /// The patched function.
    pub sym: SymbolId<Patched>,
    /// The funnel rule that paired it with its original.
    pub rule: Rule,
    /// Each line value that differs, with where and for which call or table.
    pub lines: Vec<String>,
}

/// One finding of the report, with a stable dotted key (`func.changed`, `data.changed`, ...; the
/// list is `keys::ALL`).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Finding {
    /// Stable key for tools and tests.
    pub key: Key,
    /// Where: object, function or section, offset.
    pub location: String,
    /// What and, for refusals, what to do.
    pub message: String,
}

impl fmt::Display for Finding {
    /// The one rendering of a finding, in reports and errors: `key location: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.key, self.location, self.message)
    }
}

/// Findings that stop the build (unpatchable changes, unresolved references), as one error that
/// lists all of them: a user fixes every problem after one run, not one per run.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render_refusals(.0))]
pub struct Refused(pub Vec<Finding>);

fn render_refusals(findings: &[Finding]) -> String {
    let mut s = format!(
        "{} unpatchable change(s) or unresolved reference(s):",
        findings.len()
    );
    for x in findings {
        s.push_str(&format!("\n  {x}"));
    }
    s
}

/// The symbol of function `sec+off`, if a function covers it.
pub fn func_at<R: Role>(obj: &ElfObject<R>, sec: SectionId<R>, off: u64) -> Option<SymbolId<R>> {
    obj.live_symbols()
        .find(|(_, s)| {
            s.is_func()
                && s.section_id() == Some(sec)
                && s.st_value <= off
                && off < s.st_value + s.st_size
        })
        .map(|(i, _)| i)
}

/// Whether the function starts with a call to `__fentry__`, which ftrace (and so livepatch)
/// needs: `notrace` and `noinstr` functions have none and cannot be patched.
pub fn has_fentry<R: Role>(obj: &ElfObject<R>, sym: SymbolId<R>) -> bool {
    let s = obj.symbol(sym);
    let Some(sec) = s.section_id() else {
        return false;
    };
    obj.relocs_of(sec).iter().any(|r| {
        r.r_offset >= s.st_value
            && r.r_offset < s.st_value.saturating_add(16)
            && obj.symbol(r.sym).name == "__fentry__"
    })
}

/// The parent of a `.cold` part: `foo` for `foo.cold`; children follow their parents.
pub fn cold_parent(name: &str) -> Option<&str> {
    name.strip_suffix(".cold")
        .or_else(|| name.split_once(".cold.").map(|(p, _)| p))
}

/// Keeps one function per address. Aliases are one function under several names: x86's
/// `SYSCALL_DEFINE0(getegid)` makes `__x64_sys_getegid` and `__ia32_sys_getegid` aliases of
/// `__do_sys_getegid`. Registering each as a `klp_func` stacks three entries on one ftrace
/// location, and the transition then checks stacks against the wrong ranges and never finishes
/// (seen on Debian 6.1: every kthread reported "sleeping on function __do_sys_getegid"). The
/// global name is kept (unique in kallsyms), else the first.
pub fn drop_aliases(patched: &ElfObject<Patched>, changed: &mut Vec<Changed>) {
    let mut best: std::collections::HashMap<(Option<SectionId<Patched>>, u64), SymbolId<Patched>> =
        Default::default();
    for c in changed.iter() {
        let s = patched.symbol(c.sym);
        let key = (s.section_id(), s.st_value);
        best.entry(key)
            .and_modify(|b| {
                let cur = patched.symbol(*b);
                if cur.is_local() && !s.is_local() {
                    *b = c.sym;
                }
            })
            .or_insert(c.sym);
    }
    changed.retain(|c| {
        let s = patched.symbol(c.sym);
        best.get(&(s.section_id(), s.st_value)) == Some(&c.sym)
    });
}

/// Diffs one object pair.
pub fn run(
    object: &Path,
    klp_object: KlpObject,
    orig: &Path,
    patched: &Path,
) -> anyhow::Result<ObjectDiff> {
    // Each reader error names the file it read; the pair's name is added only when it is another
    // name (the pipeline's `fs/proc/cmdline.o`), never the patched file for an original's damage.
    let of = |side: &str, file: &Path| {
        if file == object {
            format!("reading the {side} object")
        } else {
            format!("reading the {side} object of {}", object.display())
        }
    };
    let mut o: ElfObject<Orig> = read_file(orig).with_context(|| {
        if patched == object {
            // `klp-build diff ORIG PATCHED`: the pair is named after the patched file.
            "reading the original object".to_string()
        } else {
            of("original", orig)
        }
    })?;
    let mut p: ElfObject<Patched> = read_file(patched).with_context(|| of("patched", patched))?;
    // Messages name the object as the user knows it, not the copy in the work dir.
    o.path = object.to_path_buf();
    p.path = object.to_path_buf();
    Ok(diff(o, p, object.to_path_buf(), klp_object))
}

/// Diffs two objects already read.
pub fn diff(
    orig: ElfObject<Orig>,
    patched: ElfObject<Patched>,
    object: PathBuf,
    klp_object: KlpObject,
) -> ObjectDiff {
    let dec = (Decoded::new(&orig), Decoded::new(&patched));
    let twins = correlate(&orig, &patched, (&dec.0, &dec.1));
    let ent = (Entries::new(&orig), Entries::new(&patched));
    let pair = Pair {
        orig: &orig,
        patched: &patched,
        twins: &twins,
        dec: (&dec.0, &dec.1),
        entries: (&ent.0, &ent.1),
    };
    let mut changed = Vec::new();
    let mut added = Vec::new();
    let mut line_only = Vec::new();
    let mut refusals = Vec::new();
    let mut warnings = Vec::new();

    for (ps, s) in patched.live_symbols() {
        // Functions defined in a section: an `STT_FUNC` at `SHN_ABS` has no code to compare.
        if !s.is_func() || s.section_id().is_none() {
            continue;
        }
        let (Some(os), Some(rule)) = (twins.orig(ps), twins.rule(ps)) else {
            added.push(ps);
            continue;
        };
        match pair.function(os, ps) {
            Verdict::Same => {}
            Verdict::LineOnly(lines) => line_only.push(LineOnly {
                sym: ps,
                rule,
                lines,
            }),
            Verdict::Changed(why) => changed.push(Changed {
                sym: ps,
                orig: os,
                why,
                rule,
            }),
        }
    }
    warnings.extend(correlation_warnings(&orig, &patched, &twins, &object));

    // A function of the original without a patched twin: the patch removed it, or gcc now
    // inlines or renames it (`foo` -> `foo.isra.0`). The kernel's copy stays; its callers in this
    // file are patched through their own changes. Said, because a caller in another file keeps
    // calling the old copy.
    for (os, s) in orig.live_symbols() {
        if s.is_func()
            && s.section_id().is_some()
            && twins.patched(os).is_none()
            && cold_parent(&s.name).is_none()
        {
            warnings.push(Finding {
                key: keys::FUNC_REMOVED,
                location: format!("{}: {}", object.display(), s.name),
                message: "no longer in the patched object (removed, inlined or renamed by gcc); the kernel's copy \
                          stays in place for callers outside this file"
                    .into(),
            });
        }
    }

    // A changed `.cold` part changes its parent, which is what the kernel can redirect.
    let mut parents = Vec::new();
    changed.retain(|c| {
        let name = &patched.symbol(c.sym).name;
        match cold_parent(name) {
            Some(parent) => {
                parents.push((parent.to_string(), name.clone()));
                false
            }
            None => true,
        }
    });
    for (parent, child) in parents {
        if changed.iter().any(|c| patched.symbol(c.sym).name == parent) {
            continue;
        }
        if let Some(ps) = patched.symbol_by_name(&parent) {
            if let Some(os) = twins.orig(ps) {
                changed.push(Changed {
                    sym: ps,
                    orig: os,
                    why: format!("its part {child} changed"),
                    rule: twins.rule(ps).unwrap_or(Rule::Exact),
                });
            }
        }
    }
    added.retain(|&a| cold_parent(&patched.symbol(a).name).is_none());
    // A function that changed through its `.cold` part is changed, not line-only
    // (ext4_put_super() of fs/ext4/super.o: a line value in its body, a change in its part); a
    // `.cold` part whose parent changed goes with the parent.
    line_only.retain(|l| !changed.iter().any(|c| c.sym == l.sym));
    line_only.retain(|l| {
        let name = &patched.symbol(l.sym).name;
        cold_parent(name).is_none_or(|p| !changed.iter().any(|c| patched.symbol(c.sym).name == p))
    });
    ignore::apply(&patched, &mut changed, &mut refusals, &mut warnings);

    for c in &changed {
        let s = patched.symbol(c.sym);
        let Some(sec) = s.section_id() else { continue };
        let loc = Location::new(&patched, sec, s.st_value).to_string();
        if exclude::is_init_section(&patched.section(sec).name) {
            refusals.push(Finding {
                key: keys::FUNC_INIT_CHANGED,
                location: loc,
                message: format!(
                    "{} is __init/__exit code ({}): it ran at boot and was freed, a livepatch cannot change it; \
                     put the fix where it runs after boot, or reboot into a fixed kernel",
                    s.name,
                    patched.section(sec).name
                ),
            });
        } else if !has_fentry(&orig, c.orig) {
            refusals.push(Finding {
                key: keys::FUNC_NO_FTRACE,
                location: loc,
                message: format!(
                    "{} has no ftrace call site (notrace, noinstr or inlined into a special section), so livepatch \
                     cannot redirect it; patch its callers instead",
                    s.name
                ),
            });
        }
    }

    for (ps, s) in patched.live_symbols() {
        if !s.is_object() {
            continue;
        }
        let (Some(os), Some(sec)) = (twins.orig(ps), s.section_id()) else {
            continue;
        };
        let secname = &patched.section(sec).name;
        if !exclude::is_checked_data_section(secname)
            || exclude::is_uncorrelated_static_local(&s.name, secname)
        {
            continue;
        }
        if let Some(why) = symbol_difference(&orig, &patched, &twins, (&dec.0, &dec.1), os, ps) {
            let rule = twins.rule(ps).unwrap_or(Rule::Exact);
            let resized = orig.symbol(os).st_size != s.st_size;
            refusals.push(Finding {
                key: if resized { keys::DATA_RESIZED } else { keys::DATA_CHANGED },
                location: Location::new(&patched, sec, s.st_value).to_string(),
                message: format!(
                    "{} ({secname}) {}: {why}; a livepatch cannot change data the kernel already holds: keep the \
                     variable as it is and attach new state with a shadow variable (klp_shadow_get_or_alloc), \
                     or change the code that uses it [correlated: {rule}]",
                    s.name,
                    if resized { "changes size" } else { "changes its initial value" }
                ),
            });
        }
    }

    drop_aliases(&patched, &mut changed);
    unreadable_entries(
        (&orig, &patched),
        (&changed, &added),
        &mut refusals,
        &mut warnings,
    );
    changed.sort_by(|a, b| patched.symbol(a.sym).name.cmp(&patched.symbol(b.sym).name));
    added.sort_by(|a, b| patched.symbol(*a).name.cmp(&patched.symbol(*b).name));
    line_only.sort_by(|a, b| patched.symbol(a.sym).name.cmp(&patched.symbol(b.sym).name));
    ObjectDiff {
        object,
        klp_object,
        orig,
        patched,
        twins,
        changed,
        added,
        line_only,
        refusals,
        warnings,
    }
}

/// Entries of special sections that cannot be read ([`special::unreadable`]) concern only the
/// functions they point into: a changed or new function that uses one is refused with the entry's
/// problem (its module copy would run without the entry: an alternative never applied, a fault
/// without its fixup), an unchanged one gets a warning (a change in that entry alone would not
/// be seen). Entries no function of the patch uses are no error: a 4.18 object's table of another
/// layout, or one entry the reader cannot place, must not refuse a fix elsewhere in the file.
fn unreadable_entries(
    (orig, patched): (&ElfObject<Orig>, &ElfObject<Patched>),
    (changed, added): (&[Changed], &[SymbolId<Patched>]),
    refusals: &mut Vec<Finding>,
    warnings: &mut Vec<Finding>,
) {
    // A `.cold` part's entry belongs to its parent, which is what the report names.
    fn owner<R: Role>(obj: &ElfObject<R>, sec: SectionId<R>, off: u64) -> Option<SymbolId<R>> {
        let f = func_at(obj, sec, off)?;
        match cold_parent(&obj.symbol(f).name) {
            Some(parent) => obj.symbol_by_name(parent).or(Some(f)),
            None => Some(f),
        }
    }
    let mut warned = std::collections::HashSet::new();
    let mut seen = std::collections::HashSet::new();
    let patched_changed =
        |f: SymbolId<Patched>| changed.iter().any(|c| c.sym == f) || added.contains(&f);
    for u in special::unreadable(patched) {
        let Some((sec, off)) = u.at else { continue };
        let Some(f) = owner(patched, sec, off) else {
            continue;
        };
        if !seen.insert((f.index(), u.problem.clone())) {
            continue;
        }
        let name = &patched.symbol(f).name;
        let location = Location::new(patched, sec, off).to_string();
        if patched_changed(f) {
            refusals.push(Finding {
                key: keys::SPECIAL_UNREADABLE,
                location,
                message: format!(
                    "{}; {name} cannot be patched without this entry: rebuild the object with the \
                     target kernel's compiler and objtool, or report the object to klp-build",
                    u.problem
                ),
            });
        } else {
            warned.insert(name.clone());
            warnings.push(Finding {
                key: keys::SPECIAL_UNREADABLE,
                location,
                message: format!(
                    "{}; {name} is unchanged, but a change in this entry alone would not be seen",
                    u.problem
                ),
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    for u in special::unreadable(orig) {
        let Some((sec, off)) = u.at else { continue };
        let Some(f) = owner(orig, sec, off) else {
            continue;
        };
        // A changed function's original entries are replaced with the function.
        // One warning for a function whose entry both sides cannot read.
        if changed.iter().any(|c| c.orig == f)
            || warned.contains(&orig.symbol(f).name)
            || !seen.insert((f.index(), u.problem.clone()))
        {
            continue;
        }
        warnings.push(Finding {
            key: keys::SPECIAL_UNREADABLE,
            location: Location::new(orig, sec, off).to_string(),
            message: format!(
                "{} (the original object); {} is unchanged, but a change in this entry alone would not be seen",
                u.problem,
                orig.symbol(f).name
            ),
        });
    }
}

/// The funnel's warnings: each pair made by position, and each symbol it left unpaired, by name.
/// Functions left unpaired are reported as `func.added` / `func.removed` instead, `.cold` parts
/// follow their parents, undefined symbols are the kernel's (the resolve stage finds them), and
/// string labels are compared by content.
fn correlation_warnings(
    orig: &ElfObject<Orig>,
    patched: &ElfObject<Patched>,
    twins: &Twins,
    object: &Path,
) -> Vec<Finding> {
    let mut v = Vec::new();
    for (ps, s) in patched.live_symbols() {
        if twins.rule(ps) == Some(Rule::Position) {
            v.push(Finding {
                key: keys::CORRELATE_POSITION,
                location: format!("{}: {}", object.display(), s.name),
                message: format!(
                    "paired with its original {} by position only: the exact, suffix, scope and content rules found no \
                     unique twin",
                    twins.orig(ps).map_or("", |o| orig.symbol(o).name.as_str())
                ),
            });
        }
    }
    let (left_o, left_p) = twins.leftovers();
    let reported = |name: &str, s_is_func: bool, undef: bool| {
        s_is_func || undef || name.starts_with(".L") || cold_parent(name).is_some()
    };
    for &ps in left_p {
        let s = patched.symbol(ps);
        if reported(
            &s.name,
            s.is_func(),
            s.is_undef() || s.section_id().is_none(),
        ) {
            continue;
        }
        let (key, message) = if dont_correlate(patched, ps) {
            (
                keys::CORRELATE_GATED,
                "special static (dont_correlate: never paired by suffix or position) without a twin: carried \
                 with the functions that use it, a fresh copy in the module",
            )
        } else {
            (
                keys::CORRELATE_NONE,
                "no twin in the original object (exact, suffix, scope, content and position found none): new data, \
                 carried in the module",
            )
        };
        v.push(Finding {
            key,
            location: format!("{}: {}", object.display(), s.name),
            message: message.into(),
        });
    }
    for &os in left_o {
        let s = orig.symbol(os);
        if reported(
            &s.name,
            s.is_func(),
            s.is_undef() || s.section_id().is_none(),
        ) {
            continue;
        }
        let (key, message) = if dont_correlate(orig, os) {
            (
                keys::CORRELATE_GATED,
                "special static of the original (dont_correlate) without a twin: the patched code uses copies of \
                 its own",
            )
        } else {
            (
                keys::CORRELATE_NONE,
                "of the original, no twin in the patched object (exact, suffix, scope, content and position found none): \
                 removed or renamed; the kernel's copy stays",
            )
        };
        v.push(Finding {
            key,
            location: format!("{}: {} (original)", object.display(), s.name),
            message: message.into(),
        });
    }
    v
}

impl ObjectDiff {
    /// No function changed and nothing was added: the patch has no functional effect here.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.added.is_empty()
    }

    /// The report as data, with stable keys.
    pub fn findings(&self) -> Vec<Finding> {
        let mut v = Vec::new();
        for c in &self.changed {
            v.push(Finding {
                key: keys::FUNC_CHANGED,
                location: format!(
                    "{}: {}",
                    self.object.display(),
                    self.patched.symbol(c.sym).name
                ),
                message: format!("{} [correlated: {}]", c.why, c.rule),
            });
        }
        for l in &self.line_only {
            v.push(Finding {
                key: keys::FUNC_LINE_ONLY,
                location: format!(
                    "{}: {}",
                    self.object.display(),
                    self.patched.symbol(l.sym).name
                ),
                message: format!(
                    "only __LINE__ values differ, so it is not patched (the objects were built without #line \
                     directives): {} [correlated: {}]",
                    l.lines.join("; "),
                    l.rule
                ),
            });
        }
        for &a in &self.added {
            v.push(Finding {
                key: keys::FUNC_ADDED,
                location: format!("{}: {}", self.object.display(), self.patched.symbol(a).name),
                message: "new function".into(),
            });
        }
        v.extend(self.warnings.iter().cloned());
        v.extend(self.refusals.iter().cloned());
        v
    }
}

impl fmt::Display for ObjectDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} ({}):", self.object.display(), self.klp_object.name())?;
        for x in self.findings() {
            writeln!(f, "  {x}")?;
        }
        Ok(())
    }
}
