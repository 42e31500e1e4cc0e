// A file_operations-style table of function pointers registered at boot: the fix changes one
// method. The table is unchanged data (its relocations still name the same functions), so it is
// neither refused nor copied; the kernel calls through it and ftrace redirects the method.
//#Expect: func.changed ops_read
//#ExpectNot: data.changed ops
//#ExpectNot: func.changed ops_write
//#ExpectNot: func.changed register_it
//#Included: ops_read
//#Flags: 6.1 clang

struct my_ops {
	long (*read)(char *buf, long n);
	long (*write)(const char *buf, long n);
};

extern long fill(char *buf, long n);
extern int register_ops(const struct my_ops *ops);

static long ops_read(char *buf, long n)
{
#ifdef PATCHED
	if (n > 4096)
		n = 4096;
#endif
	return fill(buf, n);
}

static long ops_write(const char *buf, long n)
{
	return n;
}

static const struct my_ops ops = {
	.read = ops_read,
	.write = ops_write,
};

int register_it(void)
{
	return register_ops(&ops);
}
