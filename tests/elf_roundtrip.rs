//! The ELF model reads real kernel objects and writes them back unchanged: sections, symbols and
//! relocations compare equal in the model and in `readelf`'s view of both files.

mod kobj;
mod support;

use std::path::Path;
use std::process::Command;

use klp_build::elf::{read_file, Any, Content, ElfObject};

/// Objects with different shapes: a small builtin file, one with many static functions and
/// special sections (`__bug_table`, `__jump_table`, `.altinstructions`, `__ex_table`), a module object.
const OBJECTS: &[&str] = &[
    "fs/proc/cmdline.o",
    "fs/proc/base.o",
    "kernel/ksysfs.o",
    "fs/xfs/xfs_stats.o",
];

#[test]
fn roundtrip_real_kernel_objects() {
    let Some(lab) = support::lab("roundtrip_real_kernel_objects") else {
        return;
    };
    kobj::prepared(lab);
    let tmp = tempfile::tempdir().unwrap();
    for rel in OBJECTS {
        let path = kobj::kernel_object(&lab.src, &lab.dir, rel);
        let a: ElfObject<Any> = read_file(&path).unwrap();
        let out = tmp.path().join(rel.replace('/', "_"));
        a.write_to(&out).unwrap();
        let b: ElfObject<Any> = read_file(&out).unwrap();
        assert_same(rel, &a, &b);
        assert_eq!(
            readelf(&path),
            readelf(&out),
            "{rel}: readelf -rsW differs after the round trip"
        );
        assert!(
            a.sections().len() > 20 && a.symbols().len() > 10,
            "{rel}: suspiciously small object"
        );
    }
}

fn assert_same(rel: &str, a: &ElfObject<Any>, b: &ElfObject<Any>) {
    assert_eq!(
        a.sections().len(),
        b.sections().len(),
        "{rel}: section count"
    );
    for (sa, sb) in a.sections().iter().zip(b.sections()) {
        let n = &sa.name;
        assert_eq!(sa.name, sb.name, "{rel}: section name");
        assert_eq!(
            (sa.sh_type, sa.sh_flags, sa.sh_addralign),
            (sb.sh_type, sb.sh_flags, sb.sh_addralign),
            "{rel}: {n} header"
        );
        assert_eq!(sa.link, sb.link, "{rel}: {n} sh_link");
        match (&sa.content, &sb.content) {
            (Content::Data(x), Content::Data(y)) => {
                assert_eq!(x, y, "{rel}: {n} bytes");
                assert_eq!(sa.sh_entsize, sb.sh_entsize, "{rel}: {n} entsize");
            }
            (Content::Nobits(x), Content::Nobits(y)) => assert_eq!(x, y, "{rel}: {n} size"),
            (
                Content::Relocs {
                    target: ta,
                    relocs: ra,
                },
                Content::Relocs {
                    target: tb,
                    relocs: rb,
                },
            ) => {
                assert_eq!(ta, tb, "{rel}: {n} target");
                assert_eq!(ra, rb, "{rel}: {n} relocations");
            }
            (
                Content::Group {
                    members: ma,
                    signature: ga,
                    flags: fa,
                },
                Content::Group {
                    members: mb,
                    signature: gb,
                    flags: fb,
                },
            ) => {
                assert_eq!((ma, ga, fa), (mb, gb, fb), "{rel}: {n} group")
            }
            (x, y) => assert_eq!(
                std::mem::discriminant(x),
                std::mem::discriminant(y),
                "{rel}: {n} content kind"
            ),
        }
    }
    assert_eq!(a.symbols().len(), b.symbols().len(), "{rel}: symbol count");
    for (i, (x, y)) in a.symbols().iter().zip(b.symbols()).enumerate() {
        assert_eq!(
            (&x.name, x.st_info, x.st_other, x.section, x.st_value, x.st_size),
            (&y.name, y.st_info, y.st_other, y.section, y.st_value, y.st_size),
            "{rel}: symbol {i}"
        );
    }
}

/// `readelf`'s relocations and symbols, without the file offsets that legitimately move.
fn readelf(path: &Path) -> String {
    let out = Command::new("readelf")
        .args(["-W", "-r", "-s"])
        .arg(path)
        .output()
        .expect("run readelf");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("Relocation section"))
        .collect::<Vec<_>>()
        .join("\n")
}
