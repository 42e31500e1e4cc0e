// A fix inside a static inline helper: gcc inlined it, so there is no helper symbol to replace;
// every caller that inlined it changed and is reported instead, and the caller that does not use
// it is not.
//#Expect: func.changed get_flags
//#Expect: func.changed set_flags
//#ExpectNot: func.changed reset
//#Included: get_flags
//#Flags: 6.1 clang

struct inode {
	unsigned int flags;
	unsigned int mode;
};

static inline unsigned int mask_flags(unsigned int f)
{
#ifdef PATCHED
	return f & 0x0fff;
#else
	return f & 0xffff;
#endif
}

unsigned int get_flags(struct inode *i)
{
	return mask_flags(i->flags);
}

void set_flags(struct inode *i, unsigned int f)
{
	i->flags = mask_flags(f) | 0x10000;
}

void reset(struct inode *i)
{
	i->flags = 0;
	i->mode = 0;
}
