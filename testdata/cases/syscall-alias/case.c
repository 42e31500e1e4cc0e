// x86's SYSCALL_DEFINE0(getegid) makes __x64_sys_getegid and __ia32_sys_getegid aliases of the
// static __do_sys_getegid: one function, three names. Only one klp_func may be registered for
// it (three would stack on one ftrace location and stall the transition); the first global
// name in symbol-table order is the one kept (gcc emits __ia32_ before __x64_ here).
//#Expect: func.changed __ia32_sys_answer
//#ExpectNot: func.changed __do_sys_answer
//#ExpectNot: func.changed __x64_sys_answer
//#Included: __ia32_sys_answer

static long __do_sys_answer(const void *regs)
{
#ifdef PATCHED
	return 43;
#else
	return 42;
#endif
}
long __x64_sys_answer(const void *regs) __attribute__((alias("__do_sys_answer")));
long __ia32_sys_answer(const void *regs) __attribute__((alias("__do_sys_answer")));
