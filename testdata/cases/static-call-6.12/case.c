// static-call with the 6.12 flags: on an IBT kernel objtool runs on vmlinux.o, not on each
// object (CONFIG_X86_KERNEL_IBT delays it), so the object of a caller of static_call() holds a
// plain `call __SCT__pv_sched_clock` and no .static_call_sites; objtool writes the module's
// sites at the module link. The diff must still report the changed caller, leave the trampoline
// to the kernel (an extern) and invent no site of its own.
//#Flags: 6.12 clang
//#Expect: func.changed sched_clock_cpu_fixed
//#ExpectNot: func.changed sched_clock_idle
//#Included: sched_clock_cpu_fixed
//#Extern: __SCT__pv_sched_clock
//#Entries: .static_call_sites 0

extern unsigned long long __SCT__pv_sched_clock(void);

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
