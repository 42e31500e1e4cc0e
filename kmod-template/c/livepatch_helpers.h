/* SPDX-License-Identifier: GPL-2.0 */
/*
 * livepatch_helpers.h - the interface of the kernel's <linux/livepatch_helpers.h> (Linux 6.19
 * and later) for trees that lack it, so fixes written for the kernel's own klp-build build
 * unchanged on older kernels (Debian's 6.1 and 6.12)
 *
 * klp-build makes `#include <linux/livepatch_helpers.h>` of a patched file name this header only
 * when the source tree has no include/linux/livepatch_helpers.h; a tree that has one keeps its
 * own, whose callback registrations klp-build reads the same way (see klp-build.h).
 *
 *   KLP_PRE_PATCH_CALLBACK(fn)		int fn(struct klp_object *obj), before the object is
 *					patched; non-zero refuses the patch
 *   KLP_POST_PATCH_CALLBACK(fn)	void fn(struct klp_object *obj), after it is patched
 *   KLP_PRE_UNPATCH_CALLBACK(fn)	before it is unpatched
 *   KLP_POST_UNPATCH_CALLBACK(fn)	after it is unpatched
 *   KLP_SYSCALL_DEFINE0..6(name, ...)	SYSCALL_DEFINEn, patchable (klp-build.h, "Syscalls")
 *   KLP_STATIC_CALL(name)		static_call(name) as a plain indirect call through the
 *					key's current function, for a patched function whose static
 *					call key lives in a module
 */
#ifndef _LINUX_LIVEPATCH_HELPERS_H
#define _LINUX_LIVEPATCH_HELPERS_H

#include <linux/livepatch.h>
#include <linux/static_call.h>
#include <linux/syscalls.h>
#include "klp-build.h"

typedef klp_build_pre_patch_t klp_pre_patch_t;
typedef klp_build_post_patch_t klp_post_patch_t;
typedef klp_build_pre_unpatch_t klp_pre_unpatch_t;
typedef klp_build_post_unpatch_t klp_post_unpatch_t;

#define KLP_PRE_PATCH_CALLBACK(fn)	KLP_BUILD_PRE_PATCH_CALLBACK(fn)
#define KLP_POST_PATCH_CALLBACK(fn)	KLP_BUILD_POST_PATCH_CALLBACK(fn)
#define KLP_PRE_UNPATCH_CALLBACK(fn)	KLP_BUILD_PRE_UNPATCH_CALLBACK(fn)
#define KLP_POST_UNPATCH_CALLBACK(fn)	KLP_BUILD_POST_UNPATCH_CALLBACK(fn)

#define KLP_SYSCALL_DEFINE0(name)		KLP_BUILD_SYSCALL_DEFINE0(name)
#define KLP_SYSCALL_DEFINE1(name, ...)	KLP_BUILD_SYSCALL_DEFINE1(name, __VA_ARGS__)
#define KLP_SYSCALL_DEFINE2(name, ...)	KLP_BUILD_SYSCALL_DEFINE2(name, __VA_ARGS__)
#define KLP_SYSCALL_DEFINE3(name, ...)	KLP_BUILD_SYSCALL_DEFINE3(name, __VA_ARGS__)
#define KLP_SYSCALL_DEFINE4(name, ...)	KLP_BUILD_SYSCALL_DEFINE4(name, __VA_ARGS__)
#define KLP_SYSCALL_DEFINE5(name, ...)	KLP_BUILD_SYSCALL_DEFINE5(name, __VA_ARGS__)
#define KLP_SYSCALL_DEFINE6(name, ...)	KLP_BUILD_SYSCALL_DEFINE6(name, __VA_ARGS__)

#define KLP_STATIC_CALL(name)								\
	((typeof(STATIC_CALL_TRAMP(name)) *)(STATIC_CALL_KEY(name).func))

#endif /* _LINUX_LIVEPATCH_HELPERS_H */
