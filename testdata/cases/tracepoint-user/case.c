// A fix in a function that fires a tracepoint (include/linux/tracepoint.h with
// CONFIG_HAVE_STATIC_CALL: trace_<name>() tests the static key __tracepoint_<name>.key with a
// jump label, then calls static_call(tp_func_<name>)). The tracepoint is the kernel's: the
// module's copy refers to __tracepoint_sched_wakeup and __SCT__tp_func_sched_wakeup as externs
// and carries its own __jump_table entry for the key. The other function firing it is not
// reported. The static call's site is objtool's: written into each object on 6.1 (the
// 6.1+objtool set), at the vmlinux.o and module links on IBT kernels (6.12).
//#Flags: 6.1+objtool 6.12 clang
//#Expect: func.changed try_wake_task
//#ExpectNot: func.changed wake_idle_task
//#Included: try_wake_task
//#Extern: __tracepoint_sched_wakeup
//#Extern: __SCT__tp_func_sched_wakeup
//#Entries: __jump_table 1

struct static_key {
	int enabled;
	void *entries;
};
struct tracepoint {
	const char *name;
	struct static_key key;
	void *funcs;
};
struct task_struct {
	int pid;
	int state;
	int on_rq;
};

extern struct tracepoint __tracepoint_sched_wakeup;
struct tracepoint_func {
	void *func;
	void *data;
};

extern void __SCT__tp_func_sched_wakeup(void *data, struct task_struct *p);

struct static_call_key {
	void *func;
};

extern struct static_call_key __SCK__tp_func_sched_wakeup;

// static_call() takes the key's address (__STATIC_CALL_ADDRESSABLE), where objtool finds it.
static void *__attribute__((__section__(".discard.addressable"), __used__))
	__UNIQUE_ID_addressable___SCK__tp_func_sched_wakeup = &__SCK__tp_func_sched_wakeup;

static inline __attribute__((__always_inline__)) _Bool arch_static_branch(struct static_key *key, _Bool branch)
{
	asm goto("1:"
		 ".byte 0x0f,0x1f,0x44,0x00,0\n\t"
		 ".pushsection __jump_table,  \"aw\" \n\t"
		 ".balign 8\n\t"
		 ".long 1b - . \n\t"
		 ".long %l[l_yes] - . \n\t"
		 ".quad %c0 + %c1 - .\n\t"
		 ".popsection \n\t"
		 : : "i"(key), "i"(branch) : : l_yes);
	return 0;
l_yes:
	return 1;
}

static inline __attribute__((__always_inline__)) void trace_sched_wakeup(struct task_struct *p)
{
	if (__builtin_expect(arch_static_branch(&__tracepoint_sched_wakeup.key, 0), 0)) {
		struct tracepoint_func *it = *(struct tracepoint_func *volatile *)&__tracepoint_sched_wakeup.funcs;

		if (it)
			__SCT__tp_func_sched_wakeup(it->data, p);
	}
}

int try_wake_task(struct task_struct *p, int state)
{
	if (!(p->state & state))
		return 0;
#ifdef PATCHED
	if (p->on_rq)
		return 0;
#endif
	p->state = 0;
	trace_sched_wakeup(p);
	return 1;
}

void wake_idle_task(struct task_struct *p)
{
	p->state = 0;
	trace_sched_wakeup(p);
}
