// __init is decided by the section, not the name (issue 8: false __init refusals on objects of
// other kernels): kernel/locking/rwsem.c's __init_rwsem() is ordinary .text code that runs on
// every rwsem initialisation, despite its name. A fix in it is an ordinary changed function.
//#Flags: 6.1 6.1+objtool 6.12 clang
//#Expect: func.changed __init_rwsem
//#ExpectNot: func.init-changed __init_rwsem
//#ExpectNot: func.changed init_rwsem_count
//#Included: __init_rwsem

struct rw_semaphore {
	long count;
	long owner;
	const char *name;
	void *wait_list;
};

void __init_rwsem(struct rw_semaphore *sem, const char *name)
{
	sem->count = 0;
#ifdef PATCHED
	sem->owner = -1;
#else
	sem->owner = 0;
#endif
	sem->name = name;
	sem->wait_list = 0;
}

long init_rwsem_count(const struct rw_semaphore *sem)
{
	return sem->count;
}
