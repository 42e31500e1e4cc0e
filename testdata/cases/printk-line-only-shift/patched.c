// A comment block added above a function that prints __LINE__ (the file:line messages of
// drivers and of BUG-style helpers), in an object built without #line: the line is an immediate
// operand of the call, so the bytes differ and nothing else does. That is func.line-only, as
// kpatch-build reports it, not a changed function. A pair of files; directives in patched.c.
//#Flags: 6.1 6.12 clang
//#Expect: func.line-only flush_work_check
//#ExpectNot: func.changed flush_work_check

#define _BUG_FLAGS(ins, flags)						\
do {									\
	asm volatile("1:\t" ins "\n"					\
		     ".pushsection __bug_table,\"aw\"\n"		\
		     "2:\t.long 1b - .\n"				\
		     "\t.long %c0 - .\n"				\
		     "\t.word %c1\n"					\
		     "\t.word %c2\n"					\
		     "\t.org 2b+%c3\n"					\
		     ".popsection"					\
		     : : "i" ("kernel/workqueue.c"), "i" (__LINE__),	\
			 "i" (flags), "i" (12));			\
} while (0)

#define WARN_ON_ONCE(condition) ({					\
	int __ret_warn_on = !!(condition);				\
	if (__builtin_expect(__ret_warn_on, 0))				\
		_BUG_FLAGS("ud2", (1 << 0) | (1 << 1) | (9 << 8));	\
	__builtin_expect(__ret_warn_on, 0);				\
})

extern int _printk(const char *fmt, ...);

struct work_struct {
	unsigned long data;
	void *func;
};

/*
 * A comment block the fix adds.
 */

int flush_work_check(struct work_struct *w)
{
	if (!w->func) {
		_printk("\0013workqueue: %s:%d: no function\n", "kernel/workqueue.c", __LINE__);
		return 0;
	}
	return (int)(w->data & 1);
}
