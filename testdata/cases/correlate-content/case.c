// The content rule: report() is inlined into probe(), so probe() refers to two `__func__`
// strings, its own and report()'s: one scope, and a fix that adds a function with a `__func__`
// of its own renumbers both. Their bytes are the functions' names, unique on both sides, so the
// content rule pairs each with its original, where position would only guess.
//#Expect: func.added remove
//#ExpectNot: func.changed probe
//#Rule: probe exact
//#Rule: __func__.1 content
//#Rule: __func__.2 content

extern void log_call(const char *func, int v);

static inline __attribute__((always_inline)) void report(int v)
{
	log_call(__func__, v);
}

void probe(int v)
{
	log_call(__func__, v);
	report(v + 1);
}

#ifdef PATCHED
void remove(int v)
{
	log_call(__func__, v);
}
#endif
