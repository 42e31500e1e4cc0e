//! The kernel's load rules applied to manifests. Input: the deployed modules in load order, the new
//! module, the fixes it may drop. Output: [`CheckReport`]. Invariant: each module is loaded into a
//! model of the enabled patches with the rules the kernel checks at `klp_enable_patch()`, and a
//! refused module changes nothing, as in the kernel (replace-set.md, "Rules"):
//!
//! - replace sets: (1) every enabled patch of the module's set or of a set it supersedes is
//!   replaced, and each of its states must be in the module with a version >=; (2) no other
//!   enabled patch may share a function (object, name, sympos with 0 == 1) or a state id;
//! - `bool replace` (stock kernels, `klp_is_patch_compatible()` in `kernel/livepatch/state.c`):
//!   a cumulative module replaces every enabled patch and must carry all their states with a
//!   version >=; a stacked one replaces none, may leave their states out, but must not lower a
//!   state it carries; stacked patches may patch one function (the newest wins), which is warned.
//!
//! Release policy on top: a fix a replaced predecessor carried must still be there (unless
//! allowed), and functions it patched that the new module does not are reverted (warned).

use std::collections::BTreeSet;

use super::module::{Livepatch, Replace};
use super::report::{CheckFinding, CheckReport, EnabledPatch, Severity};
use crate::contract::manifest::ManifestFunc;
use crate::contract::spec::ReplaceMode;
use crate::keys;

/// Which kernel livepatch API the modules are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// `bool replace`: cumulative or stacked.
    Bool,
    /// `replace_set`/`provides`.
    Sets,
}

/// A module's replace behaviour on the kernel of the check.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Atomic,
    Stacked,
    Set {
        set: u32,
        supersedes: Vec<u32>,
    },
    /// Not known: taken as replacing nothing.
    Unknown,
}

impl Mode {
    fn describe(&self) -> String {
        match self {
            Mode::Atomic => "cumulative".into(),
            Mode::Stacked => "stacked".into(),
            Mode::Set { set, supersedes } if supersedes.is_empty() => format!("set {set}"),
            Mode::Set { set, supersedes } => format!(
                "set {set}, supersedes {}",
                supersedes
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Mode::Unknown => "replace mode not known".into(),
        }
    }
}

struct Enabled<'a> {
    m: &'a Livepatch,
    mode: Mode,
}

/// Loads `deployed` in order, then `new`, and reports every finding.
pub fn check(new: &Livepatch, deployed: &[Livepatch], allow_drop: &[String]) -> CheckReport {
    let all: Vec<&Livepatch> = deployed.iter().chain([new]).collect();
    let api = if all.iter().any(|m| {
        matches!(
            &m.replace,
            Replace::Mode {
                mode: ReplaceMode::Set { .. }
            }
        )
    }) {
        Api::Sets
    } else {
        Api::Bool
    };
    let mut findings = Vec::new();
    for m in &all {
        for u in &m.unknown {
            findings.push(CheckFinding::new(
                keys::CHECK_UNKNOWN,
                Severity::Note,
                &m.file,
                format!("{} (built by {}): not known: {u}", m.file, m.built_by),
            ));
        }
    }
    let mut enabled: Vec<Enabled> = Vec::new();
    let mut unloaded: Vec<&Livepatch> = Vec::new();
    let mut used_drops = BTreeSet::new();
    let release = all
        .iter()
        .find(|m| !m.kernel_release.is_empty())
        .map(|m| (m.file.clone(), m.kernel_release.clone()));
    for m in &all {
        let is_new = std::ptr::eq(*m, new);
        let drops: &[String] = if is_new { allow_drop } else { &[] };
        let mut load = Load {
            p: m,
            is_new,
            mode: mode(m, api),
            api,
            findings: Vec::new(),
            used_drops: BTreeSet::new(),
        };
        if let Some((file, rel)) = &release {
            if !m.kernel_release.is_empty() && &m.kernel_release != rel {
                load.push(
                    keys::CHECK_KERNEL_RELEASE,
                    Severity::Refused,
                    format!(
                        "{} is built for {}, {file} for {rel}: the module loader refuses a module whose vermagic \
                         is not the running kernel's; build every module for the one kernel",
                        m.file, m.kernel_release
                    ),
                );
            }
        }
        let replaced = load.run(&enabled, &unloaded, drops);
        used_drops.extend(load.used_drops);
        let refused = load
            .findings
            .iter()
            .any(|f| f.severity == Severity::Refused);
        findings.extend(load.findings);
        if refused {
            continue;
        }
        let mut next = Vec::new();
        for (i, e) in enabled.into_iter().enumerate() {
            if replaced.contains(&i) {
                unloaded.push(e.m);
            } else {
                next.push(e);
            }
        }
        next.push(Enabled { m, mode: load.mode });
        enabled = next;
    }
    for d in allow_drop.iter().filter(|d| !used_drops.contains(*d)) {
        findings.push(CheckFinding {
            fix: Some(d.clone()),
            ..CheckFinding::new(
                keys::CHECK_ALLOW_DROP_UNUSED,
                Severity::Warning,
                &new.file,
                format!(
                    "--allow-drop {d}: no predecessor that {} replaces carries a fix named {d}",
                    new.file
                ),
            )
        });
    }
    let loads = !findings
        .iter()
        .any(|f| f.severity == Severity::Refused && f.module == new.file);
    CheckReport {
        module: new.file.clone(),
        kernel: match api {
            Api::Sets => "replace sets".into(),
            Api::Bool => "bool replace".into(),
        },
        loads,
        findings,
        enabled: enabled
            .iter()
            .map(|e| EnabledPatch {
                file: e.m.file.clone(),
                name: e.m.name.clone(),
                replace: e.mode.describe(),
            })
            .collect(),
    }
}

fn mode(m: &Livepatch, api: Api) -> Mode {
    match (&m.replace, api) {
        (Replace::Mode { mode }, _) => match mode {
            ReplaceMode::Atomic => Mode::Atomic,
            ReplaceMode::Stacked => Mode::Stacked,
            ReplaceMode::Set {
                set, supersedes, ..
            } => Mode::Set {
                set: *set,
                supersedes: supersedes.clone(),
            },
        },
        (Replace::Word { word }, Api::Sets) => Mode::Set {
            set: *word,
            supersedes: Vec::new(),
        },
        (Replace::Word { word: 0 }, Api::Bool) => Mode::Stacked,
        (Replace::Word { word: 1 }, Api::Bool) => Mode::Atomic,
        (Replace::Word { .. } | Replace::Unknown, _) => Mode::Unknown,
    }
}

/// Functions are the same when object and name are and the sympos are, 0 and 1 being one (the
/// kernel's `klp_find_object_symbol()` takes 0 as "the only one", which is also the first).
fn same_func(a: &ManifestFunc, b: &ManifestFunc) -> bool {
    a.object == b.object && a.name == b.name && a.sympos.max(1) == b.sympos.max(1)
}

fn func_name(f: &ManifestFunc) -> String {
    format!("{}:{},{}", f.object, f.name, f.sympos)
}

/// One module being loaded.
struct Load<'a> {
    p: &'a Livepatch,
    /// The module checked, not one of the deployed: a dropped fix is refused only for it (the
    /// deployed ones are on the machine already).
    is_new: bool,
    mode: Mode,
    api: Api,
    findings: Vec<CheckFinding>,
    used_drops: BTreeSet<String>,
}

impl Load<'_> {
    fn push(&mut self, key: keys::Key, severity: Severity, message: String) -> &mut CheckFinding {
        self.findings
            .push(CheckFinding::new(key, severity, &self.p.file, message));
        self.findings.last_mut().expect("just pushed")
    }

    fn who(&self) -> String {
        format!("{} ({})", self.p.file, self.mode.describe())
    }

    /// Applies the rules against `enabled`; returns the indices of the patches it replaces.
    fn run(
        &mut self,
        enabled: &[Enabled],
        unloaded: &[&Livepatch],
        drops: &[String],
    ) -> Vec<usize> {
        let p = self.p;
        for q in unloaded.iter().filter(|q| q.name == p.name) {
            self.push(
                keys::CHECK_SAME_NAME,
                Severity::Warning,
                format!(
                    "{} and {} are both named {}: {} is replaced but still loaded until `rmmod {}`, and insmod \
                     refuses a second module of that name until then",
                    p.file, q.file, p.name, q.file, q.name
                ),
            );
        }
        for q in enabled.iter().filter(|q| q.m.name == p.name) {
            self.push(
                keys::CHECK_SAME_NAME,
                Severity::Refused,
                format!(
                    "{} and {} are both named {}: insmod refuses a second module of that name while {} is \
                     loaded, and an enabled livepatch cannot be unloaded; build it with another --name",
                    p.file, q.m.file, p.name, q.m.file
                ),
            )
            .other = Some(q.m.file.clone());
        }
        let replaced: Vec<usize> = match (&self.mode, self.api) {
            (Mode::Set { .. }, _) => {
                for q in enabled
                    .iter()
                    .filter(|q| !matches!(q.mode, Mode::Set { .. }))
                {
                    self.kernel_api(q);
                }
                self.sets(enabled)
            }
            (Mode::Atomic | Mode::Stacked, Api::Sets) => {
                let who = self.who();
                self.push(
                    keys::CHECK_KERNEL_API,
                    Severity::Refused,
                    format!(
                        "{who} is built for a kernel with `bool replace`, other modules of the check for one with \
                         replace sets: they cannot load on one kernel; rebuild it against the kernel it will run on"
                    ),
                );
                Vec::new()
            }
            (Mode::Atomic, Api::Bool) => {
                let all: Vec<usize> = (0..enabled.len()).collect();
                for q in enabled {
                    self.states_carried(q, "replaces every enabled livepatch, among them");
                }
                all
            }
            (Mode::Stacked | Mode::Unknown, _) => {
                if self.mode == Mode::Unknown {
                    let who = self.p.file.clone();
                    // A word other than 0 or 1 where a stock kernel has `bool replace` is the set
                    // number of a module built for a replace-set kernel; say that, not "unknown".
                    let why = match &self.p.replace {
                        Replace::Word { word } => format!(
                            "its klp_patch word at offset 24 is {word}, which is no `bool replace` value \
                             (0 or 1): it looks built for a kernel with replace sets, and this check models \
                             a kernel with `bool replace`; rebuild it for the kernel it will run on"
                        ),
                        _ => "its replace mode could not be read (see its notes in `klp-build inspect`)"
                            .to_string(),
                    };
                    self.push(
                        keys::CHECK_REPLACE_UNKNOWN,
                        Severity::Warning,
                        format!("{who}: {why}; it is taken to replace nothing"),
                    );
                }
                for q in enabled {
                    self.states_not_lowered(q);
                    self.stacked_same_funcs(q);
                }
                Vec::new()
            }
        };
        for &i in &replaced {
            self.fixes_kept(enabled[i].m, drops);
            self.reverts(enabled[i].m);
        }
        replaced
    }

    fn kernel_api(&mut self, q: &Enabled) {
        let who = self.who();
        self.push(
            keys::CHECK_KERNEL_API,
            Severity::Refused,
            format!(
                "{who} is built for a kernel with replace sets, {} ({}) for one with `bool replace`: they cannot \
                 load on one kernel",
                q.m.file,
                q.mode.describe()
            ),
        )
        .other = Some(q.m.file.clone());
    }

    /// Rules 1 and 2 of replace sets.
    fn sets(&mut self, enabled: &[Enabled]) -> Vec<usize> {
        let Mode::Set { set, supersedes } = self.mode.clone() else {
            return Vec::new();
        };
        let mut replaced = Vec::new();
        for (i, q) in enabled.iter().enumerate() {
            let qset = match q.mode {
                Mode::Set { set, .. } => set,
                _ => continue,
            };
            if qset == set {
                replaced.push(i);
                self.states_carried(q, &format!("replaces the patch of its set {set},"));
            } else if supersedes.contains(&qset) {
                replaced.push(i);
                self.states_carried(q, &format!("supersedes set {qset} and replaces"));
            } else {
                self.other_set(q);
            }
        }
        replaced
    }

    /// Rule 2: no shared function or state id with a patch of another set.
    fn other_set(&mut self, q: &Enabled) {
        let p = self.p;
        let who = self.who();
        let qwho = format!("{} ({})", q.m.file, q.mode.describe());
        if let (Some(pf), Some(qf)) = (&p.functions, &q.m.functions) {
            for f in pf {
                if let Some(g) = qf.iter().find(|g| same_func(f, g)) {
                    let msg = format!(
                        "{who} patches {}, which {qwho} patches too (as {}): the kernel refuses a patch that \
                         shares a function with a patch of another set; carry the fix in the next release of \
                         set {} (with the fixes of {}), or load it with also_replace_sets={} to replace {}",
                        func_name(f),
                        func_name(g),
                        q.mode_set(),
                        q.m.file,
                        q.mode_set(),
                        q.m.file
                    );
                    let x = self.push(keys::CHECK_FUNC_OVERLAP, Severity::Refused, msg);
                    x.other = Some(q.m.file.clone());
                    x.object = Some(f.object.clone());
                    x.function = Some(f.name.clone());
                    x.sympos = Some(f.sympos);
                }
            }
        }
        if let (Some(ps), Some(qs)) = (&p.states, &q.m.states) {
            for s in ps {
                if qs.iter().any(|t| t.id == s.id) {
                    let msg = format!(
                        "{who} uses klp_state {:#x}, which {qwho} uses too: the kernel refuses a patch that shares \
                         a state id with a patch of another set; use another id, or the set of {}",
                        s.id, q.m.file
                    );
                    let x = self.push(keys::CHECK_STATE_OVERLAP, Severity::Refused, msg);
                    x.other = Some(q.m.file.clone());
                    x.state = Some(s.id);
                }
            }
        }
    }

    /// Rule 1, and `klp_is_state_compatible()` of a cumulative patch: every state of `q` is carried
    /// with a version >=.
    fn states_carried(&mut self, q: &Enabled, how: &str) {
        let who = self.who();
        let (Some(ps), Some(qs)) = (self.p.states.clone(), &q.m.states) else {
            return;
        };
        for s in qs {
            let (key, msg) = match ps.iter().find(|t| t.id == s.id) {
                None => (
                    keys::CHECK_STATE_MISSING,
                    format!(
                        "{who} {how} {}, but lacks its klp_state {:#x} (version {}): the kernel refuses it; carry \
                         the state (--state {:#x}:{})",
                        q.m.file, s.id, s.version, s.id, s.version
                    ),
                ),
                Some(t) if t.version < s.version => (
                    keys::CHECK_STATE_OLDER,
                    format!(
                        "{who} {how} {}, but carries its klp_state {:#x} at version {} < {}: the kernel refuses \
                         it; carry version {} or later (--state {:#x}:{})",
                        q.m.file, s.id, t.version, s.version, s.version, s.id, s.version
                    ),
                ),
                Some(_) => continue,
            };
            let x = self.push(key, Severity::Refused, msg);
            x.other = Some(q.m.file.clone());
            x.state = Some(s.id);
        }
    }

    /// `klp_is_state_compatible()` of a stacked patch: a state it carries is not older.
    fn states_not_lowered(&mut self, q: &Enabled) {
        let who = self.who();
        let (Some(ps), Some(qs)) = (self.p.states.clone(), &q.m.states) else {
            return;
        };
        for s in qs {
            if let Some(t) = ps.iter().find(|t| t.id == s.id && t.version < s.version) {
                let msg = format!(
                    "{who} carries klp_state {:#x} at version {} < {} of enabled {}: the kernel refuses it; carry \
                     version {} or later",
                    s.id, t.version, s.version, q.m.file, s.version
                );
                let x = self.push(keys::CHECK_STATE_OLDER, Severity::Refused, msg);
                x.other = Some(q.m.file.clone());
                x.state = Some(s.id);
            }
        }
    }

    fn stacked_same_funcs(&mut self, q: &Enabled) {
        let who = self.who();
        let (Some(pf), Some(qf)) = (self.p.functions.clone(), &q.m.functions) else {
            return;
        };
        for f in &pf {
            if qf.iter().any(|g| same_func(f, g)) {
                let msg = format!(
                    "{who} stacks on {} and both patch {}: the newest ({}) runs, disabling it brings back the \
                     other's version, and nothing checks that the two agree; carry both fixes in one module",
                    q.m.file,
                    func_name(f),
                    self.p.file
                );
                let x = self.push(keys::CHECK_STACKED_SAME_FUNC, Severity::Warning, msg);
                x.other = Some(q.m.file.clone());
                x.object = Some(f.object.clone());
                x.function = Some(f.name.clone());
                x.sympos = Some(f.sympos);
            }
        }
    }

    /// A fix of a replaced predecessor is still carried, unless `--allow-drop NAME`.
    fn fixes_kept(&mut self, q: &Livepatch, drops: &[String]) {
        let who = self.who();
        let (Some(pf), Some(qf)) = (self.p.fixes.clone(), &q.fixes) else {
            return;
        };
        for fix in qf {
            if let Some(kept) = pf.iter().find(|f| f.name == fix.name) {
                // The same fix id with other content: a revision (a CVE fix reworked after
                // review), which the cumulative release carries on purpose, but which an engineer
                // comparing two releases must see with both digests. An empty digest is a module
                // that did not record one.
                if kept.sha256 != fix.sha256 && !kept.sha256.is_empty() && !fix.sha256.is_empty() {
                    let msg = format!(
                        "{who} carries fix {} revised: sha256 {} here, {} in {}, which it replaces",
                        fix.name, kept.sha256, fix.sha256, q.file
                    );
                    let x = self.push(keys::CHECK_FIX_REVISED, Severity::Note, msg);
                    x.other = Some(q.file.clone());
                    x.fix = Some(fix.name.clone());
                }
                continue;
            }
            let allowed = drops.contains(&fix.name);
            let (key, severity, tail) = if allowed {
                self.used_drops.insert(fix.name.clone());
                (
                    keys::CHECK_FIX_DROPPED_ALLOWED,
                    Severity::Warning,
                    format!("allowed by --allow-drop {}", fix.name),
                )
            } else {
                (
                    keys::CHECK_FIX_DROPPED,
                    if self.is_new {
                        Severity::Refused
                    } else {
                        Severity::Warning
                    },
                    format!(
                        "carry it (--diff {}.patch), or pass --allow-drop {} if dropping it is intended",
                        fix.name, fix.name
                    ),
                )
            };
            let msg = format!(
                "{who} replaces {}, which carries fix {} ({}), and drops it: {tail}",
                q.file, fix.name, fix.subject
            );
            let x = self.push(key, severity, msg);
            x.other = Some(q.file.clone());
            x.fix = Some(fix.name.clone());
        }
    }

    /// Functions a replaced predecessor patched that the new module does not: the transition
    /// installs NOPs for them, so they run the kernel's own code again.
    fn reverts(&mut self, q: &Livepatch) {
        let who = self.who();
        let (Some(pf), Some(qf)) = (self.p.functions.clone(), &q.functions) else {
            return;
        };
        for g in qf {
            if pf.iter().any(|f| same_func(f, g)) {
                continue;
            }
            let msg = format!(
                "{who} replaces {} and does not patch {}: loading it reverts that function to the kernel's own \
                 code",
                q.file,
                func_name(g)
            );
            let x = self.push(keys::CHECK_REVERTS, Severity::Warning, msg);
            x.other = Some(q.file.clone());
            x.object = Some(g.object.clone());
            x.function = Some(g.name.clone());
            x.sympos = Some(g.sympos);
        }
    }
}

impl Enabled<'_> {
    fn mode_set(&self) -> String {
        match &self.mode {
            Mode::Set { set, .. } => set.to_string(),
            _ => "?".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::manifest::{Manifest, SCHEMA_VERSION};
    use crate::contract::spec::{SetField, StateSpec};
    use crate::patch::Fix;

    fn set(set: u32, supersedes: &[u32]) -> ReplaceMode {
        ReplaceMode::Set {
            field: SetField::ReplaceSet,
            set,
            supersedes: supersedes.to_vec(),
        }
    }

    /// A module named `name` with fixes, `vmlinux` functions (`name` or `name,sympos`) and states.
    fn module(
        name: &str,
        replace: ReplaceMode,
        fixes: &[&str],
        funcs: &[&str],
        states: &[(u64, u32)],
    ) -> Livepatch {
        let m = Manifest {
            schema_version: SCHEMA_VERSION,
            tool_version: "0.1.0".into(),
            kernel_release: "6.12.0".into(),
            name: name.replace('-', "_"),
            replace,
            states: states
                .iter()
                .map(|&(id, version)| StateSpec { id, version })
                .collect(),
            fixes: fixes
                .iter()
                .map(|f| Fix {
                    name: (*f).into(),
                    sha256: "0".repeat(64),
                    subject: format!("subject of {f}"),
                })
                .collect(),
            functions: funcs
                .iter()
                .map(|f| {
                    let (n, pos) = f.split_once(',').unwrap_or((f, "0"));
                    ManifestFunc {
                        object: "vmlinux".into(),
                        name: n.into(),
                        sympos: pos.parse().unwrap(),
                    }
                })
                .collect(),
        };
        Livepatch::from_manifest(&format!("{name}.ko"), &m)
    }

    fn keys(r: &CheckReport) -> Vec<(Severity, keys::Key, String)> {
        r.findings
            .iter()
            .map(|f| (f.severity, f.key, f.module.clone()))
            .collect()
    }

    fn enabled(r: &CheckReport) -> Vec<&str> {
        r.enabled.iter().map(|e| e.file.as_str()).collect()
    }

    /// replace-set.md's release cycle, step by step, as `klp-build check` answers it.
    #[test]
    fn the_release_cycle_of_replace_set_md() {
        let a1 = module(
            "klp-1a",
            set(1, &[]),
            &["fix-a"],
            &["cmdline_proc_show"],
            &[],
        );
        let b1 = module(
            "klp-1b",
            set(2, &[]),
            &["fix-b"],
            &["version_proc_show"],
            &[],
        );
        let x1 = module(
            "klp-1x",
            set(3, &[]),
            &["fix-x"],
            &["cmdline_proc_show,1"],
            &[],
        );
        let c1 = module(
            "klp-1c",
            set(2, &[]),
            &["fix-b"],
            &["version_proc_show"],
            &[],
        );
        let a2 = module(
            "klp-2a",
            set(1, &[2]),
            &["fix-a", "fix-b", "fix-c"],
            &[
                "cmdline_proc_show",
                "version_proc_show",
                "meminfo_proc_show",
            ],
            &[],
        );
        let b2 = module(
            "klp-2b",
            set(2, &[]),
            &["fix-d"],
            &["loadavg_proc_show"],
            &[],
        );

        let r = check(&b1, std::slice::from_ref(&a1), &[]);
        assert!(r.loads && r.findings.is_empty(), "{r}");
        assert_eq!(enabled(&r), ["klp-1a.ko", "klp-1b.ko"]);

        // sympos 1 and 0 are one function.
        let r = check(&x1, &[a1.clone(), b1.clone()], &[]);
        assert!(!r.loads, "{r}");
        let f = r.refusals().next().unwrap();
        assert_eq!(
            (f.key, f.other.as_deref(), f.function.as_deref(), f.sympos),
            (
                keys::CHECK_FUNC_OVERLAP,
                Some("klp-1a.ko"),
                Some("cmdline_proc_show"),
                Some(1)
            )
        );
        assert_eq!(enabled(&r), ["klp-1a.ko", "klp-1b.ko"], "nothing changes");

        let r = check(&c1, &[a1.clone(), b1.clone()], &[]);
        assert!(r.loads && r.findings.is_empty(), "{r}");
        assert_eq!(enabled(&r), ["klp-1a.ko", "klp-1c.ko"]);

        let r = check(&a2, &[a1.clone(), b1.clone(), c1.clone()], &[]);
        assert!(r.loads && r.findings.is_empty(), "{r}");
        assert_eq!(enabled(&r), ["klp-2a.ko"], "1a and 1c replaced at once");

        let r = check(&b2, &[a1, b1, c1, a2], &[]);
        assert!(r.loads && r.findings.is_empty(), "{r}");
        assert_eq!(enabled(&r), ["klp-2a.ko", "klp-2b.ko"]);
    }

    #[test]
    fn a_same_set_successor_keeps_states_and_fixes_and_reverts_what_it_leaves_out() {
        let old = module("v1", set(1, &[]), &["a", "b"], &["f", "g"], &[(7, 2)]);
        let new = module("v2", set(1, &[]), &["a"], &["f"], &[(7, 1)]);
        let r = check(&new, std::slice::from_ref(&old), &[]);
        assert_eq!(
            keys(&r),
            [
                (Severity::Refused, keys::CHECK_STATE_OLDER, "v2.ko".into()),
                (Severity::Refused, keys::CHECK_FIX_DROPPED, "v2.ko".into()),
                (Severity::Warning, keys::CHECK_REVERTS, "v2.ko".into()),
            ],
            "{r}"
        );
        let new = module("v2", set(1, &[]), &["a"], &["f"], &[]);
        let r = check(&new, std::slice::from_ref(&old), &["b".into()]);
        assert_eq!(
            keys(&r).iter().map(|k| (k.0, k.1)).collect::<Vec<_>>(),
            [
                (Severity::Refused, keys::CHECK_STATE_MISSING),
                (Severity::Warning, keys::CHECK_FIX_DROPPED_ALLOWED),
                (Severity::Warning, keys::CHECK_REVERTS),
            ],
            "{r}"
        );
        assert!(r.refusal_message().contains("0x7") && r.refusal_message().contains("v1.ko"));
    }

    #[test]
    fn a_superseded_sets_states_must_be_carried_too() {
        let hot = module("hot", set(2, &[]), &["h"], &["g"], &[(5, 3)]);
        let cum = module("cum", set(1, &[2]), &["h"], &["g"], &[]);
        let r = check(&cum, std::slice::from_ref(&hot), &[]);
        let f = r.refusals().next().expect("refused");
        assert_eq!(
            (f.key, f.state, f.other.as_deref()),
            (keys::CHECK_STATE_MISSING, Some(5), Some("hot.ko"))
        );
        assert!(f.message.contains("supersedes set 2"), "{}", f.message);
    }

    #[test]
    fn another_set_may_not_share_a_state_id() {
        let a = module("a", set(1, &[]), &[], &["f"], &[(9, 1)]);
        let b = module("b", set(2, &[]), &[], &["g"], &[(9, 1)]);
        let r = check(&b, &[a], &[]);
        assert_eq!(
            r.refusals().map(|f| (f.key, f.state)).collect::<Vec<_>>(),
            [(keys::CHECK_STATE_OVERLAP, Some(9))]
        );
    }

    #[test]
    fn stock_kernel_cumulative_replaces_all_and_stacked_replaces_none() {
        let cum = module("cum", ReplaceMode::Atomic, &["a"], &["f"], &[(3, 1)]);
        let hot = module("hot", ReplaceMode::Stacked, &["h"], &["f", "g"], &[]);
        let r = check(&hot, std::slice::from_ref(&cum), &[]);
        assert!(r.loads, "{r}");
        assert_eq!(
            r.warnings()
                .map(|f| (f.key, f.function.as_deref()))
                .collect::<Vec<_>>(),
            [(keys::CHECK_STACKED_SAME_FUNC, Some("f"))]
        );
        assert_eq!(enabled(&r), ["cum.ko", "hot.ko"]);
        // A stacked module may leave a state out, but not lower it.
        let low = module("low", ReplaceMode::Stacked, &[], &["k"], &[(3, 0)]);
        assert_eq!(
            check(&low, std::slice::from_ref(&cum), &[])
                .refusals()
                .count(),
            1
        );
        // The next cumulative replaces both, and must keep the hotfix's fix.
        let cum2 = module("cum2", ReplaceMode::Atomic, &["a"], &["f"], &[(3, 1)]);
        let r = check(&cum2, &[cum, hot], &[]);
        assert_eq!(
            r.findings
                .iter()
                .filter(|f| f.module == "cum2.ko")
                .map(|f| (f.key, f.other.as_deref()))
                .collect::<Vec<_>>(),
            [
                (keys::CHECK_FIX_DROPPED, Some("hot.ko")),
                (keys::CHECK_REVERTS, Some("hot.ko")),
            ],
            "{r}"
        );
        assert_eq!(
            enabled(&r),
            ["cum.ko", "hot.ko"],
            "refused: nothing changes"
        );
    }

    #[test]
    fn a_fix_with_new_content_under_its_id_is_reported_as_revised_with_both_digests() {
        let v1 = module("v1", set(1, &[]), &["cve-1", "cve-2"], &["a"], &[]);
        let mut v2 = module("v2", set(1, &[]), &["cve-1", "cve-2"], &["a"], &[]);
        let fixes = v2.fixes.as_mut().unwrap();
        fixes[1].sha256 = "1".repeat(64);
        let r = check(&v2, &[v1], &[]);
        let revised: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.key == "check.fix-revised")
            .collect();
        assert_eq!(revised.len(), 1, "{:?}", keys(&r));
        assert_eq!(revised[0].severity, Severity::Note);
        assert_eq!(revised[0].fix.as_deref(), Some("cve-2"));
        assert!(
            revised[0].message.contains(&"1".repeat(64))
                && revised[0].message.contains(&"0".repeat(64)),
            "{}",
            revised[0].message
        );
        assert!(r.loads, "a revision alone does not refuse: {:?}", keys(&r));
    }

    #[test]
    fn modules_for_two_kernel_apis_or_releases_are_refused() {
        let cum = module("cum", ReplaceMode::Atomic, &[], &["f"], &[]);
        let s = module("s", set(1, &[]), &[], &["g"], &[]);
        let r = check(&s, std::slice::from_ref(&cum), &[]);
        assert!(r.refusals().any(|f| f.key == keys::CHECK_KERNEL_API), "{r}");
        let mut other = module("other", ReplaceMode::Atomic, &[], &["g"], &[]);
        other.kernel_release = "6.1.0-57-amd64".into();
        let r = check(&other, &[cum], &[]);
        assert!(
            r.refusals().any(|f| f.key == keys::CHECK_KERNEL_RELEASE),
            "{r}"
        );
    }

    #[test]
    fn a_module_of_the_same_name_is_refused_while_enabled() {
        let a = module("lp", ReplaceMode::Atomic, &[], &["f"], &[]);
        let r = check(&a.clone(), &[a], &[]);
        assert!(r.refusals().any(|f| f.key == keys::CHECK_SAME_NAME), "{r}");
    }
}
