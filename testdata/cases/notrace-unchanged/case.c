// The other half of notrace-fail (issue 8: false "no ftrace" refusals for functions that did not
// change): a notrace function beside the fix, unchanged, is neither reported nor refused; the
// traced function the fix changes is patched as usual.
//#Flags: 6.1 6.1+objtool 6.12 clang
//#Expect: func.changed tsc_to_ns
//#ExpectNot: func.no-ftrace read_tsc_raw
//#ExpectNot: func.changed read_tsc_raw
//#Included: tsc_to_ns

#define notrace __attribute__((__no_instrument_function__))

extern unsigned long long tsc_offset;
extern unsigned int tsc_mult;

notrace unsigned long long read_tsc_raw(unsigned long long t)
{
	return t + tsc_offset;
}

unsigned long long tsc_to_ns(unsigned long long t)
{
#ifdef PATCHED
	return (read_tsc_raw(t) * tsc_mult) >> 22;
#else
	return (read_tsc_raw(t) * tsc_mult) >> 21;
#endif
}
