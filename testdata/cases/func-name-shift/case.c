// pr_err("%s: ...", __func__) is everywhere in the kernel; gcc emits each function's __func__ as
// a local object __func__.N (in .rodata.__func__.N), numbered in reverse order of definition.
// The fix adds a new function that prints its __func__ after dev_open: the new name takes
// dev_open's number (__func__.2 is now "dev_reset") and dev_open's moves to __func__.3. dev_open
// prints the same text as before and must not be reported; the new function gets its own copy of
// its name (objtool does not correlate __func__).
//#Expect: func.added dev_reset
//#Expect: func.changed dev_ioctl
//#ExpectNot: func.changed dev_open
//#ExpectNot: func.changed dev_close
//#Included: dev_reset
//#Flags: 6.1 clang

extern int _printk(const char *fmt, ...);
extern int hw_state(int id);

int dev_open(int id)
{
	if (hw_state(id) < 0) {
		_printk("%s: device %d not ready\n", __func__, id);
		return -19;
	}
	return 0;
}

#ifdef PATCHED
__attribute__((__noinline__)) int dev_reset(int id)
{
	_printk("%s: resetting %d\n", __func__, id);
	return hw_state(-id);
}
#endif

int dev_ioctl(int id, int cmd)
{
#ifdef PATCHED
	if (cmd == 7)
		return dev_reset(id);
#endif
	if (cmd > 7)
		_printk("%s: bad command %d\n", __func__, cmd);
	return 0;
}

void dev_close(int id)
{
	if (hw_state(id))
		_printk("%s: device %d busy\n", __func__, id);
}
