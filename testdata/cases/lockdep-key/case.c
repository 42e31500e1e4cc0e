// spin_lock_init() and mutex_init() with lockdep (include/linux/spinlock.h) define a
// `static struct lock_class_key __key` per call site, one lock class each. A fix that changes a
// function calling mutex_init() gets a module copy with its own __key (a new lock class for locks
// it initialises from then on), never correlated nor a data change; the unchanged initialiser is
// not reported.
//#Flags: 6.1 6.1+objtool 6.12
//#Expect: func.changed pipe_alloc
//#ExpectNot: func.changed pipe_reset
//#ExpectNot: data.changed __key
//#Included: pipe_alloc
//#Included: __key.1
//#Extern: __mutex_init

struct lock_class_key {
	void *subkeys[8];
};
struct mutex {
	long owner;
	int wait_lock;
};

extern void __mutex_init(struct mutex *lock, const char *name, struct lock_class_key *key);

#define mutex_init(mutex)						\
do {									\
	static struct lock_class_key __key;				\
									\
	__mutex_init((mutex), #mutex, &__key);				\
} while (0)

struct pipe {
	struct mutex mutex;
	struct mutex rd_mutex;
	unsigned int buffers;
};

void pipe_alloc(struct pipe *p, unsigned int n)
{
	mutex_init(&p->mutex);
#ifdef PATCHED
	p->buffers = n ? n : 16;
#else
	p->buffers = n;
#endif
}

void pipe_reset(struct pipe *p)
{
	mutex_init(&p->rd_mutex);
	p->buffers = 0;
}
