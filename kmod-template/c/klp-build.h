/* SPDX-License-Identifier: GPL-2.0 */
/*
 * klp-build.h - for the authors of fixes that klp-build turns into livepatch modules
 *
 * klp-build puts this header on the include path of the patched build only, so a fix may
 * `#include "klp-build.h"`; the original build never sees the fix and never needs it.
 *
 * Shadow variables. A livepatch cannot change the layout of data that already exists (klp-build
 * refuses such a change as data.changed): the old code keeps using the old layout. Attach the
 * new field to the existing object instead, keyed by the object's address and an id:
 *
 *	struct sk_extra { bool closing; };
 *	#define SK_EXTRA_ID 0x4b4c5001	// unique among all livepatches ever loaded together
 *
 *	extra = klp_build_shadow_get_or_alloc(sk, SK_EXTRA_ID, struct sk_extra, GFP_ATOMIC);
 *	...
 *	klp_build_shadow_free(sk, SK_EXTRA_ID);	// in the patched function that frees sk
 *
 * Keep the id and the type of a shadow variable unchanged across cumulative releases: a
 * replacing module finds the variables its predecessor attached.
 *
 * States. A fix that changes the system in a way its successors must know about (it attached
 * shadow variables, changed a sysctl) declares a klp_state, at file scope of a patched file:
 *
 *	#define SK_EXTRA_STATE 0x4b4c5001
 *	KLP_BUILD_STATE(SK_EXTRA_STATE, 1);
 *
 * klp-build reads the declaration from the patched object and puts the state in the module's
 * klp_patch.states (as --state ID:VERSION would). The kernel then refuses to let a module replace
 * this one unless it carries the same id with a version >= 1, and on replace-set kernels refuses
 * a module of another set that uses the id. The id and the version are read by the assembler:
 * give integer literals or macros that expand to them (0x4b4c5001, not 0x4b4c5001UL).
 *
 * Callbacks. Code that must run when the patch is applied to or removed from an object (vmlinux,
 * or the module of the patched file) is registered at file scope of a patched file:
 *
 *	static int fix_pre_patch(struct klp_object *obj) { return prepare(); }  // != 0: no patch
 *	static void fix_post_patch(struct klp_object *obj) { ... }
 *	KLP_BUILD_PRE_PATCH_CALLBACK(fix_pre_patch);
 *	KLP_BUILD_POST_PATCH_CALLBACK(fix_post_patch);
 *
 * The four kinds are those of struct klp_callbacks: pre-patch (may refuse the patch by returning
 * an error), post-patch, pre-unpatch, post-unpatch. Each kind is registered at most once per
 * object: a second one in the same file does not compile, one in another file of the same
 * object is refused by klp-build naming both. The callbacks belong to the klp_object of the
 * object the file is built into, so that object needs a patched function as well. A callback of
 * a module runs when that module loads, if it loads after the patch.
 *
 * The registration is a pointer variable named __klp_<kind>_callback_<suffix> in the section
 * .discard.klp_callback_ptrs (which every kernel link discards), the form the kernel's own <linux/livepatch_helpers.h>
 * (Linux 6.19 and later) writes: klp-build reads both the same way, and the variable never
 * reaches the module; the function does, with the patch.
 *
 * Syscalls. SYSCALL_DEFINEn cannot be patched as it is: its inner __do_sys_<name>() is `static
 * inline`, hence notrace, so when gcc keeps it out of line the changed function has no ftrace
 * call site. KLP_BUILD_SYSCALL_DEFINEn(name, ...) defines the same __x64_sys_<name>,
 * __ia32_sys_<name> and __se_sys_<name> as the kernel does, with the body in a new inner function,
 * so the kernel's own entry points are the changed functions that get patched. It leaves out the
 * syscall's trace metadata, which the kernel already holds for the original.
 */
#ifndef _KLP_BUILD_H
#define _KLP_BUILD_H

#include <linux/compiler.h>
#include <linux/gfp.h>
#include <linux/livepatch.h>
#include <linux/syscalls.h>

/* The shadow variable <obj, id> as a `type *`, or NULL if none is attached. */
#define klp_build_shadow_get(obj, id, type) \
	((type *)klp_shadow_get((obj), (id)))

/*
 * The shadow variable <obj, id> as a `type *`, attaching a zero-filled one first if there is
 * none; NULL if that allocation fails. Safe against a concurrent attach of the same pair.
 */
#define klp_build_shadow_get_or_alloc(obj, id, type, gfp) \
	((type *)klp_shadow_get_or_alloc((obj), (id), sizeof(type), (gfp), NULL, NULL))

/* Detaches and frees the shadow variable <obj, id>, if any. */
#define klp_build_shadow_free(obj, id) \
	klp_shadow_free((obj), (id), NULL)

/* Detaches and frees every shadow variable with this id, whatever object it is attached to. */
#define klp_build_shadow_free_all(id) \
	klp_shadow_free_all((id), NULL)

#define __KLP_BUILD_STR(x) #x
#define __KLP_BUILD_XSTR(x) __KLP_BUILD_STR(x)

/*
 * Declares the klp_state <id, version>: one 16-byte record (u64 id, u32 version, u32 0) in the
 * non-alloc section .discard.klp_build.states (klp_build_abi.h), which klp-build reads and no
 * module ever loads; nothing is emitted into the patched code or data.
 */
#define KLP_BUILD_STATE(id, version)							\
	_Static_assert((id) != 0, "KLP_BUILD_STATE: state id 0 ends klp_patch.states");	\
	_Static_assert((version) >= 0 && (version) <= 0xffffffffLL,			\
		       "KLP_BUILD_STATE: the version must fit 32 bits");			\
	asm(".pushsection .discard.klp_build.states,\"\",@progbits\n\t"			\
	    ".balign 8\n\t"								\
	    ".quad " __KLP_BUILD_XSTR(id) "\n\t"					\
	    ".long " __KLP_BUILD_XSTR(version) "\n\t"					\
	    ".long 0\n\t"								\
	    ".popsection")

/* The callback types of struct klp_callbacks. */
typedef int (*klp_build_pre_patch_t)(struct klp_object *obj);
typedef void (*klp_build_post_patch_t)(struct klp_object *obj);
typedef void (*klp_build_pre_unpatch_t)(struct klp_object *obj);
typedef void (*klp_build_post_unpatch_t)(struct klp_object *obj);

/* The section klp-build reads callback registrations from (klp_build_abi.h). */
#define KLP_BUILD_CALLBACKS_SECTION ".discard.klp_callback_ptrs"

/*
 * One registration of `fn` as the callback `kind`. The variable's type checks fn's signature;
 * its name, the same for every registration of a kind, makes a second one in a file an error.
 */
#define __KLP_BUILD_CALLBACK(kind, fn)							\
	static klp_build_##kind##_t __klp_##kind##_callback_klp_build			\
		__used __section(KLP_BUILD_CALLBACKS_SECTION) = (fn)

#define KLP_BUILD_PRE_PATCH_CALLBACK(fn)	__KLP_BUILD_CALLBACK(pre_patch, fn)
#define KLP_BUILD_POST_PATCH_CALLBACK(fn)	__KLP_BUILD_CALLBACK(post_patch, fn)
#define KLP_BUILD_PRE_UNPATCH_CALLBACK(fn)	__KLP_BUILD_CALLBACK(pre_unpatch, fn)
#define KLP_BUILD_POST_UNPATCH_CALLBACK(fn)	__KLP_BUILD_CALLBACK(post_unpatch, fn)

#if defined(CONFIG_X86_64) && defined(CONFIG_ARCH_HAS_SYSCALL_WRAPPER)
/*
 * x86_64's __SYSCALL_DEFINEx (arch/x86/include/asm/syscall_wrapper.h, the same in 6.1 and 6.12)
 * with the inner function renamed: __x64_sys##name and __ia32_sys##name (the stubs, with their
 * error-injection entries) call __se_sys##name, which calls the body. gcc inlines the body and
 * usually __se_sys##name too, so the change shows in the kernel's entry points.
 */
#define __KLP_BUILD_SYSCALL_DEFINEx(x, name, ...)					\
	static long __se_sys##name(__MAP(x, __SC_LONG, __VA_ARGS__));			\
	static inline long __klp_build_do_sys##name(__MAP(x, __SC_DECL, __VA_ARGS__));	\
	__X64_SYS_STUBx(x, name, __VA_ARGS__)						\
	__IA32_SYS_STUBx(x, name, __VA_ARGS__)						\
	static long __se_sys##name(__MAP(x, __SC_LONG, __VA_ARGS__))			\
	{										\
		long ret = __klp_build_do_sys##name(__MAP(x, __SC_CAST, __VA_ARGS__));	\
		__MAP(x, __SC_TEST, __VA_ARGS__);					\
		__PROTECT(x, ret, __MAP(x, __SC_ARGS, __VA_ARGS__));			\
		return ret;								\
	}										\
	static inline long __klp_build_do_sys##name(__MAP(x, __SC_DECL, __VA_ARGS__))

/*
 * SYSCALL_DEFINE0 has no inline inner function (__do_sys_<name> is a plain static function with
 * an ftrace call site): the kernel's definition without its trace metadata.
 */
#define KLP_BUILD_SYSCALL_DEFINE0(sname)						\
	static long __do_sys_##sname(const struct pt_regs *__unused);			\
	__X64_SYS_STUB0(sname)								\
	__IA32_SYS_STUB0(sname)								\
	static long __do_sys_##sname(const struct pt_regs *__unused)
#endif /* x86_64 with syscall wrappers: elsewhere KLP_BUILD_SYSCALL_DEFINEn is not defined */

#define KLP_BUILD_SYSCALL_DEFINE1(name, ...) __KLP_BUILD_SYSCALL_DEFINEx(1, _##name, __VA_ARGS__)
#define KLP_BUILD_SYSCALL_DEFINE2(name, ...) __KLP_BUILD_SYSCALL_DEFINEx(2, _##name, __VA_ARGS__)
#define KLP_BUILD_SYSCALL_DEFINE3(name, ...) __KLP_BUILD_SYSCALL_DEFINEx(3, _##name, __VA_ARGS__)
#define KLP_BUILD_SYSCALL_DEFINE4(name, ...) __KLP_BUILD_SYSCALL_DEFINEx(4, _##name, __VA_ARGS__)
#define KLP_BUILD_SYSCALL_DEFINE5(name, ...) __KLP_BUILD_SYSCALL_DEFINEx(5, _##name, __VA_ARGS__)
#define KLP_BUILD_SYSCALL_DEFINE6(name, ...) __KLP_BUILD_SYSCALL_DEFINEx(6, _##name, __VA_ARGS__)

#endif /* _KLP_BUILD_H */
