// A fix in a notrace function (include/linux/compiler_types.h: no_instrument_function): without
// the __fentry__ call, ftrace cannot redirect it, so the diff refuses and suggests the callers.
//#ExpectError: ^func\.no-ftrace .*read_tsc_raw.*no ftrace call site.*callers
//#Expect: func.no-ftrace read_tsc_raw
//#Expect: func.changed read_tsc_raw
//#ExpectNot: func.changed traced_user
//#Flags: 6.1 clang

#define notrace __attribute__((__no_instrument_function__))

extern unsigned long long tsc_offset;

notrace unsigned long long read_tsc_raw(unsigned long long t)
{
#ifdef PATCHED
	return t - tsc_offset;
#else
	return t + tsc_offset;
#endif
}

unsigned long long traced_user(void)
{
	return tsc_offset * 2;
}
