//! The kbuild link of a module against a real kbuild dir (the installed Debian headers): a
//! replacement for `cmdline_proc_show` compiled by kbuild with the kernel's flags, the function
//! table, and the runtime core give a `.ko` that modinfo calls a livepatch for that kernel.
//! Needs the headers; skips with the reason otherwise (fails under CI=true).

mod kmod_support;

use std::path::Path;
use std::process::Command;

use klp_build::emit::abi;
use klp_build::emit::kbuild::{link_module, KmodInput, TABLES_OBJECT};
use klp_build::emit::spec::{ModuleSpec, ReplaceMode};
use klp_build::emit::tables::write_tables;
use kmod_support as kmod;

#[test]
fn builds_a_livepatch_module_with_kbuild() {
    let Some(kbuild) = kmod::kbuild_dir("builds_a_livepatch_module_with_kbuild") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let objects = kmod::compile_objects(&kbuild, &tmp.path().join("src"), kmod::CMDLINE_OBJECTS);

    let dir = tmp.path().join("module");
    std::fs::create_dir_all(&dir).unwrap();
    // Written inside the build dir, as the emit stage does: placing it must not truncate it.
    let tables = dir.join(TABLES_OBJECT);
    write_tables(&[kmod::cmdline_entry()], &tables).unwrap();
    let input = KmodInput {
        spec: &spec("livepatch-kmod-test", ReplaceMode::Atomic),
        objects: &objects,
        tables: &tables,
    };
    let ko = link_module(&kbuild, &dir, &input, 2).unwrap();
    assert_eq!(
        ko,
        dir.canonicalize().unwrap().join("livepatch-kmod-test.ko")
    );

    let info = modinfo(&ko);
    assert_eq!(
        info.get("livepatch"),
        Some(&"Y".to_string()),
        "modinfo {}",
        ko.display()
    );
    assert_eq!(info.get("name"), Some(&"livepatch_kmod_test".to_string()));
    assert_eq!(info.get("license"), Some(&"GPL".to_string()));
    let release = kmod::release(&kbuild);
    let vermagic = info.get("vermagic").map(String::as_str).unwrap_or("");
    assert_eq!(
        vermagic.split_whitespace().next(),
        Some(release.as_str()),
        "vermagic of {}",
        ko.display()
    );

    let syms = readelf(&ko, "-sW");
    let defined = |name: &str| {
        syms.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() == 8 && w[7] == name && w[6] != "UND" && w[4] == "GLOBAL"
        })
    };
    assert!(
        defined(abi::FUNCS_SYMBOL),
        "{} does not define {}:\n{syms}",
        ko.display(),
        abi::FUNCS_SYMBOL
    );
    assert!(
        defined(abi::NR_FUNCS_SYMBOL),
        "{} does not define {}",
        ko.display(),
        abi::NR_FUNCS_SYMBOL
    );
    assert!(
        defined(kmod::CMDLINE_NEW),
        "{} does not define {}",
        ko.display(),
        kmod::CMDLINE_NEW
    );
    let relocs = readelf(&ko, "-rW");
    let section = format!(".rela{}", abi::FUNCS_SECTION);
    let table_relocs = relocs
        .split("Relocation section")
        .find(|s| s.contains(&format!("'{section}'")));
    let table_relocs =
        table_relocs.unwrap_or_else(|| panic!("{} has no {section}:\n{relocs}", ko.display()));
    assert!(
        table_relocs.contains(kmod::CMDLINE_NEW),
        "new_func is not relocated to {}:\n{table_relocs}",
        kmod::CMDLINE_NEW
    );

    // A second build of the same input relinks nothing and gives the same module.
    let before = std::fs::read(&ko).unwrap();
    assert_eq!(link_module(&kbuild, &dir, &input, 2).unwrap(), ko);
    assert_eq!(
        std::fs::read(&ko).unwrap(),
        before,
        "rebuilding unchanged input changed the module"
    );
}

#[test]
fn failed_link_shows_make_output_and_the_kbuild_dir() {
    let Some(kbuild) = kmod::kbuild_dir("failed_link_shows_make_output_and_the_kbuild_dir") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("module");
    std::fs::create_dir_all(&dir).unwrap();
    let tables = dir.join(TABLES_OBJECT);
    // No object defines the replacement: modpost refuses the undefined symbol.
    write_tables(&[kmod::cmdline_entry()], &tables).unwrap();
    let input = KmodInput {
        spec: &spec("livepatch-broken", ReplaceMode::Stacked),
        objects: &[],
        tables: &tables,
    };
    let err = format!("{:#}", link_module(&kbuild, &dir, &input, 2).unwrap_err());
    assert!(
        err.contains(&kbuild.display().to_string()),
        "error does not name the kbuild dir:\n{err}"
    );
    assert!(
        err.contains(kmod::CMDLINE_NEW) && err.contains("undefined"),
        "error lacks modpost's message:\n{err}"
    );

    let err = format!(
        "{:#}",
        link_module(Path::new("/nonexistent/kbuild"), &dir, &input, 1).unwrap_err()
    );
    assert!(err.contains("/nonexistent/kbuild: no Makefile"), "{err}");
}

fn modinfo(ko: &Path) -> std::collections::BTreeMap<String, String> {
    let out = Command::new("modinfo")
        .arg(ko)
        .output()
        .expect("run modinfo (apt-get install kmod)");
    assert!(
        out.status.success(),
        "modinfo {}: {}",
        ko.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn readelf(file: &Path, args: &str) -> String {
    let out = Command::new("readelf")
        .arg(args)
        .arg(file)
        .output()
        .expect("run readelf");
    assert!(out.status.success(), "readelf {args} {}", file.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A module spec with no states.
fn spec(name: &str, replace: ReplaceMode) -> ModuleSpec {
    ModuleSpec {
        name: name.to_string(),
        replace,
        states: Vec::new(),
    }
}
