//! `klp-build check NEW.ko --against A.ko [B.ko ...]` and the same check for the build's
//! `--previous OLD.ko`: the kernel's livepatch load rules applied to module manifests before
//! anything reaches a machine. Input: the modules (klp-build's manifests, or what the ELF of other
//! tools' modules says). Output: a [`CheckReport`] (refusals, warnings, notes of what is not
//! known) and an exit code: 0 it would load, 1 refused. Invariant: the deployed modules are loaded
//! into the model in the order given, each under the same rules, then the new one.
//!
//! | file | concern |
//! |---|---|
//! | `module.rs` | [`Livepatch`]: what is known about one module |
//! | `foreign.rs` | reading modules of other tools from their ELF |
//! | `rules.rs` | the load rules (replace sets, `bool replace`) |
//! | `report.rs` | [`CheckReport`], its text and JSON |
//! | `inspect.rs` | `klp-build inspect` |

pub mod foreign;
pub mod inspect;
pub mod module;
pub mod report;
pub mod rules;

pub use inspect::inspect;
pub use module::{Livepatch, Replace};
pub use report::{CheckReport, Finding, Severity};

use crate::cli::{CheckArgs, ReportFormat};
use crate::emit::manifest::Manifest;

/// A module enabled (or to be enabled) on the target before the new one.
pub type Deployed = Livepatch;

/// The check of a module being built (`--previous`): `new` is its manifest, `deployed` the
/// modules it follows in load order (read with [`Livepatch::read`]), `allow_drop` the fixes it may
/// drop. The module is named `<name>.ko` in the findings.
pub fn against(new: &Manifest, deployed: &[Deployed], allow_drop: &[String]) -> CheckReport {
    let new = Livepatch::from_manifest(&format!("{}.ko", new.name), new);
    rules::check(&new, deployed, allow_drop)
}

/// `klp-build check`: prints the report; exit 0 when every module would load, an error naming
/// every refusal (exit 1) otherwise.
pub fn run(args: &CheckArgs) -> anyhow::Result<u8> {
    let new = Livepatch::read(&args.module)?;
    let deployed = args
        .against
        .iter()
        .map(|p| Livepatch::read(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let report = rules::check(&new, &deployed, &args.allow_drop);
    match args.report {
        ReportFormat::Text => crate::stdout::write(&report.to_string())?,
        ReportFormat::Json => crate::stdout::writeln(&serde_json::to_string_pretty(&report)?)?,
    }
    if report.refusals().next().is_some() {
        anyhow::bail!(report.refusal_message());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::manifest::{ManifestFunc, SCHEMA_VERSION};
    use crate::emit::spec::ReplaceMode;
    use crate::keys;
    use crate::patch::Fix;

    fn manifest(name: &str, fixes: &[&str], funcs: &[&str]) -> Manifest {
        Manifest {
            schema_version: SCHEMA_VERSION,
            tool_version: "0.1.0".into(),
            kernel_release: "6.1.0-57-amd64".into(),
            name: name.into(),
            replace: ReplaceMode::Atomic,
            states: vec![],
            fixes: fixes
                .iter()
                .map(|f| Fix {
                    name: (*f).into(),
                    sha256: String::new(),
                    subject: String::new(),
                })
                .collect(),
            functions: funcs
                .iter()
                .map(|f| ManifestFunc {
                    object: "vmlinux".into(),
                    name: (*f).into(),
                    sympos: 0,
                })
                .collect(),
        }
    }

    /// `--previous OLD.ko` as the build pipeline calls it: the new module's manifest against the
    /// previous release.
    #[test]
    fn against_names_the_new_module_by_its_name_and_lists_refusals() {
        let old = Livepatch::from_manifest(
            "v1/livepatch_x.ko",
            &manifest("livepatch_x", &["a", "b"], &["f", "g"]),
        );
        let new = manifest("livepatch_x2", &["a"], &["f"]);
        let r = against(&new, std::slice::from_ref(&old), &[]);
        assert!(!r.loads);
        assert_eq!(r.module, "livepatch_x2.ko");
        assert_eq!(
            r.refusals().map(|f| f.key).collect::<Vec<_>>(),
            [keys::CHECK_FIX_DROPPED]
        );
        assert_eq!(
            r.warnings().map(|f| f.key).collect::<Vec<_>>(),
            [keys::CHECK_REVERTS]
        );
        let msg = r.refusal_message();
        assert!(
            msg.contains("v1/livepatch_x.ko") && msg.contains("--allow-drop b"),
            "{msg}"
        );
        assert!(against(&new, &[old], &["b".into()]).loads);
    }
}
