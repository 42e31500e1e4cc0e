// A fix inside a static helper that gcc keeps out of line (noinline): only the helper is
// replaced; its caller keeps calling it through the kernel's own call, which ftrace redirects.
//#Expect: func.changed clamp_len
//#ExpectNot: func.changed do_read
//#Included: clamp_len
//#Flags: 6.1 clang

extern unsigned long copy_out(void *dst, const void *src, unsigned long len);

static __attribute__((__noinline__)) unsigned long clamp_len(unsigned long len, unsigned long max)
{
#ifdef PATCHED
	if (len >= max)
		return max - 1;
#else
	if (len > max)
		return max;
#endif
	return len;
}

long do_read(void *dst, const void *src, unsigned long len, unsigned long max)
{
	len = clamp_len(len, max);
	if (copy_out(dst, src, len))
		return -14;
	return len;
}
