// An object whose .altinstructions does not match its .altinstr_replacement: the entry's
// replacement length (struct alt_instr's replacementlen) runs past the end of the replacement
// section, as in an object written by a tool with another alt_instr layout, or cut short. The
// diff stage must not read past the section (a panic, or garbage carried into the module). Only
// the functions that use such an entry are concerned: the changed one is refused with the object,
// the function, the section, the entry, its offset, and what was expected and found; the
// unchanged one that uses a broken entry too gets a warning, and the rest of the object is read.
//#ExpectError: ^special\.unreadable altinstr-overrun-fail\.o: rdtsc_ordered_low\+0x[0-9a-f]+ \(\.text\.rdtsc_ordered_low\+0x[0-9a-f]+\): \.altinstructions entry 0 \(offset 0x0\): expected its replacement \(0x0\+64, replacementlen at \+11\) within the 0x6 bytes of \.altinstr_replacement, found it beyond their end; rdtsc_ordered_low cannot be patched
//#Expect: func.changed rdtsc_ordered_low
//#Expect: special.unreadable rdtsc_unchanged_low
//#Flags: 6.1 clang

extern void lfence_fallback(void);

int rdtsc_ordered_low(void)
{
	unsigned int lo, hi;

	asm volatile("661:\n\t"
		     "call lfence_fallback\n"
		     "662:\n"
		     ".pushsection .altinstructions,\"a\"\n"
		     " .long 661b - .\n"
		     " .long 6641f - .\n"
		     " .word 3*32+18\n"
		     " .byte 662b-661b\n"
		     " .byte 64\n"
		     ".popsection\n"
		     ".pushsection .altinstr_replacement, \"ax\"\n"
		     "6641:\n\t"
		     "lfence\n"
		     "6651:\n"
		     ".popsection\n"
		     "rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
#ifdef PATCHED
	return (int)(lo ^ hi);
#else
	return (int)lo;
#endif
}

int rdtsc_unchanged_low(void)
{
	unsigned int lo, hi;

	asm volatile("661:\n\t"
		     "call lfence_fallback\n"
		     "662:\n"
		     ".pushsection .altinstructions,\"a\"\n"
		     " .long 661b - .\n"
		     " .long 6642f - .\n"
		     " .word 3*32+18\n"
		     " .byte 662b-661b\n"
		     " .byte 64\n"
		     ".popsection\n"
		     ".pushsection .altinstr_replacement, \"ax\"\n"
		     "6642:\n\t"
		     "lfence\n"
		     ".popsection\n"
		     "rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
	return (int)lo;
}
