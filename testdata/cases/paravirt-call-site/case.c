// A fix in a function that calls a paravirt operation (Debian 6.1 has CONFIG_PARAVIRT_XXL for
// Xen PV: arch_local_save_flags() and friends are `call *pv_ops+N(%rip)` sites recorded in
// .parainstructions, struct paravirt_patch_site {u8 *instr; u8 type; u8 len;} padded to 16 bytes
// before 6.6). The copy needs its own site, or on bare metal the module keeps an indirect call
// that the kernel's copy had patched to a `pushf; pop %rax`. One site in the changed function;
// the unchanged function's site stays in the kernel.
//#Expect: func.changed irq_state_hint
//#ExpectNot: func.changed irq_disabled_now
//#Included: irq_state_hint
//#Extern: pv_ops
//#Entries: .parainstructions 1
//#Flags: 6.1 clang

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
		     " .balign 8\n"					\
		     ".popsection\n"					\
		     : "=a"(flags) : : "memory", "cc")

extern struct {
	void *ops[64];
} pv_ops;

unsigned long irq_state_hint(int cpu)
{
	unsigned long flags;

	PARAVIRT_SITE(42, 336);
#ifdef PATCHED
	if (cpu < 0)
		return 0;
#endif
	return flags & 0x200;
}

int irq_disabled_now(void)
{
	unsigned long flags;

	PARAVIRT_SITE(42, 336);
	return !(flags & 0x200);
}
