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
pub use report::{CheckFinding, CheckReport, Severity};

use crate::cli::{CheckArgs, ReportFormat};
use crate::contract::manifest::Manifest;
use crate::contract::spec::{ReplaceMode, SetField};

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
    let mut new = Livepatch::read(&args.module)?;
    if !args.also_replace_sets.is_empty() {
        also_replace_sets(&mut new, &args.also_replace_sets)?;
    }
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

/// The module as loaded with `also_replace_sets=SETS`: the runtime core adds the sets to
/// `supersedes` (without its own set) before it enables the patch, and refuses the parameter on a
/// kernel without the list, which `check` must refuse the same way, not model a load that fails.
fn also_replace_sets(new: &mut Livepatch, sets: &[u32]) -> anyhow::Result<()> {
    let Replace::Mode {
        mode:
            ReplaceMode::Set {
                field: SetField::ReplaceSet,
                set,
                supersedes,
            },
    } = &mut new.replace
    else {
        anyhow::bail!(
            "--also-replace-sets {}: {} is {}, and only a module klp-build built for a kernel with \
             replace sets and `supersedes` takes the also_replace_sets= parameter; drop the option, or \
             rebuild the module with --supersedes for that kernel",
            sets.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
            new.file,
            match &new.replace {
                Replace::Mode { mode } => format!("in mode {}", mode.describe()),
                Replace::Word { .. } | Replace::Unknown => "a module of another tool".to_string(),
            }
        );
    };
    let own = *set;
    supersedes.extend(sets.iter().copied().filter(|s| *s != own));
    supersedes.sort_unstable();
    supersedes.dedup();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::manifest::{ManifestFunc, SCHEMA_VERSION};
    use crate::contract::spec::ReplaceMode;
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
    /// The refusal for a function shared with another set recommends `also_replace_sets=`;
    /// `check --also-replace-sets` models that load: the other set's patch is replaced.
    #[test]
    fn also_replace_sets_models_the_load_parameter_the_refusal_recommends() {
        let in_set = |name: &str, set: u32, fixes: &[&str]| {
            let mut m = manifest(name, fixes, &["f"]);
            m.replace = ReplaceMode::Set {
                field: SetField::ReplaceSet,
                set,
                supersedes: vec![],
            };
            m
        };
        let deployed = Livepatch::from_manifest("set1.ko", &in_set("set1", 1, &["fix-1"]));
        // The new module carries set 1's fix, as a module replacing it must.
        let mut new = Livepatch::from_manifest("set2.ko", &in_set("set2", 2, &["fix-1", "fix-2"]));
        let plain = rules::check(&new, std::slice::from_ref(&deployed), &[]);
        assert!(!plain.loads);
        let msg = plain.refusal_message();
        assert!(msg.contains("also_replace_sets=1"), "{msg}");

        also_replace_sets(&mut new, &[1, 2]).unwrap();
        let r = rules::check(&new, std::slice::from_ref(&deployed), &[]);
        assert!(r.loads, "{}", r.refusal_message());
        let enabled: Vec<&str> = r.enabled.iter().map(|e| e.file.as_str()).collect();
        assert_eq!(enabled, ["set2.ko"], "set 1's patch is replaced");

        // A cumulative module of a stock kernel has no such parameter.
        let mut atomic = Livepatch::from_manifest("c.ko", &manifest("c", &["c"], &["f"]));
        let e = also_replace_sets(&mut atomic, &[1])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("c.ko") && e.contains("--also-replace-sets 1"),
            "{e}"
        );
    }
}
