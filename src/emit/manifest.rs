//! The module's manifest: what is inside, for people and tools that only have the `.ko`. Input:
//! the stage values of a build. Output: JSON in a non-allocated `.klp_build.manifest` section of
//! the module. Invariant: the section is never loaded (no `SHF_ALLOC`), so the kernel ignores it
//! and a module's manifest can be read back byte for byte with any ELF tool
//! (`readelf -p .klp_build.manifest`, `objcopy --dump-section`).

use std::path::Path;

use anyhow::Context;
use object::elf;
use serde::{Deserialize, Serialize};

use crate::elf::{read_file, Any, Content, ElfObject, Section};

/// The section name.
pub const SECTION: &str = ".klp_build.manifest";

/// What a module holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// klp-build's version that made the module.
    pub tool_version: String,
    /// The kernel release it is built for (vermagic).
    pub kernel_release: String,
    /// Module name as the kernel knows it.
    pub name: String,
    /// Atomic replace (cumulative) or stacked.
    pub replace: bool,
    /// The fixes inside, in `--diff` order.
    pub fixes: Vec<ManifestFix>,
    /// The functions replaced.
    pub functions: Vec<ManifestFunc>,
}

/// One fix: a `--diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFix {
    /// The patch file's stem.
    pub name: String,
    /// sha256 of the patch file.
    pub sha256: String,
    /// Its subject line.
    pub subject: String,
}

/// One replaced function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFunc {
    /// `vmlinux` or the module name.
    pub object: String,
    /// The function's name in the kernel.
    pub name: String,
    /// Its sympos.
    pub sympos: u32,
}

/// Adds (or replaces) the manifest section of the module at `ko`.
pub fn attach(ko: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let mut obj: ElfObject<Any> = read_file(ko)?;
    if let Some(old) = obj.section_by_name(SECTION) {
        obj.section_mut(old).deleted = true;
    }
    let mut json = serde_json::to_vec_pretty(manifest)?;
    json.push(b'\n');
    obj.add_section(Section::new(
        SECTION,
        elf::SHT_PROGBITS,
        0,
        1,
        Content::Data(json),
    ));
    obj.write_to(ko)
        .with_context(|| format!("writing the manifest into {}", ko.display()))?;
    Ok(())
}

/// Reads the manifest of the module at `ko`.
pub fn read(ko: &Path) -> anyhow::Result<Manifest> {
    let obj: ElfObject<Any> = read_file(ko)?;
    let sec = obj.section_by_name(SECTION).with_context(|| {
        format!(
            "{}: no {SECTION} section; the module was not built by klp-build",
            ko.display()
        )
    })?;
    serde_json::from_slice(obj.data(sec))
        .with_context(|| format!("{}: malformed {SECTION}", ko.display()))
}
