/* SPDX-License-Identifier: GPL-2.0 */
/*
 * klp_build_abi.h - the tables klp-build writes into a livepatch module
 *
 * Producer: klp-build's src/emit/tables.rs, which writes klp_tables.o.
 * Consumer: klp_build_core.c, which turns the tables into a struct klp_patch at load time.
 * The Rust side of the same names and layout is src/emit/abi.rs; tests/kmod_abi.rs compiles this
 * header with gcc and compares sizes, offsets and names with it. Change both or neither.
 *
 * Plain C types only: the header is also compiled outside the kernel by that test.
 */
#ifndef _KLP_BUILD_ABI_H
#define _KLP_BUILD_ABI_H

/* The section of klp_tables.o that holds klp_build_funcs[] and klp_build_nr_funcs. */
#define KLP_BUILD_FUNCS_SECTION		".rodata.klp_build"
/* The section of klp_tables.o that holds the names klp_build_funcs[] points to. */
#define KLP_BUILD_STRINGS_SECTION	".rodata.klp_build.str"
#define KLP_BUILD_FUNCS_SYMBOL		"klp_build_funcs"
#define KLP_BUILD_NR_FUNCS_SYMBOL	"klp_build_nr_funcs"

/*
 * Generated next to the core by klp-build for each module; it defines KLP_BUILD_REPLACE
 * (1: the patch replaces all earlier ones, klp_patch.replace; 0: it stacks on them).
 */
#define KLP_BUILD_CONFIG_HEADER		"klp_build_config.h"

/*
 * One function to patch: 32 bytes on x86_64, the external fields of struct klp_func plus the
 * name of the object (vmlinux or a module) the function lives in.
 */
struct klp_build_func {
	/* NULL: vmlinux, else the module name as klp_object.name wants it ("xfs", "nf_tables") */
	const char *objname;
	/* klp_func.old_name, e.g. "cmdline_proc_show" */
	const char *old_name;
	/* klp_func.new_func: the replacement, defined in another object of the module */
	void *new_func;
	/* klp_func.old_sympos: 0 when old_name is unique in its object, else its kallsyms position */
	unsigned long old_sympos;
};

/* Sorted so that the entries of one object are consecutive (vmlinux first). */
extern const struct klp_build_func klp_build_funcs[];
extern const unsigned int klp_build_nr_funcs;

#endif /* _KLP_BUILD_ABI_H */
