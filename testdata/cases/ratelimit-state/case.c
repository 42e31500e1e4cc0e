// printk_ratelimited() (include/linux/printk.h) keeps a `static struct ratelimit_state _rs`
// initialised by DEFINE_RATELIMIT_STATE (interval, burst, and the lock) per call site. The fix
// changes the message of one call site: the module's copy gets its own _rs (a fresh ratelimit
// window, harmless), which is never correlated nor a data change; the other function's _rs is not
// touched and that function is not reported.
//#Flags: 6.1 6.12
//#Expect: func.changed nfs_warn_stale
//#ExpectNot: func.changed nfs_warn_busy
//#ExpectNot: data.changed _rs
//#Included: nfs_warn_stale
//#Included: _rs.3
//#Extern: ___ratelimit

struct ratelimit_state {
	int lock;
	int interval;
	int burst;
	int printed;
	int missed;
	unsigned long begin;
	unsigned long flags;
};

extern int ___ratelimit(struct ratelimit_state *rs, const char *func);
extern int _printk(const char *fmt, ...);

#define printk_ratelimited(fmt, ...)					\
({									\
	static struct ratelimit_state _rs = {				\
		.interval = 5 * 250, .burst = 10,			\
	};								\
									\
	if (___ratelimit(&_rs, __func__))				\
		_printk(fmt, ##__VA_ARGS__);				\
})

void nfs_warn_stale(unsigned long fileid)
{
#ifdef PATCHED
	printk_ratelimited("\0014NFS: stale file handle, fileid %lu\n", fileid);
#else
	printk_ratelimited("\0014NFS: stale file handle %lu\n", fileid);
#endif
}

void nfs_warn_busy(unsigned long fileid)
{
	printk_ratelimited("\0014NFS: busy %lu\n", fileid);
}
