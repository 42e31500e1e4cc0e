// A changed function that calls an unchanged static function and reads an unchanged static
// table: both stay the kernel's (externs that the resolve stage binds to this file's locals,
// with their sympos), so the module and the kernel keep sharing one table and one helper.
//#Expect: func.changed lookup_rate
//#ExpectNot: func.changed clamp_rate
//#Included: lookup_rate
//#Extern: clamp_rate
//#Extern: rate_table
//#Flags: 6.1 clang

static const unsigned int rate_table[8] = { 10, 20, 50, 100, 200, 500, 1000, 2000 };

static __attribute__((__noinline__)) unsigned int clamp_rate(unsigned int r)
{
	return r > 1000 ? 1000 : r;
}

unsigned int lookup_rate(unsigned int idx)
{
#ifdef PATCHED
	if (idx >= 8)
		return 0;
#endif
	return clamp_rate(rate_table[idx & 7]);
}
