// A fix in a caller of a static call (include/linux/static_call.h with
// CONFIG_HAVE_STATIC_CALL_INLINE, as x86_64 has: static_call(pv_sched_clock)() and the
// preempt_schedule calls): the call site is a direct `call __SCT__<name>` plus a struct
// static_call_site {s32 addr, s32 key} in .static_call_sites whose key relocation names
// __SCK__<name>. The fix's copy must carry its site (so static_call_update() rewrites the call in
// the module too) with the key left to the kernel (an extern); the unchanged caller's site stays.
// Debian 6.1 only: objtool writes the sites when it runs on each object, as 6.1 does; with IBT
// (6.12) it runs on vmlinux.o and at the module link instead (static-call-6.12).
//#Expect: func.changed sched_clock_cpu_fixed
//#ExpectNot: func.changed sched_clock_idle
//#Included: sched_clock_cpu_fixed
//#Extern: __SCK__pv_sched_clock
//#Extern: __SCT__pv_sched_clock
//#Entries: .static_call_sites 1

struct static_call_key {
	void *func;
};

extern struct static_call_key __SCK__pv_sched_clock;
extern unsigned long long __SCT__pv_sched_clock(void);

// What objtool writes for each `call __SCT__*` when it annotates an object: the site's address
// and its key, both PC-relative.
#define STATIC_CALL_SITE(name)						\
	asm volatile("1: call " #name "\n\t"				\
		     ".pushsection .static_call_sites, \"aw\"\n\t"	\
		     ".balign 4\n\t"					\
		     ".long 1b - .\n\t"					\
		     ".long __SCK__pv_sched_clock - .\n\t"		\
		     ".popsection\n\t"					\
		     : "=a"(ret) : : "memory", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11")

extern unsigned long long sched_clock_offset;

unsigned long long sched_clock_cpu_fixed(int cpu)
{
	unsigned long long ret;

	STATIC_CALL_SITE(__SCT__pv_sched_clock);
#ifdef PATCHED
	if (cpu < 0)
		return ret;
#endif
	return ret + sched_clock_offset;
}

unsigned long long sched_clock_idle(void)
{
	unsigned long long ret;

	STATIC_CALL_SITE(__SCT__pv_sched_clock);
	return ret;
}
