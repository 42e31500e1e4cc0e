// SPDX-License-Identifier: GPL-2.0
/*
 * klp_build_core.c - runtime core of a livepatch module built by klp-build
 *
 * Input: klp_build_funcs[] (klp_build_abi.h), written by klp-build into klp_tables.o, sorted so
 * that the functions of one object (vmlinux or a module) are consecutive; klp_build_callbacks[]
 * beside it (the pre/post patch/unpatch callbacks of each object); the spec table in klp_spec.o
 * (set, states, superseded sets); the also_replace_sets module parameter.
 * Output: one struct klp_patch whose klp_objects are those runs of entries, each with its
 * callbacks, then one object for each object that has callbacks and no function (an empty,
 * terminated klp_func array: the livepatch core refuses a NULL funcs, not an empty one, and runs
 * such an object's callbacks), with the replace field, supersedes and states the target kernel
 * has, enabled at load time.
 * Invariant: the tables are data only; this file is the same for every module, and the only
 * per-module C is the generated klp_build_config.h, which says which fields of struct klp_patch
 * the target has.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/livepatch.h>

#include "klp_build_abi.h"
#include KLP_BUILD_CONFIG_HEADER

#if !defined(KLP_BUILD_REPLACE_MODE) || !defined(KLP_BUILD_HAS_SUPERSEDES) || \
	!defined(KLP_BUILD_HAS_STATES) || !defined(KLP_BUILD_KERNEL_API)
#error "klp_build_config.h must define KLP_BUILD_REPLACE_MODE, _HAS_SUPERSEDES, _HAS_STATES and _KERNEL_API"
#endif

static struct klp_patch klp_build_patch;

/*
 * The administrator's way to resolve a conflict with another set by atomic replace, instead of
 * unloading it first: the sets named here are added to supersedes for this load.
 */
static char *also_replace_sets;
module_param(also_replace_sets, charp, 0444);
MODULE_PARM_DESC(also_replace_sets,
		 "Comma-separated replace sets whose enabled livepatches this one also replaces, "
		 "in the same transition (kernels with klp_patch.supersedes only)");

/* More sets than anyone has ids for; bounds the parameter's parse and the allocation. */
#define KLP_BUILD_MAX_SETS 256

#if KLP_BUILD_HAS_SUPERSEDES
static unsigned int *klp_build_supersedes_rt;
#endif
#if KLP_BUILD_HAS_STATES
static struct klp_state *klp_build_states_rt;
#endif

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
 * Whether callback table entry i is the first one of an object that has no function: such an
 * object becomes a klp_object of its own, with callbacks only (a fix that only runs code at
 * patch and unpatch time, kpatch's KPATCH_PRE_PATCH_CALLBACK() without a changed function).
 */
static bool klp_build_callbacks_only(unsigned int i)
{
	const char *objname = klp_build_callbacks[i].objname;
	unsigned int j;

	for (j = 0; j < klp_build_nr_funcs; j++)
		if (klp_build_same_object(objname, klp_build_funcs[j].objname))
			return false;
	for (j = 0; j < i; j++)
		if (klp_build_same_object(objname, klp_build_callbacks[j].objname))
			return false;
	return true;
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
	for (i = 0; i < klp_build_nr_callbacks; i++)
		if (klp_build_callbacks_only(i))
			(*nr_objs)++;
	if (!*nr_objs) {
		pr_err("the function and callback tables are empty: nothing to patch\n");
		return -EINVAL;
	}
	return 0;
}

/*
 * Checks the callback table: a known kind, a function, and one entry per object and kind.
 * klp-build checks the same when it writes the table; a table that fails here was not written by
 * it. An object may have callbacks and no function (klp_build_callbacks_only()).
 */
static int klp_build_check_callbacks(void)
{
	const struct klp_build_callback *cb, *other;
	unsigned int i, j;

	for (i = 0; i < klp_build_nr_callbacks; i++) {
		cb = &klp_build_callbacks[i];
		if (cb->kind >= KLP_BUILD_NR_CB_KINDS || !cb->fn) {
			pr_err("callback table entry %u (object %s) has %s; the table in klp_tables.o is corrupt, rebuild the module\n",
			       i, klp_build_objname(cb->objname),
			       cb->fn ? "an unknown kind" : "no function");
			return -EINVAL;
		}
		for (j = 0; j < i; j++) {
			other = &klp_build_callbacks[j];
			if (other->kind == cb->kind &&
			    klp_build_same_object(other->objname, cb->objname)) {
				pr_err("callback table entries %u and %u are both of kind %lu for object %s; rebuild the module\n",
				       j, i, cb->kind, klp_build_objname(cb->objname));
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* Sets obj->callbacks from the entries of the callback table for the object named objname. */
static void klp_build_set_callbacks(struct klp_object *obj, const char *objname)
{
	const struct klp_build_callback *cb;
	unsigned int i;

	for (i = 0; i < klp_build_nr_callbacks; i++) {
		cb = &klp_build_callbacks[i];
		if (!klp_build_same_object(cb->objname, objname))
			continue;
		switch (cb->kind) {
		case KLP_BUILD_CB_PRE_PATCH:
			obj->callbacks.pre_patch = cb->fn;
			break;
		case KLP_BUILD_CB_POST_PATCH:
			obj->callbacks.post_patch = cb->fn;
			break;
		case KLP_BUILD_CB_PRE_UNPATCH:
			obj->callbacks.pre_unpatch = cb->fn;
			break;
		case KLP_BUILD_CB_POST_UNPATCH:
			obj->callbacks.post_unpatch = cb->fn;
			break;
		}
	}
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
		klp_build_set_callbacks(obj, obj->name);
		obj++;
	}
	/* Objects with callbacks only: an empty, terminated funcs array, never NULL. */
	for (i = 0; i < klp_build_nr_callbacks; i++) {
		if (!klp_build_callbacks_only(i))
			continue;
		funcs = kcalloc(1, sizeof(*funcs), GFP_KERNEL);
		if (!funcs) {
			klp_build_free_objects(objs);
			return NULL;
		}
		obj->name = klp_build_callbacks[i].objname;
		obj->funcs = funcs;
		klp_build_set_callbacks(obj, obj->name);
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

#if KLP_BUILD_HAS_SUPERSEDES
static bool klp_build_has_set(const unsigned int *sets, unsigned int nr, unsigned int set)
{
	unsigned int i;

	for (i = 0; i < nr; i++)
		if (sets[i] == set)
			return true;
	return false;
}

/*
 * supersedes = klp_build_supersedes[] (built in) + the sets of also_replace_sets, without
 * repeats and without the module's own set (a patch always replaces its own set's patch).
 */
static int klp_build_set_supersedes(void)
{
	unsigned int *sets, nr = 0, set, i;
	char *list, *p, *tok;
	int ret = 0;

	sets = kcalloc(klp_build_nr_supersedes + KLP_BUILD_MAX_SETS, sizeof(*sets), GFP_KERNEL);
	if (!sets)
		return -ENOMEM;
	for (i = 0; i < klp_build_nr_supersedes; i++)
		if (!klp_build_has_set(sets, nr, klp_build_supersedes[i]) &&
		    klp_build_supersedes[i] != klp_build_replace_set)
			sets[nr++] = klp_build_supersedes[i];

	if (also_replace_sets && *also_replace_sets) {
		list = kstrdup(also_replace_sets, GFP_KERNEL);
		if (!list) {
			kfree(sets);
			return -ENOMEM;
		}
		p = list;
		while ((tok = strsep(&p, ",")) != NULL) {
			tok = strim(tok);
			if (!*tok)
				continue;
			if (kstrtouint(tok, 0, &set)) {
				pr_err("also_replace_sets=%s: `%s` is not a replace set number; give a comma-separated list such as also_replace_sets=1,2\n",
				       also_replace_sets, tok);
				ret = -EINVAL;
				break;
			}
			if (set == klp_build_replace_set) {
				pr_info("also_replace_sets: %u is this module's own set, which it replaces anyway\n",
					set);
				continue;
			}
			if (klp_build_has_set(sets, nr, set))
				continue;
			if (nr >= klp_build_nr_supersedes + KLP_BUILD_MAX_SETS) {
				pr_err("also_replace_sets=%s: more than %u sets\n",
				       also_replace_sets, KLP_BUILD_MAX_SETS);
				ret = -EINVAL;
				break;
			}
			sets[nr++] = set;
		}
		kfree(list);
	}
	if (ret) {
		kfree(sets);
		return ret;
	}
	if (!nr) {
		kfree(sets);
		return 0;
	}
	for (i = 0; i < nr; i++)
		pr_info("replacing the enabled livepatch of replace set %u too\n", sets[i]);
	klp_build_supersedes_rt = sets;
	klp_build_patch.supersedes = sets;
	klp_build_patch.nr_supersedes = nr;
	return 0;
}
#else
/*
 * The target's struct klp_patch has no list of superseded sets: the parameter cannot be honoured,
 * and ignoring it would leave the administrator believing the conflict resolved.
 */
static int klp_build_set_supersedes(void)
{
	if (also_replace_sets && *also_replace_sets) {
		pr_err("also_replace_sets=%s refused: this module was built for a kernel with %s, which has no list of superseded replace sets (klp_patch.supersedes); load it without also_replace_sets\n",
		       also_replace_sets, KLP_BUILD_KERNEL_API);
		return -EINVAL;
	}
	return 0;
}
#endif

#if KLP_BUILD_HAS_STATES
/*
 * klp_patch.states from klp_build_states[]: a writable copy, since the kernel hands the states to
 * callbacks that set klp_state.data, terminated by an entry with id 0 (klp_for_each_state()).
 */
static int klp_build_set_states(void)
{
	struct klp_state *states;
	unsigned int i;

	if (!klp_build_nr_states)
		return 0;
	states = kcalloc(klp_build_nr_states + 1, sizeof(*states), GFP_KERNEL);
	if (!states)
		return -ENOMEM;
	for (i = 0; i < klp_build_nr_states; i++) {
		if (!klp_build_states[i].id) {
			pr_err("state table entry %u has id 0, which ends klp_patch.states; the table in klp_spec.o is corrupt, rebuild the module\n",
			       i);
			kfree(states);
			return -EINVAL;
		}
		states[i].id = klp_build_states[i].id;
		states[i].version = klp_build_states[i].version;
	}
	klp_build_states_rt = states;
	klp_build_patch.states = states;
	return 0;
}
#else
static int klp_build_set_states(void)
{
	if (klp_build_nr_states) {
		pr_err("the module declares %u state(s), but was built for a kernel without klp_patch.states; rebuild it without states\n",
		       klp_build_nr_states);
		return -EINVAL;
	}
	return 0;
}
#endif

/* Frees what klp_build_set_supersedes() and klp_build_set_states() allocated. */
static void klp_build_free_spec(void)
{
#if KLP_BUILD_HAS_SUPERSEDES
	kfree(klp_build_supersedes_rt);
	klp_build_supersedes_rt = NULL;
	klp_build_patch.supersedes = NULL;
	klp_build_patch.nr_supersedes = 0;
#endif
#if KLP_BUILD_HAS_STATES
	kfree(klp_build_states_rt);
	klp_build_states_rt = NULL;
	klp_build_patch.states = NULL;
#endif
}

/* The replace field of the target's struct klp_patch, from the mode klp-build resolved. */
static void klp_build_set_replace(void)
{
#if KLP_BUILD_REPLACE_MODE == KLP_BUILD_MODE_STACKED
	klp_build_patch.replace = false;
#elif KLP_BUILD_REPLACE_MODE == KLP_BUILD_MODE_ATOMIC
	klp_build_patch.replace = true;
#elif KLP_BUILD_REPLACE_MODE == KLP_BUILD_MODE_REPLACE_SET
	klp_build_patch.replace_set = klp_build_replace_set;
#elif KLP_BUILD_REPLACE_MODE == KLP_BUILD_MODE_PROVIDES
	klp_build_patch.provides = klp_build_replace_set;
#else
#error "KLP_BUILD_REPLACE_MODE is not one of KLP_BUILD_MODE_*"
#endif
}

static int __init klp_build_init(void)
{
	unsigned int nr_objs;
	int ret;

	ret = klp_build_count_objects(&nr_objs);
	if (ret)
		return ret;
	ret = klp_build_check_callbacks();
	if (ret)
		return ret;

	klp_build_patch.mod = THIS_MODULE;
	klp_build_set_replace();
	/* Before klp_enable_patch(): the kernel decides what the patch replaces when enabling it. */
	ret = klp_build_set_supersedes();
	if (ret)
		return ret;
	ret = klp_build_set_states();
	if (ret) {
		klp_build_free_spec();
		return ret;
	}
	klp_build_patch.objs = klp_build_alloc_objects(nr_objs);
	if (!klp_build_patch.objs) {
		klp_build_free_spec();
		return -ENOMEM;
	}

	ret = klp_enable_patch(&klp_build_patch);
	if (ret) {
		/* On error klp_enable_patch() has released the patch: the arrays are ours again. */
		klp_build_report_failure(ret);
		klp_build_free_objects(klp_build_patch.objs);
		klp_build_patch.objs = NULL;
		klp_build_free_spec();
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
	klp_build_free_spec();
}

module_init(klp_build_init);
module_exit(klp_build_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
