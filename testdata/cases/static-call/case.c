// A fix in a caller of a static call (include/linux/static_call.h with
// CONFIG_HAVE_STATIC_CALL_INLINE, as x86_64 has: static_call(pv_sched_clock)() and the
// preempt_schedule calls): the call site is a direct `call __SCT__<name>`, and objtool, run on
// each 6.1 object by kbuild, adds a struct static_call_site {s32 addr, s32 key} in
// .static_call_sites whose key relocation names __SCK__<name>. The fix's copy must carry its
// site (so static_call_update() rewrites the call in the module too) with the key left to the
// kernel (an extern); the unchanged caller's site stays. With IBT (6.12) objtool runs on
// vmlinux.o and at the module link instead (static-call-6.12).
//#Flags: 6.1+objtool
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

// static_call() takes the key's address in .discard.addressable (__STATIC_CALL_ADDRESSABLE),
// which is how objtool finds the key of the site it writes.
static void *__attribute__((__section__(".discard.addressable"), __used__))
	__UNIQUE_ID_addressable___SCK__pv_sched_clock = &__SCK__pv_sched_clock;

#define static_call_pv_sched_clock() __SCT__pv_sched_clock()

extern unsigned long long sched_clock_offset;

unsigned long long sched_clock_cpu_fixed(int cpu)
{
	unsigned long long ret = static_call_pv_sched_clock();

#ifdef PATCHED
	if (cpu < 0)
		return ret;
#endif
	return ret + sched_clock_offset;
}

unsigned long long sched_clock_idle(void)
{
	return static_call_pv_sched_clock();
}
