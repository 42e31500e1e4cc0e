// A fix that needs new state adds a variable: it has no twin in the kernel, so it goes into the
// module with the function that uses it, while existing variables stay the kernel's (externs).
//#Expect: func.changed throttle
//#ExpectNot: data.changed throttled
//#Included: throttle
//#Included: throttle_hits
//#Extern: throttled
//#Flags: 6.1 clang

int throttled;
#ifdef PATCHED
unsigned long throttle_hits;
#endif

int throttle(int load)
{
	if (load > 90) {
		throttled = 1;
#ifdef PATCHED
		throttle_hits++;
#endif
		return 1;
	}
	throttled = 0;
	return 0;
}
