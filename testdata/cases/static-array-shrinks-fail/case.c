// A fix that shrinks a static table (a static array of limits in a driver): the kernel's array
// keeps its size and contents; resizing data is refused as data.resized, and both functions
// whose code changed with the bound are reported as changed too.
//#Flags: 6.1 6.12 clang
//#ExpectError: ^data\.resized .*rate_limits.*changes size
//#Expect: data.resized rate_limits
//#Expect: func.changed rate_limit_of
//#Expect: func.changed rate_limit_scale

#ifdef PATCHED
static int rate_limits[3] = { 100, 200, 400 };
#define NLIMITS 3
#else
static int rate_limits[4] = { 100, 200, 400, 800 };
#define NLIMITS 4
#endif

int rate_limit_of(unsigned int i)
{
	return rate_limits[i % NLIMITS];
}

void rate_limit_scale(int f)
{
	for (int i = 0; i < NLIMITS; i++)
		rate_limits[i] *= f;
}
