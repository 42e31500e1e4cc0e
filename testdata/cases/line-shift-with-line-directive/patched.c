// The lines of line-shift-without-line-directive added, followed by the #line directive that the
// patch stage (src/patch/line_directives.rs) writes before the first unchanged line: __LINE__ keeps
// its original value below it and nothing changes.
// A pair of files, not #ifdef PATCHED: lines skipped by #ifdef still count for __LINE__.
// Directives are read from patched.c; this header is the same in both files.
//#Expect: none
//#Flags: 6.1 clang

extern void __might_sleep(const char *file, int line);

int early_check(int v)
{
	return v & 1;
}

/*
 * A new comment block, as a fix adds above the code it touches.
 */
#line 14

void report_state(void)
{
	__might_sleep("kernel/sched/core.c", __LINE__);
}
