// static-cpu-has in the layout of 6.3+ (arch/x86/include/asm/alternative.h of 6.12):
// ALTERNATIVE_TERNARY nests ALTERNATIVE inside ALTERNATIVE, reusing the local labels 771-775,
// and struct alt_instr is 14 bytes (`u32 ft_flags` replaced `u16 cpuid`). The section has no
// sh_entsize, so the reader must take the 14 from the object: two entries for the changed
// function, with their replacements and its .altinstr_aux test of boot_cpu_data; the unchanged
// user of the same feature is not reported.
//#Flags: 6.12 clang
//#Expect: func.changed meminfo_show
//#ExpectNot: func.changed cpuinfo_flags
//#Included: meminfo_show
//#Extern: boot_cpu_data
//#Extern: seq_printf
//#Entries: .altinstructions 2

struct cpuinfo_x86 {
	unsigned char x86;
	unsigned int x86_capability[20];
};

extern struct cpuinfo_x86 boot_cpu_data;
extern void seq_printf(void *m, const char *fmt, ...);

#define X86_FEATURE_ALWAYS (3 * 32 + 21)
#define X86_FEATURE_PSE (0 * 32 + 3)

#define __stringify_1(x...) #x
#define __stringify(x...) __stringify_1(x)

#define alt_slen "772b-771b"
#define alt_total_slen "773b-771b"
#define alt_rlen "775f-774f"

#define OLDINSTR(oldinstr)						\
	"771:\n\t" oldinstr "\n772:\n"					\
	".skip -(((" alt_rlen ")-(" alt_slen ")) > 0) * "		\
		"((" alt_rlen ")-(" alt_slen ")),0x90\n"		\
	"773:\n"

#define ALTINSTR_ENTRY(ft_flags)					\
	".pushsection .altinstructions,\"a\"\n"				\
	" .long 771b - .\n"						\
	" .long 774f - .\n"						\
	" .4byte " __stringify(ft_flags) "\n"				\
	" .byte " alt_total_slen "\n"					\
	" .byte " alt_rlen "\n"						\
	".popsection\n"

#define ALTINSTR_REPLACEMENT(newinstr)					\
	".pushsection .altinstr_replacement, \"ax\"\n"			\
	"774:\n\t" newinstr "\n775:\n"					\
	".popsection\n"

#define ALTERNATIVE(oldinstr, newinstr, ft_flags)			\
	OLDINSTR(oldinstr)						\
	ALTINSTR_ENTRY(ft_flags)					\
	ALTINSTR_REPLACEMENT(newinstr)

#define ALTERNATIVE_2(oldinstr, newinstr1, ft_flags1, newinstr2, ft_flags2) \
	ALTERNATIVE(ALTERNATIVE(oldinstr, newinstr1, ft_flags1), newinstr2, ft_flags2)

#define ALTERNATIVE_TERNARY(oldinstr, ft_flags, newinstr_yes, newinstr_no) \
	ALTERNATIVE_2(oldinstr, newinstr_no, X86_FEATURE_ALWAYS, newinstr_yes, ft_flags)

static inline __attribute__((__always_inline__)) _Bool _static_cpu_has(unsigned short bit)
{
	asm goto(ALTERNATIVE_TERNARY("jmp 6f", %c[feature], "", "jmp %l[t_no]")
		".pushsection .altinstr_aux,\"ax\"\n"
		"6:\n"
		" testb %[bitnum], %a[cap_byte]\n"
		" jnz %l[t_yes]\n"
		" jmp %l[t_no]\n"
		".popsection\n"
		 : : [feature]  "i" (bit),
		     [bitnum]   "i" (1 << (bit & 7)),
		     [cap_byte] "i" (&((const char *)boot_cpu_data.x86_capability)[bit >> 3])
		 : : t_yes, t_no);
t_yes:
	return 1;
t_no:
	return 0;
}

#define static_cpu_has(bit) _static_cpu_has(bit)

extern unsigned long direct_pages_count[4];

int meminfo_show(void *m)
{
	seq_printf(m, "DirectMap4k:    %8lu kB\n", direct_pages_count[0] << 2);
	if (static_cpu_has(X86_FEATURE_PSE))
		seq_printf(m, "DirectMap2M:    %8lu kB\n", direct_pages_count[1] << 11);
#ifdef PATCHED
	seq_printf(m, "DirectMapFix:   %8lu kB\n", direct_pages_count[3]);
#endif
	return 0;
}

int cpuinfo_flags(void *m)
{
	if (static_cpu_has(X86_FEATURE_PSE))
		seq_printf(m, " pse");
	return 0;
}
