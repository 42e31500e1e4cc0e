//! klp-build: a kernel source diff in, a livepatch module out. Input: the command line. Output:
//! the module (or the diff, or the manifest) and an exit code: 0 built, 1 error, 2 usage, 3 no
//! functional change, 130 interrupted. The main job is the chain in `run::build_module`:
//!
//! | stage | value | code |
//! |---|---|---|
//! | 0 target | `Target` (source, kbuild dir, config, release; the tree prepared) | `target::resolve` |
//! | 1 patch | `PatchSet` (copies of the touched files, `#line`-fixed) | `patch::run` |
//! | 2 build | `BuiltObjects` (orig/patched `.o` pairs, klp object of each) | `build::run` |
//! | 3 diff | `ObjectDiff` per pair (changed and new functions, refusals) | `diff::run` |
//! | 4 resolve | `EmittedObject`s (output objects, bindings, klp relocation records) | `emit::module::objects` |
//! | 5 emit | `Module` (kbuild link, post-link `.klp.rela` rewrite, manifest) | `emit::module::module` |

use std::process::ExitCode;

use clap::Parser;

use klp_build::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Diff(args)) => klp_build::run::diff_pair(args),
        Some(Command::Inspect(args)) => klp_build::run::inspect(args),
        Some(Command::Check(_)) => Err(anyhow::anyhow!("check: not built into this klp-build yet")),
        None => klp_build::run::link_module(&cli.build),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("klp-build: error: {e:#}");
            klp_build::run::exit_code_of(&e).into()
        }
    }
}
