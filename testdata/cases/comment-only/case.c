// A patch that only rewords a comment (in place, so no line moves): no function changes, the
// report is empty and `klp-build diff` exits 3 (no functional change).
//#Expect: none
//#Flags: 6.1 clang

extern int _printk(const char *fmt, ...);

int show_count(int n)
{
#ifdef PATCHED
	/* n counts pages, not bytes */
#else
	/* n is a count */
#endif
	return _printk("%d\n", n);
}
