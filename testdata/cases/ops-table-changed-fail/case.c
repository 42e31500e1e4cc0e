// A fix that points a method of a const operations table at another function
// (`static const struct file_operations ..._fops = { .release = new_release }`): the table is
// read-only data the kernel already holds and has registered; its relocation now names another
// function, which is a change of initial value. Refused: patch the old method instead. The new
// method itself is a new function.
//#ExpectError: ^data\.changed .*proc_fops.*initial value
//#Expect: data.changed proc_fops
//#Expect: func.added proc_release_sync
//#ExpectNot: func.changed proc_read
//#Flags: 6.1 clang

struct file_operations {
	long (*read)(void *f, char *buf, long n);
	int (*release)(void *f);
};

extern long seq_read(void *f, char *buf, long n);
extern int single_release(void *f);
extern void sync_pending(void *f);
extern int proc_register(const struct file_operations *fops);

#ifdef PATCHED
static int proc_release_sync(void *f)
{
	sync_pending(f);
	return single_release(f);
}
#endif

static long proc_read(void *f, char *buf, long n)
{
	return seq_read(f, buf, n);
}

static const struct file_operations proc_fops = {
	.read = proc_read,
#ifdef PATCHED
	.release = proc_release_sync,
#else
	.release = single_release,
#endif
};

int proc_init_fops(void)
{
	return proc_register(&proc_fops);
}
