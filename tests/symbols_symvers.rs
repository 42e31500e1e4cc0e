//! Exports of Debian's 6.1 kernel from its headers' `Module.symvers`: every line is read, and the
//! CRCs agree with what the distro's own modules recorded in their `__versions` sections when
//! they were built against that kernel (what the module loader checks with modversions).

mod support;

use std::path::Path;

use klp_build::kernel::symvers::Exports;
use object::{Object, ObjectSection};

/// `struct modversion_info { unsigned long crc; char name[MODULE_NAME_LEN]; }`, 64 bytes on x86_64.
fn versions(ko: &Path) -> Vec<(String, u32)> {
    let data = std::fs::read(ko).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let sec = file
        .section_by_name("__versions")
        .unwrap_or_else(|| panic!("{}: no __versions", ko.display()));
    sec.data()
        .unwrap()
        .chunks(64)
        .map(|e| {
            let crc = u64::from_le_bytes(e[..8].try_into().unwrap()) as u32;
            let name = &e[8..];
            let end = name.iter().position(|&b| b == 0).unwrap();
            (String::from_utf8(name[..end].to_vec()).unwrap(), crc)
        })
        .collect()
}

#[test]
fn debian_module_symvers() {
    let Some(lab) = support::lab("debian_module_symvers") else {
        return;
    };
    let path = lab.kbuild.join("Module.symvers");
    let exports = Exports::load(&path).unwrap();
    let lines = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(
        exports.len(),
        lines,
        "every line of {} is an export",
        path.display()
    );

    let printk = exports.get("_printk").expect("_printk is exported");
    assert_eq!(
        (
            printk.module.as_str(),
            printk.kind.as_str(),
            printk.object()
        ),
        ("vmlinux", "EXPORT_SYMBOL", "vmlinux".into())
    );
    // 6.1 exports `_printk`; `printk` is a macro around it.
    assert!(exports.get("printk").is_none());
    let klp = exports
        .get("klp_enable_patch")
        .expect("klp_enable_patch is exported");
    assert!(klp.is_gpl_only());
    let crc32c = exports.get("crc32c").expect("crc32c is exported");
    assert_eq!(
        (crc32c.module.as_str(), crc32c.object()),
        ("lib/libcrc32c", "libcrc32c".to_string())
    );
    assert!(
        exports.iter().any(|e| e.namespace == "CXL"),
        "namespaced exports are read"
    );

    // The distro's modules were built against these CRCs.
    for m in ["kernel/fs/minix/minix.ko", "kernel/fs/nilfs2/nilfs2.ko"] {
        let vers = versions(&lab.modules.join(m));
        assert!(vers.len() > 20, "{m}: {} __versions entries", vers.len());
        for (name, crc) in vers {
            let e = exports
                .get(&name)
                .unwrap_or_else(|| panic!("{m} uses {name}, which Module.symvers lacks"));
            assert_eq!(e.crc, crc, "{m}: CRC of {name}");
        }
    }
}
