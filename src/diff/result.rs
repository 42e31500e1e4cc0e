//! What diffing one object pair found. Input: the stages of [`super::diff`]. Output:
//! [`ObjectDiff`] with its changed, new and line-only functions and its findings, and [`Refused`],
//! the one error that lists every refusal. Invariant: a finding's key is one of `keys::ALL` and
//! its rendering is the same in reports and errors.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::contract::KlpObject;
use crate::elf::{ElfObject, Orig, Patched, SymbolId};
use crate::keys::{self, Key};

use super::correlate::{Rule, Twins};
use super::decode::Decoded;

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
    /// Both objects' instruction boundaries, decoded once for the diff, `--explain` and the
    /// emitter.
    pub decoded: (Decoded<Orig>, Decoded<Patched>),
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
