// The other half of init-name-in-text: a function with no init-like name in .init.text (the
// kernel's __init, or __section(".init.text") as arch code writes it, e.g.
// arch/x86/kernel/setup.c's reserve_bios_regions) ran at boot and was freed. It is refused from
// its section alone; the unchanged ordinary function next to it is not reported.
//#Flags: 6.1 6.12 clang
//#ExpectError: ^func\.init-changed .*reserve_bios_regions.*\.init\.text
//#Expect: func.init-changed reserve_bios_regions
//#Expect: func.changed reserve_bios_regions
//#ExpectNot: func.changed bios_start

#define __section(s) __attribute__((__section__(s)))

extern unsigned long ebda_start;
extern void memblock_reserve(unsigned long base, unsigned long size);

__section(".init.text") void reserve_bios_regions(void)
{
#ifdef PATCHED
	memblock_reserve(ebda_start, 0x100000 - ebda_start + 0x1000);
#else
	memblock_reserve(ebda_start, 0x100000 - ebda_start);
#endif
}

unsigned long bios_start(void)
{
	return ebda_start;
}
