// A .parainstructions whose last entry is cut short: 9 bytes (the pointer and the type, no
// length), less than the 12 bytes of fields a last entry without padding still has. No layout a
// kernel has had fits the table, so each of its entries is unreadable; the changed function that
// uses one is refused with the section, the relocation's offset, and what was expected and found,
// and the unchanged function that uses another gets a warning (a change in its entry alone would
// not be seen). paravirt-cut-entry-unused is the same table with a change elsewhere.
//#ExpectError: ^special\.unreadable paravirt-cut-entry-fail\.o: pv_cut_changed\+0x[0-9a-f]+ \(\.text\.pv_cut_changed\+0x[0-9a-f]+\): \.parainstructions: expected whole 16-byte entries \(the last may stop after its 12 bytes of fields\), found 0x19 bytes \(relocation at 0x10\); pv_cut_changed cannot be patched
//#Expect: func.changed pv_cut_changed
//#Expect: special.unreadable pv_whole_unchanged
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
#ifdef PATCHED
	if (cpu < 0)
		return 0;
#endif
	return flags & 0x600;
}
