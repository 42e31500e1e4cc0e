//! Command-line options, as parsed and validated by clap (raw, not yet resolved into a target).
//! Input: argv. Output: [`Cli`]. Invariant: option names match the documented interface; paths are
//! not checked here but by the target stage, which names what is missing.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A usage error: the command line asks for something impossible or incomplete (exit 2, like
/// clap's own usage errors).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Build a livepatch module from kernel source diffs, rebuilding only what they touch.
#[derive(Debug, Parser)]
#[command(name = "klp-build", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// A subcommand; without one, build a module from `--diff`.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of the main job.
    #[command(flatten)]
    pub build: BuildArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Diff one original/patched object pair and write the output object.
    Diff(DiffArgs),
    /// Print what a module built by klp-build holds (its manifest).
    Inspect(InspectArgs),
    /// Apply the kernel's load rules to a new module against deployed ones, before loading.
    Check(CheckArgs),
    /// One set of fixes for many kernels: scan, build, plan a CI matrix, collect its parts.
    Release(ReleaseArgs),
    /// Boot a kernel in QEMU, load the module, wait for its transition, run a check, unload.
    Verify(VerifyArgs),
    /// The livepatches of the running kernel, and what loading NEW.ko would do.
    Status(StatusArgs),
    /// Print a shell completion script, e.g. `klp-build completions bash > /etc/bash_completion.d/klp-build`.
    Completions(CompletionsArgs),
    /// Print the man page klp-build(1), or write every page (one per subcommand) into a directory.
    Man(ManArgs),
}

/// `klp-build verify MODULE.ko --kernel KERNEL`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The livepatch module to verify.
    pub module: PathBuf,
    /// The kernel to boot: a Debian kernel release as `uname -r` prints it (fetched into the
    /// release cache), a vmlinuz/bzImage file, or a built kernel tree.
    #[arg(long, value_name = "KERNEL")]
    pub kernel: String,
    /// The kernel's modules, for --with-module (default: the Debian kernel's, or the built
    /// tree's).
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// A module of the kernel to load before the livepatch, with what it depends on; repeatable.
    #[arg(long = "with-module", value_name = "NAME")]
    pub with_modules: Vec<String>,
    /// What the guest does and how long it may take.
    #[command(flatten)]
    pub guest: GuestArgs,
    /// Also write the guest's console here.
    #[arg(long, value_name = "FILE")]
    pub console: Option<PathBuf>,
    /// -q, -v.
    #[command(flatten)]
    pub loudness: Loudness,
    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub report: ReportFormat,
}

/// `klp-build status [NEW.ko]`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A livepatch module to predict the load of.
    pub module: Option<PathBuf>,
    /// Where the enabled patches' module files are (searched by module name, `.ko.xz` too);
    /// repeatable (default: /lib/modules/<release> and /var/lib/kpatch/<release>).
    #[arg(long = "modules", value_name = "DIR")]
    pub modules: Vec<PathBuf>,
    /// Read `sys/kernel/livepatch`, `proc/modules` and the module dirs under this directory
    /// instead of `/` (a container's view of its host, a mounted machine).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub report: ReportFormat,
}

/// The guest's options, shared by `verify` and `release verify`.
#[derive(Debug, Clone, Args)]
pub struct GuestArgs {
    /// A shell script run in the guest (busybox sh -e) after the module is enabled; a non-zero
    /// exit fails the verdict.
    #[arg(long, value_name = "SCRIPT")]
    pub check: Option<PathBuf>,
    /// A shell script run in the guest before the livepatch is loaded, e.g. to start tasks
    /// (with `&`) that use the patched functions during the transition.
    #[arg(long, value_name = "SCRIPT")]
    pub setup: Option<PathBuf>,
    /// How long the guest waits for each transition before it names the tasks that block it.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub transition_timeout: u32,
    /// The time limit of the whole boot, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub timeout: u32,
    /// QEMU's accelerator: kvm, tcg, or auto (kvm when /dev/kvm opens; the boot is run again
    /// under tcg when the guest never reaches /init under kvm).
    #[arg(long, value_enum, default_value_t)]
    pub accel: Accel,
    /// Appended to the guest kernel's command line (e.g. `module.sig_enforce=1`).
    #[arg(long, value_name = "ARGS")]
    pub append: Option<String>,
}

/// QEMU accelerators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Accel {
    /// KVM when it works, else TCG.
    #[default]
    Auto,
    /// Hardware virtualisation.
    Kvm,
    /// Software emulation.
    Tcg,
}

/// `klp-build completions SHELL`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell the script is for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `klp-build man [--dir DIR]`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write klp-build.1 and one page per subcommand (klp-build-release-build.1, ...) here instead.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `klp-build check NEW.ko --against A.ko [B.ko ...]`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The module to check.
    pub module: PathBuf,
    /// Livepatch modules enabled (or to be enabled) on the target before it, in load order.
    #[arg(long, value_name = "KO", num_args = 1.., required = true)]
    pub against: Vec<PathBuf>,
    /// A fix (by name) that a replaced predecessor carried and the new module may drop; repeatable.
    #[arg(long = "allow-drop", value_name = "NAME")]
    pub allow_drop: Vec<String>,
    /// Model loading the module with its `also_replace_sets=X[,Y]` parameter: the sets' enabled
    /// patches are replaced in the same transition (klp-build modules for kernels with
    /// `supersedes`).
    #[arg(long = "also-replace-sets", value_name = "SET", value_delimiter = ',')]
    pub also_replace_sets: Vec<u32>,
    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub report: ReportFormat,
}

/// `klp-build inspect MODULE.ko`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The livepatch module.
    pub module: PathBuf,
    /// Report format (json: the whole description, with a klp-build manifest as stored under
    /// `manifest`).
    #[arg(long, value_enum, default_value_t)]
    pub report: ReportFormat,
    /// Verify the module's signature against this X.509 certificate (PEM or DER): exit 1 unless
    /// the certificate's key signed exactly the bytes of the module before its signature.
    #[arg(long, value_name = "CERT")]
    pub verify_signature: Option<PathBuf>,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ReportFormat {
    /// Human-readable text on stdout.
    #[default]
    Text,
    /// One JSON document on stdout, for pipelines.
    Json,
}

/// Options of the main job: `klp-build --diff fix.patch ...`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// A patch to apply (unified diff, `git format-patch` or `diff -u`); repeatable, applied in order.
    #[arg(long = "diff", value_name = "FILE")]
    pub diffs: Vec<PathBuf>,
    /// Kernel source tree to rebuild single objects in.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub source: PathBuf,
    /// Tree to link the module against (default: --source when built, else `/lib/modules/<release>/build`).
    #[arg(long, value_name = "DIR")]
    pub kbuild: Option<PathBuf>,
    /// Kernel .config (default: the .config of --kbuild).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Symbols of the target kernel: an ELF vmlinux, or a System.map or /proc/kallsyms listing.
    #[arg(long, value_name = "FILE")]
    pub symbols: Option<PathBuf>,
    /// The target kernel's modules, searched for `<name>.ko` when a patch touches a loadable module
    /// that the symbol listing lacks (default: `/lib/modules/<release>`).
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// Module name (default: livepatch-<first patch's file stem>).
    #[arg(long)]
    pub name: Option<String>,
    /// Output module path (default: `<name>.ko` in the current directory).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Work directory for the stages' files.
    #[arg(long, value_name = "DIR", default_value = "klp-tmp")]
    pub work_dir: PathBuf,
    /// Keep the work directory after a successful build.
    #[arg(long)]
    pub keep_tmp: bool,
    /// Build every object with kbuild's make, original and patched, neither reading nor filling
    /// the object cache (`$KLP_BUILD_CACHE/objects`, else `~/.cache/klp-build/objects`). The cache
    /// holds each original with every input its build read and is used only when all of them are
    /// unchanged; its proven compile commands build the patched objects without kbuild's make.
    #[arg(long)]
    pub no_object_cache: bool,
    /// Reuse the completed stages before STAGE from a kept work dir (same patches, tree and
    /// config), e.g. `--resume-from diff` reuses the rebuilt objects.
    #[arg(long, value_enum, value_name = "STAGE")]
    pub resume_from: Option<crate::workdir::Stage>,
    /// Parallel jobs for make, 1 to 1024 (default: the number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N", allow_negative_numbers = true, value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub report: ReportFormat,
    /// The replace set the module occupies: it atomically replaces the enabled patch of this set
    /// and coexists with those of other sets (needs a kernel with replace sets; 0 on others means
    /// the default, a cumulative module).
    #[arg(long = "replace-set", visible_alias = "provides", value_name = "N")]
    pub replace_set: Option<u32>,
    /// Other replace sets whose enabled patches the module also replaces, in the same transition.
    #[arg(
        long,
        visible_alias = "obsoletes",
        value_name = "M[,M..]",
        value_delimiter = ','
    )]
    pub supersedes: Vec<u32>,
    /// Build a module that stacks on the enabled livepatches instead of replacing them (a hotfix
    /// beside a cumulative module, on kernels with `bool replace`).
    #[arg(long = "no-replace")]
    pub no_replace: bool,
    /// A `klp_state` the module declares, `ID[:VERSION]` (version 0 when omitted); repeatable.
    #[arg(long = "state", value_name = "ID[:VERSION]")]
    pub states: Vec<crate::contract::spec::StateSpec>,
    /// The module this release follows (a cumulative predecessor): apply `klp-build check` against
    /// it before building; repeatable.
    #[arg(long, value_name = "OLD.ko")]
    pub previous: Vec<PathBuf>,
    /// With --previous: a fix the predecessor carried that this release may drop; repeatable.
    #[arg(long = "allow-drop", value_name = "NAME")]
    pub allow_drop: Vec<String>,
    /// Sign the module with this key, a PEM file or a PKCS#11 URI (`pkcs11:...`), through the
    /// target's own scripts/sign-file and its CONFIG_MODULE_SIG_HASH (a key's passphrase or PIN
    /// comes from KBUILD_SIGN_PIN).
    #[arg(long, value_name = "KEY", requires = "sign_cert")]
    pub sign_key: Option<std::ffi::OsString>,
    /// The X.509 certificate of --sign-key (PEM or DER).
    #[arg(long, value_name = "CERT", requires = "sign_key")]
    pub sign_cert: Option<PathBuf>,
    /// -q, -v.
    #[command(flatten)]
    pub loudness: Loudness,
    /// Check the options and print the plan (files to rebuild and why, objects, replace mode,
    /// module name and path) without compiling or touching the tree.
    #[arg(long)]
    pub dry_run: bool,
}

impl BuildArgs {
    /// The verbosity `-q`/`-v` ask for.
    pub fn verbosity(&self) -> crate::progress::Verbosity {
        self.loudness.verbosity()
    }
}

/// `-q`/`-v`: how much a command says on stderr while it works; its result (stdout, the report)
/// is the same either way.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct Loudness {
    /// Say only errors and the result: no stage lines, notes or warnings on stderr (warnings stay
    /// in the report).
    #[arg(short = 'q', long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also say every command run (make, patch, qemu) on stderr.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

impl Loudness {
    /// The verbosity asked for.
    pub fn verbosity(&self) -> crate::progress::Verbosity {
        use crate::progress::Verbosity;
        match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (_, true) => Verbosity::Verbose,
            _ => Verbosity::Normal,
        }
    }
}

/// The most `-j` may ask for. GNU make writes one token per job into its jobserver pipe before it
/// starts, and blocks for good once the pipe (64 KiB) is full: `-j 65537` hangs silently. No kernel
/// build uses more than a few hundred jobs.
pub const MAX_JOBS: usize = 1024;

/// `-j N`: a whole number from 1 to [`MAX_JOBS`]; 0 and negative numbers are refused instead of
/// meaning something surprising.
fn parse_jobs(s: &str) -> Result<usize, String> {
    let bad = || {
        format!("give a whole number of parallel make jobs from 1 to {MAX_JOBS} (e.g. -j 8), or leave -j out for one per CPU")
    };
    match s.trim().parse::<i64>() {
        Ok(n) if (1..=MAX_JOBS as i64).contains(&n) => Ok(n as usize),
        Ok(_) => Err(format!("out of range: {}", bad())),
        Err(_) => Err(format!("not a number: {}", bad())),
    }
}

/// `klp-build diff ORIG.o PATCHED.o`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The object built from the original source.
    pub orig: PathBuf,
    /// The object built from the patched source.
    pub patched: PathBuf,
    /// Write the output object here.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The object is part of this module (default: vmlinux).
    #[arg(long, value_name = "NAME")]
    pub module: Option<String>,
    /// Explain why function FUNC counts as changed: the correlation rule, and the first
    /// differing instruction of each side (decoded) or relocation or special-section entry;
    /// writes no output object.
    #[arg(long, value_name = "FUNC")]
    pub explain: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub report: ReportFormat,
}

/// `klp-build release ...`: one set of fixes for many kernels (docs/release.md).
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// What to do with the release.
    #[command(subcommand)]
    pub command: ReleaseCommand,
}

/// The release's subcommands.
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Build every target's module: DIR/index.json and DIR/<kernel release>/<module>.ko.
    Build(ReleaseBuildArgs),
    /// Per target and fix: applies, already fixed, not affected by the config, or refused.
    Scan(ReleaseScanArgs),
    /// Write a CI job matrix: one `release build --target` job per target, then `collect`.
    Plan(ReleasePlanArgs),
    /// Merge the parts built by the plan's jobs into one release directory.
    Collect(ReleaseCollectArgs),
    /// List the Debian kernel releases the archive has, for `debian = ...` targets.
    Kernels(ReleaseKernelsArgs),
    /// What the release cache holds: kernels (size, last use), build roots, work dirs, stores.
    Cache(ReleaseCacheArgs),
    /// Remove Debian kernels (with their work dirs) from the cache; kernels a build holds are kept.
    Prune(ReleaseCachePruneArgs),
    /// Verify every built module of a release on its own kernel in QEMU (see `klp-build verify`).
    Verify(ReleaseVerifyArgs),
}

/// `klp-build release verify DIR`.
#[derive(Debug, Args)]
pub struct ReleaseVerifyArgs {
    /// The release's output directory (with its index.json).
    pub dir: PathBuf,
    /// The kernel of a target that is no Debian kernel: TARGET=KERNEL, KERNEL as `verify
    /// --kernel` takes it (an image or a built tree); repeatable.
    #[arg(long = "kernel", value_name = "TARGET=KERNEL")]
    pub kernels: Vec<String>,
    /// Guests booted at once (each takes a core under software emulation).
    #[arg(short = 'j', long, value_name = "N", default_value_t = 1)]
    pub jobs: usize,
    /// What the guest does and how long it may take.
    #[command(flatten)]
    pub guest: GuestArgs,
    /// -q: no line per verified target on stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub report: ReportFormat,
}

/// `klp-build release cache`.
#[derive(Debug, Args)]
pub struct ReleaseCacheArgs {
    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub report: ReportFormat,
}

/// Which kernels `release prune` removes.
#[derive(Debug, Args)]
pub struct ReleaseCachePruneArgs {
    /// A kernel release to remove (every cached package version of it); repeatable.
    #[arg(long = "kernel", value_name = "RELEASE")]
    pub kernels: Vec<String>,
    /// Remove kernels no build has used for this many days.
    #[arg(long = "unused-days", value_name = "N")]
    pub unused_days: Option<u32>,
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub report: ReportFormat,
}

/// `klp-build release kernels`.
#[derive(Debug, Args)]
pub struct ReleaseKernelsArgs {
    /// A suite to search; repeatable (default: bookworm, bookworm-security, trixie,
    /// trixie-security, sid).
    #[arg(long = "suite", value_name = "SUITE")]
    pub suites: Vec<String>,
    /// The kernel flavour.
    #[arg(long, default_value = "amd64")]
    pub flavour: String,
    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub report: ReportFormat,
}

/// `klp-build release build RELEASE.toml -o DIR`.
#[derive(Debug, Args)]
pub struct ReleaseBuildArgs {
    /// The release file.
    pub file: PathBuf,
    /// The output directory.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,
    /// Build only this target (a Debian kernel release or a tree's name); repeatable.
    #[arg(long = "target", value_name = "KERNEL")]
    pub targets: Vec<String>,
    /// Parallel jobs, shared by the targets built at once.
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub jobs: Option<u16>,
    /// Replace an output directory that holds another release.
    #[arg(long)]
    pub force: bool,
    /// Run every compile through this launcher (ccache, sccache, distcc), or `none`; default:
    /// ccache when it is installed.
    #[arg(long, value_name = "PROGRAM")]
    pub compiler_launcher: Option<String>,
    /// Report format (json: index.json).
    #[arg(long, value_enum, default_value_t)]
    pub report: ReportFormat,
}

/// `klp-build release scan RELEASE.toml`.
#[derive(Debug, Args)]
pub struct ReleaseScanArgs {
    /// The release file.
    pub file: PathBuf,
    /// Scan only this target; repeatable.
    #[arg(long = "target", value_name = "KERNEL")]
    pub targets: Vec<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub report: ReportFormat,
}

/// `klp-build release plan RELEASE.toml --format github|gitlab|json`.
#[derive(Debug, Args)]
pub struct ReleasePlanArgs {
    /// The release file.
    pub file: PathBuf,
    /// The CI system the matrix is written for.
    #[arg(long, value_enum, default_value_t)]
    pub format: PlanFormat,
    /// The directory `collect` writes the release to.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "DIR",
        default_value = "release"
    )]
    pub output: PathBuf,
}

/// CI systems `release plan` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum PlanFormat {
    /// One JSON document: jobs with their commands, then the collect command.
    #[default]
    Json,
    /// A `strategy.matrix` for GitHub Actions (`fromJSON` of this output).
    Github,
    /// A GitLab CI child pipeline with `parallel: matrix`.
    Gitlab,
}

/// `klp-build release collect PART... -o DIR`.
#[derive(Debug, Args)]
pub struct ReleaseCollectArgs {
    /// The parts' output directories (each with its index.json).
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    /// The merged release's directory.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,
    /// Replace an output directory that holds another release.
    #[arg(long)]
    pub force: bool,
}
