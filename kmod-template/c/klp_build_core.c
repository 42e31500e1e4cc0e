// SPDX-License-Identifier: GPL-2.0
/*
 * klp_build_core.c - runtime core of a livepatch module built by klp-build
 *
 * Input: klp_build_funcs[] (klp_build_abi.h), written by klp-build into klp_tables.o, sorted so
 * that the functions of one object (vmlinux or a module) are consecutive.
 * Output: one struct klp_patch whose klp_objects are those runs of entries, enabled at load time.
 * Invariant: the table is data only; this file is the same for every module, and the only
 * per-module C is the generated klp_build_config.h.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/livepatch.h>

#include "klp_build_abi.h"
#include KLP_BUILD_CONFIG_HEADER

#ifndef KLP_BUILD_REPLACE
#error "klp_build_config.h must define KLP_BUILD_REPLACE (0 or 1)"
#endif

static struct klp_patch klp_build_patch;

static const char *klp_build_objname(const char *objname)
{
	return objname ? objname : "vmlinux";
}

static bool klp_build_same_object(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return !strcmp(a, b);
}

/*
 * Checks the table and counts its objects: each run of consecutive entries with one objname
 * becomes one klp_object. An object that came back after another one would become a second
 * klp_object of the same name, whose sysfs directory klp_init_object() cannot create (kobject_add()
 * fails with -EEXIST and a sysfs warning that names neither), so it is refused here.
 */
static int klp_build_count_objects(unsigned int *nr_objs)
{
	const struct klp_build_func *f;
	unsigned int i, j;

	*nr_objs = 0;
	for (i = 0; i < klp_build_nr_funcs; i++) {
		f = &klp_build_funcs[i];
		if (!f->old_name || !f->new_func) {
			pr_err("function table entry %u (object %s, function %s) has no %s; the table in klp_tables.o is corrupt, rebuild the module\n",
			       i, klp_build_objname(f->objname),
			       f->old_name ? f->old_name : "?",
			       f->old_name ? "replacement" : "name");
			return -EINVAL;
		}
		if (i > 0 &&
		    klp_build_same_object(f->objname, klp_build_funcs[i - 1].objname))
			continue;
		for (j = 0; j < i; j++) {
			if (klp_build_same_object(f->objname, klp_build_funcs[j].objname)) {
				pr_err("function table entries of object %s are not consecutive (entry %u, function %s); klp_tables.o must be sorted by object, rebuild the module\n",
				       klp_build_objname(f->objname), i, f->old_name);
				return -EINVAL;
			}
		}
		(*nr_objs)++;
	}
	return 0;
}

/* Frees what klp_build_alloc_objects() allocated; safe on a partly filled array. */
static void klp_build_free_objects(struct klp_object *objs)
{
	struct klp_object *obj;

	if (!objs)
		return;
	/* Every filled object has funcs: the walk stops at the first one not filled. */
	for (obj = objs; obj->funcs; obj++)
		kfree(obj->funcs);
	kfree(objs);
}

/* Builds the zero-terminated klp_object array, each with its zero-terminated klp_func array. */
static struct klp_object *klp_build_alloc_objects(unsigned int nr_objs)
{
	struct klp_object *objs, *obj;
	struct klp_func *funcs;
	unsigned int start, end, i;

	objs = kcalloc(nr_objs + 1, sizeof(*objs), GFP_KERNEL);
	if (!objs)
		return NULL;

	obj = objs;
	for (start = 0; start < klp_build_nr_funcs; start = end) {
		end = start + 1;
		while (end < klp_build_nr_funcs &&
		       klp_build_same_object(klp_build_funcs[start].objname,
					     klp_build_funcs[end].objname))
			end++;

		funcs = kcalloc(end - start + 1, sizeof(*funcs), GFP_KERNEL);
		if (!funcs) {
			klp_build_free_objects(objs);
			return NULL;
		}
		for (i = start; i < end; i++) {
			funcs[i - start].old_name = klp_build_funcs[i].old_name;
			funcs[i - start].new_func = klp_build_funcs[i].new_func;
			funcs[i - start].old_sympos = klp_build_funcs[i].old_sympos;
		}
		obj->name = klp_build_funcs[start].objname;
		obj->funcs = funcs;
		obj++;
	}
	return objs;
}

/*
 * klp_enable_patch() fails as a whole; the livepatch core's own message just before this one
 * names the symbol it could not resolve. List what was asked for so the two can be matched.
 */
static void klp_build_report_failure(int ret)
{
	unsigned int i;

	pr_err("klp_enable_patch() failed (%d) for %u function(s):\n", ret,
	       klp_build_nr_funcs);
	for (i = 0; i < klp_build_nr_funcs; i++)
		pr_err("  object %s: function %s, sympos %lu\n",
		       klp_build_objname(klp_build_funcs[i].objname),
		       klp_build_funcs[i].old_name, klp_build_funcs[i].old_sympos);
}

static int __init klp_build_init(void)
{
	unsigned int nr_objs;
	int ret;

	if (!klp_build_nr_funcs) {
		pr_err("the function table is empty: nothing to patch\n");
		return -EINVAL;
	}
	ret = klp_build_count_objects(&nr_objs);
	if (ret)
		return ret;

	klp_build_patch.objs = klp_build_alloc_objects(nr_objs);
	if (!klp_build_patch.objs)
		return -ENOMEM;
	klp_build_patch.mod = THIS_MODULE;
	klp_build_patch.replace = KLP_BUILD_REPLACE;

	ret = klp_enable_patch(&klp_build_patch);
	if (ret) {
		/* On error klp_enable_patch() has released the patch: the arrays are ours again. */
		klp_build_report_failure(ret);
		klp_build_free_objects(klp_build_patch.objs);
		klp_build_patch.objs = NULL;
		return ret;
	}
	return 0;
}

/*
 * The module can only be removed once the patch is disabled and the livepatch core has let go
 * of it (klp_free_patch_finish() drops the module reference last).
 */
static void __exit klp_build_exit(void)
{
	klp_build_free_objects(klp_build_patch.objs);
}

module_init(klp_build_init);
module_exit(klp_build_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
