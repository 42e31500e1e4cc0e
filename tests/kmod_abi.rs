//! The table ABI seen from C: gcc compiles `klp_build_abi.h` (as embedded in the
//! `kmod-template` crate) and its sizes, offsets, names and mode numbers must equal
//! `src/contract/abi.rs`; a `klp_tables.o` and a `klp_spec.o` written by `src/emit/tables.rs`, linked
//! into a C program that reads them through that header, must give back the entries (sorted by
//! object), the set, the states and the superseded sets.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use klp_build::contract::abi;
use klp_build::contract::spec::{ModuleSpec, ReplaceMode, SetField, StateSpec};
use klp_build::emit::tables::{write_spec, write_tables, FuncEntry};
use klp_build::kernel::livepatch_api::{LivepatchApi, ReplaceField};

/// Compiles and runs `main_c` with the ABI header beside it and `extra` objects; returns stdout.
fn run_c(dir: &Path, main_c: &str, extra: &[&Path]) -> String {
    std::fs::write(dir.join(kmod_template::ABI_H_NAME), kmod_template::ABI_H).unwrap();
    std::fs::write(dir.join("main.c"), main_c).unwrap();
    let exe = dir.join("main");
    // -no-pie: the table holds absolute pointers in a read-only section, as in a kernel module.
    let out = Command::new("gcc")
        .args(["-std=gnu11", "-Wall", "-Werror", "-no-pie", "-o"])
        .arg(&exe)
        .arg(dir.join("main.c"))
        .args(extra)
        .output()
        .expect("run gcc (install gcc)");
    assert!(
        out.status.success(),
        "gcc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    assert!(run.status.success(), "{} failed", exe.display());
    String::from_utf8(run.stdout).unwrap()
}

#[test]
fn c_header_matches_abi_rs() {
    let tmp = tempfile::tempdir().unwrap();
    let main_c = r#"
#include <stdio.h>
#include <stddef.h>
#include "klp_build_abi.h"
#define OFF(f) printf(#f " %zu\n", offsetof(struct klp_build_func, f))
int main(void)
{
	printf("size %zu\n", sizeof(struct klp_build_func));
	printf("align %zu\n", _Alignof(struct klp_build_func));
	OFF(objname); OFF(old_name); OFF(new_func); OFF(old_sympos);
	printf("sizeof_nr %zu\n", sizeof(klp_build_nr_funcs));
	printf("sympos_size %zu\n", sizeof(((struct klp_build_func *)0)->old_sympos));
	printf("funcs_section %s\n", KLP_BUILD_FUNCS_SECTION);
	printf("strings_section %s\n", KLP_BUILD_STRINGS_SECTION);
	printf("funcs_symbol %s\n", KLP_BUILD_FUNCS_SYMBOL);
	printf("nr_funcs_symbol %s\n", KLP_BUILD_NR_FUNCS_SYMBOL);
	printf("config_header %s\n", KLP_BUILD_CONFIG_HEADER);
	printf("state_size %zu\n", sizeof(struct klp_build_state));
	printf("state_align %zu\n", _Alignof(struct klp_build_state));
	printf("state_id %zu\n", offsetof(struct klp_build_state, id));
	printf("state_version %zu\n", offsetof(struct klp_build_state, version));
	printf("state_id_size %zu\n", sizeof(((struct klp_build_state *)0)->id));
	printf("sizeof_replace_set %zu\n", sizeof(klp_build_replace_set));
	printf("sizeof_supersedes_entry %zu\n", sizeof(klp_build_supersedes[0]));
	printf("spec_section %s\n", KLP_BUILD_SPEC_SECTION);
	printf("state_decl_section %s\n", KLP_BUILD_STATE_DECL_SECTION);
	printf("param %s\n", KLP_BUILD_PARAM_ALSO_REPLACE_SETS);
	printf("mode_stacked %d\n", KLP_BUILD_MODE_STACKED);
	printf("mode_atomic %d\n", KLP_BUILD_MODE_ATOMIC);
	printf("mode_replace_set %d\n", KLP_BUILD_MODE_REPLACE_SET);
	printf("mode_provides %d\n", KLP_BUILD_MODE_PROVIDES);
	printf("cb_size %zu\n", sizeof(struct klp_build_callback));
	printf("cb_objname %zu\n", offsetof(struct klp_build_callback, objname));
	printf("cb_kind %zu\n", offsetof(struct klp_build_callback, kind));
	printf("cb_fn %zu\n", offsetof(struct klp_build_callback, fn));
	printf("cb_kind_size %zu\n", sizeof(((struct klp_build_callback *)0)->kind));
	printf("sizeof_nr_callbacks %zu\n", sizeof(klp_build_nr_callbacks));
	printf("callbacks_section %s\n", KLP_BUILD_CALLBACKS_SECTION);
	printf("callbacks_symbol %s\n", KLP_BUILD_CALLBACKS_SYMBOL);
	printf("nr_callbacks_symbol %s\n", KLP_BUILD_NR_CALLBACKS_SYMBOL);
	printf("callback_ptrs_section %s\n", KLP_BUILD_CALLBACK_PTRS_SECTION);
	printf("cb_kinds %d %d %d %d\n", KLP_BUILD_CB_PRE_PATCH, KLP_BUILD_CB_POST_PATCH,
	       KLP_BUILD_CB_PRE_UNPATCH, KLP_BUILD_CB_POST_UNPATCH);
	return 0;
}
"#;
    // The header's externs appear only under `sizeof`, which does not evaluate them, so this
    // program links without a table.
    let out = run_c(tmp.path(), main_c, &[]);
    let got: BTreeMap<&str, &str> = out.lines().filter_map(|l| l.split_once(' ')).collect();
    let want: BTreeMap<&str, String> = [
        ("size", abi::FUNC_SIZE.to_string()),
        ("align", abi::FUNC_ALIGN.to_string()),
        ("objname", abi::FUNC_OBJNAME.to_string()),
        ("old_name", abi::FUNC_OLD_NAME.to_string()),
        ("new_func", abi::FUNC_NEW_FUNC.to_string()),
        ("old_sympos", abi::FUNC_OLD_SYMPOS.to_string()),
        ("sizeof_nr", "4".to_string()),
        ("sympos_size", "8".to_string()),
        ("funcs_section", abi::FUNCS_SECTION.to_string()),
        ("strings_section", abi::FUNC_STRINGS_SECTION.to_string()),
        ("funcs_symbol", abi::FUNCS_SYMBOL.to_string()),
        ("nr_funcs_symbol", abi::NR_FUNCS_SYMBOL.to_string()),
        ("config_header", abi::CONFIG_HEADER.to_string()),
        ("state_size", abi::STATE_SIZE.to_string()),
        ("state_align", abi::STATE_ALIGN.to_string()),
        ("state_id", abi::STATE_ID.to_string()),
        ("state_version", abi::STATE_VERSION.to_string()),
        ("state_id_size", "8".to_string()),
        ("sizeof_replace_set", "4".to_string()),
        ("sizeof_supersedes_entry", "4".to_string()),
        ("spec_section", abi::SPEC_SECTION.to_string()),
        ("state_decl_section", abi::STATE_DECL_SECTION.to_string()),
        ("param", abi::PARAM_ALSO_REPLACE_SETS.to_string()),
        ("mode_stacked", abi::MODE_STACKED.to_string()),
        ("mode_atomic", abi::MODE_ATOMIC.to_string()),
        ("mode_replace_set", abi::MODE_REPLACE_SET.to_string()),
        ("mode_provides", abi::MODE_PROVIDES.to_string()),
        ("cb_size", abi::CALLBACK_SIZE.to_string()),
        ("cb_objname", abi::CALLBACK_OBJNAME.to_string()),
        ("cb_kind", abi::CALLBACK_KIND.to_string()),
        ("cb_fn", abi::CALLBACK_FN.to_string()),
        ("cb_kind_size", "8".to_string()),
        ("sizeof_nr_callbacks", "4".to_string()),
        ("callbacks_section", abi::CALLBACKS_SECTION.to_string()),
        ("callbacks_symbol", abi::CALLBACKS_SYMBOL.to_string()),
        ("nr_callbacks_symbol", abi::NR_CALLBACKS_SYMBOL.to_string()),
        (
            "callback_ptrs_section",
            abi::CALLBACK_PTRS_SECTION.to_string(),
        ),
        (
            "cb_kinds",
            format!(
                "{} {} {} {}",
                abi::CALLBACK_PRE_PATCH,
                abi::CALLBACK_POST_PATCH,
                abi::CALLBACK_PRE_UNPATCH,
                abi::CALLBACK_POST_UNPATCH
            ),
        ),
    ]
    .into_iter()
    .collect();
    let got: BTreeMap<&str, String> = got.into_iter().map(|(k, v)| (k, v.to_string())).collect();
    assert_eq!(
        got, want,
        "klp_build_abi.h (left) disagrees with src/contract/abi.rs (right)"
    );
}

#[test]
fn tables_read_back_through_the_c_header() {
    let tmp = tempfile::tempdir().unwrap();
    let e = |objname: Option<&str>, old: &str, new: &str, sympos| FuncEntry {
        objname: objname.map(str::to_string),
        old_name: old.to_string(),
        new_symbol: new.to_string(),
        sympos,
    };
    // Unsorted on purpose, two objects interleaved, one replacement shared by two entries.
    let entries = [
        e(Some("xfs"), "xfs_stats_format", "new_a", 0),
        e(None, "cmdline_proc_show", "new_b", 0),
        e(Some("ext4"), "ext4_attr_show", "new_c", 1),
        e(None, "show_val", "new_d", 2),
        e(Some("xfs"), "xfs_buf_free", "new_a", 0),
    ];
    let tables = tmp.path().join("klp_tables.o");
    write_tables(&entries, &tables).unwrap();
    let main_c = r#"
#include <stdio.h>
#include "klp_build_abi.h"
void new_a(void) {}
void new_b(void) {}
void new_c(void) {}
void new_d(void) {}
static const struct { void *f; const char *name; } known[] = {
	{ new_a, "new_a" }, { new_b, "new_b" }, { new_c, "new_c" }, { new_d, "new_d" },
};
int main(void)
{
	unsigned int i, k;

	printf("nr %u\n", klp_build_nr_funcs);
	for (i = 0; i < klp_build_nr_funcs; i++) {
		const struct klp_build_func *f = &klp_build_funcs[i];
		const char *new_name = "?";

		for (k = 0; k < sizeof(known) / sizeof(known[0]); k++)
			if (known[k].f == f->new_func)
				new_name = known[k].name;
		printf("%s %s %s %lu\n", f->objname ? f->objname : "NULL", f->old_name, new_name,
		       f->old_sympos);
	}
	return 0;
}
"#;
    let out = run_c(tmp.path(), main_c, &[&tables]);
    let want = "nr 5\n\
                NULL cmdline_proc_show new_b 0\n\
                NULL show_val new_d 2\n\
                ext4 ext4_attr_show new_c 1\n\
                xfs xfs_buf_free new_a 0\n\
                xfs xfs_stats_format new_a 0\n";
    assert_eq!(out, want, "klp_build_funcs[] as C reads it");
}

#[test]
fn tables_object_has_the_sections_and_symbols_the_kbuild_link_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let entry = FuncEntry {
        objname: None,
        old_name: "cmdline_proc_show".into(),
        new_symbol: "klp_build_new_cmdline_proc_show".into(),
        sympos: 0,
    };
    let tables = tmp.path().join("klp_tables.o");
    write_tables(&[entry], &tables).unwrap();
    let out = Command::new("readelf")
        .arg("-SsrW")
        .arg(&tables)
        .output()
        .expect("run readelf");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("REL"),
        "readelf {}:\n{text}",
        tables.display()
    );
    let has = |pat: &str| {
        text.lines()
            .any(|l| pat.split(' ').all(|w| l.split_whitespace().any(|x| x == w)))
    };
    assert!(
        has(".note.GNU-stack PROGBITS"),
        "no non-executable stack note:\n{text}"
    );
    assert!(
        has("32 OBJECT GLOBAL DEFAULT klp_build_funcs"),
        "klp_build_funcs:\n{text}"
    );
    assert!(
        has("4 OBJECT GLOBAL DEFAULT klp_build_nr_funcs"),
        "klp_build_nr_funcs:\n{text}"
    );
    assert!(
        has("NOTYPE GLOBAL DEFAULT UND klp_build_new_cmdline_proc_show"),
        "new_func:\n{text}"
    );
    assert!(
        has("R_X86_64_64 klp_build_new_cmdline_proc_show + 0"),
        "new_func relocation:\n{text}"
    );
}

/// A spec on the reference replace-set kernel's API.
fn set_spec(set: u32, supersedes: &[u32], states: &[StateSpec]) -> ModuleSpec {
    ModuleSpec {
        name: "livepatch-spec".into(),
        replace: ReplaceMode::Set {
            field: SetField::ReplaceSet,
            set,
            supersedes: supersedes.to_vec(),
        },
        states: states.to_vec(),
        api: LivepatchApi {
            replace: ReplaceField::ReplaceSet,
            supersedes_field: Some("supersedes"),
            states: true,
            callbacks: true,
            shadow: true,
        },
    }
}

const SPEC_MAIN_C: &str = r#"
#include <stdio.h>
#include "klp_build_abi.h"
int main(void)
{
	unsigned int i;

	printf("set %u\n", klp_build_replace_set);
	for (i = 0; i < klp_build_nr_states; i++)
		printf("state %#lx %u %u\n", klp_build_states[i].id, klp_build_states[i].version,
		       klp_build_states[i].reserved);
	for (i = 0; i < klp_build_nr_supersedes; i++)
		printf("supersedes %u\n", klp_build_supersedes[i]);
	return 0;
}
"#;

#[test]
fn spec_table_reads_back_through_the_c_header() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = set_spec(
        2,
        &[1, 3],
        &[
            StateSpec { id: 7, version: 0 },
            StateSpec {
                id: 0x4b4c_5001,
                version: 3,
            },
        ],
    );
    let obj = tmp.path().join(abi::SPEC_OBJECT);
    write_spec(&spec, &obj).unwrap();
    let out = run_c(tmp.path(), SPEC_MAIN_C, &[&obj]);
    assert_eq!(
        out, "set 2\nstate 0x7 0 0\nstate 0x4b4c5001 3 0\nsupersedes 1\nsupersedes 3\n",
        "the spec table as C reads it"
    );
}

#[test]
fn empty_spec_table_links_and_reads_as_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ModuleSpec {
        replace: ReplaceMode::Atomic,
        states: Vec::new(),
        api: LivepatchApi {
            replace: ReplaceField::Bool,
            ..set_spec(0, &[], &[]).api
        },
        ..set_spec(0, &[], &[])
    };
    let obj = tmp.path().join(abi::SPEC_OBJECT);
    write_spec(&spec, &obj).unwrap();
    assert_eq!(run_c(tmp.path(), SPEC_MAIN_C, &[&obj]), "set 0\n");
}

#[test]
fn spec_table_refuses_state_id_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let e = write_spec(
        &set_spec(1, &[], &[StateSpec { id: 0, version: 1 }]),
        &tmp.path().join("x.o"),
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("state id 0"), "{e:#}");
}
