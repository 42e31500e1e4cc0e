// Lines shift above a function that records __LINE__ (no #line directives) and the same fix
// also changes that function's code: the line-only rule must not hide a real change. The
// function is func.changed, not func.line-only.
//#Flags: 6.1 6.12 clang
//#Expect: func.changed free_pages_check
//#ExpectNot: func.line-only free_pages_check
//#ExpectNot: func.changed zone_watermark_ok
//#Included: free_pages_check

#define BUGFLAG_WARNING (1 << 0)
#define BUGFLAG_TAINT(taint) ((taint) << 8)

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
		     : : "i" ("mm/page_alloc.c"), "i" (__LINE__),	\
			 "i" (flags), "i" (12));			\
} while (0)

#define WARN_ON(condition) ({						\
	int __ret_warn_on = !!(condition);				\
	if (__builtin_expect(__ret_warn_on, 0))				\
		_BUG_FLAGS("ud2", BUGFLAG_WARNING | BUGFLAG_TAINT(9));	\
	__builtin_expect(__ret_warn_on, 0);				\
})

extern void __might_sleep(const char *file, int line);
extern int _printk(const char *fmt, ...);

int zone_watermark_ok(long free, long mark)
{
	return free > mark;
}

/*
 * The fix: a comment block,
 * as fixes add above the code they touch.
 */

void free_pages_check(unsigned long flags, int order)
{
	__might_sleep("mm/page_alloc.c", __LINE__);
	WARN_ON(flags & 1);
	if (order > 11)
		_printk("\0013%s:%d: order %d\n", "mm/page_alloc.c", __LINE__, order);
}
