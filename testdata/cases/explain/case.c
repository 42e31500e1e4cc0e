// klp-build diff --explain FUNC: why a function counts as changed. show_state() now calls another
// function (the first differing instruction is the call, with its relocation target);
// show_count() changed a constant (the first differing instruction is the mov); show_name() did
// not change, and no_such_function is in neither object: both are errors that name the function.
//#Expect: func.changed show_state
//#Expect: func.changed show_count
//#ExpectNot: func.changed show_name
//#Explain: show_state
//#Explain: show_count
//#Explain: show_name
//#Explain: no_such_function
//#Flags: 6.1 clang

extern int seq_puts(void *m, const char *s);
extern int seq_put_decimal(void *m, long v);
extern int seq_put_hex(void *m, long v);

int show_state(void *m, long v)
{
#ifdef PATCHED
	return seq_put_hex(m, v);
#else
	return seq_put_decimal(m, v);
#endif
}

int show_count(void *m, long v)
{
#ifdef PATCHED
	return seq_put_decimal(m, v + 2);
#else
	return seq_put_decimal(m, v + 1);
#endif
}

int show_name(void *m)
{
	return seq_puts(m, "name");
}
