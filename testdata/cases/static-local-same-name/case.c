// Two functions of one file keep a `static int calls` each; gcc names them calls.0 and calls.1.
// The fix changes count_write only: count_read stays unreported, and count_write keeps using the
// kernel's instance of its own counter (an extern for the resolve stage), not a new copy.
//#Expect: func.changed count_write
//#ExpectNot: func.changed count_read
//#ExpectNot: data.changed calls
//#Extern: calls.0

extern void note_calls(int n);

void count_read(void)
{
	static int calls;

	note_calls(++calls);
}

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
