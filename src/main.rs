//! klp-build: a kernel source diff in, a livepatch module out. This file is the table of contents
//! of the pipeline (design.md): target -> patch -> build -> diff -> resolve -> emit.

use std::process::ExitCode;

use clap::Parser;

use klp_build::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Diff(args)) => klp_build::run::diff_pair(args),
        Some(Command::Inspect(args)) => klp_build::run::inspect(args),
        None => klp_build::run::build_module(&cli.build),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("klp-build: error: {e:#}");
            klp_build::run::exit_code_of(&e).into()
        }
    }
}
