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
 */
#ifndef _KLP_BUILD_H
#define _KLP_BUILD_H

#include <linux/gfp.h>
#include <linux/livepatch.h>

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

#endif /* _KLP_BUILD_H */
