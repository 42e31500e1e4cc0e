// A fix in an exported function (EXPORT_SYMBOL, include/linux/export.h of 6.1: a struct
// kernel_symbol {s32 value, s32 name, s32 namespace} in ___ksymtab+<name> and the name in
// __ksymtab_strings). The kernel's export stays: modules keep calling the kernel's function,
// which ftrace redirects. The module must not export the name again (loading it would fail on a
// duplicate symbol), so the export table is not carried; the function is patched as usual.
// Debian 6.1 only: since 6.5 exports are .export_symbol entries that modpost turns into the
// table (export-symbol-6.12).
//#Expect: func.changed kstrtobool_fixed
//#ExpectNot: func.changed kstrtobool_plain
//#Included: kstrtobool_fixed
//#Entries: ___ksymtab+kstrtobool_fixed 0
//#Flags: 6.1 clang

#define __EXPORT_SYMBOL(sym, sec)					\
	extern typeof(sym) sym;						\
	asm("	.section \"__ksymtab_strings\",\"aMS\",%progbits,1	\n" \
	    "__kstrtab_" #sym ":					\n" \
	    "	.asciz 	\"" #sym "\"					\n" \
	    "__kstrtabns_" #sym ":					\n" \
	    "	.asciz 	\"\"						\n" \
	    "	.previous						\n" \
	    "	.section \"___ksymtab" sec "+" #sym "\", \"a\"	\n" \
	    "	.balign	4						\n" \
	    "__ksymtab_" #sym ":					\n" \
	    "	.long	" #sym "- .					\n" \
	    "	.long	__kstrtab_" #sym "- .				\n" \
	    "	.long	__kstrtabns_" #sym "- .				\n" \
	    "	.previous						\n")
#define EXPORT_SYMBOL(sym) __EXPORT_SYMBOL(sym, "")

int kstrtobool_fixed(const char *s, _Bool *res)
{
	switch (s[0]) {
	case 'y':
	case 'Y':
	case '1':
		*res = 1;
		return 0;
	case 'n':
	case 'N':
	case '0':
		*res = 0;
		return 0;
#ifdef PATCHED
	case 'o':
	case 'O':
		if (s[1] == 'n' || s[1] == 'N') {
			*res = 1;
			return 0;
		}
		break;
#endif
	default:
		break;
	}
	return -22;
}
EXPORT_SYMBOL(kstrtobool_fixed);

int kstrtobool_plain(const char *s)
{
	return s[0] == '1';
}
EXPORT_SYMBOL(kstrtobool_plain);
