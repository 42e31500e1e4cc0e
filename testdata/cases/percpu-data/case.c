// A fix in a function using per-CPU data (DEFINE_PER_CPU in .data..percpu, read with
// this_cpu_read(): a %gs-relative access whose displacement is a relocation against the
// variable, arch/x86/include/asm/percpu.h). The variable is the kernel's and keeps its per-CPU
// values: it must stay an extern of the module, never copied (a copy would be one plain
// variable, not per CPU) and never a data change. The other user is not reported.
//#Flags: 6.1 6.1+objtool 6.12 clang
//#Expect: func.changed account_irq
//#ExpectNot: func.changed irq_count_now
//#ExpectNot: data.changed irq_stat_cnt
//#Included: account_irq
//#Extern: irq_stat_cnt

#define __percpu_section __attribute__((__section__(".data..percpu")))

__percpu_section unsigned long irq_stat_cnt;
__percpu_section unsigned long irq_stat_last;

#define this_cpu_read(var) ({						\
	unsigned long __v;						\
	asm volatile("movq %%gs:%P1, %0" : "=r"(__v) : "p"(&(var)));	\
	__v;								\
})
#define this_cpu_add(var, val)						\
	asm volatile("addq %1, %%gs:%P0" : : "p"(&(var)), "ri"((unsigned long)(val)) : "memory")

void account_irq(unsigned long now)
{
#ifdef PATCHED
	if (now > this_cpu_read(irq_stat_last))
		this_cpu_add(irq_stat_cnt, 1);
#else
	this_cpu_add(irq_stat_cnt, 1);
#endif
	this_cpu_add(irq_stat_last, now - this_cpu_read(irq_stat_last));
}

unsigned long irq_count_now(void)
{
	return this_cpu_read(irq_stat_cnt);
}
