// An object from a kernel with another __ex_table layout (x86_64 before 4.6: struct
// exception_table_entry {s32 insn, s32 fixup}, 8 bytes, no handler field) diffed by a tool that
// assumes today's 12 bytes would pair insn and fixup fields wrongly and carry entries that point
// into the wrong code. The section has no sh_entsize to say otherwise, so the diff stage must
// stop on a table that is not a whole number of entries, naming the section and the sizes,
// rather than misread it.
//#ExpectError: ^\(diff\) .*__ex_table: 0x8 bytes is not a whole number of 12-byte entries

#define get_user_asm_old(x, addr, err)					\
	asm volatile("1:	movl %2,%k1\n"				\
		     "2:\n"						\
		     ".pushsection __ex_table,\"a\"\n"			\
		     " .balign 4\n"					\
		     " .long 1b - .\n"					\
		     " .long 2b - .\n"					\
		     ".popsection\n"					\
		     : "+r"(err), "=r"(x)				\
		     : "m"(*(addr)))

int read_user_word(const int *uaddr, int *out)
{
	int err = 0, x = 0;

	get_user_asm_old(x, uaddr, err);
#ifdef PATCHED
	if (err)
		return -14;
#endif
	*out = x;
	return err;
}
