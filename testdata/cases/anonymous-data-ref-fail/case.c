// A fix in a function whose inline asm keeps data under a local label, with no symbol
// (arch/x86 code that counts events with `.pushsection .data; 1: .quad 0; .popsection` and an
// `incq 1b(%rip)`): the relocation names .data.<...>+off, which no symbol covers, so the kernel's
// object cannot be named and a copy would be a second counter. Refused as reloc.anonymous with
// the advice to name it; the unchanged function using its own anonymous counter is not reported.
//#ExpectError: ^\(clone\) reloc\.anonymous .*nmi_count_hit.*\.data\.nmi_counts.*give the object a name
//#Expect: func.changed nmi_count_hit
//#ExpectNot: func.changed nmi_count_miss
//#Flags: 6.1 clang

#define COUNT_EVENT(sec)						\
	asm volatile(".pushsection " sec ",\"aw\"\n"			\
		     ".balign 8\n"					\
		     "1: .quad 0\n"					\
		     ".popsection\n"					\
		     "lock incq 1b(%%rip)\n" : : : "memory")

extern int nmi_handle(int type);

int nmi_count_hit(int type)
{
	COUNT_EVENT(".data.nmi_counts");
#ifdef PATCHED
	if (type < 0)
		return 0;
#endif
	return nmi_handle(type);
}

int nmi_count_miss(int type)
{
	COUNT_EVENT(".data.nmi_misses");
	return nmi_handle(type + 1);
}
