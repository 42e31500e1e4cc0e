// A fix adds lines above a function with BUG_ON(); the objects come from a build without #line
// directives. BUG() is a ud2 with a __bug_table entry (flags 0) that holds the line: only that
// line moved, so put_page_ref() is func.line-only. drop_ref() gets a real change next to it.
// A pair of files, not #ifdef PATCHED: lines skipped by #ifdef still count for __LINE__.
// Directives are read from patched.c; this header is the same in both files.
//#Expect: func.line-only put_page_ref
//#Expect: func.changed drop_ref
//#ExpectNot: func.changed put_page_ref
//#Flags: 6.1 clang

#define __stringify_1(x...) #x
#define __stringify(x...) __stringify_1(x)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* arch/x86/include/asm/bug.h of 6.1, with CONFIG_GENERIC_BUG_RELATIVE_POINTERS and
 * CONFIG_DEBUG_BUGVERBOSE: a ud2 and a 12-byte __bug_table entry holding the line. */
#define __BUG_REL(val) ".long " __stringify(val) " - ."
#define ASM_REACHABLE "998:\n\t.pushsection .discard.reachable\n\t.long 998b - .\n\t.popsection\n\t"
#define _BUG_FLAGS(ins, flags, extra)						\
do {										\
	asm volatile("1:\t" ins "\n"						\
		     ".pushsection __bug_table,\"aw\"\n"			\
		     "2:\t" __BUG_REL(1b) "\t# bug_entry::bug_addr\n"		\
		     "\t" __BUG_REL(%c0) "\t# bug_entry::file\n"		\
		     "\t.word %c1" "\t# bug_entry::line\n"			\
		     "\t.word %c2" "\t# bug_entry::flags\n"			\
		     "\t.org 2b+%c3\n"						\
		     ".popsection\n"						\
		     extra							\
		     : : "i" ("kernel/fork.c"), "i" (__LINE__),		\
			 "i" (flags), "i" (12));				\
} while (0)
#define ASM_UD2 ".byte 0x0f, 0x0b"
#define BUGFLAG_WARNING (1 << 0)
#define BUGFLAG_ONCE (1 << 1)
#define BUGFLAG_TAINT(taint) (BUGFLAG_WARNING | ((taint) << 8))
#define TAINT_WARN 9
#define __WARN_FLAGS(flags) _BUG_FLAGS(ASM_UD2, BUGFLAG_WARNING | (flags), ASM_REACHABLE)
#define WARN_ON(condition) ({							\
	int __ret_warn_on = !!(condition);					\
	if (unlikely(__ret_warn_on))						\
		__WARN_FLAGS(BUGFLAG_TAINT(TAINT_WARN));			\
	unlikely(__ret_warn_on);						\
})
#define WARN_ON_ONCE(condition) ({						\
	int __ret_warn_on = !!(condition);					\
	if (unlikely(__ret_warn_on))						\
		__WARN_FLAGS(BUGFLAG_ONCE | BUGFLAG_TAINT(TAINT_WARN));	\
	unlikely(__ret_warn_on);						\
})
#define BUG() do { _BUG_FLAGS(ASM_UD2, 0, ""); __builtin_unreachable(); } while (0)
#define BUG_ON(condition) do { if (unlikely(condition)) BUG(); } while (0)

int drop_ref(int *r)
{
	if (*r <= 0)
		return 0;
	return --*r;
}

void put_page_ref(int *r)
{
	BUG_ON(*r == 0);
	(*r)--;
}

