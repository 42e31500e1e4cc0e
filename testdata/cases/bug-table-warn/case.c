// WARN_ON() as x86 does it (arch/x86/include/asm/bug.h, _BUG_FLAGS with
// CONFIG_GENERIC_BUG_RELATIVE_POINTERS and CONFIG_DEBUG_BUGVERBOSE): a ud2 in the code and a
// struct bug_entry {s32 bug_addr, s32 file, u16 line, u16 flags} in __bug_table. The fix adds a
// WARN_ON to a function that had one: its copy needs both entries, or the new ud2 in the module
// is an invalid-opcode oops instead of a warning. The unchanged function with its own WARN keeps
// its entry in the kernel.
//#Flags: 6.1 6.1+objtool 6.12 clang 6.1+gz
//#Expect: func.changed sk_stream_check
//#ExpectNot: func.changed sk_mem_check
//#Included: sk_stream_check
//#Entries: __bug_table 2

#define BUGFLAG_WARNING (1 << 0)
#define BUGFLAG_TAINT(taint) ((taint) << 8)

#define _BUG_FLAGS(ins, flags)						\
do {									\
	asm volatile("1:\t" ins "\n"					\
		     ".pushsection __bug_table,\"aw\"\n"		\
		     "2:\t.long 1b - .\t# bug_entry::bug_addr\n"	\
		     "\t.long %c0 - .\t# bug_entry::file\n"		\
		     "\t.word %c1\t# bug_entry::line\n"			\
		     "\t.word %c2\t# bug_entry::flags\n"		\
		     "\t.org 2b+%c3\n"					\
		     ".popsection"					\
		     : : "i" ("net/core/stream.c"), "i" (__LINE__),	\
			 "i" (flags), "i" (12));			\
} while (0)

#define __WARN_FLAGS(flags) _BUG_FLAGS("ud2", BUGFLAG_WARNING | (flags))
#define WARN_ON(condition) ({						\
	int __ret_warn_on = !!(condition);				\
	if (__builtin_expect(__ret_warn_on, 0))				\
		__WARN_FLAGS(BUGFLAG_TAINT(9));				\
	__builtin_expect(__ret_warn_on, 0);				\
})

struct sock {
	int sk_wmem_queued;
	int sk_forward_alloc;
	int sk_sndbuf;
};

int sk_stream_check(struct sock *sk)
{
	WARN_ON(sk->sk_wmem_queued < 0);
#ifdef PATCHED
	WARN_ON(sk->sk_forward_alloc < 0);
#endif
	return sk->sk_wmem_queued < sk->sk_sndbuf;
}

int sk_mem_check(struct sock *sk)
{
	WARN_ON(sk->sk_forward_alloc > sk->sk_sndbuf);
	return sk->sk_forward_alloc;
}
