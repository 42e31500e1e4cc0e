// printk_once() (include/linux/once_lite.h, DO_ONCE_LITE) keeps a `static bool __already_done`
// per call site in the shared section .data.once. The fix adds a second printk_once() to
// warn_a, which shifts warn_b's flag within .data.once. The flags are per-copy state that
// objtool does not correlate: warn_a's output gets copies of its own, warn_b is not reported,
// and no data finding is raised for the flags.
//#Expect: func.changed warn_a
//#ExpectNot: func.changed warn_b
//#ExpectNot: data.changed __already_done
//#Included: warn_a
//#Included: __already_done.1
//#Included: __already_done.2
//#Extern: _printk

#define __section(s) __attribute__((__section__(s)))
#define unlikely(x) __builtin_expect(!!(x), 0)

extern int _printk(const char *fmt, ...);

#define printk_once(fmt, ...)						\
({									\
	static _Bool __section(".data.once") __already_done;		\
	_Bool __ret_do_once = !__already_done;				\
									\
	if (unlikely(__ret_do_once)) {					\
		__already_done = 1;					\
		_printk(fmt, ##__VA_ARGS__);				\
	}								\
	unlikely(__ret_do_once);					\
})

void warn_a(int v)
{
#ifdef PATCHED
	if (v > 100)
		printk_once("warn_a: %d is out of range\n", v);
#endif
	if (v < 0)
		printk_once("warn_a: negative %d\n", v);
}

void warn_b(int v)
{
	if (v == 0)
		printk_once("warn_b: zero\n");
}
