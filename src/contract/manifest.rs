//! The module's manifest: what is inside, for people and tools that only have the `.ko`. Input:
//! the stage values of a build. Output: JSON in a non-allocated `.klp_build.manifest` section of
//! the module. Invariant: the section is never loaded (no `SHF_ALLOC`), so the kernel ignores it
//! and a module's manifest can be read back byte for byte with any ELF tool
//! (`readelf -p .klp_build.manifest`, `objcopy --dump-section`).

use std::path::Path;

use anyhow::Context;
use object::elf;
use serde::{Deserialize, Serialize};

use super::spec::{ReplaceMode, StateSpec};
use crate::elf::{read_file, Any, Content, ElfObject, Section};
use crate::patch::Fix;

/// The section name.
pub const SECTION: &str = ".klp_build.manifest";

/// The manifest layout's version: 1 had `replace: bool` and no states; 2 has the replace mode as
/// an object (`{"mode": "atomic"}`, `{"mode": "set", "set": 1, ...}`) and `states`. [`read`]
/// takes both.
pub const SCHEMA_VERSION: u32 = 2;

/// What a module holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Manifest {
    /// [`SCHEMA_VERSION`] of the klp-build that wrote it.
    #[schemars(extend("const" = SCHEMA_VERSION))]
    pub schema_version: u32,
    /// klp-build's version that made the module.
    pub tool_version: String,
    /// The kernel release it is built for (vermagic).
    pub kernel_release: String,
    /// Module name as the kernel knows it.
    pub name: String,
    /// Atomic replace (cumulative), stacked, or a replace set.
    pub replace: ReplaceMode,
    /// The `klp_state`s it declares.
    #[serde(default)]
    pub states: Vec<StateSpec>,
    /// The fixes inside, in `--diff` order.
    pub fixes: Vec<Fix>,
    /// The functions replaced.
    pub functions: Vec<ManifestFunc>,
}

/// One replaced function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    parse(obj.data(sec)).with_context(|| format!("{}: malformed {SECTION}", ko.display()))
}

/// Parses a manifest of any schema version up to [`SCHEMA_VERSION`]; version 1 (no
/// `schema_version`, `replace: true|false`) is read as atomic or stacked.
pub fn parse(bytes: &[u8]) -> anyhow::Result<Manifest> {
    let mut v: serde_json::Value = serde_json::from_slice(bytes)?;
    let obj = v.as_object_mut().context("not a JSON object")?;
    let version = match obj.get("schema_version") {
        None => 1,
        Some(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .context("schema_version is not a number")?,
    };
    if version > SCHEMA_VERSION {
        anyhow::bail!(
            "schema_version {version} is newer than this klp-build's {SCHEMA_VERSION}; use a newer klp-build"
        );
    }
    if version == 1 {
        let replace = obj
            .get("replace")
            .and_then(serde_json::Value::as_bool)
            .context("version 1 without `replace`")?;
        let mode = if replace { "atomic" } else { "stacked" };
        obj.insert("replace".into(), serde_json::json!({ "mode": mode }));
        obj.insert("schema_version".into(), 1.into());
    }
    Ok(serde_json::from_value(v)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_manifest_reads_as_atomic_or_stacked() {
        let v1 =
            br#"{"tool_version":"0.1.0","kernel_release":"6.1.0-56-amd64","name":"livepatch_x",
            "replace":true,"fixes":[],"functions":[]}"#;
        let m = parse(v1).unwrap();
        assert_eq!(
            (m.schema_version, m.replace, m.states.len()),
            (1, ReplaceMode::Atomic, 0)
        );
        let stacked = String::from_utf8_lossy(v1).replace("true", "false");
        assert_eq!(
            parse(stacked.as_bytes()).unwrap().replace,
            ReplaceMode::Stacked
        );
    }

    #[test]
    fn version_2_round_trips_a_replace_set() {
        let m = Manifest {
            schema_version: SCHEMA_VERSION,
            tool_version: "0.1.0".into(),
            kernel_release: "6.12.0".into(),
            name: "klp_1a".into(),
            replace: ReplaceMode::Set {
                field: super::super::spec::SetField::ReplaceSet,
                set: 1,
                supersedes: vec![2],
            },
            states: vec![StateSpec { id: 7, version: 2 }],
            fixes: vec![],
            functions: vec![],
        };
        let json = serde_json::to_vec(&m).unwrap();
        assert!(String::from_utf8_lossy(&json).contains(
            r#""replace":{"mode":"set","field":"replace_set","set":1,"supersedes":[2]}"#
        ));
        assert_eq!(parse(&json).unwrap(), m);
    }

    #[test]
    fn a_newer_schema_is_refused_with_the_fix() {
        let e = parse(br#"{"schema_version":99}"#).unwrap_err().to_string();
        assert!(
            e.contains("newer") && e.contains("use a newer klp-build"),
            "{e}"
        );
    }
}
