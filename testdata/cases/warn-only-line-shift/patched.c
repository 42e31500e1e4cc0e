// A comment block added above a function whose only use of __LINE__ is a WARN_ON_ONCE(), in
// an object built without #line: the line lives in the __bug_table entry, not in the code, so
// the function's code and relocations are the same, and the diff, which compares each
// function's special-section entries too, reports it as func.line-only: not patched, the
// kernel's entry keeps the line of the kernel's code. A pair of files; directives are read from
// patched.c.
//#Flags: 6.1 6.12 clang
//#Expect: func.line-only queue_work_check
//#ExpectNot: func.changed queue_work_check

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

int queue_work_check(struct work_struct *w)
{
	if (WARN_ON_ONCE(!w->func))
		return 0;
	return (int)(w->data & 1);
}
