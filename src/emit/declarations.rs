//! Declarations that patch authors write in the patched source with the macros of `klp-build.h`,
//! read back from the patched objects. Input: the patched `.o` files. Output: the states they
//! declare (`KLP_BUILD_STATE(id, version)`), merged. Invariant: every record is checked (size,
//! reserved field, id not 0) and one id declared with two versions is refused naming both
//! objects, so what reaches `klp_patch.states` is what the author wrote, once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use object::{Object, ObjectSection};

use crate::contract::abi;
use crate::contract::spec::StateSpec;

/// The states declared by `KLP_BUILD_STATE` in `patched_objects`, sorted by id, repeats of the
/// same (id, version) merged. Objects without the section declare nothing.
pub fn states(patched_objects: &[PathBuf]) -> anyhow::Result<Vec<StateSpec>> {
    let mut seen: BTreeMap<u64, (u32, &Path)> = BTreeMap::new();
    for path in patched_objects {
        let data = crate::input::read(path, crate::input::Kind::Object, "")?;
        for st in object_states(path, &data)? {
            match seen.get(&st.id) {
                Some((v, first)) if *v != st.version => bail!(
                    "state id {:#x} is declared with version {v} in {} and with version {} in {}; a module \
                     carries one version of each state: make the KLP_BUILD_STATE declarations agree",
                    st.id,
                    first.display(),
                    st.version,
                    path.display()
                ),
                Some(_) => {}
                None => {
                    seen.insert(st.id, (st.version, path));
                }
            }
        }
    }
    Ok(seen
        .into_iter()
        .map(|(id, (version, _))| StateSpec { id, version })
        .collect())
}

/// The records of [`abi::STATE_DECL_SECTION`] in one object's bytes.
fn object_states(path: &Path, data: &[u8]) -> anyhow::Result<Vec<StateSpec>> {
    let file = object::File::parse(data).with_context(|| {
        format!(
            "{}: not an ELF object; the patched objects come from the patched build",
            path.display()
        )
    })?;
    let Some(section) = file.section_by_name(abi::STATE_DECL_SECTION) else {
        return Ok(Vec::new());
    };
    let what = format!("{}: section {}", path.display(), abi::STATE_DECL_SECTION);
    if section.relocations().next().is_some() {
        bail!(
            "{what} has relocations: a KLP_BUILD_STATE id and version must be integer constants \
             (a literal or a macro that expands to one)"
        );
    }
    let bytes = section
        .data()
        .with_context(|| format!("{what}: reading its contents"))?;
    if !(bytes.len() as u64).is_multiple_of(abi::STATE_SIZE) {
        bail!(
            "{what}: {} bytes, not a whole number of {}-byte records; was it written by another \
             klp-build.h? Rebuild with this klp-build's header",
            bytes.len(),
            abi::STATE_SIZE
        );
    }
    let mut out = Vec::new();
    for (i, rec) in bytes.chunks_exact(abi::STATE_SIZE as usize).enumerate() {
        let at = i as u64 * abi::STATE_SIZE;
        let field = |off: u64, len: usize| -> &[u8] { &rec[off as usize..off as usize + len] };
        let id = u64::from_le_bytes(field(abi::STATE_ID, 8).try_into().unwrap_or([0; 8]));
        let version = u32::from_le_bytes(field(abi::STATE_VERSION, 4).try_into().unwrap_or([0; 4]));
        let reserved = field(abi::STATE_VERSION + 4, 4);
        if reserved != [0; 4] {
            bail!(
                "{what}+{at:#x}: the reserved field is not 0; the record was not written by \
                 KLP_BUILD_STATE of this klp-build's header"
            );
        }
        if id == 0 {
            bail!(
                "{what}+{at:#x}: state id 0 ends the kernel's klp_patch.states array; use a non-zero id"
            );
        }
        out.push(StateSpec { id, version });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object_with(section: &[u8]) -> Vec<u8> {
        use object::write;
        let mut obj = write::Object::new(
            object::BinaryFormat::Elf,
            object::Architecture::X86_64,
            object::Endianness::Little,
        );
        let s = obj.add_section(
            Vec::new(),
            abi::STATE_DECL_SECTION.as_bytes().to_vec(),
            object::SectionKind::Other,
        );
        obj.append_section_data(s, section, 8);
        obj.write().unwrap()
    }

    fn record(id: u64, version: u32, reserved: u32) -> Vec<u8> {
        let mut v = id.to_le_bytes().to_vec();
        v.extend_from_slice(&version.to_le_bytes());
        v.extend_from_slice(&reserved.to_le_bytes());
        v
    }

    #[test]
    fn bad_records_are_refused_with_the_offset() {
        let p = Path::new("x.o");
        let e = format!(
            "{:#}",
            object_states(p, &object_with(&[0; 12])).unwrap_err()
        );
        assert!(e.contains("12 bytes"), "{e}");
        let mut two = record(5, 1, 0);
        two.extend(record(0, 1, 0));
        let e = format!("{:#}", object_states(p, &object_with(&two)).unwrap_err());
        assert!(e.contains("+0x10: state id 0"), "{e}");
        let e = format!(
            "{:#}",
            object_states(p, &object_with(&record(5, 1, 9))).unwrap_err()
        );
        assert!(e.contains("reserved"), "{e}");
        assert!(object_states(p, b"not elf").is_err());
    }

    #[test]
    fn records_read_in_order() {
        let mut two = record(0x4b4c_5001, 2, 0);
        two.extend(record(3, 0, 0));
        assert_eq!(
            object_states(Path::new("x.o"), &object_with(&two)).unwrap(),
            [
                StateSpec {
                    id: 0x4b4c_5001,
                    version: 2
                },
                StateSpec { id: 3, version: 0 }
            ]
        );
    }
}
