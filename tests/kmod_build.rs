//! The kbuild link of a module against a real kbuild dir (the installed Debian headers): a
//! replacement for `cmdline_proc_show` compiled by kbuild with the kernel's flags, the function
//! table, and the runtime core give a `.ko` that modinfo calls a livepatch for that kernel, with
//! the `klp_build_*` keys of its replace mode and states. The replace-set and provides variants
//! are linked against a copy of those headers whose `livepatch.h` has the variant's fields, and
//! the set, superseded sets and states are read back from the module's data.
//! Needs the headers; skips with the reason otherwise (fails under CI=true).

mod kmod_support;

use std::path::Path;
use std::process::Command;

use klp_build::contract::abi;
use klp_build::contract::spec::{ModuleSpec, ReplaceMode, ReplaceRequest, SetField, StateSpec};
use klp_build::emit::declarations;
use klp_build::emit::kbuild::{link_module, KmodInput, TABLES_OBJECT};
use klp_build::emit::tables::write_tables;
use klp_build::kernel::livepatch_api::ReplaceField;
use klp_build::progress::Quiet;
use kmod_support as kmod;
use object::{Object, ObjectSection, ObjectSymbol};

#[test]
fn builds_a_livepatch_module_with_kbuild() {
    let Some(kbuild) = kmod::kbuild_dir("builds_a_livepatch_module_with_kbuild") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut sources = kmod::CMDLINE_OBJECTS.to_vec();
    sources.push(STATE_DECL);
    let objects = kmod::compile_objects(&kbuild, &tmp.path().join("src"), &sources);
    // The declaration compiled with the kernel's flags (objtool included) is read back.
    let declared = declarations::states(&objects).unwrap();
    assert_eq!(
        declared,
        [StateSpec {
            id: 0x4b4c_5001,
            version: 2
        }]
    );
    let spec = ModuleSpec::new(
        "livepatch-kmod-test",
        &ReplaceRequest::default(),
        &[declared, vec![StateSpec { id: 9, version: 0 }]].concat(),
        kmod::livepatch_api(&kbuild),
    )
    .unwrap();
    assert_eq!(spec.replace, ReplaceMode::Atomic);

    let dir = tmp.path().join("module");
    std::fs::create_dir_all(&dir).unwrap();
    // Written inside the build dir, as the emit stage does: placing it must not truncate it.
    let tables = dir.join(TABLES_OBJECT);
    write_tables(&[kmod::cmdline_entry()], &tables).unwrap();
    let input = KmodInput {
        spec: &spec,
        objects: &objects,
        tables: &tables,
    };
    let ko = link_module(&kbuild, &dir, &input, 2, &[], &mut Quiet).unwrap();
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
    assert_eq!(
        info.get("klp_build_replace").map(String::as_str),
        Some("atomic")
    );
    assert_eq!(
        info.get("klp_build_states").map(String::as_str),
        Some("9:0,1263292417:2")
    );
    assert_eq!(info.get("klp_build_replace_set"), None);
    assert_eq!(info.get("klp_build_supersedes"), None);
    assert!(
        info.get("parm")
            .is_some_and(|p| p.starts_with("also_replace_sets:")),
        "modinfo {} has no also_replace_sets parameter: {info:?}",
        ko.display()
    );
    let spec_data = spec_table(&ko);
    assert_eq!(spec_data.set, 0);
    assert_eq!(
        spec_data.states,
        [(9, 0), (0x4b4c_5001, 2)],
        "states in {}",
        ko.display()
    );
    // The declaration's section never reaches the module: the kernel's module linker script
    // discards `.discard.*`.
    assert!(
        !readelf(&ko, "-SW").contains(abi::STATE_DECL_SECTION),
        "{} carries {}",
        ko.display(),
        abi::STATE_DECL_SECTION
    );
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
    assert_eq!(
        link_module(&kbuild, &dir, &input, 2, &[], &mut Quiet).unwrap(),
        ko
    );
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
        spec: &spec(&kbuild, "livepatch-broken", ReplaceMode::Stacked),
        objects: &[],
        tables: &tables,
    };
    let err = format!(
        "{:#}",
        link_module(&kbuild, &dir, &input, 2, &[], &mut Quiet).unwrap_err()
    );
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
        link_module(
            Path::new("/nonexistent/kbuild"),
            &dir,
            &input,
            1,
            &[],
            &mut Quiet
        )
        .unwrap_err()
    );
    assert!(err.contains("/nonexistent/kbuild: no Makefile"), "{err}");
}

/// A patched file that declares a state, as a fix's author would.
const STATE_DECL: (&str, &str) = (
    "state_decl.c",
    r#"#include "klp-build.h"

#define SK_EXTRA_STATE 0x4b4c5001
KLP_BUILD_STATE(SK_EXTRA_STATE, 2);
"#,
);

#[test]
fn stacked_module_says_so_in_modinfo() {
    let Some(kbuild) = kmod::kbuild_dir("stacked_module_says_so_in_modinfo") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let objects = kmod::compile_objects(&kbuild, &tmp.path().join("src"), kmod::CMDLINE_OBJECTS);
    let req = ReplaceRequest {
        no_replace: true,
        ..Default::default()
    };
    let spec =
        ModuleSpec::new("livepatch-stacked", &req, &[], kmod::livepatch_api(&kbuild)).unwrap();
    let ko = kmod_support::link(
        &kbuild,
        tmp.path(),
        &spec,
        &objects,
        &[kmod::cmdline_entry()],
    );
    let info = modinfo(&ko);
    assert_eq!(
        info.get("klp_build_replace").map(String::as_str),
        Some("stacked")
    );
    assert_eq!(info.get("klp_build_states"), None);
    let data = spec_table(&ko);
    assert_eq!(
        (data.set, data.states.len(), data.supersedes.len()),
        (0, 0, 0)
    );
}

#[test]
fn replace_set_module_carries_its_set_and_supersedes() {
    let test = "replace_set_module_carries_its_set_and_supersedes";
    let Some(kbuild) = kmod::kbuild_dir(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let headers = kmod::headers_with_livepatch_fields(
        &kbuild,
        &tmp.path().join("headers"),
        kmod::REPLACE_SET_FIELDS,
    );
    let api = kmod::livepatch_api(&headers);
    assert_eq!(
        (api.replace, api.supersedes_field),
        (ReplaceField::ReplaceSet, Some("supersedes"))
    );
    let objects = kmod::compile_objects(&headers, &tmp.path().join("src"), kmod::CMDLINE_OBJECTS);
    let req = ReplaceRequest {
        set: Some(2),
        supersedes: vec![3, 1],
        no_replace: false,
    };
    let states = [StateSpec { id: 5, version: 1 }];
    let spec = ModuleSpec::new("livepatch-set2", &req, &states, api).unwrap();
    // The kernel's own livepatch.h, edited, has no `replace` any more: the core compiles only
    // because it sets `replace_set` and `supersedes`.
    let ko = kmod_support::link(
        &headers,
        tmp.path(),
        &spec,
        &objects,
        &[kmod::cmdline_entry()],
    );
    let info = modinfo(&ko);
    assert_eq!(
        info.get("klp_build_replace").map(String::as_str),
        Some("set")
    );
    assert_eq!(
        info.get("klp_build_replace_set").map(String::as_str),
        Some("2")
    );
    assert_eq!(
        info.get("klp_build_supersedes").map(String::as_str),
        Some("1,3")
    );
    assert_eq!(
        info.get("klp_build_states").map(String::as_str),
        Some("5:1")
    );
    let data = spec_table(&ko);
    assert_eq!(data.set, 2, "klp_build_replace_set in {}", ko.display());
    assert_eq!(
        data.supersedes,
        [1, 3],
        "klp_build_supersedes in {}",
        ko.display()
    );
    assert_eq!(
        data.states,
        [(5, 1)],
        "klp_build_states in {}",
        ko.display()
    );
    assert_core_uses(&ko, &["klp_build_replace_set", "klp_build_supersedes"]);
}

#[test]
fn provides_module_carries_its_set() {
    let Some(kbuild) = kmod::kbuild_dir("provides_module_carries_its_set") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let headers = kmod::headers_with_livepatch_fields(
        &kbuild,
        &tmp.path().join("headers"),
        "unsigned int provides;\n\tconst unsigned int *obsoletes;\n\tunsigned int nr_obsoletes;",
    );
    let api = kmod::livepatch_api(&headers);
    let objects = kmod::compile_objects(&headers, &tmp.path().join("src"), kmod::CMDLINE_OBJECTS);
    let req = ReplaceRequest {
        set: Some(4),
        ..Default::default()
    };
    let spec = ModuleSpec::new("livepatch-provides4", &req, &[], api).unwrap();
    assert!(matches!(
        spec.replace,
        ReplaceMode::Set {
            field: SetField::Provides,
            set: 4,
            ..
        }
    ));
    let ko = kmod_support::link(
        &headers,
        tmp.path(),
        &spec,
        &objects,
        &[kmod::cmdline_entry()],
    );
    let info = modinfo(&ko);
    assert_eq!(
        info.get("klp_build_replace").map(String::as_str),
        Some("set")
    );
    assert_eq!(
        info.get("klp_build_replace_set").map(String::as_str),
        Some("4")
    );
    assert_eq!(info.get("klp_build_supersedes"), None);
    let data = spec_table(&ko);
    assert_eq!((data.set, data.supersedes.len()), (4, 0));
    assert_core_uses(&ko, &["klp_build_replace_set"]);
}

/// What the spec table of a linked module holds.
struct SpecData {
    set: u32,
    states: Vec<(u64, u32)>,
    supersedes: Vec<u32>,
}

/// Reads `klp_build_replace_set`, `klp_build_states[]` and `klp_build_supersedes[]` from the
/// module's symbols and section data: what the core will put in `struct klp_patch`.
fn spec_table(ko: &Path) -> SpecData {
    let bytes = std::fs::read(ko).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let read = |name: &str| -> Vec<u8> {
        let sym = file
            .symbols()
            .find(|s| s.name() == Ok(name))
            .unwrap_or_else(|| panic!("{}: no symbol {name}", ko.display()));
        let section = file
            .section_by_index(sym.section_index().expect("defined"))
            .unwrap();
        assert_eq!(
            section.name(),
            Ok(abi::SPEC_SECTION),
            "{name} in {}",
            ko.display()
        );
        let data = section.data().unwrap();
        let start = (sym.address() - section.address()) as usize;
        data[start..start + sym.size() as usize].to_vec()
    };
    let u32s = |b: Vec<u8>| -> Vec<u32> {
        b.chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let states = read(abi::STATES_SYMBOL)
        .chunks_exact(abi::STATE_SIZE as usize)
        .map(|r| {
            (
                u64::from_le_bytes(r[0..8].try_into().unwrap()),
                u32::from_le_bytes(r[8..12].try_into().unwrap()),
            )
        })
        .collect();
    let nr_states = u32s(read(abi::NR_STATES_SYMBOL))[0];
    let nr_supersedes = u32s(read(abi::NR_SUPERSEDES_SYMBOL))[0];
    let data = SpecData {
        set: u32s(read(abi::REPLACE_SET_SYMBOL))[0],
        states,
        supersedes: u32s(read(abi::SUPERSEDES_SYMBOL)),
    };
    assert_eq!(data.states.len(), nr_states as usize);
    assert_eq!(data.supersedes.len(), nr_supersedes as usize);
    data
}

/// The core's code refers to `symbols` (relocations of its `.init.text`): the set and the list
/// are read from the table, not compiled in.
fn assert_core_uses(ko: &Path, symbols: &[&str]) {
    let relocs = readelf(ko, "-rW");
    let init = relocs
        .split("Relocation section")
        .find(|s| s.contains("'.rela.init.text'"))
        .unwrap_or_else(|| panic!("{} has no .rela.init.text:\n{relocs}", ko.display()));
    for s in symbols {
        assert!(
            init.contains(s),
            "the core's init code in {} does not read {s}:\n{init}",
            ko.display()
        );
    }
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
fn spec(kbuild: &Path, name: &str, replace: ReplaceMode) -> ModuleSpec {
    ModuleSpec {
        name: name.to_string(),
        replace,
        states: Vec::new(),
        api: kmod::livepatch_api(kbuild),
    }
}
