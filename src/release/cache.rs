//! `klp-build release cache` and `release prune`: what the release cache holds and its removal. Input: the
//! cache dir (`release::cache_dir`) and the prune criteria. Output: one entry per Debian kernel at
//! one package version (with its size and last use), per build root, per work dir and for the
//! shared stores; `prune` removes the kernels it selects with their work dirs. Invariant: an entry
//! that a build holds (its unpack lock, its source tree's build lock or a work dir's lock) is
//! skipped, never removed under it, and a removal starts with the entry's `.complete` marker, so
//! an entry cut short by a signal is unpacked again by the next build, never used half-deleted.
//!
//! Why: each Debian kernel costs about 4 GB once built (source tree, objects, headers, image,
//! symbols), and a vendor's matrix moves every few weeks with Debian's security updates.

use std::fs::{self, File, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde::Serialize;

use crate::cli::{ReleaseCacheArgs, ReleaseCachePruneArgs, ReportFormat};

/// One thing in the cache.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// `kernel`, `root`, `work`, `store`.
    pub kind: &'static str,
    /// The kernel release, the root's name, the work dir's name or the store's name.
    pub name: String,
    /// The package version, for a kernel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its directory.
    pub path: PathBuf,
    /// Bytes on disk (allocated blocks, as du counts them).
    pub bytes: u64,
    /// Seconds since its last use (a kernel's `.used` stamp, else the newest of its marker and
    /// directory mtimes).
    pub idle_seconds: u64,
}

/// The result of `prune`: what was removed and what was kept because a build holds it.
#[derive(Debug, Default, Serialize)]
pub struct Pruned {
    /// Removed entries.
    pub removed: Vec<Entry>,
    /// Entries selected but in use, with the lock that is held.
    pub in_use: Vec<(Entry, String)>,
    /// Bytes freed.
    pub freed_bytes: u64,
}

/// `klp-build release cache`.
pub fn list_command(args: &ReleaseCacheArgs) -> anyhow::Result<u8> {
    let cache = super::cache_dir()?;
    let entries = list(&cache)?;
    let text = match args.report {
        ReportFormat::Json => serde_json::to_string_pretty(&entries)? + "\n",
        ReportFormat::Text => list_text(&cache, &entries),
    };
    super::build::print_out(&text)?;
    Ok(0)
}

/// `klp-build release prune`: exit 1 when a selected kernel was kept because a build holds it.
pub fn prune_command(p: &ReleaseCachePruneArgs) -> anyhow::Result<u8> {
    if p.kernels.is_empty() && p.unused_days.is_none() {
        anyhow::bail!(
            "release prune: say what to remove: --kernel RELEASE (repeatable) or --unused-days N \
             (kernels not used by a build for N days)"
        );
    }
    let cache = super::cache_dir()?;
    let select = |e: &Entry| {
        e.kind == "kernel"
            && (p.kernels.contains(&e.name)
                || p.unused_days
                    .is_some_and(|d| e.idle_seconds >= u64::from(d) * 86_400))
    };
    let entries = list(&cache)?;
    let pruned = prune(&entries, select, p.dry_run)?;
    let text = match p.report {
        ReportFormat::Json => serde_json::to_string_pretty(&pruned)? + "\n",
        ReportFormat::Text => prune_text(&pruned, p.dry_run),
    };
    super::build::print_out(&text)?;
    Ok(if pruned.in_use.is_empty() { 0 } else { 1 })
}

/// Every entry of the cache, kernels first, each group by name.
pub fn list(cache: &Path) -> anyhow::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let kernels = cache.join("debian/kernels");
    for release in sorted_dirs(&kernels)? {
        for version in sorted_dirs(&release)? {
            let name = file_name(&version);
            if name.starts_with('.') {
                continue; // an unpack in progress (.tmp-V)
            }
            let idle = idle_seconds(&[
                version.join(crate::release::debian::USED_STAMP),
                version.join(".complete"),
            ]);
            out.push(Entry {
                kind: "kernel",
                name: file_name(&release),
                version: Some(name.replace("%3a", ":")),
                bytes: disk_bytes(&version),
                idle_seconds: idle,
                path: version,
            });
        }
    }
    for (kind, dir) in [
        ("root", cache.join("debian/roots")),
        ("root", cache.join("roots")),
        ("work", cache.join("work")),
    ] {
        for d in sorted_dirs(&dir)? {
            let idle = idle_seconds(std::slice::from_ref(&d));
            out.push(Entry {
                kind,
                name: file_name(&d),
                version: None,
                bytes: disk_bytes(&d),
                idle_seconds: idle,
                path: d,
            });
        }
    }
    for store in [
        "ccache",
        "objects",
        "patches",
        "launcher",
        "debian/debs",
        "debian/apt",
    ] {
        let d = cache.join(store);
        if d.is_dir() {
            out.push(Entry {
                kind: "store",
                name: store.to_string(),
                version: None,
                bytes: disk_bytes(&d),
                idle_seconds: idle_seconds(std::slice::from_ref(&d)),
                path: d,
            });
        }
    }
    Ok(out)
}

/// Removes the selected kernels (and the work dirs of their kernel release) unless a build holds
/// one of their locks. With `dry_run`, reports what would go.
pub fn prune(
    entries: &[Entry],
    select: impl Fn(&Entry) -> bool,
    dry_run: bool,
) -> anyhow::Result<Pruned> {
    let mut out = Pruned::default();
    for e in entries.iter().filter(|e| select(e)) {
        let version_dir = file_name(&e.path);
        let unpack_lock = e.path.with_file_name(format!("{version_dir}.lock"));
        let works: Vec<&Entry> = entries
            .iter()
            .filter(|w| w.kind == "work" && w.name.ends_with(&format!("-{}", e.name)))
            .collect();
        let mut locks = vec![unpack_lock];
        locks.extend(source_tree_locks(&e.path));
        locks.extend(
            works
                .iter()
                .map(|w| w.path.with_file_name(format!("{}.lock", w.name))),
        );
        // Held for the whole removal, so a build that starts meanwhile waits for it and then
        // finds the entry gone (and unpacks it again) instead of using it half-removed.
        let mut held = Vec::new();
        let mut busy = None;
        for l in &locks {
            match try_lock(l)? {
                Some(f) => held.push(f),
                None => {
                    busy = Some(l.display().to_string());
                    break;
                }
            }
        }
        if let Some(lock) = busy {
            out.in_use.push((e.clone(), lock));
            continue;
        }
        for victim in std::iter::once(e).chain(works.iter().copied()) {
            if !dry_run {
                remove_entry(&victim.path)?;
            }
            out.freed_bytes += victim.bytes;
            out.removed.push(victim.clone());
        }
        drop(held);
    }
    // The lock files of removed work dirs are left: removing a lock file another process may be
    // about to open would give two processes two different locks.
    Ok(out)
}

/// `.complete` first (the entry is then "not unpacked" to every reader), then the rest.
fn remove_entry(dir: &Path) -> anyhow::Result<()> {
    match fs::remove_file(dir.join(".complete")) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot remove {}/.complete", dir.display()))
        }
    }
    fs::remove_dir_all(dir).with_context(|| {
        format!(
            "cannot remove {}: remove it by hand (it is no longer marked complete, so no build uses it)",
            dir.display()
        )
    })
}

/// The build locks of the source trees under a kernel entry (`source/<tree>/.klp-build.lock`).
fn source_tree_locks(kernel: &Path) -> Vec<PathBuf> {
    sorted_dirs(&kernel.join("source"))
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.join(crate::kernel::lock::LOCK_FILE))
        .filter(|l| l.is_file())
        .collect()
}

/// An exclusive lock of `path` when nobody holds it; `None` when someone does. A missing lock
/// file means nobody can hold it.
fn try_lock(path: &Path) -> anyhow::Result<Option<Option<File>>> {
    let file = match fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(None)),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(Some(file))),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Subdirectories of `dir`, sorted; none when `dir` does not exist.
fn sorted_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// Seconds since the newest mtime of `paths` (those that exist); 0 when none does.
fn idle_seconds(paths: &[PathBuf]) -> u64 {
    let newest = paths
        .iter()
        .filter_map(|p| fs::symlink_metadata(p).and_then(|m| m.modified()).ok())
        .max();
    newest
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Allocated bytes under `dir`, not following symlinks, each inode once per directory walk
/// (hard links of a tree's objects count once).
fn disk_bytes(dir: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.filter_map(Result::ok) {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.nlink() > 1 && !seen.insert((m.dev(), m.ino())) {
                continue;
            }
            total = total.saturating_add(m.blocks().saturating_mul(512));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

fn human(bytes: u64) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    let b = bytes as f64;
    if b >= GIB {
        format!("{:.1} GiB", b / GIB)
    } else {
        format!("{:.0} MiB", b / 1024.0 / 1024.0)
    }
}

fn idle(seconds: u64) -> String {
    match seconds {
        s if s >= 86_400 => format!("{} d", s / 86_400),
        s if s >= 3_600 => format!("{} h", s / 3_600),
        s => format!("{} min", s / 60),
    }
}

fn list_text(cache: &Path, entries: &[Entry]) -> String {
    use crate::text::field;
    let mut s = format!("cache {}\n", field(&cache.display().to_string()));
    s.push_str(&format!(
        "{:<7} {:<44} {:<26} {:>10} {:>8}\n",
        "kind", "name", "version", "size", "idle"
    ));
    for e in entries {
        s.push_str(&format!(
            "{:<7} {:<44} {:<26} {:>10} {:>8}\n",
            e.kind,
            field(&e.name),
            field(e.version.as_deref().unwrap_or("")),
            human(e.bytes),
            idle(e.idle_seconds)
        ));
    }
    let total: u64 = entries.iter().map(|e| e.bytes).sum();
    s.push_str(&format!("total {}\n", human(total)));
    s
}

fn prune_text(p: &Pruned, dry_run: bool) -> String {
    use crate::text::field;
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut s = String::new();
    for e in &p.removed {
        s.push_str(&format!(
            "{verb} {} {} {} ({})\n",
            e.kind,
            field(&e.name),
            field(e.version.as_deref().unwrap_or("")),
            human(e.bytes)
        ));
    }
    for (e, lock) in &p.in_use {
        s.push_str(&format!(
            "kept {} {}: a build holds {}; prune again when it has finished\n",
            field(&e.name),
            field(e.version.as_deref().unwrap_or("")),
            field(lock)
        ));
    }
    s.push_str(&format!(
        "{} {} in {} entries\n",
        if dry_run { "would free" } else { "freed" },
        human(p.freed_bytes),
        p.removed.len()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache with two kernels of one release, one old and one recent, a work dir per kernel
    /// release and a store.
    fn cache() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for (r, v) in [
            ("6.1.0-50-amd64", "6.1.158-1"),
            ("6.1.0-57-amd64", "6.1.192-3"),
        ] {
            let k = t.path().join("debian/kernels").join(r).join(v);
            fs::create_dir_all(k.join("source/linux-source-6.1")).unwrap();
            fs::write(k.join(".complete"), "layout\n").unwrap();
            fs::write(
                k.join("source/linux-source-6.1/Makefile"),
                vec![b'x'; 10_000],
            )
            .unwrap();
            fs::write(k.join("source/linux-source-6.1/.klp-build.lock"), "").unwrap();
            fs::create_dir_all(t.path().join("work").join(format!("livepatch_acme-{r}"))).unwrap();
        }
        fs::create_dir_all(t.path().join("ccache")).unwrap();
        t
    }

    #[test]
    fn list_names_each_kernel_with_its_version_size_and_last_use() {
        let t = cache();
        let e = list(t.path()).unwrap();
        let kernels: Vec<(&str, Option<&str>)> = e
            .iter()
            .filter(|e| e.kind == "kernel")
            .map(|e| (e.name.as_str(), e.version.as_deref()))
            .collect();
        assert_eq!(
            kernels,
            [
                ("6.1.0-50-amd64", Some("6.1.158-1")),
                ("6.1.0-57-amd64", Some("6.1.192-3"))
            ]
        );
        assert!(e
            .iter()
            .filter(|e| e.kind == "kernel")
            .all(|e| e.bytes >= 10_000));
        assert_eq!(e.iter().filter(|e| e.kind == "work").count(), 2);
        assert!(e.iter().any(|e| e.kind == "store" && e.name == "ccache"));
    }

    #[test]
    fn prune_removes_the_selected_kernel_and_its_work_dir_only() {
        let t = cache();
        let entries = list(t.path()).unwrap();
        let p = prune(&entries, |e| e.name == "6.1.0-50-amd64", false).unwrap();
        assert_eq!(p.removed.len(), 2, "{p:?}");
        assert!(p.in_use.is_empty());
        let k = t.path().join("debian/kernels");
        assert!(!k.join("6.1.0-50-amd64/6.1.158-1").exists());
        assert!(k.join("6.1.0-57-amd64/6.1.192-3/.complete").is_file());
        assert!(!t.path().join("work/livepatch_acme-6.1.0-50-amd64").exists());
        assert!(t.path().join("work/livepatch_acme-6.1.0-57-amd64").exists());
    }

    #[test]
    fn a_dry_run_removes_nothing() {
        let t = cache();
        let entries = list(t.path()).unwrap();
        let p = prune(&entries, |e| e.kind == "kernel", true).unwrap();
        assert_eq!(p.removed.len(), 4);
        assert_eq!(list(t.path()).unwrap().len(), entries.len());
    }

    #[test]
    fn a_kernel_whose_tree_a_build_holds_is_kept() {
        let t = cache();
        let tree = t
            .path()
            .join("debian/kernels/6.1.0-57-amd64/6.1.192-3/source/linux-source-6.1");
        let _build = crate::kernel::lock::lock(&tree, &mut crate::progress::Quiet).unwrap();
        let entries = list(t.path()).unwrap();
        let p = prune(&entries, |e| e.kind == "kernel", false).unwrap();
        assert_eq!(p.in_use.len(), 1, "{p:?}");
        assert!(p.in_use[0].1.ends_with(".klp-build.lock"));
        assert!(
            tree.join("Makefile").is_file(),
            "the held tree is untouched"
        );
        assert!(!t
            .path()
            .join("debian/kernels/6.1.0-50-amd64/6.1.158-1")
            .exists());
    }
}
