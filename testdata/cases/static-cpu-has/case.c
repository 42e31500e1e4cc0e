// The meminfo_proc_show() case of issue 8: a fix in a function that tests a CPU feature with
// static_cpu_has() (arch/x86/include/asm/cpufeature.h, Debian 6.1). Its asm goto is an
// ALTERNATIVE_TERNARY: two struct alt_instr entries in .altinstructions, replacement bytes in
// .altinstr_replacement, and the jump before patching goes to a test of boot_cpu_data in
// .altinstr_aux, which jumps back into the function. The fix's copy needs its entries, their
// replacements and its aux code; the unchanged user of the same feature needs nothing.
// Debian 6.1 only: 6.3+ nests the alternatives and widens the entry (static-cpu-has-6.12).
//#Flags: 6.1 6.1+objtool clang 6.1+gz
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
#define X86_FEATURE_GBPAGES (1 * 32 + 26)

#define __stringify_1(x...) #x
#define __stringify(x...) __stringify_1(x)
#define b_replacement(num) "664"#num
#define e_replacement(num) "665"#num
#define alt_end_marker "663"
#define alt_slen "662b-661b"
#define alt_total_slen alt_end_marker"b-661b"
#define alt_rlen(num) e_replacement(num)"f-"b_replacement(num)"f"
#define alt_max_short(a, b) "((" a ") ^ (((" a ") ^ (" b ")) & -(-((" a ") < (" b ")))))"

#define OLDINSTR_2(oldinstr, num1, num2)					\
	"661:\n\t" oldinstr "\n662:\n"					\
	".skip -((" alt_max_short(alt_rlen(num1), alt_rlen(num2)) " - (" alt_slen ")) > 0) * " \
	"(" alt_max_short(alt_rlen(num1), alt_rlen(num2)) " - (" alt_slen ")), 0x90\n" \
	alt_end_marker ":\n"

#define ALTINSTR_ENTRY(feature, num)					\
	" .long 661b - .\n"						\
	" .long " b_replacement(num)"f - .\n"				\
	" .word " __stringify(feature) "\n"				\
	" .byte " alt_total_slen "\n"					\
	" .byte " alt_rlen(num) "\n"

#define ALTINSTR_REPLACEMENT(newinstr, num)				\
	b_replacement(num)":\n\t" newinstr "\n" e_replacement(num) ":\n"

#define ALTERNATIVE_2(oldinstr, newinstr1, feature1, newinstr2, feature2) \
	OLDINSTR_2(oldinstr, 1, 2)					\
	".pushsection .altinstructions,\"a\"\n"				\
	ALTINSTR_ENTRY(feature1, 1)					\
	ALTINSTR_ENTRY(feature2, 2)					\
	".popsection\n"							\
	".pushsection .altinstr_replacement, \"ax\"\n"			\
	ALTINSTR_REPLACEMENT(newinstr1, 1)				\
	ALTINSTR_REPLACEMENT(newinstr2, 2)				\
	".popsection\n"

#define ALTERNATIVE_TERNARY(oldinstr, feature, newinstr_yes, newinstr_no) \
	ALTERNATIVE_2(oldinstr, newinstr_no, X86_FEATURE_ALWAYS, newinstr_yes, feature)

static inline __attribute__((__always_inline__)) _Bool _static_cpu_has(unsigned short bit)
{
	asm goto(
		ALTERNATIVE_TERNARY("jmp 6f", %P[feature], "", "jmp %l[t_no]")
		".pushsection .altinstr_aux,\"ax\"\n"
		"6:\n"
		" testb %[bitnum],%P[cap_byte](%%rip)\n"
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
