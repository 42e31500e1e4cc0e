// A fix in a function with a paravirt patch site, in an object of 4.18 to 6.5, whose
// `_paravirt_alt` (arch/x86/include/asm/paravirt_types.h) aligns *before* each entry: `_ASM_ALIGN;
// _ASM_PTR 771b; .byte type; .byte len; .short clobbers`. struct paravirt_patch_site is 12 bytes
// of fields at a 16-byte stride, and the assembler pads an entry only when another follows, so
// the table is 16k+12 bytes: the last entry has no padding. Such objects were refused as "not a
// whole number of 16-byte entries" (22 of 55 pairs of a corpus of RHEL 7/8-era and 5.x objects).
// The changed function owns that last, unpadded entry; the module's copy gets its padding back.
//#Expect: func.changed irq_restore_hint
//#ExpectNot: func.changed irq_save_hint
//#ExpectNot: func.changed irq_flags_hint
//#Included: irq_restore_hint
//#Extern: pv_ops
//#Entries: .parainstructions 1
//#Flags: 6.1 6.1+gz

#define PARAVIRT_SITE(type, op_offset)					\
	asm volatile("771:\n\t"						\
		     "call *pv_ops+" #op_offset "(%%rip)\n"		\
		     "772:\n"						\
		     ".pushsection .parainstructions,\"a\"\n"		\
		     " .balign 8\n"					\
		     " .quad 771b\n"					\
		     " .byte " #type "\n"				\
		     " .byte 772b-771b\n"				\
		     " .short 0x1\n"					\
		     ".popsection\n"					\
		     : "=a"(flags) : : "memory", "cc")

extern struct {
	void *ops[64];
} pv_ops;

unsigned long irq_save_hint(void)
{
	unsigned long flags;

	PARAVIRT_SITE(42, 336);
	return flags & 0x200;
}

int irq_flags_hint(void)
{
	unsigned long flags;

	PARAVIRT_SITE(43, 344);
	return !(flags & 0x200);
}

unsigned long irq_restore_hint(int cpu)
{
	unsigned long flags;

	PARAVIRT_SITE(44, 352);
#ifdef PATCHED
	if (cpu < 0)
		return 0;
#endif
	return flags & 0x600;
}
