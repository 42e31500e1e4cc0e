//! The module spec: what the module says about itself to the kernel, as one typed value that the
//! kbuild step (config header, tables), the manifest and the modinfo keys all read. Input: the
//! user's replace options and states, and the target's [`LivepatchApi`]. Output: [`ModuleSpec`].
//! Invariant: a [`ReplaceMode`] only exists when the target can do it; every combination it cannot
//! do is refused in [`ReplaceMode::resolve`] with the reason and what to use instead
//! (replace-set.md's table), before anything is compiled.

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::kernel::livepatch_api::{LivepatchApi, ReplaceField};

/// What the user asked for on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaceRequest {
    /// `--replace-set N` / `--provides N`.
    pub set: Option<u32>,
    /// `--supersedes M,..` / `--obsoletes M,..`.
    pub supersedes: Vec<u32>,
    /// `--no-replace`.
    pub no_replace: bool,
}

/// Which field carries the set number in the target's `struct klp_patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SetField {
    /// `replace_set` (+ `supersedes`, `nr_supersedes`).
    ReplaceSet,
    /// `provides` (its `obsoletes` list is not emitted until its layout is known).
    Provides,
}

/// How the module relates to livepatches loaded before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ReplaceMode {
    /// `replace = true`: replaces every enabled livepatch (cumulative).
    Atomic,
    /// `replace = false`, or a kernel without atomic replace: stacks on the enabled livepatches.
    Stacked,
    /// Replaces the enabled patch of its own set (and of `supersedes`), coexists with the others.
    Set {
        /// The field the target has.
        field: SetField,
        /// The set the module occupies.
        set: u32,
        /// Other sets whose enabled patches it also replaces.
        supersedes: Vec<u32>,
    },
}

impl ReplaceMode {
    /// Resolves the request against the target; see the module doc.
    pub fn resolve(req: &ReplaceRequest, api: &LivepatchApi) -> anyhow::Result<ReplaceMode> {
        let what = api.describe();
        match api.replace {
            ReplaceField::ReplaceSet | ReplaceField::Provides => {
                let field = if api.replace == ReplaceField::ReplaceSet {
                    SetField::ReplaceSet
                } else {
                    SetField::Provides
                };
                if let (true, Some(n)) = (req.no_replace, req.set) {
                    bail!(
                        "--no-replace and --replace-set {n} conflict: --no-replace asks for a module that stacks on \
                         the enabled livepatches (kernels with `bool replace`), --replace-set {n} for one that \
                         replaces the enabled patch of set {n} and coexists with the other sets; the target \
                         kernel has {what}, which has no stacking: drop --no-replace"
                    );
                }
                if req.no_replace {
                    bail!(
                        "--no-replace: the target kernel has {what}, which has no stacking mode; give the hotfix \
                         a replace set of its own (--replace-set N) so that it coexists with the others"
                    );
                }
                if !req.supersedes.is_empty() {
                    match (field, api.supersedes_field) {
                        (SetField::ReplaceSet, Some("supersedes")) => {}
                        (SetField::Provides, Some(f)) => bail!(
                            "--supersedes: the target kernel has `provides` with `{f}`, whose layout klp-build does \
                             not know yet; build without --supersedes and load the replacing modules one by one"
                        ),
                        _ => bail!(
                            "--supersedes: the target kernel has {what} but no list of superseded sets in struct \
                             klp_patch; build without --supersedes"
                        ),
                    }
                }
                let set = req.set.unwrap_or(0);
                if req.supersedes.contains(&set) {
                    bail!("--supersedes {set}: the module's own set; a module always replaces the patch of its own set");
                }
                let mut supersedes = req.supersedes.clone();
                supersedes.sort_unstable();
                supersedes.dedup();
                Ok(ReplaceMode::Set {
                    field,
                    set,
                    supersedes,
                })
            }
            ReplaceField::Bool => {
                if !req.supersedes.is_empty() {
                    bail!(
                        "--supersedes: the target kernel has {what}, without replace sets; a cumulative module \
                         (the default) already replaces every livepatch"
                    );
                }
                match (req.set, req.no_replace) {
                    (Some(n), true) => bail!(
                        "--replace-set {n} and --no-replace contradict each other; the target kernel has {what}: \
                         use --no-replace alone for a hotfix that stacks"
                    ),
                    (Some(0) | None, false) => Ok(ReplaceMode::Atomic),
                    (Some(n), false) => bail!(
                        "--replace-set {n}: the target kernel has {what}, without replace sets (they need the \
                         replace-set series in the kernel); build a stacked hotfix with --no-replace, or a \
                         cumulative module without --replace-set"
                    ),
                    (None, true) => Ok(ReplaceMode::Stacked),
                }
            }
            ReplaceField::None => {
                if req.set.is_some() || !req.supersedes.is_empty() {
                    bail!(
                        "--replace-set/--supersedes: the target kernel has {what}; its livepatches always stack \
                         (build without these options)"
                    );
                }
                if !req.no_replace {
                    bail!(
                        "the target kernel has {what}, so a cumulative module cannot replace the ones before it; \
                         pass --no-replace to build a module that stacks"
                    );
                }
                Ok(ReplaceMode::Stacked)
            }
        }
    }

    /// One line for reports and `inspect`.
    pub fn describe(&self) -> String {
        match self {
            ReplaceMode::Atomic => "cumulative (atomic replace of every livepatch)".into(),
            ReplaceMode::Stacked => "stacked (replaces nothing)".into(),
            ReplaceMode::Set {
                set, supersedes, ..
            } if supersedes.is_empty() => format!("replace set {set}"),
            ReplaceMode::Set {
                set, supersedes, ..
            } => format!(
                "replace set {set}, supersedes {}",
                supersedes
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

/// A `klp_state` the module declares (`--state ID[:VERSION]`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct StateSpec {
    /// `klp_state.id`.
    pub id: u64,
    /// `klp_state.version`.
    pub version: u32,
}

impl std::str::FromStr for StateSpec {
    type Err = String;

    /// `ID` or `ID:VERSION`, decimal or `0x` hex; version 0 when omitted.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, version) = s.split_once(':').unwrap_or((s, "0"));
        let num = |t: &str| -> Result<u64, String> {
            let t = t.trim();
            let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(h) => u64::from_str_radix(h, 16),
                None => t.parse(),
            };
            r.map_err(|_| {
                format!("`{s}`: expected ID[:VERSION], numbers (e.g. 0x4b4c5001:2), got `{t}`")
            })
        };
        let version = u32::try_from(num(version)?)
            .map_err(|_| format!("`{s}`: the version does not fit 32 bits"))?;
        Ok(StateSpec {
            id: num(id)?,
            version,
        })
    }
}

/// The longest module name: `MODULE_NAME_LEN` (56 on 64-bit) less the NUL.
pub const MODULE_NAME_MAX: usize = 55;

/// A module name becomes a file name, a make variable (`<name>-y`) and, with `-` as `_`, the
/// kernel's module name: 1 to [`MODULE_NAME_MAX`] letters, digits, `-` or `_`.
pub fn check_module_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MODULE_NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        bail!(
            "module name `{name}`: use 1 to {MODULE_NAME_MAX} letters, digits, `_` or `-` (e.g. livepatch-fix)"
        );
    }
    Ok(())
}

/// The default module name: `livepatch-<stem of the first patch>`, every character a module name
/// cannot hold replaced by `_`, cut to [`MODULE_NAME_MAX`].
pub fn default_module_name(first_patch: &std::path::Path) -> String {
    let stem = first_patch
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name = module_name_of(&format!("livepatch-{stem}"));
    name.truncate(MODULE_NAME_MAX);
    name
}

/// `text` with every character a module name cannot hold (anything but letters, digits, `-` and
/// `_`) replaced by `_`: `livepatch-acme-2026.12.1` -> `livepatch-acme-2026_12_1`.
pub fn module_name_of(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Everything the module says about itself besides its functions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleSpec {
    /// Module name as given (`livepatch-fix`); the kernel calls it `livepatch_fix`.
    pub name: String,
    /// The replace mode, resolved against the target.
    pub replace: ReplaceMode,
    /// The states it declares, sorted by id, ids unique.
    pub states: Vec<StateSpec>,
    /// What the target's `struct klp_patch` has: the runtime core is compiled for exactly these
    /// fields (states, supersedes), and refuses `also_replace_sets` when there is no list.
    pub api: LivepatchApi,
}

impl ModuleSpec {
    /// Resolves `req` against `api` ([`ReplaceMode::resolve`]) and checks `states` (from
    /// `--state` and the `KLP_BUILD_STATE` declarations, in any order, repeats allowed when they
    /// agree) against it: the one way to make a spec that the kbuild step can emit.
    pub fn new(
        name: &str,
        req: &ReplaceRequest,
        states: &[StateSpec],
        api: LivepatchApi,
    ) -> anyhow::Result<ModuleSpec> {
        let spec = ModuleSpec {
            name: name.to_string(),
            replace: ReplaceMode::resolve(req, &api)?,
            states: merge_states(states)?,
            api,
        };
        spec.check()?;
        Ok(spec)
    }

    /// Adds the states declared in the patched source (`emit::declarations::states`, known only
    /// after the patched build) to those of `--state`, merged as [`ModuleSpec::new`] does, and
    /// checks the result against the target.
    pub fn add_states(&mut self, declared: &[StateSpec]) -> anyhow::Result<()> {
        self.states = merge_states(&[self.states.as_slice(), declared].concat())?;
        self.check()
    }

    /// The module's name as the kernel and sysfs know it (`-` as `_`).
    pub fn kernel_name(&self) -> String {
        crate::kernel::normalize_modname(&self.name)
    }

    /// Refuses a spec the target cannot carry, for specs written as struct literals: a mode of
    /// another API, states on a kernel without `klp_patch.states`, state id 0 (it ends the
    /// kernel's array: `klp_for_each_state()` stops at it) or repeated ids.
    pub fn check(&self) -> anyhow::Result<()> {
        let what = self.api.describe();
        let fits = match (&self.replace, self.api.replace) {
            (ReplaceMode::Atomic, ReplaceField::Bool) => true,
            (ReplaceMode::Stacked, ReplaceField::Bool | ReplaceField::None) => true,
            (
                ReplaceMode::Set {
                    field, supersedes, ..
                },
                ReplaceField::ReplaceSet,
            ) => {
                *field == SetField::ReplaceSet
                    && (supersedes.is_empty() || self.api.supersedes_field == Some("supersedes"))
            }
            (
                ReplaceMode::Set {
                    field, supersedes, ..
                },
                ReplaceField::Provides,
            ) => *field == SetField::Provides && supersedes.is_empty(),
            _ => false,
        };
        if !fits {
            bail!(
                "module {}: the replace mode `{}` does not fit the target kernel, which has {what}; resolve the replace options against the target (ReplaceMode::resolve)",
                self.name,
                self.replace.describe()
            );
        }
        if !self.states.is_empty() && !self.api.states {
            bail!(
                "module {}: states {} declared, but the target kernel's struct klp_patch has no `states` (added in Linux 5.5); drop --state and the KLP_BUILD_STATE declarations",
                self.name,
                states_text(&self.states)
            );
        }
        if self.states.iter().any(|s| s.id == 0) {
            bail!(
                "module {}: state id 0 ends the kernel's klp_patch.states array, so the kernel would never see it or the states after it; use a non-zero id (e.g. 0x4b4c5001)",
                self.name
            );
        }
        if self.states.windows(2).any(|w| w[0].id >= w[1].id) {
            bail!(
                "module {}: states {} are not sorted by id with unique ids; build the spec with ModuleSpec::new",
                self.name,
                states_text(&self.states)
            );
        }
        Ok(())
    }

    /// The module's `klp_build_*` modinfo keys and values, in the order the config header
    /// writes them: `replace` always, `replace_set` in set modes, `supersedes` and `states` when
    /// not empty.
    pub fn modinfo(&self) -> Vec<(&'static str, String)> {
        use super::abi;
        let mut v = Vec::new();
        match &self.replace {
            ReplaceMode::Atomic => v.push((abi::MODINFO_REPLACE, "atomic".to_string())),
            ReplaceMode::Stacked => v.push((abi::MODINFO_REPLACE, "stacked".to_string())),
            ReplaceMode::Set {
                set, supersedes, ..
            } => {
                v.push((abi::MODINFO_REPLACE, "set".to_string()));
                v.push((abi::MODINFO_REPLACE_SET, set.to_string()));
                if !supersedes.is_empty() {
                    let list: Vec<String> = supersedes.iter().map(u32::to_string).collect();
                    v.push((abi::MODINFO_SUPERSEDES, list.join(",")));
                }
            }
        }
        if !self.states.is_empty() {
            v.push((abi::MODINFO_STATES, states_text(&self.states)));
        }
        v
    }
}

/// `id:version,..` in decimal, the form of the `klp_build_states` modinfo key.
pub fn states_text(states: &[StateSpec]) -> String {
    states
        .iter()
        .map(|s| format!("{}:{}", s.id, s.version))
        .collect::<Vec<_>>()
        .join(",")
}

/// Sorts `states` by id and drops exact repeats (the command line and a declaration in the
/// source may name the same state); one id with two versions is refused, naming both.
pub fn merge_states(states: &[StateSpec]) -> anyhow::Result<Vec<StateSpec>> {
    let mut v = states.to_vec();
    v.sort_unstable();
    v.dedup();
    if let Some(w) = v.windows(2).find(|w| w[0].id == w[1].id) {
        bail!(
            "state id {:#x} is declared with version {} and with version {}; a module carries one version of each state (give the newest in --state or in KLP_BUILD_STATE)",
            w[0].id,
            w[0].version,
            w[1].version
        );
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(replace: ReplaceField, list: Option<&'static str>) -> LivepatchApi {
        LivepatchApi::with_replace(replace, list)
    }

    fn req(set: Option<u32>, supersedes: &[u32], no_replace: bool) -> ReplaceRequest {
        ReplaceRequest {
            set,
            supersedes: supersedes.to_vec(),
            no_replace,
        }
    }

    #[test]
    fn bool_replace_kernel_follows_the_table() {
        let a = api(ReplaceField::Bool, None);
        assert_eq!(
            ReplaceMode::resolve(&req(None, &[], false), &a).unwrap(),
            ReplaceMode::Atomic
        );
        assert_eq!(
            ReplaceMode::resolve(&req(Some(0), &[], false), &a).unwrap(),
            ReplaceMode::Atomic
        );
        assert_eq!(
            ReplaceMode::resolve(&req(None, &[], true), &a).unwrap(),
            ReplaceMode::Stacked
        );
        let e = format!(
            "{:#}",
            ReplaceMode::resolve(&req(Some(2), &[], false), &a).unwrap_err()
        );
        assert!(
            e.contains("--replace-set 2")
                && e.contains("--no-replace")
                && e.contains("bool replace"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            ReplaceMode::resolve(&req(None, &[1], false), &a).unwrap_err()
        );
        assert!(e.starts_with("--supersedes"), "{e}");
    }

    #[test]
    fn replace_set_kernel_follows_the_table() {
        let a = api(ReplaceField::ReplaceSet, Some("supersedes"));
        assert_eq!(
            ReplaceMode::resolve(&req(None, &[], false), &a).unwrap(),
            ReplaceMode::Set {
                field: SetField::ReplaceSet,
                set: 0,
                supersedes: vec![]
            }
        );
        assert_eq!(
            ReplaceMode::resolve(&req(Some(1), &[3, 2, 3], false), &a).unwrap(),
            ReplaceMode::Set {
                field: SetField::ReplaceSet,
                set: 1,
                supersedes: vec![2, 3]
            }
        );
        let e = format!(
            "{:#}",
            ReplaceMode::resolve(&req(None, &[], true), &a).unwrap_err()
        );
        assert!(
            e.contains("no stacking mode") && e.contains("--replace-set N"),
            "{e}"
        );
        // With a set given, asking for one would be circular: the two options conflict.
        let e = format!(
            "{:#}",
            ReplaceMode::resolve(&req(Some(2), &[], true), &a).unwrap_err()
        );
        assert!(
            e.contains("--no-replace and --replace-set 2 conflict"),
            "{e}"
        );
        assert!(ReplaceMode::resolve(&req(Some(2), &[2], false), &a).is_err());
        let no_list = api(ReplaceField::ReplaceSet, None);
        assert!(ReplaceMode::resolve(&req(Some(1), &[2], false), &no_list).is_err());
    }

    #[test]
    fn provides_kernel_refuses_supersedes_naming_the_field() {
        let a = api(ReplaceField::Provides, Some("obsoletes"));
        assert_eq!(
            ReplaceMode::resolve(&req(Some(4), &[], false), &a).unwrap(),
            ReplaceMode::Set {
                field: SetField::Provides,
                set: 4,
                supersedes: vec![]
            }
        );
        let e = format!(
            "{:#}",
            ReplaceMode::resolve(&req(Some(4), &[1], false), &a).unwrap_err()
        );
        assert!(e.contains("`provides` with `obsoletes`"), "{e}");
    }

    #[test]
    fn kernel_without_replace_only_stacks() {
        let a = api(ReplaceField::None, None);
        assert_eq!(
            ReplaceMode::resolve(&req(None, &[], true), &a).unwrap(),
            ReplaceMode::Stacked
        );
        assert!(ReplaceMode::resolve(&req(None, &[], false), &a).is_err());
        assert!(ReplaceMode::resolve(&req(Some(1), &[], true), &a).is_err());
    }

    #[test]
    fn module_names_that_break_make_or_the_kernel_are_refused() {
        assert!(check_module_name("livepatch-fix_2").is_ok());
        assert!(check_module_name(&"a".repeat(MODULE_NAME_MAX)).is_ok());
        for bad in [
            "",
            "fix.ko",
            "a b",
            "x$(y)",
            &"a".repeat(MODULE_NAME_MAX + 1),
        ] {
            let e = check_module_name(bad).unwrap_err().to_string();
            assert!(e.contains("letters, digits"), "{bad}: {e}");
        }
    }

    #[test]
    fn default_module_name_is_valid_for_any_patch_name() {
        for p in [
            "fix.patch",
            "0001-proc: fix $x.patch",
            &format!("{}.diff", "é".repeat(60)),
            "",
        ] {
            let n = default_module_name(std::path::Path::new(p));
            assert!(check_module_name(&n).is_ok(), "{p} -> {n}");
        }
        assert_eq!(
            default_module_name(std::path::Path::new("dir/cmdline.patch")),
            "livepatch-cmdline"
        );
    }

    #[test]
    fn module_spec_merges_states_and_checks_them_against_the_kernel() {
        let a = api(ReplaceField::Bool, None);
        let st = |id, version| StateSpec { id, version };
        let spec = ModuleSpec::new(
            "livepatch-x",
            &req(None, &[], false),
            &[st(9, 1), st(3, 0), st(9, 1)],
            a.clone(),
        )
        .unwrap();
        assert_eq!(spec.states, [st(3, 0), st(9, 1)]);
        assert_eq!(
            spec.modinfo(),
            [
                ("klp_build_replace", "atomic".to_string()),
                ("klp_build_states", "3:0,9:1".to_string())
            ]
        );
        let e = format!(
            "{:#}",
            ModuleSpec::new(
                "x",
                &req(None, &[], false),
                &[st(9, 1), st(9, 2)],
                a.clone()
            )
            .unwrap_err()
        );
        assert!(
            e.contains("0x9") && e.contains("version 1") && e.contains("version 2"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            ModuleSpec::new("x", &req(None, &[], false), &[st(0, 1)], a.clone()).unwrap_err()
        );
        assert!(e.contains("state id 0"), "{e}");
        let mut old = a;
        old.states = false;
        let e = format!(
            "{:#}",
            ModuleSpec::new("x", &req(None, &[], false), &[st(1, 1)], old).unwrap_err()
        );
        assert!(e.contains("no `states`"), "{e}");
    }

    #[test]
    fn declared_states_join_the_command_line_ones() {
        let st = |id, version| StateSpec { id, version };
        let mut spec = ModuleSpec::new(
            "x",
            &req(None, &[], false),
            &[st(9, 1)],
            api(ReplaceField::Bool, None),
        )
        .unwrap();
        spec.add_states(&[st(9, 1), st(2, 3)]).unwrap();
        assert_eq!(spec.states, [st(2, 3), st(9, 1)]);
        let e = format!("{:#}", spec.add_states(&[st(9, 2)]).unwrap_err());
        assert!(e.contains("version 1") && e.contains("version 2"), "{e}");
    }

    #[test]
    fn module_spec_modinfo_of_a_set() {
        let spec = ModuleSpec::new(
            "livepatch-x",
            &req(Some(2), &[3, 1], false),
            &[],
            api(ReplaceField::ReplaceSet, Some("supersedes")),
        )
        .unwrap();
        assert_eq!(
            spec.modinfo(),
            [
                ("klp_build_replace", "set".to_string()),
                ("klp_build_replace_set", "2".to_string()),
                ("klp_build_supersedes", "1,3".to_string())
            ]
        );
    }

    #[test]
    fn a_mode_of_another_kernel_is_refused() {
        let spec = ModuleSpec {
            name: "x".into(),
            replace: ReplaceMode::Stacked,
            states: vec![],
            api: api(ReplaceField::ReplaceSet, Some("supersedes")),
        };
        let e = format!("{:#}", spec.check().unwrap_err());
        assert!(
            e.contains("does not fit") && e.contains("replace_set"),
            "{e}"
        );
    }

    #[test]
    fn states_parse_with_and_without_version() {
        assert_eq!(
            "7".parse::<StateSpec>().unwrap(),
            StateSpec { id: 7, version: 0 }
        );
        assert_eq!(
            "0x4b4c5001:2".parse::<StateSpec>().unwrap(),
            StateSpec {
                id: 0x4b4c_5001,
                version: 2
            }
        );
        assert!("x:1".parse::<StateSpec>().is_err());
        assert!("1:99999999999".parse::<StateSpec>().is_err());
    }
}
