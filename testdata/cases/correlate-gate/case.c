// The dont_correlate gate: printk_once()'s `__already_done` flags (include/linux/once_lite.h) are
// special statics. A fix that adds one to first() renumbers the flags of quiet(), which has two:
// scope cannot tell quiet()'s two apart (one user), and the gate keeps position from pairing
// them, so they stay unpaired, are warned about by name, and compare by what they are (same
// stripped name, size and bytes): quiet() is not reported as changed.
//#Expect: func.changed first
//#ExpectNot: func.changed quiet
//#Expect: correlate.gated __already_done.0
//#Expect: correlate.gated __already_done.1
//#Rule: __already_done.0 none
//#Rule: __already_done.1 none
//#Included: first

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

void quiet(int v)
{
	if (v < 0)
		printk_once("quiet: negative %d\n", v);
	if (v > 100)
		printk_once("quiet: large %d\n", v);
}

void first(int v)
{
#ifdef PATCHED
	if (v == 0)
		printk_once("first: zero\n");
#endif
	_printk("first: %d\n", v);
}
