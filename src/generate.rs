//! Shell completions and man pages, generated from the clap definition of [`crate::cli::Cli`].
//! Input: a shell, or where to put the man pages. Output: a completion script or roff on stdout,
//! or one `.1` page per command and subcommand in a directory. Invariant: nothing is written by
//! hand, so the scripts and pages name exactly the subcommands and options the parser takes.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};

/// The completion script for `shell`.
pub fn completions_for(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "klp-build", &mut out);
    out
}

/// The page `klp-build(1)`, in roff.
pub fn man_page() -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .context("rendering the man page")?;
    Ok(out)
}

/// Writes `klp-build.1` and one page per subcommand (`klp-build-release-build.1`, ...) into `dir`.
pub fn man_pages_to(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing the man pages to {}", dir.display()))
}

/// `klp-build completions SHELL`: the script on stdout.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<u8> {
    crate::stdout::write(&String::from_utf8_lossy(&completions_for(args.shell)))?;
    Ok(0)
}

/// `klp-build man [--dir DIR]`: `klp-build(1)` on stdout, or every page into DIR.
pub fn man(args: &ManArgs) -> anyhow::Result<u8> {
    match &args.dir {
        Some(dir) => man_pages_to(dir)?,
        None => crate::stdout::write(&String::from_utf8_lossy(&man_page()?))?,
    }
    Ok(0)
}
