//! klp-build: turns a kernel source diff into a loadable livepatch module.
//!
//! The pipeline is a chain of typed stages (see `../shared/docs/design.md`): `target` -> `patch`
//! -> `build` -> `diff` -> `emit`. Each stage borrows the previous stage's value and returns a new
//! one; `main.rs` reads as the table of contents.

pub mod cli;
pub mod diff;
pub mod elf;
pub mod emit;
pub mod kernel;
pub mod patch;
pub mod rebuild;
pub mod run;
