/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kpatch-macros.h - the macros of kpatch-build's header of the same name, for fixes written for
 * kpatch-build, built by klp-build without edits
 *
 * klp-build puts this header on the include path of the patched build only. The names and the
 * meaning are kpatch-build's; the registrations are klp-build's (klp-build.h):
 *
 *   KPATCH_PRE_PATCH_CALLBACK(fn)	int fn(patch_object *obj): before the object is patched;
 *   KPATCH_POST_PATCH_CALLBACK(fn)	non-zero refuses the patch. The others return nothing.
 *   KPATCH_PRE_UNPATCH_CALLBACK(fn)	patch_object is struct klp_object.
 *   KPATCH_POST_UNPATCH_CALLBACK(fn)
 *   KPATCH_LOAD_HOOK(fn)		void fn(void): run after the object is patched (a
 *					post-patch callback)
 *   KPATCH_UNLOAD_HOOK(fn)		void fn(void): run before the object is unpatched (a
 *					pre-unpatch callback)
 *   KPATCH_IGNORE_FUNCTION(fn)		changes to fn are not patched (a function that differs
 *					only as a side effect, such as a __LINE__ in a WARN)
 *   KPATCH_IGNORE_SECTION("name")	changes to the functions of section `name` are not patched
 *   KPATCH_FORCE_UNSAFE(fn)		refused: klp-build patches a function only through the
 *					livepatch consistency model
 *   KPATCH_PRINTK(fmt, ...)		printk on a path of its own, so the caller's path is not
 *					made cold
 *
 * A load hook is a post-patch callback and an unload hook a pre-unpatch one, so an object takes
 * either a load hook or a post-patch callback, not both (likewise for unload and pre-unpatch).
 */
#ifndef __KPATCH_MACROS_H_
#define __KPATCH_MACROS_H_

#include <linux/compiler.h>
#include <linux/jiffies.h>
#include <linux/printk.h>
#include "klp-build.h"

typedef struct klp_object patch_object;

typedef int (*kpatch_pre_patch_call_t)(patch_object *obj);
typedef void (*kpatch_post_patch_call_t)(patch_object *obj);
typedef void (*kpatch_pre_unpatch_call_t)(patch_object *obj);
typedef void (*kpatch_post_unpatch_call_t)(patch_object *obj);
typedef void (*kpatch_loadcall_t)(void);
typedef void (*kpatch_unloadcall_t)(void);

#define KPATCH_PRE_PATCH_CALLBACK(fn)		KLP_BUILD_PRE_PATCH_CALLBACK(fn)
#define KPATCH_POST_PATCH_CALLBACK(fn)		KLP_BUILD_POST_PATCH_CALLBACK(fn)
#define KPATCH_PRE_UNPATCH_CALLBACK(fn)		KLP_BUILD_PRE_UNPATCH_CALLBACK(fn)
#define KPATCH_POST_UNPATCH_CALLBACK(fn)	KLP_BUILD_POST_UNPATCH_CALLBACK(fn)

/* A hook takes no argument: a small callback of the right kind calls it. */
#define KPATCH_LOAD_HOOK(fn)								\
	_Static_assert(__builtin_types_compatible_p(typeof(&(fn)), kpatch_loadcall_t),	\
		       "KPATCH_LOAD_HOOK: the hook must be void " #fn "(void)");		\
	static void __kpatch_load_hook_cb(patch_object *obj) { (fn)(); }		\
	KLP_BUILD_POST_PATCH_CALLBACK(__kpatch_load_hook_cb)

#define KPATCH_UNLOAD_HOOK(fn)								\
	_Static_assert(__builtin_types_compatible_p(typeof(&(fn)), kpatch_unloadcall_t),\
		       "KPATCH_UNLOAD_HOOK: the hook must be void " #fn "(void)");	\
	static void __kpatch_unload_hook_cb(patch_object *obj) { (fn)(); }		\
	KLP_BUILD_PRE_UNPATCH_CALLBACK(__kpatch_unload_hook_cb)

/*
 * Records read by klp-build's diff stage (src/diff/ignore.rs), never linked into anything: a
 * pointer to the function, or to the section's name.
 */
#define KPATCH_IGNORE_FUNCTION(fn)							\
	static void *__kpatch_ignore_func_##fn __used					\
		__section(".kpatch.ignore.functions") = (fn)

#define KPATCH_IGNORE_SECTION(name)							\
	static const char *__UNIQUE_ID(kpatch_ignore_section_) __used			\
		__section(".kpatch.ignore.sections") = (name)

#define KPATCH_FORCE_UNSAFE(fn)								\
	static void *__kpatch_force_func_##fn __used					\
		__section(".kpatch.force") = (fn)

/*
 * printk() is __cold: gcc treats the path that calls it as unlikely, which can move code around
 * it into .text.unlikely or stop inlining there, and so change functions the fix did not touch.
 * The always-true test on jiffies gives the call a branch of its own.
 */
#define KPATCH_PRINTK(fmt, ...)								\
({											\
	if (READ_ONCE(jiffies))								\
		printk(fmt, ##__VA_ARGS__);						\
})

#endif /* __KPATCH_MACROS_H_ */
