//! Stages 4 and 5, resolve and emit: output objects -> a livepatch module.

pub mod clone;
