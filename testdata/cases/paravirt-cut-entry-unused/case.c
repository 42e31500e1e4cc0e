// The table of paravirt-cut-entry-fail (its last entry cut to 9 bytes, so no layout fits it),
// and a fix in a function that uses none of its entries: the table is no error, the fix builds,
// and each function that uses an unreadable entry gets a warning.
//#Expect: func.changed pv_free_changed
//#ExpectNot: func.changed pv_cut_changed
//#Expect: special.unreadable pv_cut_changed
//#Expect: special.unreadable pv_whole_unchanged
//#Included: pv_free_changed
//#Entries: .parainstructions 0
//#Flags: 6.1

extern struct {
	void *ops[64];
} pv_ops;

unsigned long pv_whole_unchanged(void)
{
	unsigned long flags;

	asm volatile("771:\n\t"
		     "call *pv_ops+336(%%rip)\n"
		     "772:\n"
		     ".pushsection .parainstructions,\"a\"\n"
		     " .balign 8\n"
		     " .quad 771b\n"
		     " .byte 42\n"
		     " .byte 772b-771b\n"
		     " .short 0x1\n"
		     ".popsection\n"
		     : "=a"(flags) : : "memory", "cc");
	return flags & 0x200;
}

unsigned long pv_cut_changed(int cpu)
{
	unsigned long flags;

	asm volatile("771:\n\t"
		     "call *pv_ops+344(%%rip)\n"
		     "772:\n"
		     ".pushsection .parainstructions,\"a\"\n"
		     " .balign 8\n"
		     " .quad 771b\n"
		     " .byte 43\n"
		     ".popsection\n"
		     : "=a"(flags) : : "memory", "cc");
	return flags & 0x600;
}

int pv_free_changed(int x)
{
#ifdef PATCHED
	if (x < 0)
		return 0;
#endif
	return x * 3;
}
