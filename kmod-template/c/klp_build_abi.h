/* SPDX-License-Identifier: GPL-2.0 */
/*
 * klp_build_abi.h - the tables klp-build writes into a livepatch module
 *
 * Producer: klp-build's src/emit/tables.rs, which writes klp_tables.o.
 * Consumer: klp_build_core.c, which turns the tables into a struct klp_patch at load time.
 * The Rust side of the same names and layout is src/contract/abi.rs; tests/kmod_abi.rs compiles this
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
 * Generated next to the core by klp-build for each module, from what the target kernel's
 * include/linux/livepatch.h has. It defines:
 *   KLP_BUILD_REPLACE_MODE	one of KLP_BUILD_MODE_*: which field of struct klp_patch says
 *				what the patch replaces
 *   KLP_BUILD_HAS_SUPERSEDES	1: struct klp_patch has supersedes/nr_supersedes
 *   KLP_BUILD_HAS_STATES	1: struct klp_patch has states
 *   KLP_BUILD_KERNEL_API	the target's API in words, for messages
 * and the module's klp_build_* modinfo keys.
 */
#define KLP_BUILD_CONFIG_HEADER		"klp_build_config.h"

#define KLP_BUILD_MODE_STACKED		0	/* .replace = false */
#define KLP_BUILD_MODE_ATOMIC		1	/* .replace = true */
#define KLP_BUILD_MODE_REPLACE_SET	2	/* .replace_set = klp_build_replace_set */
#define KLP_BUILD_MODE_PROVIDES		3	/* .provides = klp_build_replace_set */

/* The module parameter that adds sets to supersedes at load: also_replace_sets=X[,Y]. */
#define KLP_BUILD_PARAM_ALSO_REPLACE_SETS "also_replace_sets"

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

/*
 * The spec table, from the module's spec (klp_spec.o, one read-only section, no relocations):
 * the set, the states and the superseded sets.
 */
#define KLP_BUILD_SPEC_SECTION		".rodata.klp_build.spec"

/* A klp_state the patch declares: 16 bytes on x86_64. */
struct klp_build_state {
	/* klp_state.id; never 0, which ends the kernel's states array */
	unsigned long id;
	/* klp_state.version */
	unsigned int version;
	/* 0 */
	unsigned int reserved;
};

/* The set the module occupies (KLP_BUILD_MODE_REPLACE_SET and _PROVIDES), else 0. */
extern const unsigned int klp_build_replace_set;
/* Sorted by id, ids unique. */
extern const unsigned int klp_build_nr_states;
extern const struct klp_build_state klp_build_states[];
/* Sorted, unique, never the module's own set. */
extern const unsigned int klp_build_nr_supersedes;
extern const unsigned int klp_build_supersedes[];

/*
 * KLP_BUILD_STATE(id, version) in klp-build.h writes one struct klp_build_state per use into
 * this non-alloc section of the patched object, where klp-build reads it.
 */
#define KLP_BUILD_STATE_DECL_SECTION	".discard.klp_build.states"

/*
 * The callback table, in klp_tables.o beside the function table: one entry per callback a
 * patched object registers (klp-build.h, KLP_BUILD_*_CALLBACK and the compatible macros, which
 * write pointer variables into KLP_BUILD_CALLBACK_PTRS_SECTION of the patched object).
 */
#define KLP_BUILD_CALLBACKS_SECTION	".rodata.klp_build.callbacks"
#define KLP_BUILD_CALLBACKS_SYMBOL	"klp_build_callbacks"
#define KLP_BUILD_NR_CALLBACKS_SYMBOL	"klp_build_nr_callbacks"
#define KLP_BUILD_CALLBACK_PTRS_SECTION	".discard.klp_callback_ptrs"

/* struct klp_build_callback.kind: which field of struct klp_callbacks. */
#define KLP_BUILD_CB_PRE_PATCH		0
#define KLP_BUILD_CB_POST_PATCH		1
#define KLP_BUILD_CB_PRE_UNPATCH	2
#define KLP_BUILD_CB_POST_UNPATCH	3
#define KLP_BUILD_NR_CB_KINDS		4

/* One callback: 24 bytes on x86_64. */
struct klp_build_callback {
	/* NULL: vmlinux, else the module name, as in struct klp_build_func */
	const char *objname;
	/* KLP_BUILD_CB_* */
	unsigned long kind;
	/* the function, with the signature of that field of struct klp_callbacks */
	void *fn;
};

/* Sorted by object (vmlinux first), then kind; at most one entry per object and kind. */
extern const struct klp_build_callback klp_build_callbacks[];
extern const unsigned int klp_build_nr_callbacks;

#endif /* _KLP_BUILD_ABI_H */
