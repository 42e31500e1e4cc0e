//! klp-build: a kernel source diff in, a livepatch module out. Input: the command line. Output:
//! the module (or the diff, the manifest, the check) and an exit code: 0 built, 1 error, 2 usage,
//! 3 no functional change, 130 interrupted. The main job reads as three steps:
//!
//! 1. `Plan::resolve`: every default resolved and every option checked before anything slow
//!    (`src/plan.rs`);
//! 2. `pipeline::run`: the stages patch -> rebuild -> diff -> resolve -> emit, returning an
//!    `Outcome` (`src/pipeline.rs` has the table of stages);
//! 3. `present::outcome`: the report on stdout and the exit code (`src/present.rs`).

use std::process::ExitCode;

use clap::Parser;

use klp_build::cli::{Cli, Command};
use klp_build::{present, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        None => run::build(&cli.build),
        Some(Command::Diff(args)) => run::diff_pair(args),
        Some(Command::Inspect(args)) => klp_build::check::inspect(args),
        Some(Command::Check(args)) => klp_build::check::run(args),
        Some(Command::Release(args)) => run::release(args),
        Some(Command::Completions(args)) => klp_build::generate::completions(args),
        Some(Command::Man(args)) => klp_build::generate::man(args),
        Some(Command::Verify(args)) => klp_build::verify::run(args),
        Some(Command::Status(args)) => klp_build::status::run(args),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            if !present::is_quiet(&e) {
                eprintln!(
                    "klp-build: error: {}",
                    klp_build::text::message(&format!("{e:#}"))
                );
            }
            present::exit_code_of(&e).into()
        }
    }
}
