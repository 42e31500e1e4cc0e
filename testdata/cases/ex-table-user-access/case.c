// A fix in a function that reads user memory with get_user()-style inline asm
// (arch/x86/include/asm/uaccess.h, _ASM_EXTABLE_UA): the load that may fault has a struct
// exception_table_entry {s32 insn, s32 fixup, int data} in __ex_table, the fixup jumping back into
// the function. The fix's copy needs its own entries, or a bad user pointer becomes an oops in
// the module instead of -EFAULT. Two accesses in the changed function, two entries; the
// unchanged reader's entry stays in the kernel.
//#Flags: 6.1 6.1+objtool 6.12 clang 6.1+gz
//#Expect: func.changed read_user_pair
//#ExpectNot: func.changed read_user_flag
//#Included: read_user_pair
//#Entries: __ex_table 2

#define EX_TYPE_UACCESS 3

#define get_user_asm(x, addr, err)					\
	asm volatile("1:	movl %2,%k1\n"				\
		     "2:\n"						\
		     ".pushsection __ex_table,\"a\"\n"			\
		     " .balign 4\n"					\
		     " .long 1b - .\n"					\
		     " .long 2b - .\n"					\
		     " .long %c3\n"					\
		     ".popsection\n"					\
		     : "+r"(err), "=r"(x)				\
		     : "m"(*(addr)), "i"(EX_TYPE_UACCESS))

extern void stac(void);
extern void clac(void);

int read_user_pair(const int *uaddr, int *a, int *b)
{
	int err = 0, x = 0, y = 0;

	stac();
	get_user_asm(x, uaddr, err);
	get_user_asm(y, uaddr + 1, err);
	clac();
#ifdef PATCHED
	if (err)
		return -14;
#endif
	*a = x;
	*b = y;
	return err;
}

int read_user_flag(const int *uaddr)
{
	int err = 0, x = 0;

	stac();
	get_user_asm(x, uaddr, err);
	clac();
	return err ? err : x;
}
