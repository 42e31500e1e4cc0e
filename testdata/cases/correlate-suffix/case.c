// gcc numbers static locals per file in reverse order of definition: a new function with a static
// of its own, defined after count(), renames count()'s `calls.0` to `calls.1`. Each name has one
// symbol on each side once the number is removed, so the suffix rule pairs them (before scope):
// count() keeps using the kernel's counter, and the new function's counter goes into the module.
//#Expect: func.changed count
//#Expect: func.added other
//#Rule: calls.1 suffix
//#Rule: hits.0 none
//#Rule: count exact
//#Extern: calls.0
//#Included: hits.0
//#Explain: count

extern void note(int n);

void count(void)
{
	static int calls;
#ifdef PATCHED
	calls += 2;
	note(calls);
#else
	note(++calls);
#endif
}

#ifdef PATCHED
void other(void)
{
	static int hits;
	note(++hits);
}
#endif
