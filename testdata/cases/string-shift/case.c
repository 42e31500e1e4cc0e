// A new message in one function moves the other functions' strings within the merged string
// section (.rodata.str1.1): their relocation addends change, the strings do not. Strings are
// compared by content, so only the function that really changed is reported.
//#Expect: func.changed probe
//#ExpectNot: func.changed remove
//#ExpectNot: func.changed suspend
//#Included: probe
//#Flags: 6.1 clang

extern int _printk(const char *fmt, ...);

int probe(int id)
{
#ifdef PATCHED
	if (id < 0) {
		_printk("probe: invalid id %d\n", id);
		return -19;
	}
#endif
	_printk("probe: device %d\n", id);
	return 0;
}

void remove(int id)
{
	_printk("remove: device %d\n", id);
}

void suspend(int id)
{
	_printk("suspend: device %d\n", id);
}
