// A changed constant that is no line value: the fix fills 32 bytes instead of 16. The only
// difference is the immediate of `mov $16, %edx` before the call, the shape a __LINE__ argument
// has, but fill_buf() takes no line: the function changed. (Not memset(), which gcc inlines.)
//#Expect: func.changed clear_buf
//#ExpectNot: func.line-only clear_buf
//#Explain: clear_buf
//#Flags: 6.1 clang

extern void fill_buf(char *b, int c, unsigned long n);
extern void use_buf(char *b);

void clear_buf(char *b)
{
#ifdef PATCHED
	fill_buf(b, 0, 32);
#else
	fill_buf(b, 0, 16);
#endif
	use_buf(b);
}
