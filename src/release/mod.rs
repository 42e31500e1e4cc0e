//! The release flow: one set of fixes, many kernels (docs/release.md). Input: a release file and
//! the `release` subcommand's options. Output: `scan`'s table, `build`'s output directory
//! (`index.json`, one directory per kernel with its module and report), `plan`'s CI job matrix,
//! `collect`'s merged release. Invariant: the release file and the output directory are checked
//! before anything is fetched or built; each target is built by the same stages as the build
//! command (a child `klp-build` per target, inside the target's build root when the host lacks
//! its compiler); outputs appear only when complete (a partial directory is removed on error or
//! Ctrl-C, and by the next run after a SIGKILL).

pub mod build;
pub mod cache;
pub mod ci;
pub mod debian;
pub mod index;
pub mod launcher;
pub mod lock;
pub mod progress;
pub mod scan;
pub mod spec;
pub mod target;

/// `klp-build release kernels`: the Debian kernel releases of the suites, one per line.
pub fn kernels(args: &crate::cli::ReleaseKernelsArgs) -> anyhow::Result<u8> {
    let suites: Vec<String> = if args.suites.is_empty() {
        spec::DEFAULT_SUITES.iter().map(|s| s.to_string()).collect()
    } else {
        args.suites.clone()
    };
    if args.flavour.is_empty()
        || !args
            .flavour
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        anyhow::bail!(
            "--flavour {:?}: a Debian kernel flavour such as amd64, cloud-amd64 or rt-amd64",
            args.flavour
        );
    }
    let cache = cache_dir()?;
    let mut log = |m: &str| eprintln!("klp-build: {m}");
    let list = debian::available(&cache, &debian::Suites(suites), &args.flavour, &mut log)?;
    let text = match args.report {
        crate::cli::ReportFormat::Json => serde_json::to_string_pretty(&list)? + "\n",
        crate::cli::ReportFormat::Text => list
            .iter()
            .map(|k| format!("{:<28} {:<24} {}\n", k.kernel_release, k.version, k.suite))
            .collect(),
    };
    build::print_out(&text)?;
    Ok(0)
}

pub use crate::cache::dir as cache_dir;
