// EXPORT_SYMBOL since 6.5 (include/linux/export.h of 6.12): the object holds no __ksymtab
// entry but a record in .export_symbol (license, namespace, `.quad sym`) and a pointer in
// .discard.addressable; modpost turns the records into the export table at the link. A fix in
// an exported function is an ordinary changed function: the kernel's export stays and ftrace
// redirects calls through it. The record must not reach the module (modpost would export the
// name a second time and the module would not load).
//#Flags: 6.12 clang
//#Expect: func.changed kstrtobool_fixed
//#ExpectNot: func.changed kstrtobool_plain
//#Included: kstrtobool_fixed
//#Entries: .export_symbol 0

#define ___EXPORT_SYMBOL(sym, license, ns)				\
	".section \".export_symbol\",\"a\"\n"				\
	"__export_symbol_" #sym ":\n"					\
	"	.asciz " license "\n"					\
	"	.ascii " ns " \"\\0\"\n"				\
	"	.balign 8\n"						\
	"	.quad " #sym "\n"					\
	".previous\n"

#define __ADDRESSABLE(sym)						\
	static void *__attribute__((__section__(".discard.addressable"), __used__)) \
		__UNIQUE_ID_addressable_##sym = (void *)(unsigned long)&sym;

#define EXPORT_SYMBOL(sym)						\
	extern typeof(sym) sym;						\
	__ADDRESSABLE(sym)						\
	asm(___EXPORT_SYMBOL(sym, "\"\"", "\"\""))

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
