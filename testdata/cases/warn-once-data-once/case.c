// WARN_ONCE() in the 6.2+ layout (include/linux/once_lite.h: `static bool __already_done` in
// .data..once, with two dots since 6.2; compiled with the 6.12 flags). The fix adds a second
// WARN_ONCE to one function; the flags of both functions are per-site state, never correlated and
// never a data change: the changed function's flags go into the module with it, the other
// function keeps the kernel's.
//#Flags: 6.12
//#Expect: func.changed check_quota
//#ExpectNot: func.changed check_inode
//#ExpectNot: data.changed __already_done
//#Included: check_quota
//#Included: __already_done.1
//#Included: __already_done.2
//#Extern: warn_slowpath_fmt

#define __section(s) __attribute__((__section__(s)))
#define unlikely(x) __builtin_expect(!!(x), 0)

extern void warn_slowpath_fmt(const char *file, int line, unsigned taint, const char *fmt, ...);

#define WARN_ONCE(cond, fmt...)						\
({									\
	static _Bool __section(".data..once") __already_done;		\
	int __ret_cond = !!(cond);					\
									\
	if (unlikely(__ret_cond && !__already_done)) {			\
		__already_done = 1;					\
		warn_slowpath_fmt("fs/quota/dquot.c", 0, 9, fmt);	\
	}								\
	unlikely(__ret_cond);						\
})

int check_quota(long used, long limit)
{
#ifdef PATCHED
	if (WARN_ONCE(limit < 0, "negative limit %ld\n", limit))
		return -22;
#endif
	if (WARN_ONCE(used > limit, "quota %ld over %ld\n", used, limit))
		return -122;
	return 0;
}

int check_inode(long ino)
{
	if (WARN_ONCE(ino == 0, "inode 0\n"))
		return -5;
	return 0;
}
