// Lines added above a function that uses __LINE__ (BUG(), WARN_ON() and might_sleep() all record
// it) change that function's code although its source did not change. The patch stage prevents
// this by injecting #line directives (see line-shift-with-line-directive); objects built without
// them (klp-build diff on another tool's objects) differ in the immediate that __might_sleep gets
// as its line, which the diff reports as func.line-only, not as a change.
// A pair of files, not #ifdef PATCHED: lines skipped by #ifdef still count for __LINE__.
// Directives are read from patched.c; this header is the same in both files.
//#Expect: func.line-only report_state
//#ExpectNot: func.changed report_state
//#ExpectNot: func.changed early_check
//#Flags: 6.1 clang

extern void __might_sleep(const char *file, int line);

int early_check(int v)
{
	return v & 1;
}

/*
 * A new comment block, as a fix adds above the code it touches.
 */

void report_state(void)
{
	__might_sleep("kernel/sched/core.c", __LINE__);
}
