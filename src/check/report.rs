//! The answer of a check. Input: the findings of [`super::rules`]. Output: [`CheckReport`], shown
//! as one line per finding (`refused check.func-overlap: ...`) and a verdict, or as JSON.
//! Invariant: the keys are stable and dotted; tools and tests match on them, people read the
//! message; the module "would load" exactly when no finding is a refusal.

use std::fmt;

use serde::Serialize;

use crate::keys::Key;
use crate::text::{field, field_max, FIELD_MAX};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The kernel (or the release policy, for dropped fixes) refuses the module.
    Refused,
    /// It loads, but something changes that the user should know.
    Warning,
    /// Something the check could not know.
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Refused => "refused",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CheckFinding {
    /// Stable dotted key: `check.func-overlap`, `check.state-missing`, ...
    pub key: Key,
    /// Refused, warning or note.
    pub severity: Severity,
    /// The module being loaded when it was found.
    pub module: String,
    /// The enabled module it conflicts with or replaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
    /// `vmlinux` or a module, for function findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The function, for function findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Its sympos as the module records it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sympos: Option<u32>,
    /// The `klp_state` id, for state findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<u64>,
    /// The fix's name, for fix findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// What happens and what to do.
    pub message: String,
}

impl CheckFinding {
    pub(crate) fn new(key: Key, severity: Severity, module: &str, message: String) -> CheckFinding {
        CheckFinding {
            key,
            severity,
            module: module.to_string(),
            other: None,
            object: None,
            function: None,
            sympos: None,
            state: None,
            fix: None,
            message,
        }
    }
}

/// A patch enabled after the modelled loads, in load order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct EnabledPatch {
    /// The module's file as given.
    pub file: String,
    /// Its name.
    pub name: String,
    /// How it was taken to replace (`replace set 1`, `cumulative ...`).
    pub replace: String,
}

/// The result of loading the deployed modules in order, then the new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CheckReport {
    /// The module checked.
    pub module: String,
    /// The kernel API the modules are taken to be for (`replace sets`, `bool replace`).
    pub kernel: String,
    /// Whether the new module would load (no refusal anywhere).
    pub loads: bool,
    /// Every finding, in load order.
    pub findings: Vec<CheckFinding>,
    /// The enabled patches afterwards (when a module is refused, nothing changes).
    pub enabled: Vec<EnabledPatch>,
}

impl CheckReport {
    /// The refusals.
    pub fn refusals(&self) -> impl Iterator<Item = &CheckFinding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Refused)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &CheckFinding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
    }

    /// One error message that names every refusal, for the exit status and for the build's
    /// `--previous`.
    pub fn refusal_message(&self) -> String {
        let mut msg = format!(
            "{} would be refused ({} refusal(s)):",
            field(&self.module),
            self.refusals().count()
        );
        for f in self.refusals() {
            msg.push_str(&format!(
                "\n  {}: {}",
                f.key,
                field_max(&f.message, 4 * FIELD_MAX)
            ));
        }
        msg
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Messages quote names read from the modules: escaped, and cut at a few fields' length.
        for x in &self.findings {
            writeln!(
                f,
                "{} {}: {}",
                x.severity,
                x.key,
                field_max(&x.message, 4 * FIELD_MAX)
            )?;
        }
        let enabled = if self.enabled.is_empty() {
            "none".to_string()
        } else {
            self.enabled
                .iter()
                .map(|e| format!("{} ({})", field(&e.file), field(&e.replace)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (r, w) = (self.refusals().count(), self.warnings().count());
        if self.loads {
            writeln!(
                f,
                "{} would load on a kernel with {} ({w} warning(s)); enabled afterwards: {enabled}",
                field(&self.module),
                self.kernel
            )
        } else {
            writeln!(
                f,
                "{} would be refused on a kernel with {} ({r} refusal(s), {w} warning(s)); enabled afterwards: {enabled}",
                field(&self.module),
                self.kernel
            )
        }
    }
}
