// Two block-scoped `static int seen` in one function: gcc names them seen.0 and seen.1, the
// names form a numbered family (never paired by exact name), both are used by the same function
// (scope cannot tell them apart), so only position pairs them, in object order, and the report
// warns about each pair.
//#Expect: func.changed track
//#Expect: correlate.position seen.0
//#Expect: correlate.position seen.1
//#Rule: seen.0 position
//#Rule: seen.1 position
//#Rule: track exact

extern void note(int n);

void track(int v)
{
	if (v & 1) {
		static int seen;
		note(++seen);
	} else {
		static int seen;
#ifdef PATCHED
		seen += 2;
		note(seen);
#else
		note(++seen);
#endif
	}
}
