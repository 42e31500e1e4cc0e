// A fix adds lines above functions that report errors the way fs/ext4 does: a helper taking
// (__func__, __LINE__) that no table lists (__ext4_error(sb, __func__, __LINE__, fmt, ...)).
// Without #line directives the line immediates differ; the register before the line holds the
// __func__ string (a relocation to __func__.N), which marks the pair: func.line-only. The other
// function passes a changed constant to the same helper with no __func__ before it: changed.
// A pair of files, not #ifdef PATCHED: lines skipped by #ifdef still count for __LINE__.
// Directives are read from patched.c; this header is the same in both files.
//#Expect: func.line-only check_super
//#Expect: func.changed check_flags
//#ExpectNot: func.changed check_super
//#Explain: check_super

extern void __fs_error(void *sb, const char *func, unsigned int line, const char *fmt, ...);
extern void fs_note(void *sb, int code, unsigned int line);

void check_flags(void *sb, int flags)
{
	if (flags & 4)
		fs_note(sb, 1, 9);
	/* a fix adds a line */
}

int check_super(void *sb, int magic)
{
	if (magic != 0xef53) {
		__fs_error(sb, __func__, __LINE__, "bad magic %x", magic);
		return -22;
	}
	return 0;
}
