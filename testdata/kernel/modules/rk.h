/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rk.h: one livepatch of the reference kernel's test (tests/refkernel.rs), described by the
 * module's .c file before it includes this header:
 *   RK_SET          the patch's replace_set
 *   RK_SUPERSEDES   optional, the other sets it replaces (a comma-separated list)
 *   RK_STATES       optional, its klp_state entries ({ .id = 10, .version = 2 },)
 *   RK_CMDLINE, RK_VERSION, RK_LOADAVG, RK_UPTIME
 *                   patch cmdline_proc_show, version_proc_show, loadavg_proc_show,
 *                   uptime_proc_show: /proc/<file> then reads "patched-by <module>", so the
 *                   guest sees which enabled patch owns which function.
 * The module's name is its file name (kbuild's KBUILD_MODNAME).
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/seq_file.h>

static int rk_show(struct seq_file *m, void *v)
{
	seq_printf(m, "patched-by %s\n", THIS_MODULE->name);
	return 0;
}

static struct klp_func rk_funcs[] = {
#ifdef RK_CMDLINE
	{ .old_name = "cmdline_proc_show", .new_func = rk_show },
#endif
#ifdef RK_VERSION
	{ .old_name = "version_proc_show", .new_func = rk_show },
#endif
#ifdef RK_LOADAVG
	{ .old_name = "loadavg_proc_show", .new_func = rk_show },
#endif
#ifdef RK_UPTIME
	{ .old_name = "uptime_proc_show", .new_func = rk_show },
#endif
	{ }
};

static struct klp_object rk_objs[] = {
	{
		/* name being NULL means vmlinux */
		.funcs = rk_funcs,
	}, { }
};

#ifdef RK_STATES
static struct klp_state rk_states[] = {
	RK_STATES
	{ }
};
#endif

#ifdef RK_SUPERSEDES
static const unsigned int rk_supersedes[] = { RK_SUPERSEDES };
#endif

static struct klp_patch rk_patch = {
	.mod = THIS_MODULE,
	.objs = rk_objs,
	.replace_set = RK_SET,
#ifdef RK_STATES
	.states = rk_states,
#endif
#ifdef RK_SUPERSEDES
	.supersedes = rk_supersedes,
	.nr_supersedes = ARRAY_SIZE(rk_supersedes),
#endif
};

static int __init rk_init(void)
{
	return klp_enable_patch(&rk_patch);
}

static void __exit rk_exit(void)
{
}

module_init(rk_init);
module_exit(rk_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("replace-set reference kernel test patch");
