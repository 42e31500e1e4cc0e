//! `KLP_BUILD_STATE` of `klp-build.h` compiled by gcc, read back by
//! `emit::declarations::states`: the records land in a non-alloc section of the object, repeats
//! merge, conflicting versions are refused naming both objects, and id 0 fails the compile.
//! (`klp-build.h` includes `<linux/compiler.h>`, `<linux/gfp.h>`, `<linux/livepatch.h>` and
//! `<linux/syscalls.h>` for its other helpers; outside a kernel build those includes are
//! satisfied by empty files, the macro under test is the header's own. `kmod_build` and the
//! e2e fixes compile it with the kernel's flags.)

use std::path::{Path, PathBuf};
use std::process::Command;

use klp_build::contract::abi;
use klp_build::contract::spec::StateSpec;
use klp_build::emit::declarations;
use object::{Object, ObjectSection};

/// Compiles `text` as `name` with klp-build.h on the include path; `Err(stderr)` on failure.
fn compile(dir: &Path, name: &str, text: &str) -> Result<PathBuf, String> {
    let inc = dir.join("include");
    std::fs::create_dir_all(inc.join("linux")).unwrap();
    for (h, text) in [
        ("compiler.h", ""),
        ("gfp.h", ""),
        // The callback types name it.
        ("livepatch.h", "struct klp_object;\n"),
        ("syscalls.h", ""),
    ] {
        std::fs::write(inc.join("linux").join(h), text).unwrap();
    }
    std::fs::write(
        inc.join(kmod_template::KLP_BUILD_H_NAME),
        kmod_template::KLP_BUILD_H,
    )
    .unwrap();
    let src = dir.join(name);
    std::fs::write(&src, text).unwrap();
    let obj = src.with_extension("o");
    let out = Command::new("gcc")
        .args(["-std=gnu11", "-Wall", "-Werror", "-O2", "-c", "-I"])
        .arg(&inc)
        .arg("-o")
        .arg(&obj)
        .arg(&src)
        .output()
        .expect("run gcc (install gcc)");
    if out.status.success() {
        Ok(obj)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn declared_states_are_read_from_a_non_alloc_section() {
    let tmp = tempfile::tempdir().unwrap();
    let a = compile(
        tmp.path(),
        "a.c",
        r#"#include "klp-build.h"
#define SK_EXTRA_STATE 0x4b4c5001
KLP_BUILD_STATE(SK_EXTRA_STATE, 2);
KLP_BUILD_STATE(7, 0);
int fix_a(int x);
int fix_a(int x) { return x + 1; }
"#,
    )
    .unwrap();
    let b = compile(
        tmp.path(),
        "b.c",
        r#"#include "klp-build.h"
KLP_BUILD_STATE(7, 0);
KLP_BUILD_STATE((1 << 4) | 1, 4294967295);
"#,
    )
    .unwrap();
    let plain = compile(tmp.path(), "plain.c", "int plain(void) { return 0; }\n").unwrap();

    let data = std::fs::read(&a).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let section = file
        .section_by_name(abi::STATE_DECL_SECTION)
        .expect("no state section in a.o");
    let object::SectionFlags::Elf { sh_flags } = section.flags() else {
        panic!("not ELF flags")
    };
    assert_eq!(
        sh_flags & u64::from(object::elf::SHF_ALLOC),
        0,
        "{} must not be allocated",
        abi::STATE_DECL_SECTION
    );
    assert_eq!(section.size(), 2 * abi::STATE_SIZE);

    let states = declarations::states(&[a.clone(), plain, b.clone()]).unwrap();
    assert_eq!(
        states,
        [
            StateSpec { id: 7, version: 0 },
            StateSpec {
                id: 17,
                version: u32::MAX
            },
            StateSpec {
                id: 0x4b4c_5001,
                version: 2
            },
        ]
    );

    let c = compile(
        tmp.path(),
        "c.c",
        "#include \"klp-build.h\"\nKLP_BUILD_STATE(7, 1);\n",
    )
    .unwrap();
    let e = format!("{:#}", declarations::states(&[a, c]).unwrap_err());
    assert!(
        e.contains("state id 0x7") && e.contains("a.o") && e.contains("c.o"),
        "{e}"
    );
}

#[test]
fn state_id_zero_and_a_wide_version_fail_the_compile() {
    let tmp = tempfile::tempdir().unwrap();
    let e = compile(
        tmp.path(),
        "zero.c",
        "#include \"klp-build.h\"\nKLP_BUILD_STATE(0, 1);\n",
    )
    .unwrap_err();
    assert!(e.contains("state id 0 ends klp_patch.states"), "{e}");
    let e = compile(
        tmp.path(),
        "wide.c",
        "#include \"klp-build.h\"\nKLP_BUILD_STATE(3, 4294967296);\n",
    )
    .unwrap_err();
    assert!(e.contains("must fit 32 bits"), "{e}");
}
