//! The function table ABI seen from C: gcc compiles `klp_build_abi.h` (as embedded in the
//! `kmod-template` crate) and its sizes, offsets and names must equal `src/emit/abi.rs`; a
//! `klp_tables.o` written by `src/emit/tables.rs`, linked into a C program that reads it through
//! that header, must give back the entries, sorted by object.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use klp_build::emit::abi;
use klp_build::emit::tables::{write_tables, FuncEntry};

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
    ]
    .into_iter()
    .collect();
    let got: BTreeMap<&str, String> = got.into_iter().map(|(k, v)| (k, v.to_string())).collect();
    assert_eq!(
        got, want,
        "klp_build_abi.h (left) disagrees with src/emit/abi.rs (right)"
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
