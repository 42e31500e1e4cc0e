// A static local whose value must survive the patch (kernel/printk's `static u64 seen_seq`,
// net's `static unsigned long last_jiffies` throttles): gcc names it `last_warn.<N>`. The fix
// changes the function that updates it; the module's copy must use the kernel's variable (an
// extern to last_warn.1, correlated by name and scope), not a fresh zero, or the throttle restarts.
// The other function with a static of its own is not reported.
//#Flags: 6.1 6.12
//#Expect: func.changed oom_warn_throttle
//#ExpectNot: func.changed oom_count
//#ExpectNot: data.changed last_warn
//#Included: oom_warn_throttle
//#Extern: last_warn.1

extern unsigned long jiffies;
extern int _printk(const char *fmt, ...);

int oom_warn_throttle(int order)
{
	static unsigned long last_warn;

#ifdef PATCHED
	if (jiffies - last_warn < 10 * 250)
#else
	if (jiffies - last_warn < 5 * 250)
#endif
		return 0;
	last_warn = jiffies;
	_printk("\0014oom: order %d allocation failed\n", order);
	return 1;
}

int oom_count(void)
{
	static int calls;

	return ++calls;
}
