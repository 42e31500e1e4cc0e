// An object whose .altinstructions does not match its .altinstr_replacement: the entry's
// replacement length (struct alt_instr's last byte) runs past the end of the replacement
// section, as in an object written by a tool with another alt_instr layout, or cut short. The
// diff stage must not read past the section (a panic, or garbage carried into the module): it
// stops with the object, the section, the entry and the sizes named.
//#ExpectError: ^\(diff\) .*orig\.o: \.altinstructions entry 0: replacement 0x0\+64 beyond the 0x3 bytes of \.altinstr_replacement
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
