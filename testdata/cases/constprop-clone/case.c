// A static function that every caller calls with the same constant: gcc clones it as
// scale.constprop.0 with the constant folded in. The clone is a function of its own (design.md);
// the fix in it reports the clone, under its own name, and not the callers.
//#Expect: func.changed scale.constprop.0
//#ExpectNot: func.changed scale_a
//#ExpectNot: func.changed scale_b
//#Included: scale.constprop.0

extern void record(long v);

static __attribute__((__noinline__)) long scale(long v, long shift)
{
	long r = v << shift;

#ifdef PATCHED
	if (r < v)
		r = v;
#endif
	record(r);
	return r;
}

long scale_a(long v)
{
	return scale(v, 12) + 1;
}

long scale_b(long v)
{
	return scale(v + 3, 12) - 1;
}
