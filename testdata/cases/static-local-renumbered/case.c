// Three functions of one file keep a `static int calls` each; gcc names them calls.0, calls.1,
// ... in reverse order of definition. The fix adds count_open, with its own counter, between
// the other two and changes count_write only. The names shift: count_read's calls.1 becomes
// calls.2 and the new counter takes the name calls.1. Correlation by scope (the one function that
// uses each static) must pair count_read's counter again despite the name now held by another:
// count_read stays unreported, count_write keeps using the kernel's instance of its counter
// (calls.0), and count_open's new counter goes into the module (calls.1 of the patched object).
//#Expect: func.changed count_write
//#Expect: func.added count_open
//#ExpectNot: func.changed count_read
//#ExpectNot: data.changed calls
//#Included: count_open
//#Included: calls.1
//#Extern: calls.0

extern void note_calls(int n);

void count_read(void)
{
	static int calls;

	note_calls(++calls);
}

#ifdef PATCHED
void count_open(void)
{
	static int calls;

	note_calls(++calls);
}
#endif

void count_write(void)
{
	static int calls;

#ifdef PATCHED
	calls += 2;
	note_calls(calls);
#else
	note_calls(++calls);
#endif
}
