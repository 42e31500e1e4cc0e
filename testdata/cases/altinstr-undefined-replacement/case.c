// A fix in a function that makes an indirect call, in an object of a kernel around 5.15: objtool's
// arch_rewrite_retpolines() (tools/objtool/arch/x86/decode.c) turned each `call
// __x86_indirect_thunk_rax` into an alternative whose replacement is `__x86_indirect_alt_call_rax`,
// a symbol arch/x86/lib/retpoline.S defines and this object does not: `.long
// __x86_indirect_alt_call_rax - .` with X86_FEATURE_RETPOLINE | ALTINSTR_FLAG_INV. An entry whose
// replacement is an undefined symbol is no error by itself (it was: "the replacement points at
// ..., which is not defined in a section"): the changed function's entry is carried with both of
// its relocations, the replacement an undefined symbol left to the resolve stage.
//#Expect: func.changed call_op_checked
//#ExpectNot: func.changed call_op
//#Included: call_op_checked
//#Extern: __x86_indirect_alt_call_rax
//#Entries: .altinstructions 1
//#Flags: 6.1 6.1+gz

#define X86_FEATURE_RETPOLINE (7 * 32 + 12)
#define ALTINSTR_FLAG_INV (1 << 15)
#define __stringify_1(x...) #x
#define __stringify(x...) __stringify_1(x)

/* What objtool makes of `call *%rax` under CONFIG_RETPOLINE on 5.15, written out. */
#define RETPOLINE_CALL_RAX						\
	"661:\n\t"							\
	"call __x86_indirect_thunk_rax\n"				\
	"662:\n"							\
	".pushsection .altinstructions,\"a\"\n"				\
	" .long 661b - .\n"						\
	" .long __x86_indirect_alt_call_rax - .\n"			\
	" .word " __stringify(X86_FEATURE_RETPOLINE | ALTINSTR_FLAG_INV) "\n" \
	" .byte 662b-661b\n"						\
	" .byte 5\n"							\
	".popsection\n"

long call_op(long (*op)(long), long arg)
{
	long ret;

	asm volatile(RETPOLINE_CALL_RAX
		     : "=a"(ret), "+D"(arg) : "a"(op) : "memory", "rsi", "rdx", "rcx", "r8", "r9", "r10", "r11");
	return ret;
}

long call_op_checked(long (*op)(long), long arg)
{
	long ret;

#ifdef PATCHED
	if (!op)
		return -22;
#endif
	asm volatile(RETPOLINE_CALL_RAX
		     : "=a"(ret), "+D"(arg) : "a"(op) : "memory", "rsi", "rdx", "rcx", "r8", "r9", "r10", "r11");
	return ret;
}
