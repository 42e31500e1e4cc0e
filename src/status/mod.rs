//! `klp-build status [NEW.ko]`: the livepatches a running kernel has, and what loading NEW.ko
//! would do. Input: `/sys/kernel/livepatch`, `/proc/modules` (under `--root`, `/` by default), the
//! enabled modules' files (found by name in `--modules` dirs: `/lib/modules/<release>` and
//! `/var/lib/kpatch/<release>` by default) and NEW.ko. Output: a [`Status`] (text or JSON); exit
//! 0, or 1 when NEW.ko would be refused. Invariant: the prediction applies the same rules as
//! `klp-build check`, to the enabled patches in the kernel's load order; a patch whose module
//! file is not found is listed with that said, and the prediction says it could not be complete.

pub mod live;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::check::{rules, CheckReport, Livepatch};
use crate::cli::{ReportFormat, StatusArgs};
use crate::text::{field, field_max, FIELD_MAX};
use live::{Live, LivePatch};

/// The version of the status document.
pub const SCHEMA_VERSION: u32 = 1;

/// One enabled or loaded livepatch, with what its module file says.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Patch {
    /// What the kernel shows.
    #[serde(flatten)]
    pub live: LivePatch,
    /// The module file found for it.
    pub module_file: Option<String>,
    /// Its replace behaviour (`replace set 2`, `cumulative (replace = true)`, ...), from its
    /// manifest or ELF.
    pub replace: Option<String>,
    /// Its `klp_state`s (`id:version`).
    pub states: Option<Vec<String>>,
    /// Its fixes (names), for klp-build's modules.
    pub fixes: Option<Vec<String>>,
    /// Why the module's facts are missing.
    pub note: Option<String>,
}

/// What loading NEW.ko would do.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Prediction {
    /// The module.
    pub module: String,
    /// Its name.
    pub name: String,
    /// It would load and be enabled.
    pub loads: bool,
    /// Enabled patches it would replace (disable) in its transition.
    pub replaces: Vec<String>,
    /// Enabled patches that stay enabled beside it.
    pub coexists: Vec<String>,
    /// Why this kernel would refuse the module before any livepatch rule: another kernel's
    /// module (vermagic), no livepatch support.
    pub kernel_refuses: Vec<String>,
    /// Fixes that replaced patches carry and NEW.ko does not: loading it drops them (`check`
    /// refuses that in a release unless `--allow-drop`).
    pub drops: Vec<String>,
    /// The prediction leaves out enabled patches whose module file was not found.
    pub incomplete: Vec<String>,
    /// `check`'s report: refusals, warnings, notes.
    pub check: CheckReport,
}

/// The whole document.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Status {
    /// [`SCHEMA_VERSION`].
    #[schemars(extend("const" = SCHEMA_VERSION))]
    pub schema_version: u32,
    /// `uname -r`.
    pub kernel_release: Option<String>,
    /// The livepatches, in load order.
    pub patches: Vec<Patch>,
    /// What could not be read, and why.
    pub unreadable: Vec<String>,
    /// For NEW.ko.
    pub new: Option<Prediction>,
}

/// `klp-build status`.
pub fn run(args: &StatusArgs) -> anyhow::Result<u8> {
    let new = args
        .module
        .as_ref()
        .map(|m| Livepatch::read(m))
        .transpose()?;
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let live = live::read(&root);
    let status = status(live, &root, &args.modules, new);
    match args.report {
        ReportFormat::Json => crate::stdout::writeln(&serde_json::to_string_pretty(&status)?)?,
        ReportFormat::Text => crate::stdout::write(&crate::text::escape_lines(&text(&status)))?,
    }
    Ok(match &status.new {
        Some(p) if !p.loads => 1,
        _ => 0,
    })
}

/// The dirs searched for module files.
fn module_dirs(root: &Path, given: &[PathBuf], release: Option<&str>) -> Vec<PathBuf> {
    if !given.is_empty() {
        return given.to_vec();
    }
    let Some(r) = release else { return Vec::new() };
    [
        format!("lib/modules/{r}"),
        format!("usr/lib/modules/{r}"),
        format!("var/lib/kpatch/{r}"),
    ]
    .iter()
    .map(|d| root.join(d))
    .filter(|d| d.is_dir())
    .collect()
}

fn status(live: Live, root: &Path, given: &[PathBuf], new: Option<Livepatch>) -> Status {
    let no_livepatch = !root.join("sys/kernel/livepatch").is_dir();
    let dirs = module_dirs(root, given, live.kernel_release.as_deref());
    let mut unreadable = live.unreadable;
    let mut patches = Vec::new();
    let mut deployed: Vec<Livepatch> = Vec::new();
    let mut incomplete = Vec::new();
    for p in live.patches {
        let found = dirs
            .iter()
            .find_map(|d| crate::pipeline::find_module(d, &p.name).ok());
        let read = found
            .as_ref()
            .map(|f| crate::verify::read_livepatch(f).map(|(_, l)| l));
        let (module, note) = match read {
            Some(Ok(l)) => (Some(l), None),
            Some(Err(e)) => (None, Some(format!("{e:#}"))),
            None => (
                None,
                Some(format!(
                    "no {}.ko found in {}; give --modules DIR",
                    p.name,
                    if dirs.is_empty() {
                        "(no module directory)".to_string()
                    } else {
                        dirs.iter()
                            .map(|d| d.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )),
            ),
        };
        if let Some(n) = &note {
            unreadable.push(format!("{}: {n}", p.name));
        }
        let enabled = p.enabled == Some(true);
        match &module {
            Some(l) if enabled => deployed.push(l.clone()),
            None if enabled => incomplete.push(p.name.clone()),
            _ => {}
        }
        patches.push(Patch {
            module_file: found.map(|f| f.display().to_string()),
            replace: module.as_ref().map(|l| l.replace.describe()),
            states: module.as_ref().and_then(|l| {
                l.states.as_ref().map(|s| {
                    s.iter()
                        .map(|s| format!("{}:{}", s.id, s.version))
                        .collect()
                })
            }),
            fixes: module.as_ref().and_then(|l| {
                l.fixes
                    .as_ref()
                    .map(|f| f.iter().map(|f| f.name.clone()).collect())
            }),
            note,
            live: p,
        });
    }
    let new = new.map(|n| {
        predict(
            &n,
            &deployed,
            live.kernel_release.as_deref(),
            no_livepatch.then(|| root.join("sys/kernel/livepatch")),
            &incomplete,
        )
    });
    Status {
        schema_version: SCHEMA_VERSION,
        kernel_release: live.kernel_release,
        patches,
        unreadable,
        new,
    }
}

/// What loading `n` would do beside the `deployed` patches (enabled, their modules read): the
/// kernel's verdict by check's rules, which patches it replaces and which stay, and the fixes it
/// drops. `missing_sysfs` is the livepatch sysfs dir when this kernel has none.
fn predict(
    n: &Livepatch,
    deployed: &[Livepatch],
    kernel_release: Option<&str>,
    missing_sysfs: Option<PathBuf>,
    incomplete: &[String],
) -> Prediction {
    // The kernel's verdict: its rules only. Dropping a fix a replaced patch carried is a
    // release's policy (`check` refuses it unless allowed), not a reason the kernel refuses
    // a module; here it is said as what the load would drop.
    let carried: Vec<String> = deployed
        .iter()
        .flat_map(|d| d.fixes.iter().flatten().map(|f| f.name.clone()))
        .collect();
    let mut check = rules::check(n, deployed, &carried);
    check.findings.retain(|f| {
        f.key != crate::keys::CHECK_FIX_DROPPED_ALLOWED
            && f.key != crate::keys::CHECK_ALLOW_DROP_UNUSED
    });
    let drops: Vec<String> = rules::check(n, deployed, &[])
        .findings
        .iter()
        .filter(|f| f.key == crate::keys::CHECK_FIX_DROPPED)
        .filter_map(|f| f.fix.clone())
        .collect();
    let after: Vec<&str> = check.enabled.iter().map(|e| e.name.as_str()).collect();
    let before: Vec<String> = deployed.iter().map(|d| d.name.clone()).collect();
    let mut kernel_refuses = Vec::new();
    if let Some(r) = kernel_release {
        if !n.kernel_release.is_empty() && n.kernel_release != r {
            kernel_refuses.push(format!(
                "{} is built for {} (its vermagic), and this kernel is {r}: insmod fails with \"Invalid module format\"; build it for {r}",
                n.file, n.kernel_release
            ));
        }
    }
    if let Some(dir) = missing_sysfs {
        kernel_refuses.push(format!(
            "{} does not exist: this kernel cannot load livepatches (CONFIG_LIVEPATCH), or sysfs is not mounted there",
            dir.display()
        ));
    }
    let loads = check.loads && kernel_refuses.is_empty();
    let (coexists, replaces) = if loads {
        before
            .into_iter()
            .partition(|b| after.contains(&b.as_str()))
    } else {
        (Vec::new(), Vec::new())
    };
    Prediction {
        module: n.file.clone(),
        name: n.name.clone(),
        loads,
        kernel_refuses,
        replaces,
        coexists,
        drops,
        incomplete: incomplete.to_vec(),
        check,
    }
}

fn text(s: &Status) -> String {
    let mut t = format!(
        "kernel {}: {} livepatch(es)\n",
        s.kernel_release
            .as_deref()
            .unwrap_or("(release not readable)"),
        s.patches.len()
    );
    for p in &s.patches {
        let flag = |v: Option<bool>, yes: &str, no: &str| match v {
            Some(true) => yes.to_string(),
            Some(false) => no.to_string(),
            None => "?".to_string(),
        };
        t += &format!(
            "  {:<32} {:<8} {:<13} {}\n",
            field(&p.live.name),
            flag(p.live.enabled, "enabled", "disabled"),
            flag(p.live.transition, "in transition", "settled"),
            p.replace.as_deref().unwrap_or("replace mode not known")
        );
        for (k, v) in &p.live.attributes {
            if k != "enabled" && k != "transition" {
                t += &format!("      {} = {}\n", field(k), field(v));
            }
        }
        if let Some(st) = p.states.as_ref().filter(|s| !s.is_empty()) {
            t += &format!("      states: {}\n", st.join(", "));
        }
        if let Some(f) = p.fixes.as_ref().filter(|f| !f.is_empty()) {
            t += &format!("      fixes: {}\n", f.join(", "));
        }
        if let Some(m) = &p.module_file {
            t += &format!("      module: {m}\n");
        }
    }
    for u in &s.unreadable {
        t += &format!("  not read: {u}\n");
    }
    if let Some(n) = &s.new {
        if n.loads {
            t += &format!("loading {} ({}) would enable it", n.module, n.name);
            if !n.replaces.is_empty() {
                t += &format!(", replacing {}", n.replaces.join(", "));
            }
            if !n.coexists.is_empty() {
                t += &format!(", beside {}", n.coexists.join(", "));
            }
            t += "\n";
            if !n.drops.is_empty() {
                t += &format!(
                    "  it drops fixes the replaced patches carry: {}\n",
                    n.drops.join(", ")
                );
            }
        } else {
            t += &format!("loading {} ({}) would be refused:\n", n.module, n.name);
            for r in &n.kernel_refuses {
                t += &format!("  {}\n", field_max(r, 4 * FIELD_MAX));
            }
        }
        for f in &n.check.findings {
            t += &format!(
                "  {} {}: {}\n",
                f.severity,
                f.key,
                field_max(&f.message, 4 * FIELD_MAX)
            );
        }
        if !n.incomplete.is_empty() {
            t += &format!(
                "  (not modelled, their module files were not found: {})\n",
                n.incomplete.join(", ")
            );
        }
    }
    t
}
