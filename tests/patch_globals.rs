//! New globals shared between the objects of one patch: small C files compiled by gcc with the
//! kernel's flags (`testdata/cases/kernel-cflags`), diffed, and cloned into output objects.
//! Invariant checked: a new global function or variable stays global in its output object and is
//! carried even when nothing in its own file uses it; the object that uses it refers to it by name
//! and the resolve stage binds it in the module link; the same new name in two objects is refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use klp_build::contract::KlpObject;
use klp_build::diff;
use klp_build::elf::{Out, Symbol};
use klp_build::emit::out_object::{extract, new_globals};
use klp_build::emit::resolve::PatchGlobals;

fn flags() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases/kernel-cflags");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace().map(str::to_string))
        .filter(|f| !f.starts_with("-Werror"))
        .collect()
}

fn compile(dir: &Path, name: &str, src: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    let o = dir.join(format!("{name}.o"));
    std::fs::write(&c, src).unwrap();
    let out = Command::new("gcc")
        .args(flags())
        .arg("-c")
        .arg(&c)
        .arg("-o")
        .arg(&o)
        .output()
        .expect("gcc (apt-get install gcc)");
    assert!(
        out.status.success(),
        "gcc {name}.c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    o
}

/// Diffs `orig` against `patched`, both compiled in `dir`, as kernel object `object`.
fn diff_pair(
    dir: &Path,
    name: &str,
    orig: &str,
    patched: &str,
    obj: KlpObject,
) -> diff::ObjectDiff {
    let o = compile(dir, &format!("{name}-orig"), orig);
    let p = compile(dir, &format!("{name}-patched"), patched);
    diff::run(Path::new(&format!("{name}.o")), obj, &o, &p).expect("diff")
}

const DEFINER_ORIG: &str = "int keep(int v) { return v + 1; }\n";
const DEFINER_PATCHED: &str = "int keep(int v) { return v + 1; }\n\
    int klp_limit = 7;\n\
    int klp_count;\n\
    int klp_note(void) { return ++klp_count; }\n";
const USER_ORIG: &str = "int show(int v) { return v * 2; }\n";
const USER_PATCHED: &str = "extern int klp_limit; int klp_note(void);\n\
    int show(int v) { return v * 2 + klp_note() + klp_limit; }\n";

fn symbol<'a>(o: &'a klp_build::elf::ElfObject<Out>, name: &str) -> Option<&'a Symbol<Out>> {
    o.live_symbols().map(|(_, s)| s).find(|s| s.name == name)
}

#[test]
fn new_globals_stay_global_and_are_carried_although_their_file_does_not_use_them() {
    let t = tempfile::tempdir().unwrap();
    let d = diff_pair(
        t.path(),
        "definer",
        DEFINER_ORIG,
        DEFINER_PATCHED,
        KlpObject::Vmlinux,
    );
    let names: Vec<String> = new_globals(&d)
        .into_iter()
        .map(|s| d.patched.symbol(s).name.clone())
        .collect();
    assert!(names.contains(&"klp_limit".to_string()), "{names:?}");
    assert!(names.contains(&"klp_note".to_string()), "{names:?}");
    assert!(!names.contains(&"keep".to_string()), "{names:?}");
    let out = extract(&d, "0").map_err(|f| format!("{f:?}")).unwrap();
    for name in ["klp_limit", "klp_count", "klp_note"] {
        let s = symbol(&out.elf, name).unwrap_or_else(|| panic!("{name} not carried"));
        assert!(
            !s.is_undef() && !s.is_local(),
            "{name} must be a defined global: {s:?}"
        );
    }
}

#[test]
fn a_new_global_of_another_object_is_bound_by_the_module_link() {
    let t = tempfile::tempdir().unwrap();
    let definer = diff_pair(
        t.path(),
        "definer",
        DEFINER_ORIG,
        DEFINER_PATCHED,
        KlpObject::Vmlinux,
    );
    let user = diff_pair(
        t.path(),
        "user",
        USER_ORIG,
        USER_PATCHED,
        KlpObject::Vmlinux,
    );
    let globals = PatchGlobals::collect(&[definer, user])
        .map_err(|f| format!("{f:?}"))
        .unwrap();
    assert!(globals.defines("klp_note"));
    assert!(globals.defines("klp_limit"));
    assert!(
        !globals.defines("keep"),
        "an existing function is the kernel's"
    );
    // A module's object may use them too: they are in the same livepatch module.
    let user = diff_pair(
        t.path(),
        "user",
        USER_ORIG,
        USER_PATCHED,
        KlpObject::Module("nfsd".into()),
    );
    let out = extract(&user, "1").map_err(|f| format!("{f:?}")).unwrap();
    let externs: Vec<&str> = out.externs.iter().map(|e| e.name.as_str()).collect();
    assert!(
        externs.contains(&"klp_note") && externs.contains(&"klp_limit"),
        "{externs:?}"
    );
}

#[test]
fn the_same_new_global_in_two_objects_is_refused_naming_both() {
    let t = tempfile::tempdir().unwrap();
    let a = diff_pair(
        t.path(),
        "a",
        DEFINER_ORIG,
        DEFINER_PATCHED,
        KlpObject::Vmlinux,
    );
    let b = diff_pair(
        t.path(),
        "b",
        DEFINER_ORIG,
        DEFINER_PATCHED,
        KlpObject::Module("ext4".into()),
    );
    let refused = PatchGlobals::collect(&[a, b]).expect_err("two definitions of klp_note");
    let text: Vec<String> = refused.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|f| f.contains("b.o: klp_note") && f.contains("a.o defines klp_note as well")),
        "{text:#?}"
    );
}
