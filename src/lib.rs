//! klp-build: turns a kernel source diff into a loadable livepatch module.
//!
//! The pipeline is a chain of typed stages (`pipeline.rs` has the table): `plan` (options and the
//! `kernel`) -> `patch` -> `rebuild` -> `diff` -> `emit`. Each stage borrows the previous stage's
//! value and returns a new one; `present` prints the outcome; `main.rs` reads as the table of
//! contents.

pub mod cache;
pub mod check;
pub mod cli;
pub mod contract;
pub mod diff;
pub mod dry_run;
pub mod elf;
pub mod emit;
pub mod generate;
pub mod input;
pub mod kernel;
pub mod keys;
pub mod patch;
pub mod pipeline;
pub mod plan;
pub mod present;
pub mod progress;
pub mod rebuild;
pub mod release;
pub mod run;
pub mod schemas;
pub mod sign;
pub mod status;
pub mod stdout;
pub mod text;
pub mod verify;
pub mod workdir;
