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

#endif /* _KLP_BUILD_H */
