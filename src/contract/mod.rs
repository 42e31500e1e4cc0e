//! The contract between klp-build's stages and the modules they produce. Input: none (types and
//! their readers). Output: the build [`spec`] (what a module replaces, its set and states), the
//! [`manifest`] a module carries, and the [`abi`] of the module's C core. Invariant: every
//! command that reads or writes a module (build, check, release, status, verify) uses these types,
//! so a module one of them writes is one the others read.

pub mod abi;
pub mod manifest;
pub mod spec;

/// The layout version of the build's JSON report (built, not built, or a dry run), as its
/// `schema_version` says and `schemas/report.schema.json` describes.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// The livepatch object that a rebuilt `.o` belongs to: `vmlinux`, or a module (its name with
/// `-` as `_`, as the kernel's `klp_object.name` wants it).
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum KlpObject {
    /// Built into the kernel image (`-DMODULE` absent from its compile command).
    Vmlinux,
    /// Part of a loadable module: `KBUILD_MODNAME` of its compile command.
    Module(String),
}

impl KlpObject {
    /// The name used in `.klp.sym.<obj>.` and `.klp.rela.<obj>.`: `vmlinux` or the module name.
    pub fn name(&self) -> &str {
        match self {
            KlpObject::Vmlinux => "vmlinux",
            KlpObject::Module(m) => m,
        }
    }

    /// The module's name, `None` for vmlinux: what `klp_object.name` holds (NULL for vmlinux).
    pub fn module_name(&self) -> Option<&str> {
        match self {
            KlpObject::Vmlinux => None,
            KlpObject::Module(m) => Some(m),
        }
    }
}
