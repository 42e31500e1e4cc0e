//! `klp-build release build` and `release scan`. Input: the release file, the output directory,
//! the targets selected. Output: `DIR/index.json` and `DIR/<kernel release>/` per target (its
//! module, `report.json`, `build.log`), or the scan's table; exit 0 only when no target is
//! refused or unavailable. Invariant: everything is checked before the first fetch; targets are
//! written to `DIR/.klp-build-partial/` and moved into place only when all are done, with
//! `index.json` written last, so `DIR` never shows a half-built release; on Ctrl-C every child
//! build restores its tree and the partial directory is removed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context};

use super::index::{self, Index, IndexBackport, IndexFix, IndexPatch, IndexTarget, ReleaseInfo};
use super::launcher::{CacheStats, Launcher};
use super::progress::Lines;
use super::scan::{self, FixStatus, ScannedFix};
use super::spec::{self, Release, TargetSpec};
use super::target::{self, Inputs, Unresolved};
use crate::cli::{ReleaseBuildArgs, ReleaseScanArgs, ReportFormat};
// Reasons quote patch file names, GNU patch's output and the child build's errors: a text
// report escapes them (JSON stays exact).
use crate::present::ExitError;
use crate::rebuild::interrupt;
use crate::text::field_max;

/// The staging directory inside the output directory.
const PARTIAL: &str = ".klp-build-partial";

/// `klp-build release build RELEASE.toml -o DIR`.
pub fn build(args: &ReleaseBuildArgs) -> anyhow::Result<u8> {
    let release = spec::read(&args.file)?;
    let selected = select(&release, &args.targets)?;
    let out = std::path::absolute(&args.output)
        .with_context(|| format!("-o {}", args.output.display()))?;
    check_output(&out, &release, args.force)?;
    let previous = match &release.previous {
        Some(dir) => Some((dir.clone(), Index::read(dir).context("previous")?)),
        None => None,
    };
    let fixes = index_fixes(&release, previous.as_ref().map(|p| &p.1))?;
    let dropped = check_drops(&release, previous.as_ref().map(|p| &p.1))?;
    need_tools(&["patch", "make"])?;
    // What the key and certificate hold, before the first fetch; each target's build then makes
    // a trial signature with its own sign-file before it compiles.
    if let Some(s) = &release.sign {
        crate::sign::signer::check_files(&s.key, &s.cert, crate::sign::signer::RELEASE)?;
    }
    let launcher = Launcher::choose(
        args.compiler_launcher
            .as_deref()
            .or(release.compiler_launcher.as_deref()),
    )?;
    let cache = super::cache_dir()?;
    let jobs = args.jobs.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });

    interrupt::install();
    let _defer = interrupt::Defer::start();
    let staging = out.join(PARTIAL);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing the partial output {}", staging.display()))?;
    }
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let ctx = Shared {
        release: &release,
        cache: &cache,
        staging: &staging,
        previous: previous.as_ref(),
        launcher: launcher.as_ref(),
    };
    let result = build_targets(&ctx, &selected, jobs);
    let entries = match result {
        Ok(e) if !interrupt::interrupted() => e,
        other => {
            let _ = std::fs::remove_dir_all(&staging);
            let _ = std::fs::remove_dir(&out); // only when empty: a directory of the user's stays
            return match other {
                Err(e) => Err(e),
                Ok(_) => Err(interrupt::Interrupted {
                    signal: interrupt::signal().unwrap_or(2),
                    during:
                        "while building the release (every tree restored, partial outputs removed)"
                            .into(),
                }
                .into()),
            };
        }
    };
    let index = Index {
        schema_version: index::SCHEMA_VERSION,
        tool: format!("klp-build {}", env!("CARGO_PKG_VERSION")),
        release: ReleaseInfo {
            name: release.name.clone(),
            version: release.version.clone(),
            module: release.module.clone(),
            previous: previous.as_ref().map(|p| p.1.release.version.clone()),
            replace_set: release.replace_set,
            supersedes: release.supersedes.clone(),
            no_replace: release.no_replace,
            targets: release
                .targets
                .iter()
                .map(|t| t.key().to_string())
                .collect(),
        },
        fixes,
        dropped,
        targets: entries,
    };
    publish(&out, &staging, &index)?;
    match args.report {
        ReportFormat::Json => print_out(&index.to_json()?)?,
        ReportFormat::Text => print_out(&summary(&index, &out))?,
    }
    Ok(u8::from(index.failed()))
}

/// `klp-build release scan RELEASE.toml`.
pub fn scan(args: &ReleaseScanArgs) -> anyhow::Result<u8> {
    let release = spec::read(&args.file)?;
    let selected = select(&release, &args.targets)?;
    need_tools(&["patch", "make"])?;
    let cache = super::cache_dir()?;
    let keys: Vec<String> = selected.iter().map(|t| t.key().to_string()).collect();
    let lines = Lines::new(&keys, false);
    let mut rows = Vec::new();
    for (i, t) in selected.iter().enumerate() {
        let mut log = |m: &str| lines.say(i, m);
        let row = match target::resolve(t, &cache, &release.suites, &mut log) {
            Ok(inputs) => {
                lines.say(i, "scanning");
                let fixes = fixes_for(&release, &inputs, t.key());
                let s = scan::scan(&inputs.source, &inputs.config, &fixes)
                    .with_context(|| format!("target {}", t.key()))?;
                let status = target_status(&s);
                lines.finish(i, status.0);
                ScanRow {
                    target: t.key().to_string(),
                    kernel_release: inputs.kernel_release,
                    status: status.0.to_string(),
                    fixes: s,
                    reason: status.1,
                }
            }
            Err(u) => {
                let reason = unresolved_reason(u);
                lines.finish(i, "unavailable");
                ScanRow {
                    target: t.key().to_string(),
                    kernel_release: None,
                    status: "unavailable".into(),
                    fixes: vec![],
                    reason: Some(reason),
                }
            }
        };
        rows.push(row);
    }
    match args.report {
        ReportFormat::Json => print_out(&(serde_json::to_string_pretty(&rows)? + "\n"))?,
        ReportFormat::Text => {
            let mut s = String::new();
            for r in &rows {
                s.push_str(&format!("{}: {}\n", r.target, r.status));
                for f in &r.fixes {
                    s.push_str(&format!("  {:<24} {}", f.id, f.status.word()));
                    match &f.status {
                        FixStatus::Applies { hunks } if !hunks.is_empty() => {
                            s.push_str(&format!(" ({})", field_max(&hunks.join("; "), 800)))
                        }
                        FixStatus::NotAffected { reason } | FixStatus::Refused { reason } => {
                            s.push_str(&format!(": {}", field_max(reason, 800)))
                        }
                        _ => {}
                    }
                    s.push('\n');
                }
                if let Some(r) = &r.reason {
                    s.push_str(&format!("  {}\n", field_max(r, 800)));
                }
            }
            print_out(&s)?;
        }
    }
    Ok(u8::from(rows.iter().any(|r| {
        r.status == "refused" || r.status == "unavailable"
    })))
}

/// One target's line of `release scan --report json`.
#[derive(serde::Serialize)]
struct ScanRow {
    target: String,
    kernel_release: Option<String>,
    /// What `build` would make of it: `builds`, `not-affected`, `already-fixed`, `refused`,
    /// `unavailable`.
    status: String,
    fixes: Vec<ScannedFix>,
    reason: Option<String>,
}

/// The targets `--target` names (all when none), each named once, in the file's order.
fn select<'a>(release: &'a Release, wanted: &[String]) -> anyhow::Result<Vec<&'a TargetSpec>> {
    if wanted.is_empty() {
        return Ok(release.targets.iter().collect());
    }
    let known: Vec<&str> = release.targets.iter().map(TargetSpec::key).collect();
    for w in wanted {
        if !known.contains(&w.as_str()) {
            return Err(ExitError {
                code: 2,
                message: format!(
                    "--target {w}: {} has no such target; it has: {}",
                    release.file.display(),
                    known.join(", ")
                ),
            }
            .into());
        }
    }
    Ok(release
        .targets
        .iter()
        .filter(|t| wanted.iter().any(|w| w == t.key()))
        .collect())
}

/// Refuses an output directory that holds something other than this release, unless `force`.
fn check_output(out: &Path, release: &Release, force: bool) -> anyhow::Result<()> {
    if let Some(prev) = &release.previous {
        if let (Ok(a), Ok(b)) = (prev.canonicalize(), out.canonicalize()) {
            if a == b {
                bail!(
                    "-o {}: that is the previous release's directory; write this release to a new one",
                    out.display()
                );
            }
        }
    }
    if release.file.starts_with(out) && out != Path::new("/") && out.exists() {
        // Writing the release into the directory of its own file would be fine, unless -o is
        // the file's directory itself, whose fixes/ the release reads.
        if release.file.parent() == Some(out) {
            bail!(
                "-o {}: that is the release file's own directory; write the release to a directory of its own",
                out.display()
            );
        }
    }
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        bail!("-o {}: exists and is not a directory", out.display());
    }
    let entries: Vec<String> = std::fs::read_dir(out)
        .with_context(|| format!("-o {}", out.display()))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != PARTIAL)
        .collect();
    if entries.is_empty() || force {
        return Ok(());
    }
    match Index::read(out) {
        Ok(i) if i.release.name == release.name && i.release.version == release.version => Ok(()),
        Ok(i) => bail!(
            "-o {}: holds release {} {}, not {} {}; choose another directory, or --force to replace it",
            out.display(),
            i.release.name,
            i.release.version,
            release.name,
            release.version
        ),
        Err(_) => bail!(
            "-o {}: not empty and not a release's output ({} entries, e.g. {}); choose another directory, or --force",
            out.display(),
            entries.len(),
            entries[0]
        ),
    }
}

/// The fixes of the index: patches relative to the release file, and against the previous
/// release new, same or revised (with both sha256).
fn index_fixes(release: &Release, previous: Option<&Index>) -> anyhow::Result<Vec<IndexFix>> {
    let dir = release.file.parent().unwrap_or(Path::new("/"));
    let mut out = Vec::new();
    for f in &release.fixes {
        let indexed = |list: &[PathBuf]| -> anyhow::Result<Vec<IndexPatch>> {
            list.iter()
                .map(|p| {
                    let bytes = std::fs::read(p)
                        .with_context(|| format!("fix {}: {}", f.id, p.display()))?;
                    Ok(IndexPatch {
                        file: p
                            .strip_prefix(dir)
                            .unwrap_or(p)
                            .to_string_lossy()
                            .into_owned(),
                        sha256: index::sha256_hex(&bytes),
                    })
                })
                .collect()
        };
        let patches = indexed(&f.patches)?;
        let backports = f
            .backports
            .iter()
            .map(|b| {
                Ok(IndexBackport {
                    kernels: b.kernels.iter().map(|k| k.as_str().to_string()).collect(),
                    patches: indexed(&b.patches)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (change, previous_sha256) = match previous {
            None => (None, None),
            Some(prev) => match prev.fixes.iter().find(|p| p.id == f.id) {
                None => (Some("new".to_string()), None),
                Some(p) => {
                    let old: Vec<String> = p.all_sha256();
                    let new: Vec<String> = patches
                        .iter()
                        .chain(backports.iter().flat_map(|b| &b.patches))
                        .map(|x| x.sha256.clone())
                        .collect();
                    if old == new {
                        (Some("same".to_string()), None)
                    } else {
                        (Some("revised".to_string()), Some(old))
                    }
                }
            },
        };
        out.push(IndexFix {
            id: f.id.clone(),
            patches,
            backports,
            change,
            previous_sha256,
        });
    }
    Ok(out)
}

/// The previous release's fixes this one drops: refused unless `allow-drop` names them.
fn check_drops(release: &Release, previous: Option<&Index>) -> anyhow::Result<Vec<String>> {
    let Some(prev) = previous else {
        return Ok(vec![]);
    };
    let dropped: Vec<String> = prev
        .fixes
        .iter()
        .filter(|p| !release.fixes.iter().any(|f| f.id == p.id))
        .map(|p| p.id.clone())
        .collect();
    let refused: Vec<&String> = dropped
        .iter()
        .filter(|d| !release.allow_drop.contains(d))
        .collect();
    if !refused.is_empty() {
        bail!(
            "{}: drops fix(es) {} that the previous release {} carried: machines updated to this release \
             would lose them; add them back, or allow it with allow-drop = [{}]",
            release.file.display(),
            refused.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            prev.release.version,
            refused
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(dropped)
}

/// Fails naming the first of `tools` that is not on PATH, with the package to install.
fn need_tools(tools: &[&str]) -> anyhow::Result<()> {
    for t in tools {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()));
        if !found {
            bail!("`{t}` is not installed: apt-get install {t}");
        }
    }
    Ok(())
}

/// Builds every selected target, `parallel` at a time; the entries come back in the file's
/// order.
fn build_targets(
    ctx: &Shared,
    selected: &[&TargetSpec],
    jobs: usize,
) -> anyhow::Result<Vec<IndexTarget>> {
    let keys: Vec<String> = selected.iter().map(|t| t.key().to_string()).collect();
    let lines = Lines::new(&keys, false);
    // Two targets at a time use two cores well (one fetching or linking while the other
    // compiles); each make gets its share of -j.
    let parallel = selected.len().clamp(1, jobs.clamp(1, 4));
    let make_jobs = (jobs / parallel).max(1);
    let next = AtomicUsize::new(0);
    let results: Mutex<BTreeMap<usize, anyhow::Result<IndexTarget>>> = Mutex::new(BTreeMap::new());
    let children = Mutex::new(Vec::<u32>::new());
    std::thread::scope(|s| {
        for _ in 0..parallel {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(t) = selected.get(i) else { break };
                if interrupt::interrupted() {
                    break;
                }
                let started = std::time::Instant::now();
                let r = one_target(
                    ctx,
                    t,
                    make_jobs,
                    &Worker {
                        lines: &lines,
                        i,
                        children: &children,
                    },
                );
                let r = r.map(|mut e| {
                    e.seconds = started.elapsed().as_secs_f64();
                    e
                });
                if let Ok(mut m) = results.lock() {
                    m.insert(i, r);
                }
            });
        }
        // The signal watcher: forwards Ctrl-C to the children (each in its own process group,
        // so each restores its tree and stops its make before it exits).
        s.spawn(|| {
            let mut forwarded = false;
            while next.load(Ordering::SeqCst) < selected.len() + parallel {
                if interrupt::interrupted() && !forwarded {
                    if let Ok(c) = children.lock() {
                        for pid in c.iter() {
                            // SAFETY: kill(2) with a pid this process started; no memory is touched.
                            unsafe { libc::kill(-(*pid as i32), libc::SIGINT) };
                        }
                    }
                    forwarded = true;
                }
                if results.lock().map_or(0, |m| m.len()) == selected.len() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
    });
    let results = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a target's worker panicked"))?;
    let mut out = Vec::new();
    for (_, r) in results {
        out.push(r?);
    }
    Ok(out)
}

/// What every target's build reads.
struct Shared<'a> {
    release: &'a Release,
    cache: &'a Path,
    staging: &'a Path,
    previous: Option<&'a (PathBuf, Index)>,
    launcher: Option<&'a Launcher>,
}

/// What a worker shares with the others.
struct Worker<'a> {
    lines: &'a Lines,
    i: usize,
    children: &'a Mutex<Vec<u32>>,
}

/// The status of a target from its fixes' scan: `builds` when any fix applies, else why not.
fn target_status(scanned: &[ScannedFix]) -> (&'static str, Option<String>) {
    let refused: Vec<String> = scanned
        .iter()
        .filter_map(|f| match &f.status {
            FixStatus::Refused { reason } => Some(format!("{}: {reason}", f.id)),
            _ => None,
        })
        .collect();
    if !refused.is_empty() {
        return ("refused", Some(refused.join("; ")));
    }
    if scanned
        .iter()
        .any(|f| matches!(f.status, FixStatus::Applies { .. }))
    {
        return ("builds", None);
    }
    if scanned.iter().all(|f| f.status == FixStatus::AlreadyFixed) {
        return (
            "already-fixed",
            Some("every fix is already in this kernel (each reverse-applies)".into()),
        );
    }
    let why: Vec<String> = scanned
        .iter()
        .map(|f| match &f.status {
            FixStatus::NotAffected { reason } => format!("{}: {reason}", f.id),
            other => format!("{}: {}", f.id, other.word()),
        })
        .collect();
    ("not-affected", Some(why.join("; ")))
}

fn unresolved_reason(u: Unresolved) -> String {
    match u {
        Unresolved::Unavailable(s) => s,
        Unresolved::Failed(e) => format!("{e:#}"),
    }
}

/// Resolves, scans and builds one target into `staging/<key>/`.
fn one_target(
    ctx: &Shared,
    t: &TargetSpec,
    make_jobs: usize,
    w: &Worker,
) -> anyhow::Result<IndexTarget> {
    let (release, cache, staging) = (ctx.release, ctx.cache, ctx.staging);
    let key = t.key().to_string();
    let mut entry = new_entry(release, &key);
    w.lines.say(w.i, "resolving inputs");
    let mut log = |m: &str| w.lines.say(w.i, m);
    let inputs = match target::resolve(t, cache, &release.suites, &mut log) {
        Ok(i) => i,
        Err(u) => {
            entry.status = "unavailable".into();
            entry.reason = Some(unresolved_reason(u));
            w.lines.finish(w.i, "unavailable");
            return Ok(entry);
        }
    };
    if let Some(r) = &inputs.kernel_release {
        entry.kernel_release = r.clone();
    }
    entry.package_version = inputs.package_version.clone();
    entry.downloaded = inputs.downloaded;
    w.lines.say(w.i, "scanning the fixes");
    let fixes = fixes_for(release, &inputs, &key);
    entry.scan = scan_fixes(release, &inputs, &fixes, &key)?;
    let (status, reason) = target_status(&entry.scan);
    if status != "builds" {
        entry.status = status.into();
        entry.reason = reason;
        w.lines.finish(w.i, status);
        return Ok(entry);
    }
    let applied: Vec<&super::spec::FixSpec> = fixes
        .iter()
        .zip(&entry.scan)
        .filter(|(_, s)| matches!(s.status, FixStatus::Applies { .. }))
        .map(|(f, _)| f)
        .collect();
    let prev_module = ctx.previous.and_then(|(dir, idx)| {
        idx.targets
            .iter()
            .find(|p| p.kernel_release == entry.kernel_release)
            .map(|p| (dir, p))
    });
    entry.previous = ctx.previous.map(|_| previous_module(prev_module));
    let dir = staging.join(&key);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let ko = dir.join(format!("{}.ko", release.module));
    let mut cmd = child_command(
        release,
        &inputs,
        cache,
        &applied,
        &ko,
        make_jobs,
        prev_module,
    )?;
    let _turn = take_turn(&work_dir(release, &inputs, cache))?;
    let stats_log = dir.join(".compiler-launcher.log");
    let launcher = attach_launcher(ctx, &inputs, &mut cmd, &stats_log, w)?;
    w.lines.say(w.i, "building");
    let (status, error_lines) = run_build(cmd, &dir, w)?;
    let mut entry_stats: Option<CacheStats> = None;
    if let Some(l) = launcher {
        let stats = l.stats(&stats_log, &inputs.source);
        let _ = std::fs::remove_file(&stats_log);
        write_stats(&dir.join("compiles.json"), &stats)?;
        entry_stats = Some(stats);
    }
    record_outcome(
        &mut entry,
        status.code(),
        &Built {
            release,
            dir: &dir,
            ko: &ko,
            applied: &applied,
            stats: entry_stats.as_ref(),
            error_lines: &error_lines,
        },
        w,
    )?;
    Ok(entry)
}

/// The index entry of target `key` before anything is known of it: named by the key, at its
/// place in the release's targets, with no status yet.
fn new_entry(release: &Release, key: &str) -> IndexTarget {
    IndexTarget {
        kernel_release: key.to_string(),
        target: key.to_string(),
        position: release
            .targets
            .iter()
            .position(|x| x.key() == key)
            .unwrap_or(0),
        status: String::new(),
        module: None,
        sha256: None,
        fixes: vec![],
        reason: None,
        scan: vec![],
        previous: None,
        package_version: None,
        signature: None,
        downloaded: 0,
        seconds: 0.0,
    }
}

/// How each of `fixes` fits the target's tree and config, its patches named relative to the
/// release's file (so the index reads the same wherever the release is checked out).
fn scan_fixes(
    release: &Release,
    inputs: &Inputs,
    fixes: &[super::spec::FixSpec],
    key: &str,
) -> anyhow::Result<Vec<ScannedFix>> {
    let mut scanned = scan::scan(&inputs.source, &inputs.config, fixes)
        .with_context(|| format!("target {key}"))?;
    let release_dir = release.file.parent().unwrap_or(Path::new("/"));
    for (s, f) in scanned.iter_mut().zip(fixes) {
        s.patches = f
            .patches
            .iter()
            .map(|p| {
                p.strip_prefix(release_dir)
                    .unwrap_or(p)
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
    }
    Ok(scanned)
}

/// The `previous` field of a target's entry when the release has a predecessor: the module the
/// predecessor built for this kernel, or `none:` and why there is none.
fn previous_module(prev: Option<(&PathBuf, &IndexTarget)>) -> String {
    match prev {
        Some((_, p)) => match &p.module {
            Some(m) => m.clone(),
            None => format!(
                "none: the previous release had no module for this kernel ({})",
                p.status
            ),
        },
        None => "none: a kernel new in this release".into(),
    }
}

/// The lock on `work`, the target's work dir, held while it builds. Two releases building the
/// same module for the same kernel (two CI jobs on one machine) take turns on its work dir
/// instead of one failing on the other's lock.
fn take_turn(work: &Path) -> anyhow::Result<super::lock::Lock> {
    if let Some(parent) = work.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    super::lock::Lock::exclusive(&work.with_file_name(format!(
        "{}.lock",
        work.file_name().unwrap_or_default().to_string_lossy()
    )))
}

/// Hands the target's compiles to the release's compiler launcher (ccache, sccache, distcc)
/// through wrappers named like the compilers; `None` when there is none or the target's build
/// root lacks it.
fn attach_launcher<'a>(
    ctx: &Shared<'a>,
    inputs: &Inputs,
    cmd: &mut Command,
    stats_log: &Path,
    w: &Worker,
) -> anyhow::Result<Option<&'a Launcher>> {
    let cache = ctx.cache;
    Ok(match ctx.launcher {
        Some(l)
            if inputs
                .build_root
                .as_ref()
                .is_none_or(|r| r.dir.join("usr/bin").join(&l.program).exists()) =>
        {
            let mut names = vec![compiler_of(&inputs.config)?];
            if let Some(cc) = crate::kernel::compiler::recorded_vars(&inputs.source).get("CC") {
                if !cc.is_empty() && !cc.contains(['/', ' ', '\'', '"']) {
                    names.push(cc.clone());
                }
            }
            let wrapper = l.wrapper_dir(cache, &names)?;
            cmd.envs(l.env(cache, &wrapper, stats_log));
            Some(l)
        }
        Some(l) => {
            w.lines.say(
                w.i,
                &format!(
                    "{} is not in the build root: compiling without it",
                    l.program
                ),
            );
            None
        }
        None => None,
    })
}

/// Runs the target's build with its report to `dir/report.json` and its stderr to
/// `dir/build.log`, passing stage lines on as progress; returns its exit status and the error
/// lines it printed.
fn run_build(
    mut cmd: Command,
    dir: &Path,
    w: &Worker,
) -> anyhow::Result<(std::process::ExitStatus, Vec<String>)> {
    let report = std::fs::File::create(dir.join("report.json"))
        .with_context(|| format!("creating {}", dir.join("report.json").display()))?;
    let mut log_file = std::fs::File::create(dir.join("build.log"))
        .with_context(|| format!("creating {}", dir.join("build.log").display()))?;
    cmd.stdout(report)
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().context("starting the target's build")?;
    if let Ok(mut c) = w.children.lock() {
        c.push(child.id());
    }
    let mut error_lines = Vec::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(log_file, "{line}");
            if let Some(stage) = line.strip_prefix("klp-build: ") {
                if !stage.starts_with("error:") && error_lines.is_empty() {
                    w.lines.say(w.i, stage);
                }
            }
            if line.starts_with("klp-build: error:") || !error_lines.is_empty() {
                error_lines.push(line);
            }
        }
    }
    let status = child.wait().context("waiting for the target's build")?;
    Ok((status, error_lines))
}

/// What a finished build of one target left for the index entry.
struct Built<'a> {
    release: &'a Release,
    dir: &'a Path,
    ko: &'a Path,
    applied: &'a [&'a super::spec::FixSpec],
    stats: Option<&'a CacheStats>,
    error_lines: &'a [String],
}

/// The index entry's status from the build's exit code: built (with the module's sha256 and
/// signature), not-affected (exit 3, no functional change) or refused.
fn record_outcome(
    entry: &mut IndexTarget,
    code: Option<i32>,
    b: &Built<'_>,
    w: &Worker,
) -> anyhow::Result<()> {
    let (release, dir, ko, applied, error_lines) =
        (b.release, b.dir, b.ko, b.applied, b.error_lines);
    match code {
        Some(0) => {
            let bytes = std::fs::read(ko).with_context(|| {
                format!(
                    "the build said it wrote {} but it cannot be read",
                    ko.display()
                )
            })?;
            entry.sha256 = Some(index::sha256_hex(&bytes));
            // The signature as the published module carries it (the build verified it against
            // the certificate before it exited 0).
            match crate::sign::read(&bytes) {
                crate::sign::State::Signed(s) => entry.signature = Some(s),
                _ if release.sign.is_none() => {}
                other => {
                    entry.status = "refused".into();
                    entry.reason = Some(format!(
                        "the build exited 0 but its module is not signed as [sign] asks ({other:?})"
                    ));
                    w.lines.finish(w.i, "refused (module not signed)");
                    return Ok(());
                }
            }
            // The release the module is for, as the build read it from the kbuild dir (a
            // tree's own source may say less: Debian's source has no ABI suffix).
            if let Some(r) = built_release(&dir.join("report.json")) {
                entry.kernel_release = r;
            }
            entry.status = "built".into();
            entry.module = Some(format!("{}/{}.ko", entry.kernel_release, release.module));
            entry.fixes = applied.iter().map(|f| f.id.clone()).collect();
            w.lines.finish(
                w.i,
                &match b.stats {
                    Some(s) => format!(
                        "built ({} compiled, {} from {})",
                        s.compiled.len(),
                        s.hits,
                        s.launcher
                    ),
                    None => "built".into(),
                },
            );
        }
        Some(3) => {
            entry.status = "not-affected".into();
            entry.reason = Some(first_lines(error_lines, "no functional change"));
            w.lines.finish(w.i, "not-affected (no functional change)");
        }
        _ if interrupt::interrupted() => {
            entry.status = "refused".into();
            entry.reason = Some("interrupted".into());
        }
        _ => {
            entry.status = "refused".into();
            entry.reason = Some(first_lines(error_lines, "the build failed"));
            w.lines.finish(w.i, "refused (see build.log)");
        }
    }
    Ok(())
}

/// The compiler program the target's config names (`CONFIG_CC_VERSION_TEXT`'s first word).
fn compiler_of(config: &Path) -> anyhow::Result<String> {
    let c = crate::kernel::config::KConfig::read(config)?;
    let text = c
        .get("CONFIG_CC_VERSION_TEXT")
        .unwrap_or("gcc")
        .trim_matches('"');
    let cc = text.split(' ').next().unwrap_or("gcc");
    if cc.is_empty() || cc.contains('/') || cc.contains('\'') {
        bail!(
            "{}: CONFIG_CC_VERSION_TEXT {text:?} names no compiler program",
            config.display()
        );
    }
    Ok(cc.to_string())
}

/// The launcher's statistics of one target, beside its module (not in the index: a warm build's
/// hits differ from a cold one's, and the index is the same for both).
fn write_stats(path: &Path, stats: &CacheStats) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(stats)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// `kernel_release` of a build's JSON report.
fn built_release(report: &Path) -> Option<String> {
    let text = std::fs::read_to_string(report).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let r = v.get("kernel_release")?.as_str()?;
    spec::valid_kernel_release(r).then(|| r.to_string())
}

/// The release's fixes with the patches for this target: a backport's where one names its kernel
/// release (or, for a tree whose release is not known, its name).
fn fixes_for(release: &Release, inputs: &Inputs, key: &str) -> Vec<super::spec::FixSpec> {
    let kernel = inputs.kernel_release.as_deref().unwrap_or(key);
    release.fixes.iter().map(|f| f.for_kernel(kernel)).collect()
}

/// The error's first lines, or `fallback`, for `reason`.
fn first_lines(lines: &[String], fallback: &str) -> String {
    let text: Vec<&str> = lines
        .iter()
        .take(12)
        .map(|l| l.strip_prefix("klp-build: error: ").unwrap_or(l).trim())
        .collect();
    if text.is_empty() {
        fallback.to_string()
    } else {
        text.join("\n")
    }
}

/// The work dir of a target's build: one per release module and kernel, so the next build of the
/// same release reuses its files; the build of two processes waits on its lock (see
/// [`take_turn`]).
fn work_dir(release: &Release, inputs: &Inputs, cache: &Path) -> PathBuf {
    cache.join("work").join(format!(
        "{}-{}",
        release.module,
        inputs
            .kernel_release
            .clone()
            .unwrap_or_else(|| index::sha256_hex(inputs.source.to_string_lossy().as_bytes()))
    ))
}

/// The child `klp-build` that builds one target, inside its build root when it has one.
fn child_command(
    release: &Release,
    inputs: &Inputs,
    cache: &Path,
    applied: &[&super::spec::FixSpec],
    ko: &Path,
    make_jobs: usize,
    previous: Option<(&PathBuf, &IndexTarget)>,
) -> anyhow::Result<Command> {
    let exe = own_exe()?;
    let diffs = applied
        .iter()
        .map(|f| fix_patch(f, cache))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let work = work_dir(release, inputs, cache);
    let child = Child {
        release,
        inputs,
        ko,
        previous,
    };
    let mut cmd = match &inputs.build_root {
        Some(root) => root.command(&child.binds(cache, &exe), &exe),
        None => Command::new(&exe),
    };
    cmd.args(child.args(&diffs, &work, make_jobs));
    Ok(cmd)
}

/// The path of the running klp-build, for its children. Replaced while a release runs (an
/// upgrade, a rebuild), /proc/self/exe names the old file " (deleted)"; the children run the
/// program now at that path.
fn own_exe() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding klp-build's own path")?;
    Ok(
        match exe.to_str().and_then(|e| e.strip_suffix(" (deleted)")) {
            Some(e) => PathBuf::from(e),
            None => exe,
        },
    )
}

/// Fix `f` as one patch named by its id (its patches joined), so the module's manifest names
/// fixes as the release does and `--previous` compares them across releases by id. The file is
/// content-addressed under `cache/patches/`, so its path (part of the work dir's inputs) is the
/// same for the same content; it is rewritten only when its content differs.
fn fix_patch(f: &super::spec::FixSpec, cache: &Path) -> anyhow::Result<PathBuf> {
    let mut text = Vec::new();
    for p in &f.patches {
        text.extend(std::fs::read(p).with_context(|| format!("fix {}: {}", f.id, p.display()))?);
        if !text.ends_with(b"\n") {
            text.push(b'\n');
        }
    }
    let d = cache.join("patches").join(index::sha256_hex(&text));
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    let file = d.join(format!("{}.patch", f.id));
    if std::fs::read(&file).ok().as_deref() != Some(text.as_slice()) {
        let tmp = d.join(format!(".{}.{}", f.id, std::process::id()));
        std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &file).with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(file)
}

/// What the child build of one target is given: the release, the target's inputs, the module
/// to write, and the previous release's directory and entry for this kernel, if any.
struct Child<'a> {
    release: &'a Release,
    inputs: &'a Inputs,
    ko: &'a Path,
    previous: Option<(&'a PathBuf, &'a IndexTarget)>,
}

impl Child<'_> {
    /// The child's command line: the fixes' patches, the target's paths, then the release's
    /// module options (name, replace mode, states, `--allow-drop` when there is a predecessor,
    /// signing).
    fn args(&self, diffs: &[PathBuf], work: &Path, make_jobs: usize) -> Vec<std::ffi::OsString> {
        let (release, inputs) = (self.release, self.inputs);
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        for d in diffs {
            args.push("--diff".into());
            args.push(d.into());
        }
        let mut opt = |name: &str, v: &Path| {
            args.push(name.into());
            args.push(v.into());
        };
        opt("--source", &inputs.source);
        if let Some(k) = &inputs.kbuild {
            opt("--kbuild", k);
        }
        opt("--config", &inputs.config);
        if let Some(s) = &inputs.symbols {
            opt("--symbols", s);
        }
        if let Some(m) = &inputs.modules {
            opt("--modules", m);
        }
        opt("-o", self.ko);
        opt("--work-dir", work);
        if let Some((dir, p)) = self.previous {
            if let Some(m) = &p.module {
                opt("--previous", &dir.join(m));
            }
        }
        args.extend(["--name".into(), release.module.clone().into()]);
        args.extend(["--report".into(), "json".into()]);
        args.extend(["-j".into(), make_jobs.to_string().into()]);
        // A release's compiles go through its compiler launcher, whose statistics are the
        // report's cache figures: every object is compiled by kbuild (or found by ccache) there.
        args.push("--no-object-cache".into());
        if let Some(n) = release.replace_set {
            args.extend(["--replace-set".into(), n.to_string().into()]);
        }
        if !release.supersedes.is_empty() {
            let s: Vec<String> = release.supersedes.iter().map(u32::to_string).collect();
            args.extend(["--supersedes".into(), s.join(",").into()]);
        }
        if release.no_replace {
            args.push("--no-replace".into());
        }
        for s in &release.states {
            args.extend(["--state".into(), format!("{}:{}", s.id, s.version).into()]);
        }
        if self.previous.is_some() {
            for a in &release.allow_drop {
                args.extend(["--allow-drop".into(), a.into()]);
            }
        }
        if let Some(s) = &release.sign {
            args.extend(["--sign-key".into(), s.key.arg()]);
            args.extend(["--sign-cert".into(), s.cert.clone().into()]);
        }
        args
    }

    /// The directories a build root must bind for the child to reach its files: the cache, the
    /// program, the staging dir, the release's directory, the previous release, and the key and
    /// certificate, which may live outside the release's directory (a key store). A directory
    /// under one already bound is not bound again.
    fn binds(&self, cache: &Path, exe: &Path) -> Vec<PathBuf> {
        let sign_key = self.release.sign.as_ref();
        let mut binds: Vec<PathBuf> = vec![cache.to_path_buf()];
        let key_file = sign_key.and_then(|s| match &s.key {
            crate::sign::KeySource::File(k) => k.parent(),
            crate::sign::KeySource::Pkcs11(_) => None,
        });
        for p in [
            exe.parent(),
            self.ko.parent().and_then(Path::parent),
            self.release.file.parent(),
            self.previous.map(|p| p.0.as_path()),
            key_file,
            sign_key.and_then(|s| s.cert.parent()),
        ]
        .into_iter()
        .flatten()
        {
            if !binds.iter().any(|b| p.starts_with(b)) {
                binds.push(p.to_path_buf());
            }
        }
        binds
    }
}

/// Moves the staged targets into `out` and writes `index.json` last.
pub(super) fn publish(out: &Path, staging: &Path, index: &Index) -> anyhow::Result<()> {
    for (i, t) in index.targets.iter().enumerate() {
        if let Some(o) = index.targets[..i]
            .iter()
            .find(|o| o.kernel_release == t.kernel_release)
        {
            bail!(
                "targets {} and {} are both kernel {}: a release has one module per kernel; remove one of them",
                o.target,
                t.target,
                t.kernel_release
            );
        }
    }
    for t in &index.targets {
        let from = staging.join(&t.target);
        let to = out.join(&t.kernel_release);
        if to.exists() {
            std::fs::remove_dir_all(&to).with_context(|| format!("replacing {}", to.display()))?;
        }
        if from.exists() {
            std::fs::rename(&from, &to)
                .with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
        } else {
            std::fs::create_dir_all(&to).with_context(|| format!("creating {}", to.display()))?;
        }
    }
    // A built module's path in the index follows the target's final directory.
    let tmp = out.join(".index.json.tmp");
    std::fs::write(&tmp, index.to_json()?).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out.join("index.json"))
        .with_context(|| format!("writing {}", out.join("index.json").display()))?;
    std::fs::remove_dir_all(staging).with_context(|| format!("removing {}", staging.display()))?;
    Ok(())
}

/// The text summary: one line per target.
fn summary(index: &Index, out: &Path) -> String {
    let mut s = format!(
        "release {} {} ({}), {} fix(es), {} target(s) in {}\n",
        index.release.name,
        index.release.version,
        index.release.module,
        index.fixes.len(),
        index.targets.len(),
        out.display()
    );
    for f in &index.fixes {
        if let Some(c) = &f.change {
            if c != "same" {
                s.push_str(&format!("  fix {}: {c}", f.id));
                if let Some(old) = &f.previous_sha256 {
                    s.push_str(&format!(
                        " (sha256 {} -> {})",
                        old.join(","),
                        f.all_sha256().join(",")
                    ));
                }
                s.push('\n');
            }
        }
    }
    for d in &index.dropped {
        s.push_str(&format!("  fix {d}: dropped (allowed)\n"));
    }
    let downloaded: u64 = index.targets.iter().map(|t| t.downloaded).sum();
    if downloaded > 0 {
        s.push_str(&format!("  downloaded {:.1} MB\n", downloaded as f64 / 1e6));
    }
    for t in &index.targets {
        s.push_str(&format!(
            "{:<28} {:<14} {:>6.1}s",
            t.kernel_release, t.status, t.seconds
        ));
        match (&t.module, &t.reason) {
            (Some(m), _) => {
                s.push_str(&format!(" {m} [{}]", t.fixes.join(", ")));
                if let Some(sig) = &t.signature {
                    s.push_str(&format!(
                        " signed {} by {}",
                        sig.hash,
                        field_max(&format!("{:?}", sig.signer), 200)
                    ));
                }
            }
            (None, Some(r)) => s.push_str(&format!(
                " {}",
                field_max(r.lines().next().unwrap_or(""), 800)
            )),
            _ => {}
        }
        s.push('\n');
    }
    s
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
pub(super) fn print_out(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing the report to stdout"),
    }
}
