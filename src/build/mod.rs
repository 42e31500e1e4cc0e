//! Stage 2, build (being written).

/// The livepatch object that a rebuilt `.o` belongs to: `vmlinux`, or a module (its name with
/// `-` as `_`, as the kernel's `klp_object.name` wants it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
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
}
