//! The funnel [`SymbolListing::locate`](super::SymbolListing::locate) runs on a name an object
//! has more than once: each level keeps the candidates that fit the translation unit and stops
//! when one is left. Levels, widest first: the binding, the FILE symbol, the neighbours. Input:
//! the object's same-named entries and the unit. Output: the one entry and the rule that chose
//! it, or an ambiguity naming every candidate. Invariant: a candidate is chosen only when a level
//! leaves it alone or the neighbours prefer it over every other.

use super::neighbours::{run_of, support, Support};
use super::{
    basename, candidate, Ambiguity, Bind, Located, ObjectSymbols, SymposError, SymposRule,
    TranslationUnit, TuSymbol,
};

/// One name looked up in one object of the listing, which has it at least once.
pub(super) struct Lookup<'a> {
    /// `vmlinux` or the module name.
    pub object: &'a str,
    /// The symbol name.
    pub name: &'a str,
    /// The unit that references (and may define) it.
    pub tu: &'a TranslationUnit,
    /// The object's symbols.
    pub obj: &'a ObjectSymbols,
    /// The entries named `name`, in counting order; never empty.
    pub all: &'a [u32],
}

/// What a level of the funnel leaves: the one symbol, or the candidates for the next level.
enum Narrowed {
    One(Located),
    Left(Vec<u32>),
}

impl Lookup<'_> {
    /// The entry livepatch should find for the unit's `name`, level by level.
    pub(super) fn run(&self) -> Result<Located, SymposError> {
        if self.all.len() == 1 {
            return Ok(self.located(self.all[0], SymposRule::Unique));
        }
        let Some(own) = self.tu.symbols.iter().find(|s| s.name == self.name) else {
            return self.defined_elsewhere();
        };
        let cands = match self.by_binding(own)? {
            Narrowed::One(l) => return Ok(l),
            Narrowed::Left(c) => c,
        };
        let cands = match self.by_file(cands) {
            Narrowed::One(l) => return Ok(l),
            Narrowed::Left(c) => c,
        };
        self.by_neighbours(own, &cands)
    }

    /// Entry `i` with its sympos: 0 for a unique name, else its 1-based place among the
    /// same-named entries.
    fn located(&self, i: u32, rule: SymposRule) -> Located {
        let e = &self.obj.entries[i as usize];
        // Every candidate the funnel passes here is taken from `self.all` (the unique entry, or
        // a subset that by_binding, by_file and by_neighbours filter out of it), so `i` is in it.
        let sympos = if self.all.len() == 1 {
            0
        } else {
            self.all.iter().position(|&j| j == i).unwrap() as u32 + 1
        };
        Located {
            sympos,
            addr: e.addr,
            ty: e.ty,
            rule,
        }
    }

    /// The error listing every candidate (with its neighbours' `scores` where they were taken).
    fn ambiguous(&self, reason: String, scores: &[(u32, Support)]) -> SymposError {
        SymposError::Ambiguous(Box::new(Ambiguity {
            object: self.object.to_string(),
            name: self.name.to_string(),
            tu: self.tu.source.clone(),
            listing: self.obj.origin.clone(),
            reason,
            candidates: self
                .all
                .iter()
                .enumerate()
                .map(|(k, &i)| candidate(self.obj, i, k as u32 + 1, scores))
                .collect(),
        }))
    }

    /// A name the unit does not define is a global of another unit (the resolve stage asks for
    /// those too): found when the object has exactly one global of that name.
    fn defined_elsewhere(&self) -> Result<Located, SymposError> {
        let globals = self.obj.globals(self.all);
        if let [g] = globals[..] {
            return Ok(self.located(g, SymposRule::OnlyGlobal));
        }
        Err(self.ambiguous(
            format!(
                "{} does not define it, and the listing has {} globals of that name",
                self.tu.source,
                globals.len()
            ),
            &[],
        ))
    }

    /// A static keeps the non-global candidates (a unit's static `show` is none of the globals
    /// named `show`); a global is found when the object has one global of that name.
    fn by_binding(&self, own: &TuSymbol) -> Result<Narrowed, SymposError> {
        let mut cands: Vec<u32> = self.all.to_vec();
        if own.local {
            cands.retain(|&i| self.obj.entries[i as usize].bind != Bind::Global);
            if let [c] = cands[..] {
                return Ok(Narrowed::One(self.located(c, SymposRule::OnlyLocal)));
            }
            if cands.is_empty() {
                return Err(self.ambiguous(
                    format!(
                        "it is local in {} but every symbol of that name in the listing is global",
                        self.tu.source
                    ),
                    &[],
                ));
            }
        } else {
            let globals = self.obj.globals(&cands);
            if let [g] = globals[..] {
                return Ok(Narrowed::One(self.located(g, SymposRule::OnlyGlobal)));
            }
        }
        Ok(Narrowed::Left(cands))
    }

    /// Where the listing has FILE symbols (an ELF vmlinux; System.map and kallsyms have none),
    /// the candidates headed by the unit's own file name; all of `cands` when none is.
    fn by_file(&self, cands: Vec<u32>) -> Narrowed {
        let obj = self.obj;
        if obj.files.is_empty() {
            return Narrowed::Left(cands);
        }
        let base = basename(&self.tu.source);
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
            return Narrowed::One(self.located(c, SymposRule::File));
        }
        if same_file.is_empty() {
            Narrowed::Left(cands)
        } else {
            Narrowed::Left(same_file)
        }
    }

    /// The candidate the unit's other symbols surround best, when it beats the runner-up; else
    /// the ambiguity, saying why the neighbours could not tell.
    fn by_neighbours(&self, own: &TuSymbol, cands: &[u32]) -> Result<Located, SymposError> {
        let (obj, tu) = (self.obj, self.tu);
        let mut scores: Vec<(u32, Support)> = cands
            .iter()
            .map(|&i| (i, support(obj, i, own, tu)))
            .collect();
        scores.sort_by(|a, b| b.1.rank().cmp(&a.1.rank()).then(a.0.cmp(&b.0)));
        let group = run_of(obj, own, tu).len();
        let best = scores[0].1;
        let runner_up = scores.get(1).map_or(Support::default(), |s| s.1);
        if best.beats(&runner_up) {
            return Ok(self.located(
                scores[0].0,
                SymposRule::Neighbours {
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
        Err(self.ambiguous(reason, &scores))
    }
}
