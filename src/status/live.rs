//! What a running kernel says about its livepatches. Input: a root directory (`/` on a live
//! machine) under which `sys/kernel/livepatch`, `proc/modules` and `proc/sys/kernel/osrelease`
//! are read. Output: [`Live`]: each patch's attributes (`enabled`, `transition`, `replace`,
//! `replace_set`, ...) in load order, and what could not be read. Invariant: nothing is written,
//! and a file that cannot be read is named in `unreadable` with the reason, never skipped
//! silently (without root, some kernels hide what others show).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

/// One livepatch as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct LivePatch {
    /// Its name (`/sys/kernel/livepatch/<name>`): the module's name.
    pub name: String,
    /// `enabled`.
    pub enabled: Option<bool>,
    /// `transition`: a transition to or from this patch is in progress.
    pub transition: Option<bool>,
    /// Every readable attribute, as the kernel prints it (`replace`, `replace_set`, `provides`,
    /// `stack_order`, ...).
    pub attributes: BTreeMap<String, String>,
    /// The objects it patches (its subdirectories: `vmlinux`, module names).
    pub objects: Vec<String>,
    /// Its place in the load order (0: loaded first), from `/proc/modules`.
    pub load_position: Option<usize>,
}

/// The kernel's livepatch state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Live {
    /// `uname -r`.
    pub kernel_release: Option<String>,
    /// The livepatches, in load order (those whose position is unknown last, by name).
    pub patches: Vec<LivePatch>,
    /// What could not be read, with why.
    pub unreadable: Vec<String>,
}

/// Attributes that are written, never read (`force`), or not state.
const WRITE_ONLY: &[&str] = &["force", "uevent"];

fn read_value(path: &Path, unreadable: &mut Vec<String>) -> Option<String> {
    // sysfs attributes are one short line; a bound keeps a strange file from filling memory.
    match std::fs::File::open(path).and_then(|f| {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(f, 4096), &mut s).map(|_| s)
    }) {
        Ok(s) => Some(s.trim().to_string()),
        Err(e) => {
            unreadable.push(format!(
                "{}: {}",
                path.display(),
                crate::input::io_reason(&e)
            ));
            None
        }
    }
}

/// Reads the state under `root`.
pub fn read(root: &Path) -> Live {
    let mut live = Live::default();
    live.kernel_release = read_value(
        &root.join("proc/sys/kernel/osrelease"),
        &mut live.unreadable,
    );
    // /proc/modules lists the newest module first; the load order is its reverse.
    let modules_path = root.join("proc/modules");
    let modules: Vec<String> = match std::fs::read_to_string(&modules_path) {
        Ok(t) => t
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect(),
        Err(e) => {
            live.unreadable.push(format!(
                "{}: {}, so the load order is not known",
                modules_path.display(),
                crate::input::io_reason(&e)
            ));
            Vec::new()
        }
    };
    let dir = root.join("sys/kernel/livepatch");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            live.unreadable.push(format!(
                "{}: does not exist: the kernel has no livepatch support (CONFIG_LIVEPATCH), or sysfs is not mounted",
                dir.display()
            ));
            return live;
        }
        Err(e) => {
            live.unreadable.push(format!(
                "{}: {}",
                dir.display(),
                crate::input::io_reason(&e)
            ));
            return live;
        }
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let pdir = dir.join(&name);
        let mut attributes = BTreeMap::new();
        let mut objects = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(&pdir)
            .map(|r| r.flatten().collect())
            .unwrap_or_default();
        files.sort_by_key(|e| e.file_name());
        for f in files {
            let fname = f.file_name().to_string_lossy().into_owned();
            if f.path().is_dir() {
                objects.push(fname);
            } else if !WRITE_ONLY.contains(&fname.as_str()) {
                if let Some(v) = read_value(&f.path(), &mut live.unreadable) {
                    attributes.insert(fname, v);
                }
            }
        }
        let flag = |k: &str| attributes.get(k).map(|v| v == "1");
        let load_position = modules.iter().rev().position(|m| *m == name);
        live.patches.push(LivePatch {
            enabled: flag("enabled"),
            transition: flag("transition"),
            name,
            attributes,
            objects,
            load_position,
        });
    }
    live.patches
        .sort_by_key(|p| (p.load_position.is_none(), p.load_position));
    live
}
