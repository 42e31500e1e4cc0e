// A fix in a function using atomics (arch/x86/include/asm/atomic.h: LOCK_PREFIX records each
// `lock` prefix in .smp_locks, s32 offsets, so a uniprocessor boot can patch them to NOPs and
// back). The fix adds an atomic to a function that had one: its copy needs both entries (the
// module's lock prefixes are patched with the kernel's when CPUs come and go), and the
// unchanged function's entry stays in the kernel.
//#Flags: 6.1 6.1+objtool 6.12
//#Expect: func.changed sk_refcnt_get
//#ExpectNot: func.changed sk_refcnt_put
//#Included: sk_refcnt_get
//#Entries: .smp_locks 2
//#Entries: __mcount_loc 1

#define LOCK_PREFIX							\
	".pushsection .smp_locks,\"a\"\n"				\
	".balign 4\n"							\
	".long 671f - .\n"						\
	".popsection\n"							\
	"671:\n\tlock; "

typedef struct {
	int counter;
} atomic_t;

static inline __attribute__((__always_inline__)) void atomic_inc(atomic_t *v)
{
	asm volatile(LOCK_PREFIX "incl %0" : "+m"(v->counter) : : "memory");
}

static inline __attribute__((__always_inline__)) void atomic_dec(atomic_t *v)
{
	asm volatile(LOCK_PREFIX "decl %0" : "+m"(v->counter) : : "memory");
}

struct sock {
	atomic_t sk_refcnt;
	atomic_t sk_users;
	int sk_state;
};

void sk_refcnt_get(struct sock *sk)
{
	atomic_inc(&sk->sk_refcnt);
#ifdef PATCHED
	if (sk->sk_state == 1)
		atomic_inc(&sk->sk_users);
#endif
}

void sk_refcnt_put(struct sock *sk)
{
	atomic_dec(&sk->sk_refcnt);
}
