//! Stage 0, the plan: the command line -> [`Plan`], every default resolved once and every option
//! checked, cheapest first, before anything slow runs. Input: [`BuildArgs`]. Output: a `Plan` the
//! pipeline reads and never second-guesses. Invariant: an option that names a missing, unreadable
//! or wrong file is an error that names the option and the path, raised before the first compile
//! (a typo in `--symbols` must not cost a tree preparation and two object builds first).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::cli::{BuildArgs, ReportFormat};
use crate::contract::spec::{self, ModuleSpec, ReplaceRequest};
use crate::input::Kind;
use crate::kernel::config::KConfig;
use crate::kernel::livepatch_api::LivepatchApi;
use crate::kernel::symbols::SymbolListing;
use crate::kernel::{self, Kernel, KernelOptions};
use crate::sign::{self, KeySource, Signer};
use crate::workdir::Stage;

/// Everything the pipeline needs, resolved.
pub struct Plan {
    /// The patches, in order, each an existing readable file.
    pub diffs: Vec<PathBuf>,
    /// The target kernel: source tree (prepared), kbuild dir, config, release, jobs.
    pub kernel: Kernel,
    /// The symbol source (`--symbols` or its default).
    pub symbols: PathBuf,
    /// Its listing, read once.
    pub listing: SymbolListing,
    /// Where the target's `.ko` files are (`--modules` or `/lib/modules/<release>`).
    pub modules: PathBuf,
    /// Name, replace mode and states of the module.
    pub spec: ModuleSpec,
    /// Where the module is written.
    pub output: PathBuf,
    /// The work dir (absolute).
    pub work_dir: PathBuf,
    /// Keep the work dir after success.
    pub keep_tmp: bool,
    /// Where original objects of earlier runs are kept; `None` with `--no-object-cache`.
    pub object_cache: Option<crate::rebuild::ObjectCache>,
    /// Reuse the completed stages before this one from a kept work dir.
    pub resume_from: Option<Stage>,
    /// Predecessor modules to check the new one against (`--previous`), read up front.
    pub previous: Vec<crate::check::Deployed>,
    /// Fixes the new release may drop (`--allow-drop`).
    pub allow_drop: Vec<String>,
    /// The report format.
    pub report: ReportFormat,
    /// Signs the module last (`--sign-key`, `--sign-cert`), checked with a trial signature.
    pub signer: Option<crate::sign::Signer>,
    /// What the patches change, read before anything ran (for `--dry-run`).
    pub patches: crate::patch::PatchPlan,
}

use crate::cli::UsageError;

impl Plan {
    /// Resolves and checks `args`; see the module doc for the order.
    pub fn resolve(args: &BuildArgs) -> anyhow::Result<Plan> {
        // Cheap and local first: the command line itself, then files named on it.
        let local = Local::check(args)?;

        // The target: paths and release (no compile; preparing the tree comes later).
        let kernel = kernel::resolve(&KernelOptions {
            source: args.source.clone(),
            kbuild: args.kbuild.clone(),
            config: args.config.clone(),
            jobs: args.jobs.unwrap_or(0),
        })?;
        check_config(&kernel, args.config.is_some())?;
        // A trial signature with the target's sign-file: a key of another certificate, or a
        // target that cannot sign, fails here rather than after the compiles.
        let signer = match local.sign {
            Some((key, cert)) => Some(Signer::new(
                key,
                &cert,
                &kernel.kbuild,
                &kernel.config,
                sign::signer::OPTIONS,
            )?),
            None => None,
        };
        // The patches against the tree, before anything slow: an empty, binary, deleting or
        // renaming patch is refused before `make olddefconfig modules_prepare` touches the tree.
        let patches = crate::patch::validate(&local.diffs, &kernel.source)?;
        let spec = module_spec(args, &local.name, &local.states, &kernel)?;
        let (symbols, listing) = symbol_listing(args, &kernel)?;
        let modules = args
            .modules
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("/lib/modules/{}", kernel.release)));
        Ok(Plan {
            diffs: local.diffs,
            kernel,
            symbols,
            listing,
            modules,
            spec,
            output: local.output,
            work_dir: local.work_dir,
            keep_tmp: args.keep_tmp,
            object_cache: object_cache(args.no_object_cache),
            resume_from: args.resume_from,
            previous: local.previous,
            allow_drop: args.allow_drop.clone(),
            report: args.report,
            signer,
            patches,
        })
    }
}

/// The object cache of single-object rebuilds, unless `disabled` or there is no cache directory
/// (no `HOME`): then every original is built, as with `--no-object-cache`.
fn object_cache(disabled: bool) -> Option<crate::rebuild::ObjectCache> {
    if disabled {
        return None;
    }
    let dir = crate::cache::dir().ok()?;
    Some(crate::rebuild::ObjectCache::new(dir.join("objects")))
}

/// What the command line and the files it names give, each checked without looking at the target
/// kernel: a mistake here costs no kernel lookup.
struct Local {
    /// The patches, each an existing readable file.
    diffs: Vec<PathBuf>,
    /// The module's name, checked (`--name`) or made from the first patch.
    name: String,
    /// `-o` or `<name>.ko`: writable, no input, not inside the tree.
    output: PathBuf,
    /// The work dir (absolute), neither the tree nor a directory holding it.
    work_dir: PathBuf,
    /// The predecessors (`--previous`), read.
    previous: Vec<crate::check::Deployed>,
    /// The signing key and certificate, when both are given; their files checked.
    sign: Option<(KeySource, PathBuf)>,
    /// The `--state`s, sorted, each id once.
    states: Vec<spec::StateSpec>,
}

impl Local {
    /// The checks in the order their errors are reported: the patches, the name, `-o`, the other
    /// files named, where `-o` and the work dir lie, `--modules`, `--previous` with
    /// `--allow-drop`, the signing files, then `--state`.
    fn check(args: &BuildArgs) -> anyhow::Result<Local> {
        let diffs = patch_files(args)?;
        let name = match &args.name {
            Some(n) => {
                spec::check_module_name(n).context("--name")?;
                n.clone()
            }
            None => spec::default_module_name(&args.diffs[0]),
        };
        let output = args
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{name}.ko")));
        check_output(&output)?;
        if let Some(c) = &args.config {
            readable_file(c, Kind::Config, "--config")?;
        }
        if let Some(s) = &args.symbols {
            // A vmlinux is the largest kind --symbols may be; a text listing's own bound is
            // checked when it is read.
            readable_file(s, Kind::Vmlinux, "--symbols")?;
        }
        check_output_is_no_input("-o", &output, &named_inputs(args))?;
        check_output_outside_tree(&output, &args.source)?;
        let work_dir = check_work_dir(&args.work_dir, args.resume_from.is_some())?;
        check_work_dir_is_no_tree(&work_dir, &args.source)?;
        if let Some(m) = &args.modules {
            if !m.is_dir() {
                bail!("--modules {}: no such directory; pass the target kernel's /lib/modules/<release>", m.display());
            }
        }
        let previous = read_previous(args)?;
        // Key and certificate files first; sign-file and the hash need the target (later).
        let sign = match (&args.sign_key, &args.sign_cert) {
            (Some(k), Some(c)) => {
                let key = KeySource::parse(k, None);
                sign::signer::check_files(&key, c, sign::signer::OPTIONS)?;
                Some((key, c.clone()))
            }
            _ => None,
        };
        let states = distinct_states(args)?;
        Ok(Local {
            diffs,
            name,
            output,
            work_dir,
            previous,
            sign,
            states,
        })
    }
}

/// The `--diff` files: at least one, each an existing readable patch.
fn patch_files(args: &BuildArgs) -> anyhow::Result<Vec<PathBuf>> {
    if args.diffs.is_empty() {
        return Err(UsageError(
            "nothing to do: give at least one --diff FILE (a patch to turn into a livepatch module; see --help)"
                .into(),
        )
        .into());
    }
    args.diffs
        .iter()
        .map(|d| readable_file(d, Kind::Patch, "--diff"))
        .collect()
}

/// Every file the command line reads, with the option naming it: none may be `-o`.
fn named_inputs(args: &BuildArgs) -> Vec<(&str, &Path)> {
    args.diffs
        .iter()
        .map(|d| ("--diff", d.as_path()))
        .chain(args.config.iter().map(|c| ("--config", c.as_path())))
        .chain(args.symbols.iter().map(|s| ("--symbols", s.as_path())))
        .chain(args.previous.iter().map(|p| ("--previous", p.as_path())))
        .chain(args.sign_cert.iter().map(|c| ("--sign-cert", c.as_path())))
        .chain(args.sign_key.iter().map(|k| ("--sign-key", Path::new(k))))
        .collect()
}

/// The `--previous` modules, read; `--allow-drop` without any is a usage error (it names a fix a
/// predecessor carried).
fn read_previous(args: &BuildArgs) -> anyhow::Result<Vec<crate::check::Deployed>> {
    let previous = args
        .previous
        .iter()
        .map(|p| {
            readable_file(p, Kind::Module, "--previous")?;
            crate::check::Livepatch::read(p).with_context(|| format!("--previous {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !args.allow_drop.is_empty() && args.previous.is_empty() {
        return Err(UsageError(
            "--allow-drop names a fix a predecessor carried: give the predecessor with --previous OLD.ko".into(),
        )
        .into());
    }
    Ok(previous)
}

/// The `--state`s sorted, refused when an id is given twice.
fn distinct_states(args: &BuildArgs) -> anyhow::Result<Vec<spec::StateSpec>> {
    let mut states = args.states.clone();
    states.sort();
    if let Some(w) = states.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(UsageError(format!(
            "--state {:#x} is given twice; give each state id once",
            w[0].id
        ))
        .into());
    }
    Ok(states)
}

/// The module's spec: name, replace mode and states, for the livepatch API the target's tree
/// and config offer.
fn module_spec(
    args: &BuildArgs,
    name: &str,
    states: &[spec::StateSpec],
    kernel: &Kernel,
) -> anyhow::Result<ModuleSpec> {
    // (kernel::resolve checked the compiler: the one the target's config names.)
    let api = LivepatchApi::detect(
        &kernel.kbuild,
        &kernel.source,
        Some(&crate::kernel::config::KConfig::read(&kernel.config)?),
    )?;
    ModuleSpec::new(
        name,
        &ReplaceRequest {
            set: args.replace_set,
            supersedes: args.supersedes.clone(),
            no_replace: args.no_replace,
        },
        states,
        api,
    )
    .map_err(|e| anyhow::anyhow!("{e:#}"))
}

/// `--symbols` (or the target's default) and its listing, read once and checked to be of the
/// target's release.
fn symbol_listing(args: &BuildArgs, kernel: &Kernel) -> anyhow::Result<(PathBuf, SymbolListing)> {
    let symbols = match &args.symbols {
        Some(p) => p.clone(),
        None => default_symbols(kernel)?,
    };
    let listing = SymbolListing::load(&symbols)
        .with_context(|| format!("--symbols {}", symbols.display()))?;
    check_symbols_release(&symbols, &kernel.release)?;
    Ok((symbols, listing))
}

/// An existing regular file of `kind` within its bound that can be opened (never a device, a
/// FIFO or a directory).
fn readable_file(path: &Path, kind: Kind, option: &str) -> anyhow::Result<PathBuf> {
    crate::input::open(path, kind, option)?;
    Ok(path.to_path_buf())
}

pub use crate::input::io_reason;

/// The file `path` is, as (device, inode), when it exists.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// `path` made absolute with its directory canonicalized (the file itself need not exist), so
/// `./a.patch`, `a.patch` and a symlinked directory compare equal.
fn canonical_path(path: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(path) {
        return c;
    }
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (abs.parent(), abs.file_name()) {
        (Some(d), Some(n)) => std::fs::canonicalize(d).map_or(abs.clone(), |d| d.join(n)),
        _ => abs,
    }
}

/// An output (`option` names it) that is one of the inputs would destroy that input when written:
/// refused when the canonical paths match or, for an existing output, it is the same file (a hard
/// link or another path to it).
pub fn check_output_is_no_input(
    option: &str,
    output: &Path,
    inputs: &[(&str, &Path)],
) -> anyhow::Result<()> {
    let out = canonical_path(output);
    let out_id = file_id(output);
    for (what, input) in inputs {
        if canonical_path(input) == out || (out_id.is_some() && file_id(input) == out_id) {
            return Err(UsageError(format!(
                "{option} {}: is the input {what} {}; writing it would destroy that input: give another {option} file",
                output.display(),
                input.display()
            ))
            .into());
        }
    }
    Ok(())
}

/// `-o` inside the source tree could replace one of the tree's files (which the rebuild saves
/// and restores); refused, except a `.ko` directly in the tree's top directory (the default
/// `<name>.ko` when klp-build runs in the tree, where the kernel has no `.ko` files).
fn check_output_outside_tree(output: &Path, source: &Path) -> anyhow::Result<()> {
    let Ok(tree) = std::fs::canonicalize(source) else {
        return Ok(()); // a missing --source is named by the kernel stage
    };
    let out = canonical_path(output);
    if !out.starts_with(&tree) {
        return Ok(());
    }
    let top_level_ko =
        out.parent() == Some(tree.as_path()) && out.extension().is_some_and(|e| e == "ko");
    if top_level_ko {
        return Ok(());
    }
    Err(UsageError(format!(
        "-o {}: lies inside the source tree {}, whose files klp-build rebuilds and restores; write the module \
         outside the tree (or as a .ko in its top directory)",
        output.display(),
        source.display()
    ))
    .into())
}

/// A work dir that is `/`, the source tree, or a directory holding the tree would have klp-build
/// clear (or lock and fill) the tree itself: refused up front.
fn check_work_dir_is_no_tree(work_dir: &Path, source: &Path) -> anyhow::Result<()> {
    let dir = canonical_path(work_dir);
    let tree = std::fs::canonicalize(source).ok();
    let holds_tree = tree.as_ref().is_some_and(|t| t.starts_with(&dir));
    if dir.parent().is_none() || holds_tree {
        let what = if dir.parent().is_none() {
            "the root directory".to_string()
        } else if tree.as_deref() == Some(dir.as_path()) {
            "the source tree".to_string()
        } else {
            format!(
                "a directory that holds the source tree {}",
                source.display()
            )
        };
        return Err(UsageError(format!(
            "--work-dir {}: is {what}, which klp-build would fill and clear; choose an empty directory or one \
             klp-build made before (the default, klp-tmp)",
            work_dir.display()
        ))
        .into());
    }
    crate::workdir::check_owned(&dir)
}

/// `-o`: its directory exists and is writable (checked by creating and removing a file there),
/// and it is not a directory itself.
fn check_output(output: &Path) -> anyhow::Result<()> {
    if output.is_dir() {
        bail!(
            "-o {}: is a directory; give the module's file name (e.g. {}/livepatch-fix.ko)",
            output.display(),
            output.display()
        );
    }
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        bail!(
            "-o {}: the directory {} does not exist; create it first",
            output.display(),
            dir.display()
        );
    }
    let probe = tempfile::Builder::new()
        .prefix(".klp-build-probe")
        .tempfile_in(&dir)
        .and_then(|mut f| f.write_all(b"").map(|()| f));
    if let Err(e) = probe {
        bail!(
            "-o {}: cannot write in {}: {}",
            output.display(),
            dir.display(),
            io_reason(&e)
        );
    }
    Ok(())
}

/// `--work-dir`: a directory or nothing yet, never a file; absolute. With `--resume-from` it must
/// exist.
fn check_work_dir(dir: &Path, resuming: bool) -> anyhow::Result<PathBuf> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "--work-dir {}: is a file; give a directory (klp-build creates it)",
            dir.display()
        );
    }
    if resuming && !dir.is_dir() {
        bail!(
            "--resume-from: the work dir {} does not exist; run once with --keep-tmp first",
            dir.display()
        );
    }
    let abs = std::path::absolute(dir).with_context(|| format!("--work-dir {}", dir.display()))?;
    Ok(abs)
}

/// `--config` (or the kbuild dir's `.config`) must be a kernel config for the kbuild tree's
/// version, with livepatch on: a config of another kernel gives objects with other struct layouts.
fn check_config(kernel: &Kernel, given: bool) -> anyhow::Result<()> {
    let option = if given {
        "--config"
    } else {
        "the kbuild dir's .config"
    };
    let text = crate::input::read(&kernel.config, Kind::Config, option)?;
    let text = String::from_utf8_lossy(&text);
    let config = KConfig::parse(&text);
    if config.get("CONFIG_CC_VERSION_TEXT").is_none() && config.options.len() < 10 {
        bail!(
            "{option} {}: not a kernel config (no CONFIG_ options); pass the target's .config, e.g. /boot/config-<release>",
            kernel.config.display()
        );
    }
    if config.get("CONFIG_LIVEPATCH") != Some("y") {
        bail!(
            "{option} {}: CONFIG_LIVEPATCH is not set; the target kernel cannot load livepatch modules",
            kernel.config.display()
        );
    }
    // "# Linux/x86 6.1.192 Kernel Configuration" against the kbuild dir's kernel.release
    // ("6.1.192", or "7.2.13-dirty" in a built tree): compare the numeric version.
    let config_version = text.lines().take(8).find_map(|l| {
        let rest = l.strip_prefix("# Linux/")?;
        let v = rest.split_whitespace().nth(1)?;
        rest.ends_with("Kernel Configuration")
            .then(|| v.to_string())
    });
    let kbuild_version = crate::input::read_text(
        &kernel.kbuild.join("include/config/kernel.release"),
        crate::input::Kind::Tree,
        "",
    )
    .ok();
    if let (Some(c), Some(k)) = (config_version, kbuild_version) {
        if numeric_version(&c) != numeric_version(k.trim()) {
            bail!(
                "{option} {} is for Linux {c} but the kbuild dir {} is {}; pass the config of the kernel the \
                 headers belong to",
                kernel.config.display(),
                kernel.kbuild.display(),
                k.trim()
            );
        }
    }
    Ok(())
}

/// `6.1.192` of `6.1.192-dirty` or `6.1.192+deb12`.
fn numeric_version(v: &str) -> &str {
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    v[..end].trim_end_matches('.')
}

/// An ELF vmlinux says its release in `linux_banner` ("Linux version 6.1.0-56-amd64 (...)"); a
/// text listing cannot tell.
fn check_symbols_release(path: &Path, release: &str) -> anyhow::Result<()> {
    let Some(banner) = vmlinux_release(path)? else {
        return Ok(());
    };
    if banner != release {
        bail!(
            "--symbols {} is the vmlinux of {banner}, but the target (the kbuild dir) is {release}; pass the \
             target kernel's vmlinux or symbol listing",
            path.display()
        );
    }
    Ok(())
}

/// The release in an ELF vmlinux's `linux_banner` (`Linux version <release> (`), or `None` for
/// a text listing or an image without a banner. Streams the file: a distro `-dbg` vmlinux is
/// hundreds of megabytes.
fn vmlinux_release(path: &Path) -> anyhow::Result<Option<String>> {
    use std::io::Read as _;
    const NEEDLE: &[u8] = b"Linux version ";
    let mut f = crate::input::open(path, Kind::Vmlinux, "--symbols")?;
    let mut magic = [0u8; 4];
    if f.read_exact(&mut magic).is_err() || &magic != b"\x7fELF" {
        return Ok(None);
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut have = 0;
    loop {
        // Fill the buffer (or reach the end), then look for the banner in it.
        let mut eof = false;
        while have < buf.len() {
            let n = f
                .read(&mut buf[have..])
                .with_context(|| format!("--symbols {}", path.display()))?;
            if n == 0 {
                eof = true;
                break;
            }
            have += n;
        }
        if let Some(i) = memchr::memmem::find(&buf[..have], NEEDLE) {
            let rest = &buf[i + NEEDLE.len()..have];
            if let Some(end) = rest.iter().position(|&b| b == b' ' || b == 0) {
                return Ok(Some(String::from_utf8_lossy(&rest[..end]).into_owned()));
            }
        }
        if eof {
            return Ok(None);
        }
        // Keep a tail that may hold the start of the banner, and read on after it.
        let keep = 256.min(have);
        buf.copy_within(have - keep..have, 0);
        have = keep;
    }
}

/// Without `--symbols`: the built tree's vmlinux, else this machine's /proc/kallsyms when it runs
/// the target release.
fn default_symbols(kernel: &Kernel) -> anyhow::Result<PathBuf> {
    let vmlinux = kernel.kbuild.join("vmlinux");
    if vmlinux.exists() {
        return Ok(vmlinux);
    }
    let running = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    if running.trim() == kernel.release {
        return Ok(PathBuf::from("/proc/kallsyms"));
    }
    bail!(
        "no symbol listing for kernel {}: pass --symbols with its vmlinux, System.map, or a /proc/kallsyms \
         captured on a machine running it (as root, with kernel.kptr_restrict=0)",
        kernel.release
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_version_drops_local_suffixes() {
        assert_eq!(numeric_version("6.1.192"), "6.1.192");
        assert_eq!(numeric_version("7.2.13-dirty"), "7.2.13");
        assert_eq!(numeric_version("6.12.117+deb12"), "6.12.117");
    }

    #[test]
    fn io_reason_has_no_os_error_suffix() {
        let e = std::fs::metadata("/nonexistent/klp-build").unwrap_err();
        assert_eq!(io_reason(&e), "No such file or directory");
    }

    #[test]
    fn output_in_a_missing_directory_is_refused_before_anything_runs() {
        let e = check_output(Path::new("/nonexistent/dir/x.ko"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("-o /nonexistent/dir/x.ko") && e.contains("does not exist"),
            "{e}"
        );
        let d = tempfile::tempdir().unwrap();
        assert!(check_output(&d.path().join("x.ko")).is_ok());
        assert!(check_output(d.path())
            .unwrap_err()
            .to_string()
            .contains("is a directory"));
    }

    #[test]
    fn work_dir_that_is_a_file_is_refused() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = check_work_dir(f.path(), false).unwrap_err().to_string();
        assert!(e.contains("--work-dir") && e.contains("is a file"), "{e}");
        let e = check_work_dir(Path::new("/nonexistent/klp-tmp"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--resume-from"), "{e}");
    }
}
