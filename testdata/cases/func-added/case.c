// A fix that factors a check into a new function: the new function is reported as added and
// carried into the output object, its caller is changed and calls the module's copy.
//#Expect: func.added validate_len
//#Expect: func.changed do_write
//#Included: validate_len
//#Included: do_write
//#Extern: copy_in
//#Flags: 6.1 clang

extern unsigned long copy_in(void *dst, const void *src, unsigned long len);

#ifdef PATCHED
__attribute__((__noinline__)) int validate_len(unsigned long len)
{
	return len > 4096 ? -22 : 0;
}
#endif

long do_write(void *dst, const void *src, unsigned long len)
{
#ifdef PATCHED
	int err = validate_len(len);

	if (err)
		return err;
#endif
	if (copy_in(dst, src, len))
		return -14;
	return len;
}
