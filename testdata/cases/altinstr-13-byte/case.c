// A fix in a function with an alternative, in an object of a kernel before 5.13 (RHEL 8's 4.18,
// 5.4, 5.10): struct alt_instr there is 13 bytes, `s32 instr_offset; s32 repl_offset; u16 cpuid;
// u8 instrlen; u8 replacementlen; u8 padlen;` (arch/x86/include/asm/alternative.h), packed. Two
// alternatives make a 0x1a-byte .altinstructions, which was refused as "not a whole number of
// 12-byte entries". The layout is learned from the relocations (at +0 and +4 of each entry, so
// the stride is 13), and the replacement length read from +11, not from the entry's last byte
// (padlen). rdtsc_ordered() of 4.18 is this shape: `barrier_nospec()`, an lfence alternative.
//#Expect: func.changed tsc_read_ordered
//#ExpectNot: func.changed tsc_read_plain
//#Included: tsc_read_ordered
//#Entries: .altinstructions 1
//#Flags: 6.1 6.1+gz

#define __stringify_1(x...) #x
#define __stringify(x...) __stringify_1(x)
#define b_replacement(num) "664"#num
#define e_replacement(num) "665"#num
#define alt_end_marker "663"
#define alt_slen "662b-661b"
#define alt_pad_len alt_end_marker"b-662b"
#define alt_total_slen alt_end_marker"b-661b"
#define alt_rlen(num) e_replacement(num)"f-"b_replacement(num)"f"

/* 4.18's OLDINSTR, ALTINSTR_ENTRY (with padlen) and ALTERNATIVE. */
#define OLDINSTR(oldinstr, num)						\
	"661:\n\t" oldinstr "\n662:\n"					\
	".skip -(((" alt_rlen(num) ")-(" alt_slen ")) > 0) * "		\
		"((" alt_rlen(num) ")-(" alt_slen ")),0x90\n"		\
	alt_end_marker ":\n"

#define ALTINSTR_ENTRY(feature, num)					\
	" .long 661b - .\n"						\
	" .long " b_replacement(num)"f - .\n"				\
	" .word " __stringify(feature) "\n"				\
	" .byte " alt_total_slen "\n"					\
	" .byte " alt_rlen(num) "\n"					\
	" .byte " alt_pad_len "\n"

#define ALTINSTR_REPLACEMENT(newinstr, feature, num)			\
	b_replacement(num)":\n\t" newinstr "\n" e_replacement(num) ":\n"

#define ALTERNATIVE(oldinstr, newinstr, feature)			\
	OLDINSTR(oldinstr, 1)						\
	".pushsection .altinstructions,\"a\"\n"				\
	ALTINSTR_ENTRY(feature, 1)					\
	".popsection\n"							\
	".pushsection .altinstr_replacement, \"ax\"\n"			\
	ALTINSTR_REPLACEMENT(newinstr, feature, 1)			\
	".popsection\n"

#define X86_FEATURE_LFENCE_RDTSC (3 * 32 + 18)
#define barrier_nospec() asm volatile(ALTERNATIVE("", "lfence", X86_FEATURE_LFENCE_RDTSC) ::: "memory")

static inline unsigned long long rdtsc(void)
{
	unsigned int lo, hi;

	asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((unsigned long long)hi << 32) | lo;
}

unsigned long long tsc_read_plain(void)
{
	barrier_nospec();
	return rdtsc();
}

unsigned long long tsc_read_ordered(int shift)
{
	barrier_nospec();
#ifdef PATCHED
	if (shift > 63)
		return 0;
#endif
	return rdtsc() >> shift;
}
