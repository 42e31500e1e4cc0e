// A fix that changes the initial value of a static variable the kernel already holds in memory:
// the livepatch cannot re-initialise it, so the diff refuses and points at shadow variables.
// The variable is written at run time too, so gcc cannot fold it into a constant.
//#ExpectError: ^data\.changed .*max_retries.*initial value.*shadow variable
//#Expect: data.changed max_retries
//#ExpectNot: func.changed should_retry
//#Flags: 6.1 clang

static int max_retries =
#ifdef PATCHED
	5;
#else
	3;
#endif

void set_max_retries(int n)
{
	max_retries = n;
}

int should_retry(int attempt)
{
	return attempt < max_retries;
}
