// A fix that changes a format string (seq_printf in a /proc show function), with the 6.12
// flags: the string lives in .rodata.<fn>.str1.1 (mergeable strings, -fdata-sections), reached
// through a relocation against that section. The function is changed through its relocation's
// target bytes, not its code; the other function whose strings share nothing is not reported,
// and the string section is carried with the function.
//#Flags: 6.1 6.1+objtool 6.12 clang
//#Expect: func.changed version_show
//#ExpectNot: func.changed uptime_show
//#ExpectNot: data.changed version_show
//#Included: version_show
//#Extern: seq_printf

extern void seq_printf(void *m, const char *fmt, ...);
extern const char *linux_banner_name;

int version_show(void *m)
{
#ifdef PATCHED
	seq_printf(m, "Linux version %s (klp)\n", linux_banner_name);
#else
	seq_printf(m, "Linux version %s\n", linux_banner_name);
#endif
	return 0;
}

int uptime_show(void *m, unsigned long up)
{
	seq_printf(m, "%lu.00\n", up);
	return 0;
}
