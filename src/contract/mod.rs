//! The contract between klp-build's stages and the modules they produce. Input: none (types and
//! their readers). Output: the build [`spec`] (what a module replaces, its set and states), the
//! [`manifest`] a module carries, and the [`abi`] of the module's C core. Invariant: every
//! command that reads or writes a module (build, check, release, status, verify) uses these types,
//! so a module one of them writes is one the others read.

pub mod abi;
pub mod manifest;
pub mod spec;
