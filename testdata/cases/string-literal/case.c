// A message fixed in a printk(): the string is compared by content through the relocation,
// not by its offset in .rodata.str1.1, and the new string travels with the function.
//#Expect: func.changed show_limit
//#ExpectNot: func.changed show_other
//#Included: show_limit
//#Extern: _printk
//#Flags: 6.1 clang 6.1+gz

extern int _printk(const char *fmt, ...);

int show_limit(int limit)
{
#ifdef PATCHED
	_printk("limit is %d pages\n", limit);
#else
	_printk("limit is %d\n", limit);
#endif
	return 0;
}

int show_other(int v)
{
	_printk("other is %d\n", v);
	return 0;
}
