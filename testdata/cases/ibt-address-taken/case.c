// A 6.12 idiom of IBT kernels (-fcf-protection=branch): gcc starts a static function with
// endbr64 only when its address is taken. The fix registers a static helper that was only called
// directly as a callback (a notifier, a timer function): the helper gains its endbr64, so its
// code changed although its source did not, and it must be patched too (an indirect call into
// the kernel's copy, which lacks endbr64, is a control-protection fault once objtool sealed it).
// The helper's __fentry__ call is at +4 after endbr64; it is not refused for lacking one.
//#Flags: 6.12
//#Expect: func.changed reclaim_one
//#Expect: func.changed shrinker_setup
//#ExpectNot: func.no-ftrace reclaim_one
//#ExpectNot: func.changed shrinker_count
//#Included: reclaim_one
//#Included: shrinker_setup

struct shrinker {
	long (*scan)(long nr);
	long batch;
};

extern long lru_isolate(long nr);
extern int register_shrinker(struct shrinker *s);

static __attribute__((__noinline__)) long reclaim_one(long nr)
{
	return lru_isolate(nr) * 2;
}

int shrinker_setup(struct shrinker *s)
{
#ifdef PATCHED
	s->scan = reclaim_one;
	s->batch = 128;
	return register_shrinker(s);
#else
	s->batch = reclaim_one(128);
	return register_shrinker(s);
#endif
}

long shrinker_count(long nr)
{
	return reclaim_one(nr) + 1;
}
