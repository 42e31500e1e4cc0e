// A fix that needs new file-local state (a static variable and a static const table) adds them:
// they have no twin in the kernel, so they go into the module with the function that uses them,
// initialised as written, while the file's existing static stays the kernel's (an extern).
//#Flags: 6.1 6.12 clang
//#Expect: func.changed tty_ldisc_pick
//#ExpectNot: data.changed ldisc_default
//#Included: tty_ldisc_pick
//#Included: ldisc_fallbacks
//#Included: ldisc_fallback_hits
//#Extern: ldisc_default

static int ldisc_default = 0;

#ifdef PATCHED
static const int ldisc_fallbacks[4] = { 0, 2, 5, 7 };
static unsigned long ldisc_fallback_hits;
#endif

int tty_ldisc_pick(int want)
{
	if (want < 0 || want > 30) {
#ifdef PATCHED
		int f = ldisc_fallbacks[++ldisc_fallback_hits & 3];

		return f > ldisc_default ? f : ldisc_default;
#else
		return ldisc_default;
#endif
	}
	return want;
}

void tty_ldisc_set_default(int d)
{
	ldisc_default = d;
}
